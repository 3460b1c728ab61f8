"""Compact execution agrees with simulate, really skips work, and its fallbacks stay exact."""

import copy

import pytest
import torch
import torch.nn.functional as F
from dynamic_helpers import frame_sensitive, make_dense, partly_static_clip

from dance3d.dynamic import BlockDecision, DynamicConfig, apply_knobs, convert_model, knob_space, set_execution_mode
from dance3d.dynamic.compact_backend import conv3d, fast_conv_backend
from dance3d.dynamic.compact_calibration import CompactCalibration
from dance3d.errors import ConfigError
from profiling import count_macs


class Always(CompactCalibration):
    """Forces one choice for every block and level."""

    def __init__(self, choice: str) -> None:
        super().__init__(device="test")
        self.forced = choice

    def choice(self, block, level):
        return self.forced


def partial_decisions(model, batch: int, seed: int) -> list[BlockDecision]:
    """Random decisions at a non-full level on every axis that has one (frames, channels, tiles partly skipped)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for levels, gated, spec in zip(model.levels, model.gated, model.gate_specs, strict=True):
        masks = []
        for allowed, count in (
            (levels.frames, spec.num_frames),
            (levels.channels, spec.num_channels),
            (levels.tiles, spec.num_tiles),
        ):
            partial = allowed[:-1] or allowed
            rows = []
            for _ in range(batch):
                kept = partial[int(torch.randint(len(partial), (1,), generator=g))]
                row = torch.zeros(count, dtype=torch.bool)
                row[torch.randperm(count, generator=g)[:kept]] = True
                rows.append(row)
            masks.append(torch.stack(rows))
        out.append(BlockDecision(*masks, gated.grid))
    return out


def run_both(model, clips, decisions):
    with torch.no_grad():
        set_execution_mode(model, "simulate")
        expected = model(clips, decisions=decisions)
        expected_macs = model.last_macs.clone()
        set_execution_mode(model, "compact")
        got = model(clips, decisions=decisions)
    return expected, got, expected_macs


CASES = [  # (model, clip, tile size, calibration choice: None = analytic default)
    ("tiny-test", (8, 64, 64), 8, "compact"),
    ("tiny-test", (8, 64, 64), 8, None),
    ("tiny-test-deep", (8, 48, 40), 8, "compact"),  # uneven tile grid (24x20 map in 3x2 tiles of 8x10)
    ("tiny-test-deep", (8, 48, 40), 8, None),
    ("r3d_18", (4, 32, 32), 4, "compact"),
    ("mc3_18", (4, 32, 32), 4, "compact"),
    ("r2plus1d_18", (4, 32, 32), 4, "compact"),
    ("x3d_xs", (4, 64, 64), 4, "compact"),
    ("slow_r50", (4, 64, 64), 4, "compact"),
]


@pytest.mark.parametrize(("name", "clip", "tile_size", "choice"), CASES)
def test_compact_matches_simulate(name, clip, tile_size, choice):
    config = DynamicConfig(channel_multiple=4, tile_size=tile_size)
    model = convert_model(make_dense(name), clip_shape=clip, config=config).eval()
    assert any(g.grid.rows * g.grid.cols > 1 for g in model.gated)
    model.compact_calibration = Always(choice) if choice else None
    for batch, seed in ((1, 0), (3, 1)):
        clips = torch.rand(batch, 3, *clip, generator=torch.Generator().manual_seed(seed))
        decisions = partial_decisions(model, batch, seed)
        expected, got, expected_macs = run_both(model, clips, decisions)
        scale = expected.abs().max()
        assert torch.allclose(got, expected, rtol=0, atol=1e-5 * scale), (name, batch)
        assert torch.allclose(model.last_macs, expected_macs)
    supported = [g.compact_runtime.stages is not None for g in model.gated]
    assert all(supported) if name != "x3d_xs" else 0 < sum(supported) < len(supported)  # X3D: SE blocks run dense


def test_compact_plans_skip_frames_and_tiles_and_reuse_the_cache():
    config = DynamicConfig(channel_multiple=4, tile_size=8)
    model = convert_model(make_dense("tiny-test"), clip_shape=(8, 64, 64), config=config)
    model.eval().compact_calibration = Always("compact")
    decisions = partial_decisions(model, 1, 3)
    run_both(model, torch.rand(1, 3, 8, 64, 64), decisions)
    plans = [p for g in model.gated for p in g.compact_runtime.plans.values()]
    assert any(sp.tiled for p in plans for sp in p.stages)
    assert any(p.input_frames is not None and p.input_frames.shape[1] < 8 for p in plans)
    sizes = [len(g.compact_runtime.plans) for g in model.gated]
    with torch.no_grad():
        model(torch.rand(1, 3, 8, 64, 64), decisions=decisions)
    assert [len(g.compact_runtime.plans) for g in model.gated] == sizes


def test_dispatch_macs_of_compact_execution_vs_analytic_accounting():
    """Channels and frames: executed == analytic exactly (a compressed clip has no temporal halo). Tiles
    skipped too: analytic <= executed (the spatial halo) and executed < the dense model's MACs."""
    model = convert_model(
        make_dense("tiny-test"), clip_shape=(8, 64, 64), config=DynamicConfig(channel_multiple=4, tile_size=8)
    )
    model.eval().compact_calibration = Always("compact")
    set_execution_mode(model, "compact")
    clip = torch.rand(1, 3, 8, 64, 64)
    dense = count_macs(lambda x: model(x, decisions=model.full_decisions(1)), clip, module=model).macs
    partial = partial_decisions(model, 1, 4)
    for frames in (False, True):
        no_tiles = [
            BlockDecision(
                d.frames if frames else torch.ones_like(d.frames), d.channels, torch.ones_like(d.tiles), d.grid
            )
            for d in partial
        ]
        executed = count_macs(lambda x, no_tiles=no_tiles: model(x, decisions=no_tiles), clip, module=model).macs
        assert executed == pytest.approx(float(model.last_macs[0]), rel=1e-6)
        assert executed < dense
    executed = count_macs(lambda x: model(x, decisions=partial), clip, module=model).macs
    analytic = float(model.last_macs[0])
    assert analytic <= executed < dense
    assert dense == model.dense_macs


def test_dense_fallback_is_exact_and_uses_sliced_channels_only():
    model = convert_model(
        make_dense("tiny-test"), clip_shape=(8, 64, 64), config=DynamicConfig(channel_multiple=4, tile_size=8)
    )
    model.eval().compact_calibration = Always("dense")
    clips = torch.rand(2, 3, 8, 64, 64)
    decisions = partial_decisions(model, 2, 5)
    expected, got, _ = run_both(model, clips, decisions)
    assert torch.allclose(got, expected, rtol=0, atol=1e-5 * expected.abs().max())
    plans = [p for g in model.gated for p in g.compact_runtime.plans.values()]
    assert plans and all(not sp.tiled for p in plans for sp in p.stages)


def test_compact_needs_eval_mode():
    model = convert_model(make_dense("tiny-test"), clip_shape=(8, 32, 32))
    set_execution_mode(model, "compact")
    with pytest.raises(ConfigError, match="eval mode"):
        model.train()(torch.rand(1, 3, 8, 32, 32))


def test_calibration_round_trip_and_bad_files(tmp_path):
    calibration = CompactCalibration(device="cpu:test")
    calibration.record(0, (4, 8, 2), compact_ms=1.0, dense_ms=2.0)
    calibration.record(1, (8, 8, 1), compact_ms=3.0, dense_ms=2.0)
    loaded = CompactCalibration.load(calibration.save(tmp_path / "cal.json"))
    assert loaded == calibration
    assert loaded.choice(0, (4, 8, 2)) == "compact" and loaded.choice(1, (8, 8, 1)) == "dense"
    assert loaded.choice(2, (1, 1, 1)) is None
    (tmp_path / "bad.json").write_text('{"device": "x", "choices": {"0:1/1/1": "fast"}}')
    with pytest.raises(ConfigError, match="unknown choice"):
        CompactCalibration.load(tmp_path / "bad.json")
    with pytest.raises(ConfigError, match="cannot read"):
        CompactCalibration.load(tmp_path / "missing.json")


def test_calibrate_measures_the_partial_levels():
    from dance3d.dynamic.compact_tuning import calibrate

    config = DynamicConfig(channel_multiple=8, tile_size=4)
    model = convert_model(make_dense("tiny-test"), clip_shape=(8, 32, 32), config=config)
    set_execution_mode(model.eval(), "compact")
    calibration = calibrate(model, torch.rand(3, 8, 32, 32), warmup=1, repeats=1, max_levels=3)
    tiled = [s for s in model.gate_specs if s.num_tiles > 1]
    assert tiled  # the 3 largest levels, less "all tiles kept" (the same plan both ways)
    assert len(calibration.choices) == 2 * len(tiled)
    assert set(calibration.choices.values()) <= {"compact", "dense"}
    assert all(v > 0 for v in calibration.compact_ms.values())


def test_fast_backend_conv_matches_eager_conv():
    x, w, b = torch.rand(1, 5, 4, 9, 7), torch.rand(6, 5, 3, 3, 3), torch.rand(6)
    expected = F.conv3d(x, w, b, stride=(1, 2, 2), padding=1)
    assert torch.allclose(conv3d(x, w, b, stride=(1, 2, 2), padding=1), expected, atol=1e-5)
    dense = make_dense("tiny-test")
    clips = torch.rand(1, 3, 8, 32, 32)
    with torch.no_grad():
        eager = dense(clips)
        with fast_conv_backend():
            fast = dense(clips)
    assert torch.allclose(fast, eager, atol=1e-5)


def _frame_sensitive_tiny_test():
    """A ``tiny-test`` whose hand-set controller skips static frames, and three clips that are static from frame
    2, 5 and 8 on (so the clips get different decisions)."""
    config = DynamicConfig(channel_multiple=4)
    model = frame_sensitive(convert_model(make_dense("tiny-test"), clip_shape=(8, 32, 32), config=config).eval())
    clips = torch.stack([partly_static_clip(s, f) for s, f in ((1, 2), (2, 5), (3, 8))])
    return model, clips


def _assert_same_decisions(got: list[BlockDecision], expected: list[BlockDecision]) -> None:
    for want, have in zip(expected, got, strict=True):
        for axis in ("frames", "channels", "tiles"):
            assert torch.equal(getattr(have, axis), getattr(want, axis)), axis


def test_compact_mode_makes_the_controllers_decisions_on_the_host_exactly_as_simulate():
    model, clips = _frame_sensitive_tiny_test()
    with torch.no_grad():
        for head in model.controller.channel_heads:
            head.bias.copy_(torch.linspace(-1, 1, head.bias.numel()))
    apply_knobs(model, {k.name: 0.5 for k in knob_space(model)})  # run-time offsets take part
    with torch.no_grad():
        set_execution_mode(model, "simulate")
        expected = model(clips)
        expected_decisions, expected_macs = model.last_decisions, model.last_macs.clone()
        set_execution_mode(model, "compact")
        got = model(clips)
    _assert_same_decisions(model.last_decisions, expected_decisions)
    assert any(d.kept_frames.unique().numel() > 1 for d in expected_decisions)  # clips differ
    assert torch.allclose(got, expected, rtol=0, atol=1e-5 * expected.abs().max())
    assert torch.allclose(model.last_macs, expected_macs)


@pytest.mark.slow
def test_compiled_controller_decides_exactly_as_the_eager_one():
    model, clips = _frame_sensitive_tiny_test()
    set_execution_mode(model, "compact")
    with torch.no_grad():
        expected = model(clips)
        eager = model.last_decisions
        model.compile_controller()
        got = model(clips)
    _assert_same_decisions(model.last_decisions, eager)
    assert any(d.kept_frames.unique().numel() > 1 for d in eager)
    assert torch.allclose(got, expected, rtol=0, atol=1e-5 * expected.abs().max())


def test_fully_kept_blocks_run_as_they_are_without_compact_bookkeeping():
    dense = make_dense("tiny-test").eval()
    model = convert_model(copy.deepcopy(dense), clip_shape=(8, 32, 32), config=DynamicConfig(channel_multiple=4))
    set_execution_mode(model.eval(), "compact")
    clips = torch.rand(2, 3, 8, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = dense(clips)
        got = model(clips, decisions=model.full_decisions(2))
        assert torch.allclose(got, expected, rtol=0, atol=1e-6)
        assert torch.equal(model.last_mac_fraction, torch.ones(2))
        assert all(not g.compact_runtime.plans for g in model.gated)
        mixed = model.full_decisions(2)
        mixed[0] = partial_decisions(model, 2, 0)[0]
        model(clips, decisions=mixed)
    assert model.gated[0].compact_runtime.plans and not any(g.compact_runtime.plans for g in model.gated[1:])
    assert float(model.last_mac_fraction.max()) < 1.0
