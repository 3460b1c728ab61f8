"""DANCE on untrimmed clips: event-window keep rates, the target rules, the new static families, the MAC-budget MDP
baseline and the benchmark's smoke run."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dance3d.benchmark_results import validate_result
from dance3d.dance.compare import EveryNthFrame, FixedCostModel, static_kinds
from dance3d.dance.data import ClipCache, every_nth_frame
from dance3d.dance.untrimmed import input_frame_keep, untrimmed_targets, window_keep_rates
from dance3d.dynamic import convert_model
from dance3d.errors import ConfigError
from dance3d.mdp.lut_measure import TableGrid
from dance3d.mdp.mac_table import build_mac_table, prune_to_macs
from dance3d.models import create_model
from profiling.macs import count_macs

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "dance_untrimmed.py"


def test_window_keep_rates_split_kept_frames_at_the_event_window():
    keep = np.zeros((2, 8))
    keep[0, 2:4] = 1.0  # keeps exactly its event
    keep[1] = 0.5  # keeps half of every frame
    metas = [{"event_start": 2, "event_length": 2}, {"event_start": 0, "event_length": 8}]
    rates = window_keep_rates(keep, metas)
    assert rates["keep_inside_event"].tolist() == [1.0, 0.5]
    assert rates["keep_outside_event"][0] == 0.0 and np.isnan(rates["keep_outside_event"][1])  # whole-clip event
    assert rates["event_share_of_frames"].tolist() == [0.25, 1.0]
    assert rates["event_share_of_kept"].tolist() == [1.0, 1.0]


def test_input_frame_keep_maps_every_frame_gated_block_to_input_frames():
    model = convert_model(create_model("tiny-test", num_classes=8), clip_shape=(8, 16, 16))
    keep = input_frame_keep(model, torch.rand(3, 3, 8, 16, 16))
    assert keep.shape == (3, 8) and ((keep >= 0) & (keep <= 1)).all()
    gated = [g for g in model.gated if g.frame_stride is not None]
    frames = [d.frames.float() for g, d in zip(model.gated, model.last_decisions, strict=True) if g in gated]
    expected = np.mean([f[:, (torch.arange(8) * f.shape[1]) // 8].numpy() for f in frames], axis=0)
    assert np.allclose(keep, expected)


def _runs(dance_top1: float, dance_macs: float, **baselines: tuple[float, float]) -> dict:
    runs = {"dance": {"top1": dance_top1, "mean_mac_fraction": dance_macs, "mac_reduction": 1 - dance_macs,
                      "spearman_mac_fraction_vs_clip_factor": {"frames_needed": 0.6}},
            "dance_without_ava": {"top1": dance_top1 - 0.03, "mean_mac_fraction": dance_macs}}  # fmt: skip
    runs |= {f"{n}_at_dance": {"top1": t, "mean_mac_fraction": m} for n, (t, m) in baselines.items()}
    return runs


def _paired(runs: dict, p: float = 0.001) -> dict:
    return {
        f"dance_vs_{name}": {"top1_diff_points": 100 * (runs["dance"]["top1"] - run["top1"]), "mcnemar_p": p}
        for name, run in runs.items()
        if name != "dance"
    }


def test_untrimmed_targets_judge_only_baselines_that_spend_at_least_dances_macs():
    runs = _runs(0.90, 0.35, static=(0.87, 0.36), input_stride4=(0.95, 0.25))  # the cheaper one is left out
    targets = untrimmed_targets(runs, _paired(runs), dense_top1=0.905, baselines=["static", "input_stride4"])
    assert targets == {
        "top1_drop_at_most_1_point": True,
        "mac_reduction_at_least_60pct": True,
        "beats_every_static_baseline_by_2_points": True,
        "spearman_frames_needed_at_least_0.5": True,
        "ava_helps": True,
    }
    close = _runs(0.90, 0.35, static=(0.89, 0.36))  # one point ahead: not two
    assert not untrimmed_targets(close, _paired(close), dense_top1=0.9, baselines=["static"])[
        "beats_every_static_baseline_by_2_points"
    ]
    unsure = untrimmed_targets(runs, _paired(runs, p=0.2), dense_top1=0.9, baselines=["static", "input_stride4"])
    assert not unsure["beats_every_static_baseline_by_2_points"] and not unsure["ava_helps"]
    runs["dance_without_ava"]["mean_mac_fraction"] = 0.45  # not at the same MACs: AVA's effect is not measured
    assert not untrimmed_targets(runs, _paired(runs), dense_top1=0.9, baselines=["static"])["ava_helps"]


def test_static_families_by_name():
    families = ("static", "input_stride2", "input_stride4_channels")
    kinds = static_kinds(frame_keep=0.5, extra_frame_keeps=(), channel_multiple=16, families=families)
    kinds = {k.name: k for k in kinds}
    assert (kinds["input_stride2"].input_frame_stride, kinds["input_stride2"].prune_channels) == (2, False)
    assert (kinds["input_stride4_channels"].input_frame_stride, kinds["input_stride4_channels"].prune_channels) == (
        4,
        True,
    )
    assert kinds["static"].input_frame_stride == 1 and kinds["static"].prune_channels
    for bad in ("input_stride1", "channels"):
        with pytest.raises(ConfigError, match="static family"):
            static_kinds(frame_keep=0.5, extra_frame_keeps=(), channel_multiple=16, families=(bad,))


class _Stats(torch.nn.Module):
    def forward(self, clips):
        self.frames = clips.shape[2]
        return torch.zeros(len(clips), 2)

    def clip_stats(self):
        return [{"macs": 10.0, "mac_fraction": 0.5, "gate0.mac_fraction": 0.25, "frame_keep": 1.0}]


def test_lower_frame_rate_wrapper_subsamples_and_rescales_mac_fractions():
    inner = _Stats()
    model = EveryNthFrame(inner, 4, mac_scale=0.25)
    model(torch.zeros(1, 3, 32, 8, 8))
    assert inner.frames == 8
    assert model.clip_stats() == [{"macs": 10.0, "mac_fraction": 0.125, "gate0.mac_fraction": 0.0625,
                                   "frame_keep": 1.0}]  # fmt: skip
    cache = ClipCache(torch.arange(2 * 3 * 6).reshape(2, 3, 6, 1, 1).half(), torch.tensor([0, 1]), [{}, {}])
    assert every_nth_frame(cache, 2).clips[0, 0, :, 0, 0].tolist() == [0.0, 2.0, 4.0]
    fixed = FixedCostModel(torch.nn.Identity(), macs=30.0, dense_macs=100)
    fixed(torch.zeros(3, 4))
    assert fixed.clip_stats() == [{"macs": 30.0, "mac_fraction": 0.3}] * 3


def test_mac_table_adds_up_to_the_dense_models_counted_macs_and_mdp_meets_its_budget():
    model = create_model("tiny-test", num_classes=4).eval()
    shape = (3, 8, 16, 16)
    spec = {"name": "tiny-test", "num_classes": 4, "options": {}}
    table = build_mac_table(model, spec, shape, grid=TableGrid(step=4))
    dense_mmacs = count_macs(model, torch.zeros(1, *shape)).macs / 1e6
    assert table.dense_latency_ms == pytest.approx(dense_mmacs) and table.dense_entries_ms == pytest.approx(dense_mmacs)
    batches = [(torch.rand(4, *shape), torch.randint(0, 4, (4,))) for _ in range(2)]
    pruned = prune_to_macs(model, spec, shape, 0.5, batches, grid=TableGrid(step=4))
    assert 0.3 < pruned.mac_fraction <= 0.5 + 1e-9
    assert pruned.mac_fraction == pytest.approx(pruned.predicted_mac_fraction, rel=1e-6)
    assert pruned.model(torch.rand(2, *shape)).shape == (2, 4)


@pytest.fixture(scope="module")
def benchmark():
    spec = importlib.util.spec_from_file_location("dance_untrimmed", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_refuses_a_missing_or_trimmed_checkpoint(benchmark, trained_tiny, tmp_path, capsys):
    assert benchmark.main(["--dense-checkpoint", str(tmp_path / "none.pt"), "--results-dir", str(tmp_path)]) == 2
    assert "no dense checkpoint" in capsys.readouterr().err
    assert benchmark.main(["--dense-checkpoint", trained_tiny, "--results-dir", str(tmp_path)]) == 2
    assert "not trained on untrimmed clips" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


@pytest.mark.slow  # trains a tiny dense model on untrimmed clips, then AVA, two AAP runs and five fine-tunings
def test_quick_run_writes_dance_untrimmed_results(benchmark, run_cli, tmp_path):
    dense = tmp_path / "dense"
    run_cli("train", "--model", "tiny-test", "--data", "moving-digits", "--set", "data.untrimmed=true",
            "--set", "data.num_frames=32", "--set", "data.height=16", "--set", "data.width=16",
            "--set", "data.num_train=32", "--set", "data.num_val=8", "--set", "data.num_test=8",
            "--set", "train.num_workers=0", "--epochs", "1", "--out", str(dense))  # fmt: skip
    argv = ["--dense-checkpoint", str(dense / "model.pt"), "--quick", "--threads", "1", "--results-dir", str(tmp_path)]
    assert benchmark.main(argv) == 0
    folder = tmp_path / "dance_untrimmed" / "quick-seed0"
    result = json.loads((folder / "result.json").read_text())
    assert validate_result(result) == [] and result["benchmark"] == "dance_untrimmed"
    assert set(result["targets"]) == {"top1_drop_at_most_1_point", "mac_reduction_at_least_60pct",
                                      "beats_every_static_baseline_by_2_points",
                                      "spearman_frames_needed_at_least_0.5", "ava_helps"}  # fmt: skip
    assert {"mdp_at_dance", "input_stride2_at_dance", "input_stride4_at_dance"} <= set(result["runs"])
    assert result["runs"]["input_stride4_at_dance"]["mean_mac_fraction"] == pytest.approx(0.25, abs=0.01)
    assert "compact_latency_ms_batch8" in result["runs"]["dance"]
    assert all((folder / name).stat().st_size > 0 for name in result["figures"])


def test_stacked_mode_needs_the_designed_run_of_its_seed(benchmark, trained_tiny, tmp_path, capsys):
    argv = ["--dense-checkpoint", trained_tiny, "--results-dir", str(tmp_path)]
    assert benchmark.main([*argv, "--stack-mdp", "0.6", "--seed", "1"]) == 2
    assert "run the designed benchmark for seed 1 first" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
    assert benchmark.result_tag(benchmark.parse_args([*argv, "--stack-mdp", "0.6"])) == "stack0.6-seed0"
