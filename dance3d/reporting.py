"""Figures and a Markdown report for runs (drawn without pyplot: ``dance3d.figures``, matplotlib imported lazily)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from dance3d.figures import subplots


def _clip_factor_keys(records: list[dict[str, Any]]) -> list[str]:
    """The clip factors (``CLIP_FACTORS``, then ``redundancy``) that ``records`` carry."""
    from dance3d.data.moving_digits import CLIP_FACTORS

    return [k for k in (*CLIP_FACTORS, "redundancy") if k in records[0]]


def redundancy_table(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Distribution (min, p10, p50, p90, max) of each clip factor (and ``redundancy``) over clips."""
    frame = pd.DataFrame(records)[_clip_factor_keys(records)]
    return frame.quantile([0.0, 0.1, 0.5, 0.9, 1.0]).T.rename(
        columns={0.0: "min", 0.1: "p10", 0.5: "p50", 0.9: "p90", 1.0: "max"}
    )


def redundancy_spearman(redundancy: Any, mac_fraction: Any) -> float:
    """Spearman correlation of per-clip MAC fraction with redundancy; 0.0 when every clip costs the same (a
    static model), where the correlation is undefined."""
    import numpy as np
    from scipy.stats import spearmanr

    if np.ptp(np.asarray(mac_fraction)) == 0:  # exact: the std of equal floats is not always 0
        return 0.0
    return float(spearmanr(redundancy, mac_fraction).statistic)


def paired_accuracy(records_a: list[dict[str, Any]], records_b: list[dict[str, Any]]) -> dict[str, float]:
    """Two models on the same clips: top-1 difference a - b (points), the clips only one of them gets right,
    and McNemar's exact two-sided p-value (a binomial test on those discordant clips)."""
    from scipy.stats import binomtest

    correct_a = {r["index"]: bool(r["correct"]) for r in records_a}
    correct_b = {r["index"]: bool(r["correct"]) for r in records_b}
    if correct_a.keys() != correct_b.keys():
        raise ValueError("paired comparison needs both models evaluated on the same clips")
    only_a = sum(correct_a[i] and not correct_b[i] for i in correct_a)
    only_b = sum(correct_b[i] and not correct_a[i] for i in correct_a)
    discordant = only_a + only_b
    return {
        "top1_diff_points": 100.0 * (only_a - only_b) / len(correct_a),
        "only_a_correct": only_a,
        "only_b_correct": only_b,
        "mcnemar_p": float(binomtest(only_a, discordant, 0.5).pvalue) if discordant else 1.0,
    }


def plot_redundancy(records: list[dict[str, Any]], path: Path) -> Path:
    """Histograms of the per-clip factors that vary over ``records`` (a constant one has nothing to show)."""
    table = pd.DataFrame(records)
    keys = [k for k in _clip_factor_keys(records) if table[k].nunique() > 1]
    fig, axes = subplots(1, len(keys), figsize=(3.2 * len(keys), 2.8))
    for ax, key in zip(axes, keys, strict=True):
        ax.hist(table[key], bins=20, color="#4c72b0")
        ax.set_title(key, fontsize=9)
        ax.set_ylabel("clips")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def plot_training_curve(history: list[dict[str, Any]], path: Path) -> Path:
    """Train loss and train/val top-1 per epoch."""
    frame = pd.DataFrame(history)
    fig, (ax_loss, ax_acc) = subplots(1, 2, figsize=(8, 3))
    ax_loss.plot(frame["epoch"], frame["train_loss"], marker="o")
    ax_loss.set(xlabel="epoch", ylabel="train loss")
    ax_acc.plot(frame["epoch"], frame["train_top1"], marker="o", label="train")
    if "val_top1" in frame:
        ax_acc.plot(frame["epoch"], frame["val_top1"], marker="s", label="val")
    ax_acc.set(xlabel="epoch", ylabel="top-1", ylim=(0, 1.02))
    ax_acc.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def plot_per_class(per_class: dict[str, float], path: Path) -> Path:
    fig, ax = subplots(figsize=(6, 2.8))
    ax.bar(list(per_class), list(per_class.values()), color="#55a868")
    ax.set(ylabel="top-1", ylim=(0, 1.02), title="per-class accuracy (test)")
    ax.tick_params(axis="x", labelrotation=45)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def plot_block_macs(dense: list[float], dynamic: list[float], path: Path) -> Path:
    """Per gated block: its share of the dense model's MACs, dense vs mean of the dynamic model."""
    fig, ax = subplots(figsize=(max(4.0, 0.9 * len(dense) + 2), 3))
    index = range(len(dense))
    ax.bar([i - 0.2 for i in index], dense, width=0.4, label="dense", color="#8c8c8c")
    ax.bar([i + 0.2 for i in index], dynamic, width=0.4, label="dynamic (mean per clip)", color="#4c72b0")
    ax.set(xlabel="gated block", ylabel="share of dense-model MACs", title="MACs per gated block")
    ax.set_xticks(list(index))
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def plot_group_widths(dense: dict[str, int], kept: dict[str, int], path: Path, *, title: str) -> Path:
    """Per channel group: its dense width and the width a static pruning plan keeps (0: removed)."""
    names = list(dense)
    fig, ax = subplots(figsize=(max(4.0, 0.6 * len(names) + 2), 3.4))
    index = range(len(names))
    ax.bar(index, [dense[n] for n in names], width=0.7, label="dense", color="#d0d0d0")
    ax.bar(index, [kept.get(n, 0) for n in names], width=0.45, label="kept", color="#dd8452")
    ax.set(ylabel="channels", title=title)
    ax.set_xticks(list(index), names, rotation=60, ha="right", fontsize=7)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


@dataclass
class Report:
    """A Markdown report assembled section by section; figures are linked relative to ``root``."""

    title: str
    root: Path | None = None  # the report's folder; figures under it are linked by relative path
    sections: list[str] = field(default_factory=list)

    def _link(self, figure: Path) -> str:
        if self.root is not None and Path(figure).resolve().is_relative_to(Path(self.root).resolve()):
            return Path(figure).resolve().relative_to(Path(self.root).resolve()).as_posix()
        return Path(figure).name

    def add(self, heading: str, body: str = "", *, figures: list[Path] = (), table: pd.DataFrame | None = None):
        parts = [f"## {heading}", body.strip()]
        if table is not None:
            parts.append(table.to_markdown(floatfmt=".3f"))
        parts += [f"![{Path(figure).stem}]({self._link(figure)})" for figure in figures]
        self.sections.append("\n\n".join(p for p in parts if p))

    def write(self, path: Path) -> Path:
        path.write_text(f"# {self.title}\n\n" + "\n\n".join(self.sections) + "\n")
        return path
