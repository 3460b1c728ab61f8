"""The quickstart's DANCE stage over seeds: how far one run is from the spread DANCE shows.

DANCE's training amplifies small numeric differences (between seeds, and between CPUs whose kernels
round differently), so one run is one draw. The report puts this run's seeds (seed 0 from the main
stage, plus ``QuickstartConfig.dance_seeds``, each a full AVA + AAP run into ``dance-seed<N>/``)
beside the committed multi-seed measurements in :data:`REFERENCES`, as drops from dense in points.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dance3d.dance.pipeline import DanceRunConfig, run_dance
from dance3d.figures import subplots
from dance3d.reporting import paired_accuracy

MAX_DROP_POINTS = 1.0


@dataclass(frozen=True)
class SeedRow:
    """One seed of a multi-seed run: its dense model's and DANCE's test top-1, DANCE's mean MAC fraction."""

    seed: int
    dense_top1: float
    top1: float
    mac_fraction: float

    @property
    def drop_points(self) -> float:
        return 100.0 * (self.dense_top1 - self.top1)


@dataclass(frozen=True)
class SeedReference:
    """A committed multi-seed measurement of the quickstart's DANCE stage (``result`` is its JSON)."""

    name: str
    command: str
    machine: str
    result: str
    rows: tuple[SeedRow, ...]


# Copied from the committed results named in ``result`` (a test keeps them equal).
REFERENCES: tuple[SeedReference, ...] = (
    SeedReference(
        name="whole pipeline, a dense model per seed",
        command="python benchmarks/dance_seeds.py --preset quickstart --dense-per-seed --seeds 0 1 2 3 4 --threads 1",
        machine="AMD EPYC, 2-core VM, 1 thread",
        result="benchmarks/results/dance_seeds/quickstart-dense-per-seed/result.json",
        rows=(
            SeedRow(0, 0.9925, 0.9875, 0.4093),
            SeedRow(1, 1.0000, 0.9975, 0.4453),
            SeedRow(2, 0.9975, 0.9975, 0.3881),
            SeedRow(3, 0.9950, 0.9975, 0.4055),
            SeedRow(4, 1.0000, 1.0000, 0.3914),
        ),
    ),
    SeedReference(
        name="DANCE seeds, one dense model",
        command="python benchmarks/dance_seeds.py --preset quickstart --seeds 0 1 2 3 4 --threads 1",
        machine="AMD EPYC, 2-core VM, 1 thread",
        result="benchmarks/results/dance_seeds/quickstart/result.json",
        rows=(
            SeedRow(0, 0.9925, 0.9875, 0.4093),
            SeedRow(1, 0.9925, 0.9900, 0.4014),
            SeedRow(2, 0.9925, 0.9950, 0.4101),
            SeedRow(3, 0.9925, 0.9875, 0.4048),
            SeedRow(4, 0.9925, 0.9950, 0.3716),
        ),
    ),
)


def extra_seed_rows(
    config: DanceRunConfig, dense_checkpoint: Path, out_dir: Path, seeds: tuple[int, ...], *, dense: dict[str, Any]
) -> list[SeedRow]:
    """AVA + AAP with each of ``seeds`` (resumable, into ``out_dir/dance-seed<N>``), scored on the test split."""
    rows = []
    for seed in seeds:
        seeded = replace(config, ava=replace(config.ava, seed=seed), aap=replace(config.aap, seed=seed))
        run = run_dance(seeded, dense_checkpoint, out_dir / f"dance-seed{seed}")
        rows.append(seed_row(seed, run.test, dense=dense))
    return rows


def seed_row(seed: int, dynamic: dict[str, Any], *, dense: dict[str, Any]) -> SeedRow:
    """The row of one DANCE evaluation against its dense model's (both ``EvalResult.to_dict()``)."""
    paired_accuracy(dynamic["records"], dense["records"])  # refuses evaluations on different clips
    fraction = statistics.fmean(r["mac_fraction"] for r in dynamic["records"])
    return SeedRow(seed, dense["top1"], dynamic["top1"], fraction)


def _spread(rows: list[SeedRow] | tuple[SeedRow, ...]) -> str:
    drops = np.array([r.drop_points for r in rows])
    fractions = np.array([r.mac_fraction for r in rows])
    if len(rows) == 1:
        return f"drop {drops[0]:+.2f} points at a MAC fraction of {fractions[0]:.3f} (one seed)"
    return (
        f"drop {drops.mean():+.2f} ± {drops.std(ddof=1):.2f} points (mean ± std over {len(rows)} seeds; "
        f"{drops.min():+.2f} to {drops.max():+.2f}) at a MAC fraction of {fractions.mean():.3f} ± "
        f"{fractions.std(ddof=1):.3f}"
    )


def seed_section(this_run: list[SeedRow], out_dir: Path, *, machine: str) -> tuple[str, pd.DataFrame, Path]:
    """The report's text, table and figure: this run's seeds beside every reference (the range is the first's)."""
    reference = REFERENCES[0]
    low, high = (f(r.drop_points for r in reference.rows) for f in (min, max))
    drop = this_run[0].drop_points
    where = "inside" if low - 1e-9 <= drop <= high + 1e-9 else ("below" if drop > high else "above")
    text = (
        "DANCE's training amplifies small numeric differences (seeds, and CPUs whose kernels round "
        "differently), so one run is one draw; a drop from dense is negative when DANCE is more accurate. "
        f"This run ({machine}): {_spread(this_run)}. "
        + " ".join(
            f"Reference, {r.name} ({r.machine}; `{r.command}`, committed as `{r.result}`): {_spread(r.rows)}."
            for r in REFERENCES
        )
        + f" Seed 0 of this run is {where} the reference's range"
        + ("." if where == "inside" else " (a drop past it means this machine's numerics moved the result).")
        + f" The quickstart holds DANCE to within {MAX_DROP_POINTS:g} point of dense: "
        + ("met" if all(r.drop_points <= MAX_DROP_POINTS + 1e-9 for r in this_run) else "**not met**")
        + " by every seed of this run. To measure the spread on "
        "this machine: `dance3d quickstart --set 'dance_seeds=[1,2,3,4]'` (AVA + AAP once more per seed) "
        "or the reference's command."
    )
    table = pd.DataFrame(
        [{"run": f"this run ({machine})", **_as_dict(row)} for row in this_run]
        + [{"run": f"{r.name} ({r.machine})", **_as_dict(row)} for r in REFERENCES for row in r.rows]
    ).set_index("run")
    return text, table, plot_seed_spread(this_run, out_dir / "dance_seeds.png")


def _as_dict(row: SeedRow) -> dict[str, Any]:
    return {
        "seed": str(row.seed),  # a label: the report's tables format numbers as floats
        "dense top-1": row.dense_top1,
        "DANCE top-1": row.top1,
        "drop (points)": row.drop_points,
        "MAC fraction": row.mac_fraction,
    }


def drop_axes(ax) -> None:
    """Axes of drop from dense (points, improvements up) against MAC fraction, the 1-point band shaded."""
    ax.axhline(0.0, color="black", lw=1, label="dense")
    ax.axhspan(0.0, MAX_DROP_POINTS, color="tab:green", alpha=0.15, label=f"within {MAX_DROP_POINTS:g} point")
    ax.invert_yaxis()
    ax.set_xlabel("mean MAC fraction (test)")
    ax.set_ylabel("top-1 drop from dense (points)")


def plot_seed_spread(this_run: list[SeedRow], path: Path) -> Path:
    """Drop from dense against MAC fraction: the references grey, this run's seeds blue, the 1-point band green."""
    fig, ax = subplots(figsize=(5.0, 3.4))
    drop_axes(ax)
    for reference, marker in zip(REFERENCES, "osD^", strict=False):
        ax.scatter(
            [r.mac_fraction for r in reference.rows],
            [r.drop_points for r in reference.rows],
            color="0.6",
            marker=marker,
            label=f"reference: {reference.name}",
        )
    ax.scatter(
        [r.mac_fraction for r in this_run], [r.drop_points for r in this_run], color="tab:blue", label="this run"
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path
