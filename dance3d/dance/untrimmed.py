"""DANCE on untrimmed clips: where a model keeps frames relative to the labelled event, and the targets.

On untrimmed moving-digits clips (``data.untrimmed=true``) each clip records its event window
(``event_start``, ``event_length``) and its demand (``frames_needed``). A controller that spends
compute where a clip needs it keeps frames inside the window and skips the idle rest;
:func:`event_frame_keep` measures that per clip from the model's frame decisions, mapped to input
frames, and :func:`untrimmed_targets` are the benchmark's pass/fail rules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from dance3d.dance.compare import MAC_MATCH
from dance3d.dance.data import ClipCache
from dance3d.dynamic import DynamicModel
from dance3d.figures import subplots

TARGET_RULES = {
    "top1_drop_at_most_1_point": "DANCE test top-1 >= dense - 0.010",
    "mac_reduction_at_least_60pct": "DANCE mean MAC fraction <= 0.40, controller included",
    "beats_every_static_baseline_by_2_points": "ahead of every static baseline at matched MACs by >= 2 points, "
    "McNemar p < 0.05",
    "spearman_frames_needed_at_least_0.5": "Spearman(per-clip MAC fraction, frames_needed) >= 0.5",
    "ava_helps": "DANCE with AVA ahead of DANCE without it at the same MACs, McNemar p < 0.05",
}


@torch.no_grad()
def input_frame_keep(model: DynamicModel, clips: torch.Tensor) -> np.ndarray:
    """(N, T) keep rate of each input frame: the frame masks of every gated block that can skip frames, each
    mapped to the input frames it covers (a block at T/2 frames covers two), averaged over those blocks."""
    model.eval()
    model(clips)
    T = clips.shape[2]
    per_block = []
    for gated, decision in zip(model.gated, model.last_decisions, strict=True):
        if gated.frame_stride is None:
            continue
        frames = decision.frames.float()
        index = (torch.arange(T) * frames.shape[1]) // T
        per_block.append(frames[:, index])
    if not per_block:
        return np.ones((len(clips), T))
    return torch.stack(per_block).mean(dim=0).cpu().numpy()


def event_frame_keep(model: DynamicModel, cache: ClipCache, *, batch_size: int = 32) -> tuple[pd.DataFrame, np.ndarray]:
    """:func:`window_keep_rates` of ``model``'s frame decisions on ``cache``, and the (N, T) input-frame keep
    rates (for :func:`plot_kept_frames`)."""
    keep = np.concatenate(
        [input_frame_keep(model, cache.batch(list(range(i, min(i + batch_size, len(cache)))))[0])
         for i in range(0, len(cache), batch_size)]
    )  # fmt: skip
    return window_keep_rates(keep, cache.metas), keep


def window_keep_rates(keep: np.ndarray, metas: list[dict[str, Any]]) -> pd.DataFrame:
    """Per clip, from its (T,) input-frame keep rates: the keep rate inside the event window and outside it, and the
    window's share of the clip's frames and of its kept frames."""
    T = keep.shape[1]
    rows = []
    for meta, rates in zip(metas, keep, strict=True):
        inside = np.zeros(T, dtype=bool)
        inside[meta["event_start"] : meta["event_start"] + meta["event_length"]] = True
        rows.append(
            {
                "keep_inside_event": float(rates[inside].mean()),
                "keep_outside_event": float(rates[~inside].mean()) if (~inside).any() else np.nan,
                "event_share_of_frames": float(inside.mean()),
                "event_share_of_kept": float(rates[inside].sum() / max(rates.sum(), 1e-12)),
            }
        )
    return pd.DataFrame(rows)


def keep_summary(per_clip: pd.DataFrame) -> dict[str, float]:
    """Means over clips: keep rates inside / outside the window, and the window's share of kept vs all frames."""
    return {
        "keep_inside_event": float(per_clip["keep_inside_event"].mean()),
        "keep_outside_event": float(per_clip["keep_outside_event"].mean()),  # NaN-skipping: whole-clip events
        "event_share_of_kept_frames": float(per_clip["event_share_of_kept"].mean()),
        "event_share_of_frames": float(per_clip["event_share_of_frames"].mean()),
    }


def plot_kept_frames(keep: np.ndarray, metas: list[dict[str, Any]], path: str | Path, *, clips: int = 12) -> Path:
    """Kept-frame rate over time for ``clips`` test clips (spread over event lengths), the event window shaded."""
    lengths = np.array([m["event_length"] for m in metas])
    chosen = np.argsort(lengths, kind="stable")[np.linspace(0, len(lengths) - 1, min(clips, len(lengths))).astype(int)]
    fig, axes = subplots(len(chosen), figsize=(7.0, 0.55 * len(chosen) + 0.8), squeeze=False)
    axes = axes[:, 0]
    T = keep.shape[1]
    for ax, i in zip(axes, chosen, strict=True):
        start, length = metas[i]["event_start"], metas[i]["event_length"]
        ax.axvspan(start - 0.5, start + length - 0.5, color="tab:orange", alpha=0.3, lw=0)
        ax.bar(np.arange(T), keep[i], width=0.9, color="tab:blue")
        ax.fill_between([start - 0.5, start + length - 0.5], -0.25, -0.05, color="tab:orange", lw=0)  # visible
        ax.set_ylim(-0.25, 1.05)
        ax.set_yticks([])
        ax.set_xlim(-0.5, T - 0.5)
        ax.set_ylabel(f"{length}f", rotation=0, ha="right", va="center", fontsize=8)
    axes[-1].set_xlabel("input frame (bar: share of frame-gated blocks that keep it; orange: the event)")
    axes[0].set_title("Frames DANCE keeps on untrimmed test clips, by event length")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return Path(path)


def matched_baselines(runs: dict[str, dict[str, Any]], label: str, names: list[str]) -> list[str]:
    """The baselines ``<name>_at_<label>`` that spend at least ``label``'s MACs less :data:`MAC_MATCH`."""
    floor = runs[label]["mean_mac_fraction"] - MAC_MATCH
    return [f"{n}_at_{label}" for n in names if runs[f"{n}_at_{label}"]["mean_mac_fraction"] >= floor]


def untrimmed_targets(
    runs: dict[str, dict[str, Any]],
    paired: dict[str, dict[str, float]],
    *,
    dense_top1: float,
    baselines: list[str],
) -> dict[str, bool]:
    """The rules of :data:`TARGET_RULES` for run ``dance``; ``baselines``: every static family's name."""
    dance = runs["dance"]
    matched = matched_baselines(runs, "dance", baselines)

    def ahead(other: str, *, points: float) -> bool:
        test = paired[f"dance_vs_{other}"]
        return test["top1_diff_points"] >= points and test["mcnemar_p"] < 0.05

    without = runs["dance_without_ava"]
    same_macs = abs(without["mean_mac_fraction"] - dance["mean_mac_fraction"]) <= MAC_MATCH
    return {
        "top1_drop_at_most_1_point": 100 * (dense_top1 - dance["top1"]) <= 1.0,
        "mac_reduction_at_least_60pct": dance["mac_reduction"] >= 0.60,
        "beats_every_static_baseline_by_2_points": bool(matched) and all(ahead(b, points=2.0) for b in matched),
        "spearman_frames_needed_at_least_0.5": dance["spearman_mac_fraction_vs_clip_factor"].get("frames_needed", 0.0)
        >= 0.5,
        "ava_helps": same_macs and ahead("dance_without_ava", points=0.0),
    }
