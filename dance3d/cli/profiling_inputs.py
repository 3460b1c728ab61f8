"""Models and clips for the profiling commands: a zoo model with a clip shape, or a checkpoint + data."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

import torch
import torch.nn as nn

from dance3d.cli.common import add_device_arg, add_threads_arg, data_for_checkpoint, positive_int
from dance3d.errors import ConfigError

if TYPE_CHECKING:
    from dance3d.checkpoint import LoadedModel


def parse_clip_shape(text: str) -> tuple[int, int, int, int]:
    """``3x16x112x112`` -> (channels, frames, height, width)."""
    try:
        shape = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        shape = ()
    if len(shape) != 4 or min(shape) < 1:
        raise ConfigError(f"--clip-shape must look like CxTxHxW (e.g. 3x16x112x112), got {text!r}")
    return shape  # type: ignore[return-value]


MAX_CLIP_BYTES = 2**31
"""Largest float32 clip the profiling commands build (2 GiB): beyond it a typo, not a video clip."""


def check_clip_size(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Refuse a clip shape whose float32 tensor would exceed ``MAX_CLIP_BYTES``, before allocating it."""
    count = 1
    for size in shape:
        count *= size
    if count * 4 > MAX_CLIP_BYTES:
        raise ConfigError(f"a clip of shape {'x'.join(map(str, shape))} needs {count * 4 / 2**30:.1f} GiB; "
                          f"the limit is {MAX_CLIP_BYTES / 2**30:.0f} GiB")  # fmt: skip
    return shape


def check_model_takes(model: nn.Module, clips: torch.Tensor, what: str) -> None:
    """One forward pass of ``clips``; a shape the model cannot take becomes one clear :class:`ConfigError`."""
    try:
        with torch.no_grad():
            model(clips)
    except (RuntimeError, ValueError, IndexError, MemoryError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"the model cannot take {what} (shape {tuple(clips.shape[1:])}): {first}") from None


def parse_knob_settings(settings: list[str]) -> dict[str, float]:
    """``["stage1.frames_offset=-2", ...]`` -> ``{"stage1.frames_offset": -2.0, ...}``."""
    knobs = {}
    for text in settings:
        name, sep, value = text.partition("=")
        try:
            knobs[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise ConfigError(f"--knob must look like NAME=VALUE (e.g. stage1.frames_offset=-2), got {text!r}")
    return knobs


def add_execution_args(parser: argparse.ArgumentParser) -> None:
    """``--execution`` / ``--calibration`` / ``--knob``: how a dynamic checkpoint runs."""
    parser.add_argument(
        "--execution",
        choices=("simulate", "compact"),
        help="dynamic and co-pruned checkpoints: 'simulate' (masks on dense tensors, default) or 'compact' "
        "(real sparse execution)",
    )
    parser.add_argument(
        "--calibration",
        metavar="JSON",
        help="with --execution compact: a saved compact calibration (a co-pruned SimVP: its 'dance3d fallback-table')",
    )
    parser.add_argument(
        "--compile-controller",
        action="store_true",
        help="with --execution compact: torch.compile the controller (faster decisions; compiles on first use)",
    )
    parser.add_argument(
        "--knob",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="dynamic checkpoints: set a run-time knob over the checkpoint's own (repeatable; "
        "e.g. stage1.frames_offset=-2; names: 'dance3d study run' lists them in its search space)",
    )


def apply_execution(model: nn.Module, args: argparse.Namespace) -> None:
    """Set the execution mode asked for; ``--execution`` on a dense model is a user error."""
    from dance3d.copruning import CoprunedForecaster
    from dance3d.dynamic import DynamicModel, set_execution_mode

    execution = getattr(args, "execution", None)
    calibration = getattr(args, "calibration", None)
    compile_controller = getattr(args, "compile_controller", False)
    knobs = parse_knob_settings(getattr(args, "knob", []))
    if isinstance(model, CoprunedForecaster):
        if compile_controller or knobs:
            raise ConfigError("--compile-controller/--knob apply to dynamic checkpoints (written by aap) only")
        model.set_mode(execution or "simulate")
        if calibration:
            _apply_fallback(model, calibration, execution)
        return
    if not isinstance(model, DynamicModel):
        if execution or calibration or compile_controller or knobs:
            raise ConfigError(
                "--execution/--calibration/--compile-controller/--knob apply to dynamic checkpoints "
                "(written by aap) only"
            )
        return
    if knobs:
        from dance3d.dynamic import apply_knobs
        from dance3d.dynamic.checkpoint import applied_knobs

        apply_knobs(model, {**applied_knobs(model), **knobs})
    if calibration and execution != "compact":
        raise ConfigError("--calibration needs --execution compact")
    if compile_controller and execution != "compact":
        raise ConfigError("--compile-controller needs --execution compact")
    set_execution_mode(model, execution or "simulate")
    model.compile_controller(compile_controller)
    if calibration:
        from dance3d.dynamic.compact_calibration import CompactCalibration

        model.compact_calibration = CompactCalibration.load(calibration)


def _apply_fallback(model: nn.Module, calibration: str, execution: str | None) -> None:
    """A co-pruned SimVP's or ConvLSTM's dense-fallback table (``dance3d fallback-table``) for compact execution."""
    from dance3d.copruning.fallback import FallbackCalibration, WholeMapFallback

    if execution != "compact":
        raise ConfigError("--calibration needs --execution compact")
    if not isinstance(model, WholeMapFallback):
        raise ConfigError(
            "--calibration on a co-pruned model takes a SimVP's or ConvLSTM's fallback table "
            "('dance3d fallback-table'); the Transformer's compact execution has none"
        )
    model.fallback = FallbackCalibration.load(calibration)


def add_model_source_args(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="zoo model name (random weights), with --clip-shape")
    source.add_argument("--checkpoint", help="model.pt written by train/ava/aap/mdp")
    parser.add_argument("--clip-shape", help="CxTxHxW for --model (default: the model's own clip)")
    parser.add_argument("--num-classes", type=positive_int, default=400, help="head size for --model")
    parser.add_argument("--data", help="clips to profile with --checkpoint (default: its training data)")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"), help="clips from this split")
    parser.add_argument("--limit", type=positive_int, default=16, help="clips to count per-clip MACs on")
    add_device_arg(parser)
    add_threads_arg(parser)
    add_execution_args(parser)


def load_model_and_clips(args: argparse.Namespace) -> tuple[str, nn.Module, torch.Tensor]:
    """(name, model in eval mode, clips (N, C, T, H, W); forecasters: (N, T, C, H, W)) from the arguments."""
    if args.model:
        from dance3d.models import create_model, model_info

        info = model_info(args.model)
        frames, height, width = info.default_clip
        if info.family == "forecast":  # a forecaster reads (T, C, H, W); its channels are the field's variables
            channels, frames, height, width = parse_clip_shape(args.clip_shape or f"1x{frames}x{height}x{width}")
            model = create_model(args.model, num_classes=channels, t_in=frames).eval()
            return args.model, model, torch.randn(1, frames, channels, height, width)
        shape = parse_clip_shape(args.clip_shape) if args.clip_shape else (3, frames, height, width)
        model = create_model(args.model, num_classes=args.num_classes).eval()
        apply_execution(model, args)
        clip = torch.randn(1, *check_clip_size(shape))
        check_model_takes(model, clip, f"--clip-shape {'x'.join(map(str, shape))}")
        return args.model, model, clip
    from dance3d.loading import load_model

    loaded = load_model(args.checkpoint)
    apply_execution(loaded.model, args)
    if args.limit < 1:
        raise ConfigError("--limit must be >= 1")
    return str(args.checkpoint), loaded.model, checkpoint_inputs(loaded, args, split=args.split, count=args.limit)


FORECAST_KINDS = ("forecast", "copruned")
"""Checkpoint kinds of forecasters: their samples' model input is ``inputs`` (T, C, H, W), not a ``clip``."""


def checkpoint_inputs(loaded: LoadedModel, args: argparse.Namespace, *, split: str, count: int) -> torch.Tensor:
    """Up to ``count`` model inputs from ``split`` of the checkpoint's data (``--data`` / ``--set data.*`` in
    ``args`` apply): clips (N, C, T, H, W) for classifiers, (N, T, C, H, W) input frames for forecasters."""
    from dance3d.data.registry import build_dataset

    if loaded.kind in FORECAST_KINDS:
        from dance3d.cli.forecast_eval import checkpoint_data

        data, key = checkpoint_data(loaded, args), "inputs"
    else:
        data, key = data_for_checkpoint(loaded.data, args), "clip"
    dataset = build_dataset(data, split, classes=loaded.classes)
    return torch.stack([dataset[i][key] for i in range(min(count, len(dataset)))])
