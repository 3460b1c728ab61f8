"""Figures of the DANCE stages (PNG files, drawn without pyplot: ``dance3d.figures``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dance3d.figures import subplots


def plot_variability(before: dict[str, np.ndarray], after: dict[str, np.ndarray], path: str | Path) -> Path:
    """Histograms of per-unit CV (across clips) and per-clip CV (within a clip), before vs after AVA."""
    keys = [k for k in before if k in after]
    columns = (len(keys) + 1) // 2
    fig, axes = subplots(2, columns, figsize=(3.4 * columns, 5.6), squeeze=False)
    for ax in axes.flat[len(keys) :]:
        ax.axis("off")
    for ax, key in zip(axes.flat, keys, strict=False):
        hi = float(max(np.percentile(before[key], 99), np.percentile(after[key], 99)))
        bins = np.linspace(0.0, hi if hi > 0 else 1.0, 30)
        ax.hist(before[key], bins=bins, alpha=0.6, label=f"before (mean {np.mean(before[key]):.2f})")
        ax.hist(after[key], bins=bins, alpha=0.6, label=f"after (mean {np.mean(after[key]):.2f})")
        ax.set_title(f"CV {key}", fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle("AVA: coefficient of variation of per-unit mean |activation|", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return Path(path)


def plot_tradeoff(points: dict[str, list[tuple[float, float]]], path: str | Path, *, dense_top1: float) -> Path:
    """Top-1 vs mean MAC fraction, one series per method (empty series are left out)."""
    fig, ax = subplots(figsize=(5.0, 3.6))
    for label, series in points.items():
        if not series:
            continue
        series = sorted(series)
        ax.plot([x for x, _ in series], [y for _, y in series], marker="o", label=label)
    ax.axhline(dense_top1, color="gray", linestyle="--", label="dense")
    ax.set_xlabel("mean MAC fraction (vs dense)")
    ax.set_ylabel("top-1")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return Path(path)


def plot_adaptivity(redundancy: np.ndarray, mac_fraction: np.ndarray, path: str | Path, *, rho: float) -> Path:
    """Per-clip MAC fraction against the clip's redundancy score."""
    fig, ax = subplots(figsize=(4.6, 3.6))
    ax.scatter(redundancy, mac_fraction, s=6, alpha=0.5)
    ax.set_xlabel("clip redundancy (metadata)")
    ax.set_ylabel("per-clip MAC fraction")
    ax.set_title(f"input adaptivity (Spearman {rho:+.2f})", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return Path(path)
