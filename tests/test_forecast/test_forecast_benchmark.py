"""The dense forecasting benchmark's --quick smoke run writes a valid result with its targets and a figure."""

import json
import os
import subprocess
import sys
from pathlib import Path

from dance3d.benchmark_results import validate_result

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "forecast_dense.py"


def test_quick_run_writes_result_json_and_figure(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--threads", "1", "--root", str(tmp_path), "--tag", "smoke",
         "--datasets", "storms", "--backbones", "simvp-tiny,stformer-tiny"],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    folder = tmp_path / "forecast_dense" / "smoke-quick"
    payload = json.loads((folder / "result.json").read_text())
    assert validate_result(payload) == []
    assert payload["quick"] is True
    assert set(payload["targets"]) == {"every_backbone_beats_persistence", "real_grids_run_end_to_end"}
    assert payload["targets"]["real_grids_run_end_to_end"] is False  # no --grids asked for
    assert [r["backbone"] for r in payload["rows"]] == ["simvp-test", "stformer-test"]
    for row in payload["rows"]:
        assert row["macs"] > 0 and row["latency_b1_ms"] > 0 and row["latency_b8_ms"] > 0
        assert row["mse_ratio"] == row["mse_normalised"] / row["persistence_mse_normalised"]
    assert (folder / "predictions_storms.png").stat().st_size > 1000
