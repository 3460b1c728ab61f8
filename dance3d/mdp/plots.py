"""Figure of pruned structures: the kept width of every channel group and the removed blocks, per target and method."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dance3d.figures import subplots


def structure_matrix(
    rows: Sequence[dict[str, Any]], dense_widths: dict[str, int]
) -> tuple[np.ndarray, list[str], list[str]]:
    """Kept fraction of each group (columns, in ``dense_widths`` order) for each row, 0 where the group belongs to a
    removed block; with the row labels ("<target> <method> (-<removed blocks>)") and the column labels."""
    groups = list(dense_widths)
    matrix = np.array([[row["widths"][g] / dense_widths[g] for g in groups] for row in rows], dtype=float)
    labels = [
        f"{row['target']:.2f} {row['method']}"
        + (f" (-{', '.join(row['removed_blocks'])})" if row["removed_blocks"] else "")
        for row in rows
    ]
    return matrix, labels, groups


def plot_structures(
    rows: Sequence[dict[str, Any]], dense_widths: dict[str, int], block_groups: dict[str, Sequence[str]], path: Path
) -> Path:
    """Heat map of kept width fractions (one row per target and method, one column per group); the groups of a
    removed block are drawn black and marked with an x, and each row's label names its removed blocks."""
    matrix, labels, groups = structure_matrix(rows, dense_widths)
    fig, ax = subplots(figsize=(1.0 + 0.55 * len(groups) + 2.2, 0.8 + 0.32 * len(rows)))
    removed = np.zeros_like(matrix, dtype=bool)
    for i, row in enumerate(rows):
        for block in row["removed_blocks"]:
            for g in block_groups[block]:
                removed[i, groups.index(g)] = True
    image = ax.imshow(np.ma.masked_array(matrix, removed), vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.imshow(np.ma.masked_array(np.zeros_like(matrix), ~removed), vmin=0, vmax=1, cmap="gray", aspect="auto")
    for i, j in zip(*np.nonzero(removed), strict=True):
        ax.text(j, i, "x", ha="center", va="center", color="white", fontsize=8)
    for i, j in zip(*np.nonzero(~removed), strict=True):
        ax.text(j, i, f"{rows[i]['widths'][groups[j]]}", ha="center", va="center", fontsize=6,
                color="black" if matrix[i, j] > 0.6 else "white")  # fmt: skip
    ax.set_xticks(range(len(groups)), [g.replace("blocks.", "b") for g in groups], rotation=60, ha="right",
                  fontsize=7)  # fmt: skip
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    targets = [row["target"] for row in rows]
    for i in range(1, len(rows)):
        if targets[i] != targets[i - 1]:
            ax.axhline(i - 0.5, color="white", linewidth=2)
    ax.set_title("kept channels per group (numbers) and removed blocks (x), by target and method", fontsize=8)
    fig.colorbar(image, ax=ax, fraction=0.03, pad=0.02, label="kept fraction")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    return path


__all__ = ["plot_structures", "structure_matrix"]
