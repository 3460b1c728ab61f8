"""Models and clips for the profiling commands: a zoo model with a clip shape, or a checkpoint + data."""

from __future__ import annotations

import argparse

import torch
import torch.nn as nn

from dance3d.cli.common import data_for_checkpoint
from dance3d.errors import ConfigError


def parse_clip_shape(text: str) -> tuple[int, int, int, int]:
    """``3x16x112x112`` -> (channels, frames, height, width)."""
    try:
        shape = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        shape = ()
    if len(shape) != 4 or min(shape) < 1:
        raise ConfigError(f"--clip-shape must look like CxTxHxW (e.g. 3x16x112x112), got {text!r}")
    return shape  # type: ignore[return-value]


def add_model_source_args(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="zoo model name (random weights), with --clip-shape")
    source.add_argument("--checkpoint", help="model.pt written by train/ava/aap/mdp")
    parser.add_argument("--clip-shape", help="CxTxHxW for --model (default: the model's own clip)")
    parser.add_argument("--num-classes", type=int, default=400, help="head size for --model")
    parser.add_argument("--data", help="clips to profile with --checkpoint (default: its training data)")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"))
    parser.add_argument("--limit", type=int, default=16, help="clips to count per-clip MACs on")
    parser.add_argument("--device", default="cpu")


def load_model_and_clips(args: argparse.Namespace) -> tuple[str, nn.Module, torch.Tensor]:
    """(name, model in eval mode, clips (N, C, T, H, W)) from the command's arguments."""
    if args.model:
        from dance3d.models import create_model, model_info

        frames, height, width = model_info(args.model).default_clip
        shape = parse_clip_shape(args.clip_shape) if args.clip_shape else (3, frames, height, width)
        model = create_model(args.model, num_classes=args.num_classes).eval()
        return args.model, model, torch.randn(1, *shape)
    from dance3d.data.registry import build_dataset
    from dance3d.training.checkpoint import load_model

    loaded = load_model(args.checkpoint)
    dataset = build_dataset(data_for_checkpoint(loaded.data, args), args.split, classes=loaded.classes)
    count = min(args.limit, len(dataset))
    if count < 1:
        raise ConfigError("--limit must be >= 1")
    clips = torch.stack([dataset[i]["clip"] for i in range(count)])
    return str(args.checkpoint), loaded.model, clips
