"""The checkpoint format every dance3d method writes, and the registry of checkpoint kinds.

A leaf of ``dance3d``: it imports no method. A method adds its kind in its own package::

    from dance3d.checkpoint import register_checkpoint_kind

    register_checkpoint_kind("pruned", build_model=build_pruned_model, build_network=build_pruned_backbone)

and writes ``save_checkpoint(Checkpoint.create("pruned", spec, model.state_dict(), data=..., classes=...), path)``.
``load_model`` dispatches on the kind the file records; ``dance3d.loading`` registers the kinds dance3d ships.
"""

from dance3d.checkpoint.files import checkpoint_path, load_checkpoint, save_checkpoint
from dance3d.checkpoint.kinds import (
    DENSE,
    CheckpointKind,
    build_network,
    checkpoint_kind,
    infer_kind,
    register_checkpoint_kind,
    registered_kinds,
)
from dance3d.checkpoint.model import LoadedModel, build_model, load_model, load_network
from dance3d.checkpoint.record import FORMAT, FORMAT_VERSION, Checkpoint

__all__ = [
    "DENSE",
    "FORMAT",
    "FORMAT_VERSION",
    "Checkpoint",
    "CheckpointKind",
    "LoadedModel",
    "build_model",
    "build_network",
    "checkpoint_kind",
    "checkpoint_path",
    "infer_kind",
    "load_checkpoint",
    "load_model",
    "load_network",
    "register_checkpoint_kind",
    "registered_kinds",
    "save_checkpoint",
]
