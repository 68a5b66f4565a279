"""sparsespike modules -> a NIR graph: a chain of spike layers (SpikeLinear / nn.Linear,
SpikeConv2d / nn.Conv2d, flatten) and LIF neurons, from an nn.Sequential, an encoder, or a study
model without memory (M1, M2)."""

from __future__ import annotations

import warnings
from typing import Optional, Sequence

import nir
import numpy as np
import torch
from torch import nn

from ..models.architectures import StudyModel
from ..models.backbones import AudioEncoder, SpikingHead, VisualEncoder
from ..nn import LIF, LIFNode
from .conventions import DEFAULT_DT, beta_to_nir, check_dt
from .shapes import conv2d_output

SUBTRACT_RESET = ("error", "zero")


class _MembraneReadout(nn.Module):
    """Marks a study head's membrane readout in the chain: exported as a leaky integrator (LI)."""

    def __init__(self, head: SpikingHead) -> None:
        super().__init__()
        self.lif = head.lif_out


def _array(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float32).numpy().copy()


def _per_neuron(value: torch.Tensor, shape, path: str, field: str) -> np.ndarray:
    """A LIF parameter over the layer's neurons; an error naming the layer if it does not fit."""
    try:
        return np.broadcast_to(_array(value), shape).copy()  # NIR stores arrays, not views
    except ValueError:
        raise ValueError(
            f"layer {path!r}: {field} of shape {tuple(value.shape)} does not fit its {shape} neurons"
        ) from None


def _layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The model as a chain of (name, layer), in the order its forward runs them."""
    if isinstance(model, StudyModel):
        memories = ", ".join(
            f"{n}: {type(getattr(model, n)).__name__}" for n in ("hopfield", "hgrn") if hasattr(model, n)
        )
        if memories:
            raise ValueError(
                f"model: {type(model).__name__} has a memory ({memories}) and NIR has no node for it; export "
                "model.encoder for the spiking backbone alone"
            )
        return [(f"encoder.{n}", m) for n, m in _layers(model.encoder)] + [
            (f"head.{n}", m) for n, m in _layers(model.head)
        ]
    if isinstance(model, VisualEncoder):
        return [
            ("conv1", model.conv1),
            ("lif1", model.lif1),
            ("conv2", model.conv2),
            ("lif2", model.lif2),
            ("flatten", nn.Flatten(2)),
            ("fc1", model.fc1),
            ("lif3", model.lif3),
        ]
    if isinstance(model, AudioEncoder):
        return [(n, getattr(model, n)) for n in ("fc_input", "lif_input", "fc1", "lif1", "fc_hidden", "lif_hidden")]
    if isinstance(model, SpikingHead):
        readout = ("lif_out", model.lif_out) if model.readout == "count" else ("membrane_out", _MembraneReadout(model))
        return [("fc_out", model.fc_out), readout]
    if isinstance(model, nn.Sequential):
        return [(n, m) for n, m in model.named_children()]
    if isinstance(model, SpikingHead):
        raise TypeError("model: a SpikingHead exports as part of its study model")
    if hasattr(model, "encoders"):  # the joint model
        raise ValueError(f"model: {type(model).__name__} takes two inputs; export each of its encoders")
    raise TypeError(
        f"model: cannot export {type(model).__name__}; export takes an nn.Sequential of spike layers and LIFs, "
        "a study encoder, or a study model without memory (m1, m2)"
    )


def _input_shape(model: nn.Module, input_shape: Optional[Sequence[int]]) -> tuple[int, ...]:
    if input_shape is not None:
        shape = tuple(int(s) for s in input_shape)
    elif isinstance(model, StudyModel):
        shape = tuple(model.input_shape)
    elif isinstance(model, (VisualEncoder, AudioEncoder)):
        shape = tuple(model.input_shape)
    else:
        first = next((m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))), None)
        if not isinstance(first, nn.Linear):
            raise ValueError("input_shape: needed for a model that does not start with a Linear, e.g. (2, 34, 34)")
        shape = (first.in_features,)
    if not shape or any(s <= 0 for s in shape):
        raise ValueError(f"input_shape must be positive sizes without batch or time, got {input_shape!r}")
    return shape


def _conv_out(shape, conv: nn.Conv2d, name: str) -> tuple[int, ...]:
    if len(shape) != 3 or shape[0] != conv.in_channels:
        raise ValueError(f"layer {name!r}: Conv2d with {conv.in_channels} input channels after shape {shape}")
    if isinstance(conv.padding, str):
        raise ValueError(f"layer {name!r}: padding={conv.padding!r}; give the padding as numbers to export")
    return conv2d_output(shape, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation)


def _neuron(layer: LIF, name: str, shape, dt: float, subtract_reset: str, subtracted: list) -> nir.NIRNode:
    # SpikingJelly's convention (LIFNode) charges with (1 - beta) I when decay_input: r = 1; it
    # fires on h >= threshold where NIR fires on v > threshold (equal only on exact equality)
    scaled_input = layer.convention == "spikingjelly" and layer.decay_input
    if layer.reset == "none":
        raise ValueError(f"layer {name!r}: reset='none' spikes without resetting, which NIR's LIF cannot express")
    if layer.reset == "subtract":
        if subtract_reset == "error":
            raise ValueError(
                f"layer {name!r}: reset='subtract', which NIR cannot express (its LIF resets to v_reset); pass "
                "subtract_reset='zero' to export it as a reset to zero (spikes differ after a neuron's first spike)"
            )
        subtracted.append(name)
    beta = _per_neuron(layer.beta, shape, name, "beta")
    threshold = _per_neuron(layer.threshold, shape, name, "threshold")
    if np.all(beta == 1.0):  # no leak: NIR's IF, dv/dt = r I; one Euler step adds dt r I = I
        if scaled_input:
            raise ValueError(f"layer {name!r}: beta 1 with decay_input charges nothing; NIR has no such neuron")
        return nir.IF(r=np.full(shape, 1.0 / dt), v_threshold=threshold, v_reset=np.zeros_like(threshold))
    tau, r, v_leak = beta_to_nir(beta, dt, f"layer {name!r}")
    if scaled_input:
        r = np.ones_like(r)
    return nir.LIF(tau=tau, r=r, v_leak=v_leak, v_threshold=threshold, v_reset=np.zeros_like(threshold))


def export(
    model: nn.Module,
    dt: float = DEFAULT_DT,
    input_shape: Optional[Sequence[int]] = None,
    subtract_reset: str = "error",
) -> nir.NIRGraph:
    """``model`` as a NIR graph: one node per layer, named after the module path (dots as "_").

    Args:
        model: an nn.Sequential of SpikeLinear / nn.Linear, SpikeConv2d / nn.Conv2d, nn.Flatten and
            LIF (Leaky, LIFNode) layers; a study encoder; or a study model without memory (m1, m2), whose
            head is exported as its readout: LIF (spike counts) or LI (membrane).
        dt: seconds per time step; sets tau = dt / (1 - beta) (see :mod:`.conventions`).
        input_shape: one sample's shape without batch or time; taken from the model when it has one.
        subtract_reset: "error" (default) refuses a LIF with reset="subtract", which NIR cannot
            express; "zero" exports it as a reset to zero and warns, naming the layers.

    A memory (Hopfield, HGRN) has no NIR node: exporting a model with one raises, naming it.
    """
    dt = check_dt(dt)
    if subtract_reset not in SUBTRACT_RESET:
        raise ValueError(f"subtract_reset must be one of {SUBTRACT_RESET}, got {subtract_reset!r}")
    layers = _layers(model)
    shape = _input_shape(model, input_shape)
    nodes: dict[str, nir.NIRNode] = {"input": nir.Input(input_type=np.array(shape))}
    previous, edges, subtracted = "input", [], []
    for path, layer in layers:
        name = path.replace(".", "_")
        if isinstance(layer, nn.Linear):
            if shape != (layer.in_features,):
                raise ValueError(f"layer {path!r}: Linear with {layer.in_features} inputs after shape {shape}")
            weight = _array(layer.weight)
            node = nir.Linear(weight) if layer.bias is None else nir.Affine(weight, _array(layer.bias))
            shape = (layer.out_features,)
        elif isinstance(layer, nn.Conv2d):
            if layer.groups != 1:
                raise ValueError(f"layer {path!r}: groups={layer.groups}; NIR's Conv2d types only groups=1")
            out = _conv_out(shape, layer, path)
            bias = _array(layer.bias) if layer.bias is not None else np.zeros(layer.out_channels, np.float32)
            node = nir.Conv2d(
                input_shape=shape[1:],
                weight=_array(layer.weight),
                stride=layer.stride,
                padding=layer.padding,
                dilation=layer.dilation,
                groups=layer.groups,
                bias=bias,
            )
            shape = out
        elif isinstance(layer, nn.Flatten):
            # a sample's dims: start 1 in a step-wise model ([B, ...]), 2 in a sequence one ([T, B, ...])
            if layer.start_dim not in (1, 2) or layer.end_dim != -1:
                raise ValueError(f"layer {path!r}: only a flatten of all of a sample's dims exports (end_dim=-1)")
            node = nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0, end_dim=-1)
            shape = (int(np.prod(shape)),)
        elif isinstance(layer, (LIF, LIFNode)):
            cell = layer.cell if isinstance(layer, LIFNode) else layer  # LIFNode runs on a LIF
            node = _neuron(cell, path, shape, dt, subtract_reset, subtracted)
        elif isinstance(layer, _MembraneReadout):  # a leaky integrator; the logits are its time-mean
            tau, r, v_leak = beta_to_nir(_per_neuron(layer.lif.beta, shape, path, "beta"), dt, f"layer {path!r}")
            node = nir.LI(tau=tau, r=r, v_leak=v_leak)
        else:
            raise ValueError(f"layer {path!r}: {type(layer).__name__} has no NIR node here")
        nodes[name] = node
        edges.append((previous, name))
        previous = name
    nodes["output"] = nir.Output(output_type=np.array(shape))
    edges.append((previous, "output"))
    if subtracted:
        warnings.warn(
            f"exported with reset to zero instead of subtraction: {', '.join(subtracted)}",
            UserWarning,
            stacklevel=2,
        )
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"source": "sparsespike", "dt": dt})
