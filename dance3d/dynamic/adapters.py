"""Find residual blocks in a model and run their branches with an inner-channel mask.

An adapter knows one residual block type: how to compute its residual branch (calling
``gate(h)`` on the inner activation(s) whose channels are pruned), its shortcut and how both are
fused. Supported: dance3d's ``ResBlock3d``, torchvision's video ``BasicBlock`` (r3d_18, mc3_18,
r2plus1d_18) and pytorchvideo's ``ResBlock`` with a ``BottleneckBlock`` branch (slow_r50,
r2plus1d_r50, X3D; in X3D the same mask gates the depthwise conv's input and output).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch
import torch.nn as nn

Gate = Callable[[torch.Tensor], torch.Tensor]


class BlockAdapter(Protocol):
    name: str

    def matches(self, module: nn.Module) -> bool: ...

    def residual(self, block: nn.Module, x: torch.Tensor, gate: Gate) -> torch.Tensor: ...

    def shortcut(self, block: nn.Module, x: torch.Tensor) -> torch.Tensor: ...

    def fuse(self, block: nn.Module, shortcut: torch.Tensor, residual: torch.Tensor) -> torch.Tensor: ...


class Dance3dBlockAdapter:
    name = "dance3d.ResBlock3d"

    def matches(self, module: nn.Module) -> bool:
        from dance3d.models.builtin import ResBlock3d

        return isinstance(module, ResBlock3d)

    def residual(self, block: nn.Module, x: torch.Tensor, gate: Gate) -> torch.Tensor:
        return block.bn_b(block.conv_b(gate(torch.relu(block.bn_a(block.conv_a(x))))))

    def shortcut(self, block: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return block.shortcut(x)

    def fuse(self, block: nn.Module, shortcut: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return torch.relu(shortcut + residual)


class TorchvisionBasicBlockAdapter:
    name = "torchvision.BasicBlock"

    def matches(self, module: nn.Module) -> bool:
        return type(module).__name__ == "BasicBlock" and type(module).__module__.startswith("torchvision.models.video")

    def residual(self, block: nn.Module, x: torch.Tensor, gate: Gate) -> torch.Tensor:
        return block.conv2(gate(block.conv1(x)))

    def shortcut(self, block: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return x if block.downsample is None else block.downsample(x)

    def fuse(self, block: nn.Module, shortcut: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return block.relu(shortcut + residual)


class PytorchvideoResBlockAdapter:
    name = "pytorchvideo.ResBlock"

    def matches(self, module: nn.Module) -> bool:
        branch = getattr(module, "branch2", None)
        return (
            type(module).__name__ == "ResBlock"
            and type(module).__module__.startswith("pytorchvideo")
            and all(hasattr(branch, n) for n in ("conv_a", "conv_b", "conv_c"))
        )

    def residual(self, block: nn.Module, x: torch.Tensor, gate: Gate) -> torch.Tensor:
        b = block.branch2

        def stage(conv: nn.Module, norm: nn.Module | None, act: nn.Module | None, h: torch.Tensor) -> torch.Tensor:
            h = conv(h)
            h = norm(h) if norm is not None else h
            return act(h) if act is not None else h

        h = gate(stage(b.conv_a, b.norm_a, b.act_a, x))
        h = gate(stage(b.conv_b, b.norm_b, b.act_b, h))
        return stage(b.conv_c, b.norm_c, None, h)

    def shortcut(self, block: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if block.branch1_conv is None:
            return x
        s = block.branch1_conv(x)
        return block.branch1_norm(s) if block.branch1_norm is not None else s

    def fuse(self, block: nn.Module, shortcut: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        y = block.branch_fusion(shortcut, residual)
        return block.activation(y) if block.activation is not None else y


ADAPTERS: tuple[BlockAdapter, ...] = (
    Dance3dBlockAdapter(),
    TorchvisionBasicBlockAdapter(),
    PytorchvideoResBlockAdapter(),
)


def adapter_for(module: nn.Module) -> BlockAdapter | None:
    return next((a for a in ADAPTERS if a.matches(module)), None)


def find_residual_blocks(model: nn.Module) -> list[tuple[str, nn.Module, BlockAdapter]]:
    """All supported residual blocks, outermost first, in registration order (not nested in each other)."""
    found: list[tuple[str, nn.Module, BlockAdapter]] = []
    for name, module in model.named_modules():
        if any(name.startswith(prefix + ".") for prefix, _, _ in found):
            continue
        adapter = adapter_for(module)
        if adapter is not None:
            found.append((name, module, adapter))
    return found


def find_stem(model: nn.Module) -> tuple[str, nn.Module]:
    """The stem (first conv stage) whose output feeds the controller: ``model.stem`` or ``model.blocks[0]``."""
    stem = getattr(model, "stem", None)
    if isinstance(stem, nn.Module):
        return "stem", stem
    blocks = getattr(model, "blocks", None)
    if isinstance(blocks, (nn.Sequential, nn.ModuleList)) and len(blocks) and adapter_for(blocks[0]) is None:
        return "blocks.0", blocks[0]
    raise ValueError(f"cannot find the stem of {type(model).__name__} (expected .stem or .blocks[0])")


def stem_temporal_padding(stem: nn.Module) -> int:
    """Frames at each end of the stem output that saw temporal zero padding (summed over its 3D convs)."""
    total = 0
    for conv in stem.modules():
        if isinstance(conv, nn.Conv3d):
            pad = conv.padding
            total += (
                (conv.kernel_size[0] // 2)
                if isinstance(pad, str) and pad == "same"
                else (0 if isinstance(pad, str) else pad[0])
            )
    return total


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    parent._modules[child] = new
