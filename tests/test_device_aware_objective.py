"""AAP with a device objective (latency or joules from a cost table) and budgets re-targeted to a latency."""

from __future__ import annotations

import json

import pytest
import torch
from device_aware_helpers import proportional_table
from model_helpers import make_dense

from dance3d.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from dance3d.dance.aap import AapSettings, cost_term, train_aap
from dance3d.dance.data import ClipCache
from dance3d.dance.device_cost import mean_table_cost
from dance3d.dance.pipeline import load_run_config
from dance3d.data.moving_digits import MOTION_CLASSES
from dance3d.data.registry import DataConfig
from dance3d.dynamic import DynamicConfig, convert_model, set_execution_mode
from dance3d.dynamic.checkpoint import KIND, dynamic_spec
from dance3d.errors import ConfigError
from dance3d.loading import load_model

CLIP = (8, 32, 32)
DATA = DataConfig(num_frames=8, height=32, width=32, num_train=16, num_val=12, num_test=12)


def _model(clip=CLIP):
    torch.manual_seed(0)
    return convert_model(make_dense("tiny-test"), clip_shape=clip, config=DynamicConfig(channel_multiple=4)).eval()


def _clips(count: int = 8) -> torch.Tensor:
    return torch.rand(count, 3, *CLIP, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"cost": "latency", "target_latency_ms": 3.0}, "needs cost_table"),
        ({"cost": "energy", "cost_table": "t.json"}, "needs target_energy_j"),
        ({"cost": "seconds"}, "cost must be one of macs, latency, energy"),
        ({"target_latency_ms": 3.0}, "target_latency_ms is set but the cost is 'macs'"),
        ({"cost": "latency", "cost_table": "t.json", "target_latency_ms": -1.0}, "must be > 0"),
    ],
)
def test_bad_cost_settings_are_refused_by_name(settings, message):
    with pytest.raises(ValueError, match=message):
        AapSettings(**settings)
    overrides = [f"aap.{k}={v}" for k, v in settings.items()]
    with pytest.raises(ConfigError, match=message):
        load_run_config(data={}, overrides=overrides)


def test_the_table_cost_term_reaches_the_controller_through_the_surrogate():
    model = _model()
    table = proportional_table(model)
    settings = AapSettings(cost="latency", cost_table="unused.json", target_latency_ms=0.5)
    set_execution_mode(model, "train")
    for p in model.backbone.parameters():
        p.requires_grad_(False)
    model(_clips(4))
    clip_cost = table.last_forward_cost(model)
    assert clip_cost.shape == (4,) and clip_cost.requires_grad
    with torch.no_grad():  # the forward value is the table cost of the hard decisions
        levels = [[(int(f[b]), int(c[b]), int(t[b])) for f, c, t in model.last_keep_counts()] for b in range(4)]
    assert clip_cost.detach().tolist() == pytest.approx([table.predict(lv) for lv in levels])
    cost_term(clip_cost, table, settings).backward()
    grads = [p.grad for p in model.controller.parameters() if p.grad is not None]
    assert grads and any(float(g.abs().sum()) > 0 for g in grads)


def test_aap_trains_toward_a_latency_target_and_logs_the_table_cost():
    model = _model()
    table = proportional_table(model)
    train = ClipCache(_clips(16).half(), torch.arange(16) % 2, [{}] * 16)
    target = 0.5 * table.dense_cost()
    settings = AapSettings(
        epochs=1, joint_epochs=0, batch_size=8, cost="latency", cost_table="unused.json", target_latency_ms=target,
        mac_penalty=50.0, lr=5e-2, progress=False,
    )  # fmt: skip
    before = mean_table_cost(model, _clips(), table)
    history = train_aap(model, train, settings, cost_table=table, log=lambda _: None)
    assert "table_latency_ms" in history[0] and history[0]["table_latency_ms"] > 0
    after = mean_table_cost(model, _clips(), table)
    assert abs(after - target) < abs(before - target)


def test_aap_refuses_a_table_of_another_model(tmp_path):
    other = proportional_table(_model(clip=(8, 48, 48)))
    path = other.save(tmp_path / "cost.json")
    settings = AapSettings(cost="latency", cost_table=str(path), target_latency_ms=1.0, progress=False)
    train = ClipCache(_clips(8).half(), torch.arange(8) % 2, [{}] * 8)
    with pytest.raises(ConfigError, match="clip shape 8x48x48 differs"):
        train_aap(_model(), train, settings)


@pytest.fixture
def dynamic_checkpoint(tmp_path):
    model = _model()
    spec = dynamic_spec(model, {"name": "tiny-test", "num_classes": 8, "options": {}}, backbone_kind="dense")
    checkpoint = Checkpoint.create(KIND, spec, model.state_dict(), data=DATA, classes=MOTION_CLASSES)
    path = save_checkpoint(checkpoint, tmp_path / "aap.pt")
    return path, proportional_table(model).save(tmp_path / "cost.json")


def test_budget_cli_retargets_to_a_table_latency(dynamic_checkpoint, run_cli, tmp_path):
    checkpoint, table_path = dynamic_checkpoint
    table = proportional_table(_model())
    target = 0.6 * table.dense_cost()
    out = tmp_path / "budget" / "model.pt"
    code, stdout, err = run_cli(
        "budget", "--checkpoint", str(checkpoint), "--target-latency-ms", str(target), "--cost-table",
        str(table_path), "--out", str(out), "--format", "json",
    )  # fmt: skip
    assert code == 0, err
    report = json.loads(stdout)
    assert report["latency_ms"] <= target < report["latency_ms_before"]
    assert 0 < report["mac_fraction"] < 1
    assert load_checkpoint(out)["budget"]["target_latency_ms"] == pytest.approx(target)
    loaded = load_model(out).model
    clips = torch.stack(_val_clips())
    assert mean_table_cost(loaded, clips, table) == pytest.approx(report["latency_ms"])


def _val_clips():
    from dance3d.data.registry import build_dataset

    dataset = build_dataset(DATA, "val", classes=MOTION_CLASSES)
    return [dataset[i]["clip"] for i in range(len(dataset))]


def test_budget_cli_latency_errors_are_one_line(dynamic_checkpoint, run_cli, tmp_path):
    checkpoint, table_path = dynamic_checkpoint
    out = str(tmp_path / "b.pt")
    code, _, err = run_cli("budget", "--checkpoint", str(checkpoint), "--target-latency-ms", "2", "--out", out)
    assert code == 2 and "needs --cost-table" in err and "Traceback" not in err
    other = proportional_table(_model(clip=(8, 48, 48))).save(tmp_path / "other.json")
    code, _, err = run_cli(
        "budget", "--checkpoint", str(checkpoint), "--target-latency-ms", "2", "--cost-table", str(other), "--out", out
    )
    assert code == 2 and "differs" in err
    code, _, err = run_cli(
        "budget", "--checkpoint", str(checkpoint), "--target-latency-ms", "0.01", "--cost-table", str(table_path),
        "--out", out,
    )  # fmt: skip
    assert code == 2 and "below what this model reaches" in err
