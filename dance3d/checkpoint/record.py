"""The checkpoint record: what every dance3d checkpoint holds, and its on-disk payload.

A checkpoint is stored as a plain dict loadable with ``torch.load(weights_only=True)``: the core
entries of :class:`Checkpoint` at the top level, next to the method's own entries (``extras``:
optimizer state, AAP results, a budget fit, ...).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from dance3d.config import to_dict
from dance3d.errors import CheckpointError

FORMAT = "dance3d-checkpoint"
FORMAT_VERSION = 2
"""2: ``kind`` always names the kind that rebuilds the model (1: an AVA run on a pruned model said
``dense``; the oldest files have no kind), and a dynamic spec records its backbone's kind."""

REQUIRED = ("model", "state_dict", "data", "classes")
CORE = ("format", "format_version", "kind", *REQUIRED, "config", "history")


@dataclass(frozen=True, eq=False)
class Checkpoint(Mapping[str, Any]):
    """A checkpoint: its kind, the kind's model spec, weights, data settings, class names, the run's
    config and history, and method extras.

    Read as a mapping it is the stored payload (``checkpoint["history"]``, ``checkpoint.get("budget")``).
    """

    kind: str
    model: dict[str, Any]  # the kind's model spec: what its builder rebuilds the network from
    state_dict: dict[str, Any]
    data: dict[str, Any]  # DataConfig as a dict
    classes: tuple[str, ...]
    config: dict[str, Any] | None = None  # the run's resolved config
    history: list[dict[str, Any]] = field(default_factory=list)  # one row per epoch
    extras: dict[str, Any] = field(default_factory=dict)  # method entries, stored at the top level

    @classmethod
    def create(
        cls,
        kind: str,
        model: dict[str, Any],
        state_dict: dict[str, Any],
        *,
        data: Any,
        classes: tuple[str, ...] | list[str],
        config: Any = None,
        history: list[dict[str, Any]] | tuple[dict[str, Any], ...] = (),
        **extras: Any,
    ) -> Checkpoint:
        """Build a checkpoint; ``data`` and ``config`` may be dataclasses (stored as dicts)."""
        if clash := sorted(set(extras) & set(CORE)):
            raise ValueError(f"extras may not use the core entry names {clash}")
        return cls(
            kind=kind,
            model=dict(model),
            state_dict=dict(state_dict),
            data=_as_dict(data),
            classes=tuple(classes),
            config=None if config is None else _as_dict(config),
            history=list(history),
            extras=dict(extras),
        )

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any], *, kind: str, source: str | Path = "checkpoint") -> Checkpoint:
        """The record of a stored payload, its ``kind`` already resolved; a clear error names a missing entry."""
        for key in REQUIRED:
            if key not in payload:
                raise CheckpointError(f"{source}: checkpoint has no {key!r} entry (written by another program?)")
        for key in ("model", "state_dict", "data"):
            if not isinstance(payload[key], dict):
                kind_of = type(payload[key]).__name__
                raise CheckpointError(f"{source}: checkpoint entry {key!r} is a {kind_of}, not a dict")
        classes = payload["classes"]
        if not isinstance(classes, list | tuple) or not all(isinstance(c, str) for c in classes):
            raise CheckpointError(f"{source}: checkpoint entry 'classes' is not a list of class names")
        return cls(
            kind=kind,
            model=payload["model"],
            state_dict=payload["state_dict"],
            data=payload["data"],
            classes=tuple(classes),
            config=payload.get("config"),
            history=list(payload.get("history") or []),
            extras={k: v for k, v in payload.items() if k not in CORE},
        )

    def replace(self, **changes: Any) -> Checkpoint:
        """A copy with some fields changed (``extras`` replaced whole)."""
        return dataclasses.replace(self, **changes)

    def to_payload(self) -> dict[str, Any]:
        """The dict stored on disk (the config entry only when there is one)."""
        payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": self.kind, "model": self.model}
        payload.update(state_dict=self.state_dict, data=self.data, classes=list(self.classes))
        if self.config is not None:
            payload["config"] = self.config
        return {**payload, "history": self.history, **self.extras}

    @cached_property
    def _payload(self) -> dict[str, Any]:
        return self.to_payload()

    def __getitem__(self, key: str) -> Any:
        return self._payload[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._payload)

    def __len__(self) -> int:
        return len(self._payload)

    def __repr__(self) -> str:
        return f"Checkpoint(kind={self.kind!r}, model={self.model!r}, extras={sorted(self.extras)})"


def _as_dict(value: Any) -> dict[str, Any]:
    return to_dict(value) if dataclasses.is_dataclass(value) else dict(value)
