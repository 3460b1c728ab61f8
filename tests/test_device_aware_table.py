"""The device cost table: measured per gated block and keep level, saved, refused for another model or clip."""

from __future__ import annotations

import json

import pytest
import torch

from dance3d.dance.device_cost import BlockCostTable, load_for
from dance3d.dance.device_cost_measure import OperatingPoint, build_cost_table, check_prediction
from dance3d.dynamic import DynamicConfig, convert_model
from dance3d.errors import ConfigError
from dance3d.mdp.lut import LatencyRuntime
from dance3d.models import create_model

FAST = LatencyRuntime(threads=2, warmup=1, repeats=2, rounds=1)
SHAPE = (8, 32, 32)


def _model(shape=SHAPE, config: DynamicConfig | None = None):
    torch.manual_seed(0)
    return convert_model(create_model("tiny-test", num_classes=4).eval(), clip_shape=shape, config=config)


@pytest.fixture(scope="module")
def table() -> BlockCostTable:
    return build_cost_table(_model(), {"name": "tiny-test", "num_classes": 4}, runtime=FAST, progress=False)


def test_every_level_of_every_block_is_timed(table):
    model = _model()
    assert len(table.blocks) == len(model.gated)
    for costs, levels in zip(table.blocks, model.levels, strict=True):
        assert costs.grids == (levels.frames, levels.channels, levels.tiles)
        assert costs.latency_ms.shape == (len(levels.frames), len(levels.channels), len(levels.tiles))
        assert (costs.latency_ms > 0).all()
    assert table.dense_ms > 0 and table.controller_ms > 0
    assert table.energy_status == "not requested" and not table.has_energy


def test_all_kept_costs_the_dense_table_cost(table):
    model = _model()
    full = OperatingPoint(1.0).levels(model)
    assert table.predict(full, controller=False) == pytest.approx(table.dense_cost())
    assert table.dense_cost() == pytest.approx(max(table.dense_ms, sum(b.latency_ms[-1, -1, -1] for b in table.blocks)))
    counts = [tuple(torch.tensor([float(n)]) for n in level) for level in full]
    assert float(table.clip_cost(counts, controller=False)[0]) == pytest.approx(table.dense_cost())
    assert table.predict(full) == pytest.approx(table.dense_cost() + table.controller_ms)


def test_interpolation_hits_the_entries_at_levels_and_lies_between_them(table):
    costs = table.blocks[0]
    frames = costs.grids[0]
    for i, count in enumerate(frames):
        for j, channels in enumerate(costs.grids[1]):
            got = costs.interpolate(
                (torch.tensor([float(count)]), torch.tensor([float(channels)]), torch.tensor([1.0]))
            )
            assert float(got[0]) == pytest.approx(costs.latency_ms[i, j, 0])
    middle = 0.5 * (frames[0] + frames[1])
    channels = torch.tensor([float(costs.grids[1][-1])])
    value = float(costs.interpolate((torch.tensor([middle]), channels, torch.tensor([1.0])))[0])
    assert value == pytest.approx(0.5 * (costs.latency_ms[0, -1, 0] + costs.latency_ms[1, -1, 0]))


def test_save_load_round_trip_records_model_clip_and_device(table, tmp_path):
    path = table.save(tmp_path / "cost.json")
    data = json.loads(path.read_text())
    assert data["model"] == {"name": "tiny-test", "num_classes": 4}
    assert data["clip_shape"] == [3, *SHAPE] and data["runtime"]["device"] == "cpu" and data["batch_size"] == 1
    loaded = load_for(path, _model(), cost="latency")
    assert loaded.predict(OperatingPoint(0.5).levels(_model())) == pytest.approx(
        table.predict(OperatingPoint(0.5).levels(_model()))
    )


def test_a_table_of_another_clip_shape_or_model_is_refused(table, tmp_path):
    path = table.save(tmp_path / "cost.json")
    with pytest.raises(ConfigError, match="clip shape 8x32x32 differs"):
        load_for(path, _model(shape=(8, 48, 48)), cost="latency")
    with pytest.raises(ConfigError, match="another model"):
        load_for(path, _model(config=DynamicConfig(frame_keep_fractions=(0.5, 1.0))), cost="latency")
    with pytest.raises(ConfigError, match="holds no joules"):
        load_for(path, _model(), cost="energy")
    (tmp_path / "other.json").write_text('{"format": "dance3d-latency-table"}')
    with pytest.raises(ConfigError, match="not a dance3d block cost table"):
        BlockCostTable.load(tmp_path / "other.json")


def test_joules_come_from_the_meter_per_entry(tmp_path):
    from test_profiling.profiling_fakes import ScriptedMeter

    model = _model()
    entries = sum(len(lv.frames) * len(lv.channels) * len(lv.tiles) for lv in model.levels)
    meter = ScriptedMeter([float(i + 1) for i in range(entries + 2)], duration_s=1.0)
    table = build_cost_table(model, {"name": "tiny-test"}, runtime=FAST, meter=meter, progress=False)
    assert table.has_energy and table.energy_status == "ok" and table.energy_meter == "scripted"
    assert meter.windows == entries + 2
    assert table.dense_j > 0 and table.controller_j > 0
    assert all((b.energy_j > 0).all() for b in table.blocks)
    full = OperatingPoint(1.0).levels(model)
    assert table.predict(full, cost="energy", controller=False) == pytest.approx(table.dense_cost("energy"))


def test_prediction_check_measures_each_operating_point(table):
    rows = check_prediction(_model(), table, FAST, keep_fractions=(1.0, 0.5))
    rows = [{**r, "levels": [tuple(level) for level in r["levels"]]} for r in rows]
    assert [r["keep_fraction"] for r in rows] == [1.0, 0.5]
    for row in rows:
        assert row["measured_ms"] > 0
        assert row["error_pct"] == pytest.approx(100 * (row["predicted_ms"] - row["measured_ms"]) / row["measured_ms"])
        assert row["predicted_ms"] == pytest.approx(table.predict(row["levels"], controller=False))
    assert rows[1]["levels"] != rows[0]["levels"]


def test_cost_table_cli_writes_a_table_and_checks_it(trained_tiny, run_cli, tmp_path):
    out = tmp_path / "cost.json"
    code, stdout, err = run_cli(
        "cost-table", "--checkpoint", trained_tiny, "--threads", "2", "--repeats", "2", "--rounds", "1",
        "--check", "--out", str(out), "--format", "json",
    )  # fmt: skip
    assert code == 0, err
    payload = json.loads(stdout)
    assert len(payload["check"]) == 4 and payload["energy_status"] == "not requested"
    assert BlockCostTable.load(out).clip_shape == (3, 8, 32, 32)
    code, _, err = run_cli("cost-table", "--checkpoint", trained_tiny, "--out", str(out))
    assert code == 2 and "exists" in err and "Traceback" not in err
