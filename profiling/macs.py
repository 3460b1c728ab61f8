"""MACs and bytes of what actually executes, counted at dispatch level, attributed to layers.

A ``TorchDispatchMode`` sees every aten op that runs, including functional and sliced
convolutions that module hooks miss. Composite ops (``conv3d``, ``linear``, ``einsum`` ...) are
decomposed so the kernels underneath are what gets counted. Module pre/post-forward hooks keep a
stack of the modules being run, and each op is attributed to the innermost one, so per-layer
numbers are that module's own ("self") cost and the layers sum to the total.

MACs count multiply-accumulates of the conv/linear/matmul/attention family (FLOPs = 2 x MACs);
element-wise ops, normalisation and pooling have none but do move bytes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from profiling.inputs import batch_size_of, call_with
from profiling.memory import EXECUTED_OPS, analytic_layer_cost, op_bytes

ROOT = "(root)"
aten = torch.ops.aten


def _conv(args: tuple, out: torch.Tensor) -> int:
    """``convolution(input, weight, bias, stride, padding, dilation, transposed, ...)``."""
    x, weight, transposed = args[0], args[1], bool(args[6])
    per_element = math.prod(weight.shape[1:])  # Cin/groups * k (or Cout/groups * k when transposed)
    return (x.numel() if transposed else out.numel()) * per_element


def _conv_forward(args: tuple, out: torch.Tensor) -> int:
    """Backend convolutions called directly (never transposed)."""
    return out.numel() * math.prod(args[1].shape[1:])


def _conv_transpose_forward(args: tuple, out: torch.Tensor) -> int:
    return args[0].numel() * math.prod(args[1].shape[1:])


def _matmul(a: torch.Tensor, b: torch.Tensor) -> int:
    """(..., n, k) @ (..., k, m): n*k*m per batch entry."""
    return a.numel() * b.shape[-1]


def _attention(args: tuple, out: Any) -> int:
    """Fused attention on q (B, H, L, E), k (B, H, S, E), v (B, H, S, Ev): QK^T and AV."""
    q, k, v = args[0], args[1], args[2]
    rows = q.numel() // q.shape[-1]  # B * H * L
    return rows * k.shape[-2] * (q.shape[-1] + v.shape[-1])


def _formulas() -> dict[torch._ops.OpOverload, Callable[[tuple, Any], int]]:
    table: dict[str, Callable[[tuple, Any], int]] = {
        "convolution.default": _conv,
        "_convolution.default": _conv,
        "convolution_overrideable.default": _conv,
        "mkldnn_convolution.default": _conv_forward,
        "cudnn_convolution.default": _conv_forward,
        "cudnn_convolution_transpose.default": _conv_transpose_forward,
        "mm.default": lambda args, out: _matmul(args[0], args[1]),
        "mv.default": lambda args, out: args[0].numel(),
        "dot.default": lambda args, out: args[0].numel(),
        "addmv.default": lambda args, out: args[1].numel(),
        "addbmm.default": lambda args, out: _matmul(args[1], args[2]),
        "_addmm_activation.default": lambda args, out: _matmul(args[1], args[2]),
        "bmm.default": lambda args, out: _matmul(args[0], args[1]),
        "addmm.default": lambda args, out: _matmul(args[1], args[2]),
        "baddbmm.default": lambda args, out: _matmul(args[1], args[2]),
        "_scaled_dot_product_flash_attention.default": _attention,
        "_scaled_dot_product_flash_attention_for_cpu.default": _attention,
        "_scaled_dot_product_efficient_attention.default": _attention,
        "_scaled_dot_product_cudnn_attention.default": _attention,
    }
    resolved = {}
    for name, formula in table.items():
        packet, _, overload = name.partition(".")
        if hasattr(aten, packet):  # some ops exist only in some builds
            resolved[getattr(getattr(aten, packet), overload)] = formula
    return resolved


MAC_FORMULAS = _formulas()


@dataclass(frozen=True)
class LayerCost:
    """One module's own cost; ``*_analytic`` are None for non-leaf modules (not modelled)."""

    layer: str
    module_type: str
    calls: int
    macs: int
    bytes_read: int
    bytes_written: int
    macs_analytic: int | None
    bytes_read_analytic: int | None
    bytes_written_analytic: int | None


@dataclass(frozen=True)
class OpCost:
    """One aten op's total over the run."""

    op: str
    calls: int
    macs: int
    bytes_read: int
    bytes_written: int


def records(rows: Iterable[LayerCost | OpCost]) -> list[dict[str, Any]]:
    """Rows as plain dicts (for DataFrames, CSV and JSON)."""
    return [{f.name: getattr(row, f.name) for f in fields(row)} for row in rows]


@dataclass(frozen=True)
class MacCount:
    """Executed cost of one call on ``batch_size`` clips (``bytes_source="executed-ops"``)."""

    macs: int
    bytes_read: int
    bytes_written: int
    batch_size: int
    layers: tuple[LayerCost, ...]
    operators: tuple[OpCost, ...]
    bytes_source: str = EXECUTED_OPS

    @property
    def macs_per_clip(self) -> float:
        return self.macs / self.batch_size

    @property
    def analytic_macs(self) -> int:
        return sum(layer.macs_analytic or 0 for layer in self.layers)

    @property
    def analytic_bytes_read(self) -> int:
        return sum(layer.bytes_read_analytic or 0 for layer in self.layers)

    @property
    def analytic_bytes_written(self) -> int:
        return sum(layer.bytes_written_analytic or 0 for layer in self.layers)

    def layer(self, name: str) -> LayerCost:
        for layer in self.layers:
            if layer.layer == name:
                return layer
        raise KeyError(f"no layer {name!r}; layers: {[layer.layer for layer in self.layers]}")


class _Totals:
    __slots__ = ("calls", "macs", "bytes_read", "bytes_written")

    def __init__(self) -> None:
        self.calls = self.macs = self.bytes_read = self.bytes_written = 0

    def add(self, macs: int, read: int, written: int) -> None:
        self.calls += 1
        self.macs += macs
        self.bytes_read += read
        self.bytes_written += written


class _ModuleStack:
    """Forward pre/post hooks on every module of ``root`` maintaining the current-module stack."""

    def __init__(self, root: nn.Module | None) -> None:
        self.stack: list[str] = []
        self.types: dict[str, str] = {ROOT: "function"}
        self.calls: dict[str, int] = {}
        self.analytic: dict[str, _Totals] = {}
        self._handles: list[Any] = []
        self._root = root

    def __enter__(self) -> _ModuleStack:
        if self._root is None:
            return self
        for name, module in self._root.named_modules():
            if isinstance(module, torch.jit.ScriptModule):
                continue  # scripted modules take no hooks; their ops go to the enclosing module
            label = name or ROOT
            self.types[label] = type(module).__name__
            leaf = next(module.children(), None) is None
            self._handles.append(module.register_forward_pre_hook(self._pre(label)))
            self._handles.append(module.register_forward_hook(self._post(label, leaf), always_call=True))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _pre(self, label: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple) -> None:
            self.stack.append(label)
            self.calls[label] = self.calls.get(label, 0) + 1

        return hook

    def _post(self, label: str, leaf: bool) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple, output: Any) -> None:
            while self.stack and self.stack.pop() != label:
                pass  # unwinding after an exception inside a child
            if leaf and output is not None:
                cost = analytic_layer_cost(module, args, output)
                self.analytic.setdefault(label, _Totals()).add(cost.macs, cost.bytes_read, cost.bytes_written)

        return hook

    @property
    def current(self) -> str:
        """Innermost running module; ROOT for ops outside any module of the tree."""
        return self.stack[-1] if self.stack else ROOT


class _CostMode(TorchDispatchMode):
    """Counts MACs and bytes of each executed op under the current module."""

    def __init__(self, modules: _ModuleStack) -> None:
        super().__init__()
        self.modules = modules
        self.by_layer: dict[str, _Totals] = {}
        self.by_op: dict[str, _Totals] = {}

    def __torch_dispatch__(
        self, func: torch._ops.OpOverload, types: tuple, args: tuple = (), kwargs: dict | None = None
    ) -> Any:
        kwargs = kwargs or {}
        formula = MAC_FORMULAS.get(func)
        if formula is None and func.namespace == "aten":
            with self:  # count the kernels a composite op runs, not the composite itself
                result = func.decompose(*args, **kwargs)
            if result is not NotImplemented:
                return result
        out = func(*args, **kwargs)
        macs = formula(args, out) if formula is not None else 0
        read, written = op_bytes(func, args, kwargs, out)
        self.by_layer.setdefault(self.modules.current, _Totals()).add(macs, read, written)
        self.by_op.setdefault(str(func.overloadpacket).removeprefix("aten."), _Totals()).add(macs, read, written)
        return out


def _layers(modules: _ModuleStack, mode: _CostMode) -> tuple[LayerCost, ...]:
    labels = list(mode.by_layer) + [label for label in modules.analytic if label not in mode.by_layer]
    rows = []
    for label in labels:
        executed = mode.by_layer.get(label, _Totals())
        analytic = modules.analytic.get(label)
        rows.append(
            LayerCost(
                layer=label,
                module_type=modules.types[label],
                calls=modules.calls.get(label, 0),
                macs=executed.macs,
                bytes_read=executed.bytes_read,
                bytes_written=executed.bytes_written,
                macs_analytic=analytic.macs if analytic else None,
                bytes_read_analytic=analytic.bytes_read if analytic else None,
                bytes_written_analytic=analytic.bytes_written if analytic else None,
            )
        )
    return tuple(rows)


def count_macs(model: Callable[..., Any], inputs: Any, *, module: nn.Module | None = None) -> MacCount:
    """Run ``model(inputs)`` once under inference mode and count what executes.

    ``module`` is the module tree whose layers get the per-layer attribution; it defaults to
    ``model`` when that is an ``nn.Module`` (pass it when ``model`` is a wrapper function).
    """
    if module is None and isinstance(model, nn.Module):
        module = model
    with _ModuleStack(module) as modules, torch.inference_mode():
        with _CostMode(modules) as mode:
            call_with(model, inputs)
    totals = list(mode.by_op.values())
    return MacCount(
        macs=sum(t.macs for t in totals),
        bytes_read=sum(t.bytes_read for t in totals),
        bytes_written=sum(t.bytes_written for t in totals),
        batch_size=batch_size_of(inputs),
        layers=_layers(modules, mode),
        operators=tuple(OpCost(op, t.calls, t.macs, t.bytes_read, t.bytes_written) for op, t in mode.by_op.items()),
    )


def per_clip_macs(model: Callable[..., Any], clips: torch.Tensor, *, module: nn.Module | None = None) -> list[int]:
    """Executed MACs of each clip of a batch run alone (dynamic models differ clip to clip)."""
    return [count_macs(model, clip, module=module).macs for clip in clips.split(1)]
