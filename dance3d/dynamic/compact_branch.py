"""A gated residual branch as a chain of conv stages that compact execution can slice and crop.

Each :class:`Stage` is one ``Conv3d`` with its following eval-mode BatchNorm folded into weight and
bias, then an optional point-wise activation; ``gate_in`` / ``gate_out`` say whether its input /
output channels are the gated inner channels. Branches built from other pieces (squeeze-
excitation, which pools over all positions; grouped convs that are not depthwise; non-additive
fusion) return ``None`` and their blocks run densely (still exact).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn

Activation = Callable[[torch.Tensor], torch.Tensor]
_POINTWISE: dict[str, Activation] = {  # in place: applied to fresh conv outputs only
    "ReLU": torch.relu_,
    "SiLU": lambda x: torch.nn.functional.silu(x, inplace=True),
    "Swish": lambda x: torch.nn.functional.silu(x, inplace=True),
}


@dataclass
class Stage:
    """One conv of a branch with BN folded in: ``act(conv(x, weight, bias))``."""

    weight: torch.Tensor  # (C_out, C_in / groups, kt, kh, kw)
    bias: torch.Tensor  # (C_out,)
    stride: tuple[int, int, int]
    padding: tuple[int, int, int]
    groups: int
    act: Activation | None
    gate_in: bool
    gate_out: bool

    @property
    def kernel(self) -> tuple[int, int, int]:
        return tuple(self.weight.shape[2:])  # type: ignore[return-value]

    @property
    def depthwise(self) -> bool:
        return self.groups > 1 and self.groups == self.weight.shape[0] and self.weight.shape[1] == 1


def _flatten(module: nn.Module | None) -> list[nn.Module] | None:
    """Leaf modules in execution order; ``None`` where a piece is not a plain chain."""
    if module is None or isinstance(module, nn.Identity):
        return []
    if isinstance(module, nn.Sequential):
        out: list[nn.Module] = []
        for child in module:
            flat = _flatten(child)
            if flat is None:
                return None
            out += flat
        return out
    if type(module).__name__ == "Conv2plus1d":  # pytorchvideo: conv_t -> norm -> activation -> conv_xy
        parts = [_flatten(getattr(module, n, None)) for n in ("conv_t", "norm", "activation", "conv_xy")]
        return None if any(p is None for p in parts) else [m for p in parts for m in p]  # type: ignore[union-attr]
    if isinstance(module, nn.Conv3d | nn.BatchNorm3d) or type(module).__name__ in _POINTWISE:
        return [module]
    return None


def _fold(conv: nn.Conv3d, norm: nn.BatchNorm3d | None) -> tuple[torch.Tensor, torch.Tensor]:
    weight = conv.weight.detach()
    bias = conv.bias.detach() if conv.bias is not None else torch.zeros(weight.shape[0], device=weight.device)
    if norm is None:
        return weight.contiguous(), bias.contiguous()
    scale = norm.weight.detach() / torch.sqrt(norm.running_var + norm.eps)
    shift = norm.bias.detach() - norm.running_mean * scale
    return (weight * scale[:, None, None, None, None]).contiguous(), (bias * scale + shift).contiguous()


def _stages(modules: list[nn.Module], gates_after: set[int]) -> list[Stage] | None:
    """Split a flat module list into stages; ``gates_after`` holds indices of modules followed by a gate."""
    stages: list[Stage] = []
    i = 0
    pending_gate = False
    while i < len(modules):
        conv = modules[i]
        if not isinstance(conv, nn.Conv3d) or conv.padding_mode != "zeros" or conv.dilation != (1, 1, 1):
            return None
        if isinstance(conv.padding, str):
            return None
        end, norm, act = i, None, None
        if end + 1 < len(modules) and isinstance(modules[end + 1], nn.BatchNorm3d) and end not in gates_after:
            norm, end = modules[end + 1], end + 1
            if norm.running_var is None or not norm.affine:
                return None
        if end + 1 < len(modules) and type(modules[end + 1]).__name__ in _POINTWISE and end not in gates_after:
            act, end = _POINTWISE[type(modules[end + 1]).__name__], end + 1
        if end + 1 < len(modules) and not isinstance(modules[end + 1], nn.Conv3d):
            return None  # e.g. BN after an activation: not foldable
        weight, bias = _fold(conv, norm)
        stage = Stage(weight, bias, conv.stride, conv.padding, conv.groups, act, pending_gate, end in gates_after)
        if stage.groups > 1 and not (stage.depthwise and stage.gate_in == stage.gate_out):
            return None
        stages.append(stage)
        pending_gate = end in gates_after
        i = end + 1
    return stages or None


def _chain(pieces: list[nn.Module | None], gate_after_piece: set[int]) -> list[Stage] | None:
    modules: list[nn.Module] = []
    gates: set[int] = set()
    for index, piece in enumerate(pieces):
        flat = _flatten(piece)
        if flat is None:
            return None
        modules += flat
        if index in gate_after_piece:
            if not modules:
                return None
            gates.add(len(modules) - 1)
    return _stages(modules, gates)


def _is_additive(fusion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> bool:
    """Whether a pytorchvideo ``branch_fusion`` adds its inputs (the default ``_trivial_sum`` or a lambda)."""
    a, b = torch.tensor([1.5, -2.0]), torch.tensor([0.25, 4.0])
    try:
        return bool(torch.equal(fusion(a, b), a + b))
    except (RuntimeError, TypeError):
        return False


def branch_stages(adapter_name: str, block: nn.Module) -> list[Stage] | None:
    """The block's residual branch as stages, or ``None`` when compact execution does not support it."""
    if block.training:
        return None
    if adapter_name == "dance3d.ResBlock3d":
        return _chain([block.conv_a, block.bn_a, nn.ReLU(), block.conv_b, block.bn_b], {2})
    if adapter_name == "torchvision.BasicBlock":
        return _chain([block.conv1, block.conv2], {0})
    if adapter_name == "pytorchvideo.ResBlock":
        if not _is_additive(block.branch_fusion):
            return None
        b = block.branch2
        pieces = [b.conv_a, b.norm_a, b.act_a, b.conv_b, b.norm_b, b.act_b, b.conv_c, b.norm_c]
        return _chain(pieces, {2, 5})
    return None


def shortcut_stages(adapter_name: str, block: nn.Module) -> list[Stage] | None:
    """The shortcut as stages (``[]``: identity), or ``None`` when it is not a plain conv chain."""
    if adapter_name == "dance3d.ResBlock3d":
        piece = block.shortcut
    elif adapter_name == "torchvision.BasicBlock":
        piece = block.downsample
    elif adapter_name == "pytorchvideo.ResBlock":
        piece = nn.Sequential(*(m for m in (block.branch1_conv, block.branch1_norm) if m is not None))
    else:
        return None
    if piece is None or isinstance(piece, nn.Identity) or (isinstance(piece, nn.Sequential) and not len(piece)):
        return []
    stages = _chain([piece], set())
    return None if stages is None or any(st.act is not None for st in stages) else stages


def output_activation(adapter_name: str, block: nn.Module) -> Activation:
    """The activation after shortcut + residual, in place (additive fusion is checked by :func:`branch_stages`)."""
    if adapter_name in ("dance3d.ResBlock3d", "torchvision.BasicBlock"):
        return torch.relu_
    return block.activation if block.activation is not None else (lambda y: y)
