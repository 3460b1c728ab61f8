"""Checkpoints of MDP-pruned models (kind ``pruned``): the dense zoo spec, clip shape and plan, plus weights.

The model is rebuilt by extracting the dense model's structure at the stored clip shape and
materialising the stored plan (first channels kept), then loading the saved weights, so a
``pruned`` checkpoint loads with ``torch.load(weights_only=True)`` like any other.

``build_pruned_model`` gives that ``torch.fx.GraphModule`` (flat code: the dense model's blocks are
gone as modules). ``build_pruned_backbone`` gives the same network as the dense model's own module
tree with the narrower layers swapped in and removed blocks replaced by :class:`RemovedBlock`, so
code that finds residual blocks by type (``dance3d.dynamic.convert_model``, the DANCE stages) works
on it; its state dict keys are the ``GraphModule``'s.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.fx as fx
import torch.nn as nn

from dance3d.checkpoint import Checkpoint, register_checkpoint_kind
from dance3d.errors import ConfigError
from dance3d.mdp.graph import Structure, extract_structure
from dance3d.mdp.materialize import materialize
from dance3d.mdp.plan import PrunePlan

KIND = "pruned"


def pruned_spec(dense_spec: dict[str, Any], clip_shape: tuple[int, ...], plan: PrunePlan) -> dict[str, Any]:
    """What rebuilds a pruned model: the dense zoo spec, the clip shape of the analysis and the plan."""
    return {"dense": dict(dense_spec), "clip_shape": list(clip_shape), **plan.to_dict()}


def is_pruned_spec(spec: dict[str, Any]) -> bool:
    """Whether a model spec is :func:`pruned_spec`'s (how files that predate recorded kinds are recognised)."""
    return "dense" in spec and "widths" in spec


def _dense_and_structure(spec: dict[str, Any]) -> tuple[nn.Module, Structure]:
    from dance3d.models import create_model

    dense_spec = spec["dense"]
    dense = create_model(dense_spec["name"], num_classes=dense_spec["num_classes"], **dense_spec.get("options", {}))
    return dense, extract_structure(dense, tuple(spec["clip_shape"]))


def build_pruned_model(checkpoint: Checkpoint) -> fx.GraphModule:
    """The materialised ``GraphModule`` of a ``pruned`` checkpoint, weights loaded."""
    spec = checkpoint.model
    _, structure = _dense_and_structure(spec)
    model = materialize(structure, PrunePlan.from_dict(spec))
    model.load_state_dict(checkpoint.state_dict)
    return model


class RemovedBlock(nn.Module):
    """A residual block whose branch MDP removed: what follows the add, applied to the shortcut alone.

    Computes ``adapter.fuse(block, adapter.shortcut(block, x), 0)`` (e.g. ``relu(shortcut(x))``),
    which is the materialised graph with the add replaced by its shortcut operand. The block's
    remaining submodules (shortcut, activation) are registered here under their own names; the
    block itself is kept unregistered, so nothing finds it as a residual block any more.
    """

    def __init__(self, block: nn.Module, adapter: Any, kept: set[str]) -> None:
        super().__init__()
        for name in list(block._modules):
            if name in kept:
                self.add_module(name, block._modules[name])
            else:
                block._modules[name] = None  # the removed branch
        self.__dict__["_block"] = block
        self.__dict__["_adapter"] = adapter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self._adapter.shortcut(self._block, x)
        return self._adapter.fuse(self._block, shortcut, torch.zeros_like(shortcut))


def build_pruned_backbone(spec: dict[str, Any]) -> nn.Module:
    """The pruned network of ``spec`` as the dense model's module tree (first channels, weights not loaded).

    Every layer and BN the plan narrows is swapped for the materialised one (same name); each
    removed block becomes a :class:`RemovedBlock` in place of the residual block holding it.
    """
    from dance3d.dynamic.adapters import find_residual_blocks

    dense, structure = _dense_and_structure(spec)
    plan = PrunePlan.from_dict(spec)
    graph = materialize(structure, plan)
    present = dict(graph.named_modules())
    for name in [*structure.layers, *structure.bn_groups]:
        if name in present:
            _set_module(dense, name, present[name])
    residual = find_residual_blocks(dense)
    for removed in plan.removed_blocks:
        holders = [(n, b, a) for n, b, a in residual if removed == n or removed.startswith(n + ".")]
        if not holders:
            raise ConfigError(
                f"removed block {removed} is not inside a residual block type dance3d.dynamic supports; "
                "prune this model with --no-block-removal to use it in the DANCE stages"
            )
        name, block, adapter = max(holders, key=lambda h: len(h[0]))
        kept = {c for c, m in block._modules.items() if f"{name}.{c}" in present or not _has_state(m)}
        _set_module(dense, name, RemovedBlock(block, adapter, kept))
    expected, got = set(graph.state_dict()), set(dense.state_dict())
    if expected != got:
        raise ConfigError(
            f"pruned module tree does not match the materialised model: missing {sorted(expected - got)[:5]}, "
            f"extra {sorted(got - expected)[:5]}"
        )
    return dense


def _has_state(module: nn.Module | None) -> bool:
    return module is not None and any(True for _ in [*module.parameters(), *module.buffers()])


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, attr, module)


register_checkpoint_kind(
    KIND, build_model=build_pruned_model, build_network=build_pruned_backbone, matches_spec=is_pruned_spec
)
