"""The op framework: one entry, one path selector and one autograd wiring for every kernel op.

An op module declares a :class:`KernelOp`: its forward (``forward(path, adaptive, *inputs)``,
which runs the pure-torch reference on path "reference" and its C++ / Triton kernels on "cpp" /
"triton"), what its backward keeps (``save``) and its backward (``backward``), and its
torch.library custom ops. The framework then owns what every op used to hand-write:

- the path selector (:meth:`KernelOp.route`): backend, device, dtype and availability give one of
  "reference", "cpp", "triton", plus ``adaptive`` (backend "auto"), under which an op may still
  choose per call between its event-driven kernel and a dense product from the input density
  (``sparsespike.dispatch``);
- the entry (:meth:`KernelOp.__call__`): under torch.compile the custom op (what dynamo traces);
  the reference as plain torch ops (differentiable to any order); with a graph to record an
  autograd.Function around the kernels; without one the kernels directly (no per-call cost of
  autograd.Function: streaming inference);
- the backward: refuses double backward (the kernels compute gradients outside autograd), and
  is the same code for the eager Function and the custom op's registered autograd (``compiled``
  tells an op to call its backward custom op, so that torch.compile traces it).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Sequence

import torch
from torch import Tensor

from .._backend import cpp, triton_kernels
from ._validate import refuse_double_backward

PATHS = ("reference", "cpp", "triton")
_KERNEL_DTYPES = (torch.float32, torch.float64)
_DEVICE_KERNEL = {"cpu": "cpp", "cuda": "triton"}


class Route(NamedTuple):
    """Where one call runs: path ("reference", "cpp" or "triton"), adaptive (backend "auto":
    the op may still go dense per call), the resolved backend name (for errors and the custom
    op) and the public op that called (for errors)."""

    path: str
    adaptive: bool
    backend: str
    caller: str


def _dtype_names(dtypes: Optional[Sequence[torch.dtype]]) -> str:
    if dtypes is None:
        return "floating-point"
    names = [str(d).replace("torch.", "") for d in dtypes]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def needs_graph(inputs: Sequence[Any]) -> bool:
    """Whether autograd must record this call: grad mode on and a tensor input requiring grad."""
    return torch.is_grad_enabled() and any(isinstance(t, Tensor) and t.requires_grad for t in inputs)


class KernelOp:
    """One op's three implementations behind the framework's entry.

    Args:
        name: the public op (its errors name it), e.g. "spike_linear".
        forward: ``forward(path, adaptive, *inputs) -> tuple of tensors``; on path "reference"
            it must be plain differentiable torch.
        what: the routed tensor's name in dtype errors ("weights", "currents", ...).
        cpp_dtypes / triton_dtypes: dtypes the kernels take (None: every floating dtype).
        triton_module: the ``sparsespike.kernels`` module whose availability auto checks.
        save: ``save(ctx, route, inputs, outputs, eager)`` keeps what backward reads (the backward-save
            policy: each op keeps only what the requested gradients need, which
            ``ctx.input_needs[i]`` says for input i; ``eager`` is False in the custom op's
            autograd, where the saved tensors must stay traceable).
        backward: ``backward(ctx, grads, compiled) -> gradients of inputs``; None for an
            inference-only op.
        non_differentiable: indices of outputs without gradient (counts).
        custom_op: the forward custom op (a ``torch.library.custom_op``), called as
            ``custom_op(*inputs, backend)``; the framework registers its autograd (the same
            save and backward as the eager path).
        reference_in_custom_op: under torch.compile the reference path also goes through the
            custom op (its reference is not traceable, e.g. it counts with a C++ pass).
        materialize_grads: backward gets zeros for outputs the loss did not use (else None,
            which the time-looping kernels take as "no gradient" and skip).
    """

    def __init__(
        self,
        name: str,
        *,
        forward: Callable[..., tuple],
        what: str,
        cpp_dtypes: Optional[Sequence[torch.dtype]] = _KERNEL_DTYPES,
        triton_dtypes: Optional[Sequence[torch.dtype]] = _KERNEL_DTYPES,
        triton_module: Optional[str] = None,
        save: Optional[Callable[..., None]] = None,
        backward: Optional[Callable[..., tuple]] = None,
        non_differentiable: Sequence[int] = (),
        custom_op: Optional[Callable[..., tuple]] = None,
        reference_in_custom_op: bool = False,
        materialize_grads: bool = False,
    ):
        self.name = name
        self.forward = forward
        self.what = what
        self.dtypes = {"cpp": cpp_dtypes, "triton": triton_dtypes}
        self.triton_module = triton_module or name
        self.save = save
        self.backward = backward
        self.non_differentiable = tuple(non_differentiable)
        self.custom_op = custom_op
        self.reference_in_custom_op = reference_in_custom_op
        self.materialize_grads = materialize_grads
        if custom_op is not None and backward is not None:
            self._register_autograd(custom_op)

    @classmethod
    def spike_layer(cls, name: str, *, forward, save, backward, custom_op, **options) -> "KernelOp":
        """An event-driven spike layer (spike_linear, spike_conv2d): forward gives (out, event
        counts), the counts carry no gradient, its reference goes through the custom op under
        torch.compile (it counts events with kernels of its own), any float weight for Triton."""
        return cls(
            name,
            forward=forward,
            what="weights",
            triton_dtypes=None,
            save=save,
            backward=backward,
            non_differentiable=(1,),
            materialize_grads=True,
            custom_op=custom_op,
            reference_in_custom_op=True,
            **options,
        )

    # ----------------------------------------------------------------------- path selection

    def _takes(self, path: str, dtype: torch.dtype) -> bool:
        dtypes = self.dtypes[path]
        return dtype.is_floating_point if dtypes is None else dtype in dtypes

    def _available(self, path: str) -> bool:
        return cpp() is not None if path == "cpp" else triton_kernels(self.triton_module) is not None

    def route(self, backend: str, like: Tensor, *, caller: Optional[str] = None) -> Route:
        """The one path selector. ``backend`` is resolved (``_backend.resolve_backend``: device
        and availability of an explicit choice already checked); ``like`` is the tensor whose
        dtype and device decide."""
        caller = caller or self.name
        if backend == "reference":
            return Route("reference", False, backend, caller)
        if backend in ("cpp", "triton"):
            if not self._takes(backend, like.dtype):
                raise TypeError(
                    f"backend={backend!r} supports {_dtype_names(self.dtypes[backend])} {self.what}, got {like.dtype}"
                )
            return Route(backend, False, backend, caller)
        kernel = _DEVICE_KERNEL.get(like.device.type)
        if kernel is None or not self._takes(kernel, like.dtype) or not self._available(kernel):
            return Route("reference", False, backend, caller)
        return Route(kernel, True, backend, caller)

    def kernel_route(self, backend: str, like: Tensor) -> Route:
        """route() for a custom op that only runs kernels (its reference is called directly)."""
        route = self.route(backend, like)
        if route.path == "reference":
            raise ValueError(
                f"sparsespike::{self.name} runs the cpp or triton kernels; call {self.name}() for the reference"
            )
        return route

    # ----------------------------------------------------------------------- the entry

    def __call__(self, route: Route, *inputs) -> tuple:
        """Run the op's forward on ``route`` (from :meth:`route`) with autograd as needed."""
        compiling = torch.compiler.is_compiling()
        if compiling and self.custom_op is not None and (route.path != "reference" or self.reference_in_custom_op):
            return self.custom_op(*inputs, route.backend)
        if route.path == "reference" or self.backward is None or not needs_graph(inputs):
            return self.forward(route.path, route.adaptive, *inputs)
        return _KernelFunction.apply(self, route, *inputs)

    # ----------------------------------------------------------------------- custom-op autograd

    def _register_autograd(self, custom_op) -> None:
        """The custom op's autograd: the same save and backward as the eager Function; its last
        argument is the backend name, from which the route is taken again."""

        def setup_context(ctx, inputs, output):
            *args, backend = inputs
            # the path is chosen inside the backward custom op, from the backend, as in the forward's
            ctx.route = Route("", backend == "auto", backend, self.name)
            ctx.input_needs = ctx.needs_input_grad[:-1]
            self.save(ctx, ctx.route, tuple(args), output, False)

        def backward(ctx, *grads):
            refuse_double_backward(ctx.route.caller, ctx.route.backend)
            return (*self.backward(ctx, grads, True), None)

        custom_op.register_autograd(backward, setup_context=setup_context)


class _KernelFunction(torch.autograd.Function):
    """The eager wrapper of every op's kernels: forward, save, backward from the KernelOp."""

    @staticmethod
    def forward(ctx, op: KernelOp, route: Route, *inputs):
        ctx.set_materialize_grads(op.materialize_grads)
        outputs = op.forward(route.path, route.adaptive, *inputs)
        ctx.op, ctx.route = op, route
        ctx.input_needs = ctx.needs_input_grad[2:]
        op.save(ctx, route, inputs, outputs, True)
        for i in op.non_differentiable:
            ctx.mark_non_differentiable(outputs[i])
        return outputs

    @staticmethod
    def backward(ctx, *grads):
        refuse_double_backward(ctx.route.caller, ctx.route.backend)
        return (None, None, *ctx.op.backward(ctx, grads, False))
