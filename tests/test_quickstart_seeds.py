"""The quickstart's seed section: the committed references, and where a run falls against them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dance3d.quickstart_seeds import REFERENCES, SeedRow, seed_row, seed_section

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("reference", REFERENCES, ids=lambda r: r.name)
def test_every_reference_equals_its_committed_result(reference):
    result = json.loads((ROOT / reference.result).read_text())
    assert reference.command.split("--seeds")[0] in "python benchmarks/dance_seeds.py " + " ".join(
        result["settings"]["argv"]
    )
    assert [r.seed for r in reference.rows] == result["settings"]["seeds"]
    for row, committed in zip(reference.rows, result["seeds"], strict=True):
        dense = committed.get("dense_top1", result["dense"]["top1"])
        assert (row.dense_top1, row.top1) == pytest.approx((dense, committed["top1"]), abs=5e-5)
        assert row.mac_fraction == pytest.approx(committed["mean_mac_fraction"], abs=5e-5)
    assert reference.machine.startswith(result["machine"]["cpu_model"])


def test_seed_row_is_the_drop_from_its_own_dense_model():
    records = [{"index": i, "correct": i < 3, "mac_fraction": 0.25 * (1 + i % 2)} for i in range(4)]
    dense = {"top1": 1.0, "records": [{"index": i, "correct": True} for i in range(4)]}
    row = seed_row(7, {"top1": 0.75, "records": records}, dense=dense)
    assert (row.seed, row.mac_fraction, row.drop_points) == (7, pytest.approx(0.375), pytest.approx(25.0))
    with pytest.raises(ValueError, match="same clips"):
        seed_row(7, {"top1": 0.75, "records": records[:3]}, dense=dense)


def test_the_section_places_the_run_against_the_reference_range(tmp_path):
    rows = REFERENCES[0].rows
    worst = max(r.drop_points for r in rows)
    inside = SeedRow(0, 1.0, 1.0 - worst / 100, 0.4)
    text, table, figure = seed_section([inside], tmp_path, machine="test CPU")
    assert "inside the reference's range" in text and figure.stat().st_size > 5_000
    assert ("met by every seed" in text) == (worst <= 1.0)
    assert len(table) == 1 + sum(len(r.rows) for r in REFERENCES)
    below = SeedRow(0, 1.0, 1.0 - (worst + 2.0) / 100, 0.4)
    text, _, _ = seed_section([below, inside], tmp_path, machine="test CPU")
    assert "below the reference's range" in text and "over 2 seeds" in text and "**not met**" in text
