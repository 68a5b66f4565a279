"""A NIR graph -> a torch module on sparsespike's kernels: a chain of nodes from its Input to its
Output, run over a whole sequence [T, B, ...] per call."""

from __future__ import annotations

import warnings
from typing import Optional

import nir
import numpy as np
import torch
from torch import Tensor, nn

from ..nn import LIF, SpikeConv2d, SpikeLinear
from ..ops.lif import lif
from .conventions import DEFAULT_DT, check_dt, nir_to_beta
from .shapes import conv2d_output


class Scale(nn.Module):
    """Multiplies the input current by a fixed per-neuron factor (a NIR neuron's r dt / tau)."""

    def __init__(self, factor: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("factor", _tensor(factor))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.factor


class LeakyIntegrator(nn.Module):
    """NIR's LI: v_t = beta v_{t-1} + I_t without threshold or reset; outputs the membrane [T, B, ...]."""

    def __init__(self, beta: np.ndarray, backend: Optional[str] = None) -> None:
        super().__init__()
        self.register_buffer("beta", _tensor(beta))
        self.backend = backend

    def forward(self, x: Tensor) -> Tensor:
        return lif(x, self.beta, 1.0, reset="none", return_trace=True, backend=self.backend).trace


class SampleFlatten(nn.Module):
    """Flattens each sample's dims of [T, B, ...] (NIR's dims count without batch and time)."""

    def __init__(self, start_dim: int, end_dim: int) -> None:
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(*(d + 2 if d >= 0 else d for d in (self.start_dim, self.end_dim)))


class NIRNetwork(nn.Module):
    """The imported chain: forward(x [T, B, *input_shape], time-major) -> the output node's
    sequence [T, B, *output_shape] (spikes, or a membrane for an LI output)."""

    def __init__(self, names: list[str], layers: list[nn.Module], input_shape, output_shape) -> None:
        super().__init__()
        self.names = names
        self.layers = nn.ModuleList(layers)
        self.input_shape, self.output_shape = tuple(input_shape), tuple(output_shape)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 2 + len(self.input_shape) or tuple(x.shape[2:]) != self.input_shape:
            raise ValueError(
                f"x must be [T, B, {', '.join(map(str, self.input_shape))}] (time-major), got {list(x.shape)}"
            )
        for layer in self.layers:
            x = layer(x)
        return x

    def extra_repr(self) -> str:
        return f"nodes={self.names}"


def _chain(graph: nir.NIRGraph) -> list[str]:
    """The node names from the graph's one Input to its one Output; a clear error otherwise."""
    inputs = [n for n, node in graph.nodes.items() if isinstance(node, nir.Input)]
    outputs = [n for n, node in graph.nodes.items() if isinstance(node, nir.Output)]
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(f"graph: one Input and one Output node supported, got inputs {inputs}, outputs {outputs}")
    following: dict[str, list[str]] = {}
    for src, dst in graph.edges:
        for end in (src, dst):
            if end not in graph.nodes:
                raise ValueError(f"graph: edge ({src!r}, {dst!r}) names a node that is not in the graph: {end!r}")
        if src == outputs[0]:
            raise ValueError(f"graph: an edge leaves the Output node ({src!r} -> {dst!r})")
        following.setdefault(src, []).append(dst)
    chain, node = [inputs[0]], inputs[0]
    while node != outputs[0]:
        nxt = following.get(node, [])
        if len(nxt) != 1:
            raise ValueError(f"graph: node {node!r} leads to {nxt}; only a chain of nodes (no branches) imports")
        node = nxt[0]
        if node in chain:
            raise ValueError(f"graph: a cycle through {node!r}; recurrent graphs do not import")
        chain.append(node)
    unused = set(graph.nodes) - set(chain)
    if unused:
        raise ValueError(f"graph: nodes off the Input-Output chain: {sorted(unused)}")
    return chain


def _array(node, field: str, name: str) -> np.ndarray:
    value = getattr(node, field, None)
    if value is None:
        raise ValueError(f"node {name!r} ({type(node).__name__}) has no {field}")
    value = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(value)):
        raise ValueError(f"node {name!r} ({type(node).__name__}): {field} holds NaN or Inf")
    return value


def _tensor(value: np.ndarray) -> Tensor:
    return torch.tensor(np.asarray(value, dtype=np.float32))  # a copy: NIR's arrays may be read-only


def _zero(node, field: str, name: str) -> None:
    value = getattr(node, field, None)
    if value is not None and np.any(np.asarray(value) != 0):
        raise ValueError(f"node {name!r} ({type(node).__name__}): {field} must be 0 here, got {value}")


def _unit(scale: np.ndarray) -> bool:
    """r dt / tau is 1 up to float32 rounding of the stored tau and r (an export from beta)."""
    return bool(np.all(np.abs(scale - 1.0) <= 1e-6))


Layers = list  # of (name suffix, module): "" for the node's own module


def _shape_error(name: str, node, expected, got) -> ValueError:
    return ValueError(f"node {name!r} ({type(node).__name__}) takes {expected}, but its input has shape {got}")


def _per_neuron(value: np.ndarray, shape, field: str, name: str, node) -> np.ndarray:
    """``value`` over the layer's neurons: one number, or one per neuron of ``shape``."""
    if value.size != 1 and value.shape != tuple(shape):
        raise _shape_error(name, node, f"{field} of shape {value.shape}", shape)
    return np.broadcast_to(value.reshape(()) if value.size == 1 else value, shape)


def _decay(node, tau: str, r: str, shape, dt: float, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(beta, input scale r dt / tau) over the layer's neurons, from the node's ``tau`` and ``r`` fields."""
    beta, scale = nir_to_beta(_array(node, tau, name), _array(node, r, name), dt, name)
    return _per_neuron(beta, shape, tau, name, node), _per_neuron(scale, shape, r, name, node)


def _threshold(node, shape, name: str) -> np.ndarray:
    threshold = _per_neuron(_array(node, "v_threshold", name), shape, "v_threshold", name, node)
    if not np.all(threshold > 0):
        raise ValueError(f"node {name!r} ({type(node).__name__}): v_threshold must be > 0")
    return threshold


def _scaled(part: str, scale: np.ndarray, shape) -> Layers:
    """A Scale layer named ``part`` unless the factor is 1."""
    return [] if _unit(scale) else [(part, Scale(np.broadcast_to(scale, shape)))]


def _spiking(beta: np.ndarray, threshold: np.ndarray, backend: Optional[str]) -> LIF:
    return LIF(_tensor(beta), _tensor(threshold), reset="zero", backend=backend)


def _affine(node, name: str, shape, dt: float, backend) -> tuple[Layers, tuple]:
    weight = _array(node, "weight", name)
    if weight.ndim != 2 or shape != (weight.shape[1],):
        raise _shape_error(name, node, f"({weight.shape[-1]},)", shape)
    bias = _array(node, "bias", name).reshape(-1) if isinstance(node, nir.Affine) else None
    if bias is not None and bias.size != weight.shape[0]:
        raise ValueError(f"node {name!r} (Affine): bias of {bias.size} for {weight.shape[0]} outputs")
    layer = SpikeLinear(weight.shape[1], weight.shape[0], bias=bias is not None, backend=backend)
    with torch.no_grad():
        layer.weight.copy_(_tensor(weight))
        if bias is not None:
            layer.bias.copy_(_tensor(bias))
    return [("", layer)], (weight.shape[0],)


def _conv(node, name: str, shape, dt: float, backend) -> tuple[Layers, tuple]:
    weight = _array(node, "weight", name)
    groups = int(node.groups)
    if weight.ndim != 4 or len(shape) != 3 or shape[0] != weight.shape[1] * groups:
        raise _shape_error(name, node, f"({weight.shape[1] * groups}, H, W)", shape)
    if isinstance(node.padding, str):
        raise ValueError(f"node {name!r} (Conv2d): padding {node.padding!r}; numbers import")
    bias = _array(node, "bias", name).reshape(-1)
    if bias.size != weight.shape[0]:
        raise ValueError(f"node {name!r} (Conv2d): bias of {bias.size} for {weight.shape[0]} channels")
    if not all(len(v) == 2 for v in (node.stride, node.padding, node.dilation)):
        raise ValueError(f"node {name!r} (Conv2d): stride, padding and dilation need two numbers each")
    layer = SpikeConv2d(
        weight.shape[1] * groups,
        weight.shape[0],
        tuple(weight.shape[2:]),
        stride=tuple(int(s) for s in node.stride),
        padding=tuple(int(p) for p in node.padding),
        dilation=tuple(int(d) for d in node.dilation),
        groups=groups,
        backend=backend,
    )
    with torch.no_grad():
        layer.weight.copy_(_tensor(weight))
        layer.bias.copy_(_tensor(bias))
    out = conv2d_output(shape, weight.shape[0], weight.shape[2:], layer.stride, layer.padding, layer.dilation)
    if min(out) < 1:
        raise _shape_error(name, node, f"a map of at least the kernel's {tuple(weight.shape[2:])} extent", shape)
    return [("", layer)], tuple(out)


def _flatten(node, name: str, shape, dt: float, backend) -> tuple[Layers, tuple]:
    start, end = int(node.start_dim), int(node.end_dim)
    layer = SampleFlatten(start, end)
    try:
        out = layer(torch.zeros((1, 1, *shape)))
    except (IndexError, RuntimeError) as exc:
        raise _shape_error(name, node, f"start_dim {start}, end_dim {end}", shape) from exc
    return [("", layer)], tuple(out.shape[2:])


def _lif(node, name: str, shape, dt: float, backend) -> tuple[Layers, tuple]:
    """LIF, or IF (no leak, v += r I)."""
    _zero(node, "v_reset", name)
    threshold = _threshold(node, shape, name)
    if isinstance(node, nir.LIF):
        _zero(node, "v_leak", name)
        beta, scale = _decay(node, "tau", "r", shape, dt, name)
    else:  # IF: dv/dt = r I, one Euler step adds dt r I
        scale = _per_neuron((_array(node, "r", name) * dt).astype(np.float32), shape, "r", name, node)
        beta = np.ones_like(scale)
    return _scaled(".input_scale", scale, shape) + [("", _spiking(beta, threshold, backend))], shape


def _cuba_lif(node, name: str, shape, dt: float, backend) -> tuple[Layers, tuple]:
    """A leaky synaptic current (an integrator, input scaled by w_in dt / tau_syn) feeding a LIF."""
    _zero(node, "v_leak", name)
    _zero(node, "v_reset", name)
    threshold = _threshold(node, shape, name)
    alpha, syn_scale = _decay(node, "tau_syn", "w_in", shape, dt, name)
    beta, scale = _decay(node, "tau_mem", "r", shape, dt, name)
    return (
        _scaled(".synapse_scale", syn_scale, shape)
        + [(".synapse", LeakyIntegrator(alpha, backend))]
        + _scaled(".input_scale", scale, shape)
        + [("", _spiking(beta, threshold, backend))]
    ), shape


def _li(node, name: str, shape, dt: float, backend) -> tuple[Layers, tuple]:
    _zero(node, "v_leak", name)
    beta, scale = _decay(node, "tau", "r", shape, dt, name)
    return _scaled(".input_scale", scale, shape) + [("", LeakyIntegrator(beta, backend))], shape


# each importable node type: (node, its name, input shape, dt, backend) -> (layers, output shape)
BUILDERS = {
    nir.Affine: _affine,
    nir.Linear: _affine,
    nir.Conv2d: _conv,
    nir.Flatten: _flatten,
    nir.LIF: _lif,
    nir.IF: _lif,
    nir.CubaLIF: _cuba_lif,
    nir.LI: _li,
}
SUPPORTED = tuple(kind.__name__ for kind in BUILDERS)


def import_(graph: nir.NIRGraph, dt: Optional[float] = None, backend: Optional[str] = None) -> NIRNetwork:
    """A NIR graph as a :class:`NIRNetwork` on sparsespike's kernels (SpikeLinear, SpikeConv2d, the
    fused LIF). ``dt``: seconds per time step, as the graph was written for (snnTorch's exporter
    1e-4, Norse 1e-3; None: the dt sparsespike's export stored in the graph's metadata, else
    1e-4): beta = 1 - dt / tau, and a neuron's input is scaled by r dt / tau (see
    :mod:`.conventions`). A dt other than the stored one warns. Chains of Affine, Linear, Conv2d, Flatten, LIF, CubaLIF (a leaky synaptic
    current into a LIF), IF and LI nodes import; anything else, a branch, a cycle, a missing
    parameter or a shape that does not fit raises a ValueError naming the node."""
    if not isinstance(graph, nir.NIRGraph):
        raise TypeError(f"graph must be a nir.NIRGraph, got {type(graph).__name__}")
    stored = (graph.metadata or {}).get("dt")
    if dt is None:
        dt = stored if stored is not None else DEFAULT_DT
    elif stored is not None and not np.isclose(float(stored), dt):
        warnings.warn(
            f"dt={dt:g} s, but the graph was exported for dt={float(stored):g} s: its neurons decay differently",
            UserWarning,
            stacklevel=2,
        )
    dt = check_dt(dt)
    chain = _chain(graph)
    input_type = graph.nodes[chain[0]].input_type
    try:
        shape = input_shape = tuple(int(s) for s in np.asarray(next(iter(input_type.values()))).reshape(-1))
    except (AttributeError, StopIteration, TypeError, ValueError):
        raise ValueError(f"graph: the Input node {chain[0]!r} has no shape") from None
    names, layers = [], []
    for name in chain[1:-1]:
        node = graph.nodes[name]
        build = BUILDERS.get(type(node))
        if build is None:
            raise ValueError(f"node {name!r}: {type(node).__name__} does not import; supported: {', '.join(SUPPORTED)}")
        built, shape = build(node, name, shape, dt, backend)
        for suffix, module in built:
            names.append(name + suffix)
            layers.append(module)
    return NIRNetwork(names, layers, input_shape, shape)
