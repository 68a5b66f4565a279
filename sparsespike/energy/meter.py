"""EnergyMeter: per-layer synaptic operations counted by the kernels during a model run, the
dense-equivalent MACs of an ANN of the same topology, spike densities, and energy.

    with EnergyMeter(model) as meter:
        model(x)
    meter.layers()        # per synaptic layer: synops, macs, input/output density, ...
    meter.estimate()      # totals and energy (SNN vs ANN)

Every Linear / Conv2d in the model is a synaptic layer. Its SynOps are what the sparsespike op
counted (nonzero inputs x fan-out, exact at convolution borders); a plain nn.Linear / nn.Conv2d
(a dense layer inside a memory, say) is counted the same way from its input here. Rule for layers
whose input is not binary (the first layer on event-count frames, a memory's dense output):
``real_input="mac"`` (default) counts them as MACs in the SNN too, since a nonzero real value needs a
multiplication; ``"synop"`` counts each nonzero input as accumulates. Both totals are reported.
SynOps that other ops count (modern_hopfield's event-driven scores) are in ``other_synops`` and
in the totals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import nn

# the meter opens a layer's scope in a pre-hook and closes it in the forward hook, which the
# synop_scope context manager cannot span: it pushes onto the counter's scope stack directly
from ..synops import _scopes as synop_scopes
from ..synops import count_synops
from .profiles import DEFAULT_PROFILE, EnergyEstimate, estimate

REAL_INPUT_RULES = ("mac", "synop")


@dataclass
class LayerRecord:
    name: str
    kind: str  # "linear" or "conv2d"
    calls: int = 0
    synops: int = 0  # nonzero inputs x fan-out (kernel-counted for sparsespike layers)
    macs: int = 0  # dense-equivalent multiply-accumulates
    inputs: int = 0
    nonzero_inputs: int = 0
    binary_input: bool = True
    spikes_out: int = 0  # spikes of the LIF this layer drives (if any)
    neurons_out: int = 0
    _kernel_counted: bool = field(default=False, repr=False)

    @property
    def input_density(self) -> float:
        return self.nonzero_inputs / self.inputs if self.inputs else 0.0

    @property
    def output_density(self) -> Optional[float]:
        return self.spikes_out / self.neurons_out if self.neurons_out else None

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "kind": self.kind,
            "calls": self.calls,
            "synops": self.synops,
            "macs": self.macs,
            "input_density": self.input_density,
            "output_density": self.output_density,
            "binary_input": self.binary_input,
        }


def _dense_macs(module: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> int:
    if isinstance(module, nn.Conv2d):
        c_in = module.in_channels // module.groups
        kh, kw = module.kernel_size
        return out.numel() * c_in * kh * kw
    return out.numel() * module.in_features


def _fan_out_synops(module: nn.Module, inp: torch.Tensor, nonzero: int) -> int:
    """nnz x fan-out, for layers whose op does not count (dense nn.Linear / nn.Conv2d);
    convolutions approximate the fan-out by out_channels x kernel area (no border correction)."""
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return nonzero * (module.out_channels // module.groups) * kh * kw
    return nonzero * module.out_features


class EnergyMeter:
    """Context manager over a model run; see the module docstring."""

    def __init__(self, model: nn.Module, real_input: str = "mac") -> None:
        if real_input not in REAL_INPUT_RULES:
            raise ValueError(f"real_input must be one of {REAL_INPUT_RULES}, got {real_input!r}")
        self.model, self.real_input = model, real_input
        self.records: dict[str, LayerRecord] = {}
        self._handles: list = []
        self._counter = count_synops()
        self._depth = 0
        self.other_synops = 0

    def __enter__(self) -> "EnergyMeter":
        from ..models.calibration import spiking_layers

        driven = {id(layer): lif for _, layer, lif in spiking_layers(self.model)}
        for name, module in self.model.named_modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                kind = "conv2d" if isinstance(module, nn.Conv2d) else "linear"
                self.records[name] = record = LayerRecord(name, kind)
                self._handles.append(module.register_forward_pre_hook(self._enter_scope(name)))
                self._handles.append(module.register_forward_hook(self._measure(record)))
                if id(module) in driven:
                    self._handles.append(driven[id(module)].register_forward_hook(self._spikes(record)))
        self._counter.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._counter.__exit__(*exc)
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        while self._depth:  # a forward that raised left its scope open
            synop_scopes.pop()
            self._depth -= 1
        counted = self._counter.by_scope()
        for name, record in self.records.items():
            if record._kernel_counted:
                record.synops = counted.get(name, 0)
        # ops outside Linear / Conv2d layers that count SynOps (modern_hopfield's event-driven scores)
        self.other_synops = sum(v for scope, v in counted.items() if scope not in self.records)

    def _enter_scope(self, name: str):
        def hook(module, args):
            synop_scopes.append(name)
            self._depth += 1

        return hook

    def _measure(self, record: LayerRecord):
        def hook(module, args, out):
            synop_scopes.pop()
            self._depth -= 1
            inp = args[0]
            with torch.no_grad():
                nonzero = int(torch.count_nonzero(inp))
                binary = bool(((inp == 0) | (inp == 1)).all()) if inp.is_floating_point() else True
            record.calls += 1
            record.inputs += inp.numel()
            record.nonzero_inputs += nonzero
            record.binary_input &= binary
            record.macs += _dense_macs(module, inp, out)
            if type(module) in (nn.Linear, nn.Conv2d):
                record.synops += _fan_out_synops(module, inp, nonzero)
            else:
                record._kernel_counted = True

        return hook

    def _spikes(self, record: LayerRecord):
        def hook(module, args, out):
            spikes = out[0] if isinstance(out, tuple) else out
            with torch.no_grad():
                record.spikes_out += int(torch.count_nonzero(spikes))
            record.neurons_out += spikes.numel()

        return hook

    def layers(self) -> list[dict]:
        return [r.as_dict() for r in self.records.values() if r.calls]

    def estimate(self, profile=DEFAULT_PROFILE, real_input: Optional[str] = None) -> EnergyEstimate:
        """Totals over the run. Layers with binary input cost synops x accumulate; layers with
        real-valued input follow ``real_input`` (default: the meter's rule)."""
        rule = self.real_input if real_input is None else real_input
        if rule not in REAL_INPUT_RULES:
            raise ValueError(f"real_input must be one of {REAL_INPUT_RULES}, got {rule!r}")
        synops, snn_macs, macs = self.other_synops, 0, 0
        for r in self.records.values():
            macs += r.macs
            if r.binary_input or rule == "synop":
                synops += r.synops
            else:
                snn_macs += r.macs
        return estimate(synops, macs, profile, snn_macs=snn_macs)
