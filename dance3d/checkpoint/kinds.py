"""Registry of checkpoint kinds: how each kind's model spec becomes a network.

Each method registers its kind in its own package (``register_checkpoint_kind`` at import of its
``checkpoint`` module), the way a zoo registers its models; this module knows no method.
``dance3d.loading`` imports the kinds dance3d ships.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch.nn as nn

from dance3d.checkpoint.record import Checkpoint
from dance3d.errors import CheckpointError

Spec = dict[str, Any]
DENSE = "dense"  # a zoo model: the kind the trainer writes


@dataclass(frozen=True)
class CheckpointKind:
    """One registered kind.

    ``build_model`` rebuilds the model a checkpoint of this kind holds (weights loaded).
    ``build_network`` gives the network of a spec as a module tree with fresh weights, for kinds
    other methods can start from or wrap (a DANCE stage, a dynamic model's backbone); ``None``: none.
    ``matches_spec`` recognises the kind's spec in files that predate recorded kinds.
    """

    name: str
    build_model: Callable[[Checkpoint], nn.Module]
    build_network: Callable[[Spec], nn.Module] | None = None
    matches_spec: Callable[[Spec], bool] | None = None


_KINDS: dict[str, CheckpointKind] = {}


def register_checkpoint_kind(
    name: str,
    *,
    build_model: Callable[[Checkpoint], nn.Module],
    build_network: Callable[[Spec], nn.Module] | None = None,
    matches_spec: Callable[[Spec], bool] | None = None,
) -> CheckpointKind:
    """Register a kind (once; registering the same kind again from another module is an error)."""
    kind = CheckpointKind(name, build_model, build_network, matches_spec)
    previous = _KINDS.get(name)
    if previous is not None and previous.build_model.__module__ != build_model.__module__:
        raise ValueError(f"checkpoint kind {name!r} is registered twice ({previous.build_model.__module__})")
    _KINDS[name] = kind
    return kind


def registered_kinds() -> tuple[str, ...]:
    return tuple(sorted(_KINDS))


def checkpoint_kind(name: str) -> CheckpointKind:
    """The registered kind ``name``, with a clear error listing the ones this process knows."""
    if name not in _KINDS:
        known = ", ".join(registered_kinds()) or "none"
        raise CheckpointError(
            f"unknown checkpoint kind {name!r} (registered: {known}); "
            "import dance3d.loading to register the kinds dance3d ships"
        )
    return _KINDS[name]


def infer_kind(spec: Spec) -> str:
    """The kind of a spec in a file that predates recorded kinds: the registered kind whose
    ``matches_spec`` accepts it, else ``dense`` (a zoo spec, the one kind those files named)."""
    matches = sorted(k.name for k in _KINDS.values() if k.matches_spec is not None and k.matches_spec(spec))
    if len(matches) > 1:
        raise CheckpointError(f"several checkpoint kinds ({', '.join(matches)}) recognise model spec {sorted(spec)}")
    return matches[0] if matches else DENSE


def build_network(spec: Spec, kind: str) -> nn.Module:
    """The network of ``spec`` (a checkpoint of ``kind``) as a module tree with fresh weights."""
    entry = checkpoint_kind(kind)
    if entry.build_network is None:
        raise CheckpointError(f"a {kind!r} model cannot be used as a network to start from or wrap")
    return entry.build_network(spec)
