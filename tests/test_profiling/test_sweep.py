"""Sweeps: tidy table, resume after an interruption without redoing rows, meter failures marked."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import torch
from profiling_fakes import ScriptedMeter
from torch import nn

from profiling import EstimatedEnergyModel, run_sweep
from profiling.meters import MeterError
from profiling.sweep import journal_path, load_finished


class TinyNet(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(3, width, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def make_inputs(batch_size: int) -> torch.Tensor:
    return torch.randn(batch_size, 3, 2, 4, 4, generator=torch.Generator().manual_seed(batch_size))


FAST = {"warmup": 0, "latency_repeats": 2, "min_window_s": 0.0, "min_window_iterations": 2, "progress": False}
VARIANTS = ("a", "b")
MODES = ("m1", "m2")
BATCHES = (1, 2)


def macs(width: int, batch_size: int) -> int:
    return batch_size * width * 2 * 4 * 4 * 3


class Recorder:
    """Factories and a prepare hook that record their calls; prepare can fail once, on demand."""

    def __init__(self, fail_on: tuple[str, str] | None = None) -> None:
        self.built: list[str] = []
        self.prepared: list[tuple[str, str]] = []
        self.fail_on = fail_on

    def variants(self) -> dict[str, Callable[[], nn.Module]]:
        return {name: self._factory(name, width) for name, width in zip(VARIANTS, (4, 8), strict=True)}

    def _factory(self, name: str, width: int) -> Callable[[], nn.Module]:
        def build() -> nn.Module:
            self.built.append(name)
            model = TinyNet(width)
            model.variant = name
            return model

        return build

    def prepare(self, model: nn.Module, mode: str) -> nn.Module:
        if (model.variant, mode) == self.fail_on:
            raise KeyboardInterrupt("interrupted")
        self.prepared.append((model.variant, mode))
        return model.eval()


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_interrupted_sweep_resumes_without_redoing_rows(tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"sweep{suffix}"
    first = Recorder(fail_on=("b", "m1"))
    meter = ScriptedMeter([2.0] * 4)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(
            first.variants(),
            make_inputs,
            out,
            modes=MODES,
            batch_sizes=BATCHES,
            prepare=first.prepare,
            meter=meter,
            **FAST,
        )
    partial = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
    assert len(partial) == 4 and set(partial["variant"]) == {"a"}
    assert len(journal_path(out).read_text().splitlines()) == 4

    second = Recorder()
    table = run_sweep(
        second.variants(),
        make_inputs,
        out,
        modes=MODES,
        batch_sizes=BATCHES,
        prepare=second.prepare,
        meter=ScriptedMeter([2.0] * 4),
        **FAST,
    )
    assert second.built == ["b"]  # variant "a" was finished: not even rebuilt
    assert second.prepared == [("b", "m1"), ("b", "m2")]
    assert len(table) == 8
    assert not table.duplicated(["variant", "mode", "batch_size", "repeat"]).any()
    first_rows = partial.set_index(["variant", "mode", "batch_size"])["measured_at"]
    kept = table.set_index(["variant", "mode", "batch_size"]).loc[first_rows.index, "measured_at"]
    assert list(kept) == list(first_rows)  # finished rows untouched
    assert not journal_path(out).exists()
    row = table.set_index(["variant", "mode", "batch_size"]).loc[("b", "m2", 2)]
    assert row["macs"] == macs(8, 2) and row["macs_per_clip"] == macs(8, 1)
    assert row["energy_j"] == pytest.approx(1.0) and row["energy_per_clip_j"] == pytest.approx(0.5)
    assert row["energy_source"] == "measured" and row["meter"] == "scripted" and row["device"] == "cpu"
    assert row["latency_per_clip_ms"] == pytest.approx(row["latency_ms"] / 2)

    third = Recorder()
    again = run_sweep(
        third.variants(), make_inputs, out, modes=MODES, batch_sizes=BATCHES, prepare=third.prepare, **FAST
    )
    assert third.built == [] and len(again) == 8


def test_meter_failing_mid_sweep_marks_rows_and_the_sweep_finishes(tmp_path: Path) -> None:
    out = tmp_path / "sweep.csv"
    meter = ScriptedMeter([4.0, MeterError("INA3221 read failed"), 4.0, 4.0])
    table = run_sweep(Recorder().variants(), make_inputs, out, batch_sizes=BATCHES, meter=meter, **FAST)
    assert len(table) == 4
    failed = table[table["energy_status"] != "ok"]
    assert list(failed["energy_status"]) == ["failed: INA3221 read failed"]
    assert math.isnan(failed["energy_j"].iloc[0])
    assert (table[table["energy_status"] == "ok"]["energy_j"] == 2.0).all()
    assert not meter.closed  # a meter passed in belongs to the caller


def test_columns_units_and_estimates(tmp_path: Path) -> None:
    out = tmp_path / "sweep.csv"
    model = EstimatedEnergyModel(joules_per_mac=1e-9, joules_per_byte=0.0)
    table = run_sweep({"a": lambda: TinyNet(4)}, make_inputs, out, repeats=2, meter=None, energy_model=model, **FAST)
    assert list(table["repeat"]) == [0, 1]
    assert (table["energy_source"] == "estimated").all()
    assert table["energy_j"].iloc[0] == pytest.approx(macs(4, 1) * 1e-9)
    for column in ("latency_ms", "latency_p90_ms", "energy_j", "power_w", "macs", "bytes_read", "window_s"):
        assert column in table.columns
    assert pd.read_csv(out).shape == table.shape


def test_no_energy_requested_and_timed_windows_for_rail_logs(tmp_path: Path) -> None:
    plain = run_sweep({"a": lambda: TinyNet(4)}, make_inputs, tmp_path / "p.csv", meter=None, **FAST)
    assert plain["energy_status"].iloc[0] == "not requested"
    settings = dict(FAST, min_window_s=None)  # the default window: long enough for a 50 ms rail log
    out = tmp_path / "t.csv"
    timed = run_sweep({"a": lambda: TinyNet(4)}, make_inputs, out, meter=None, timed_window=True, **settings)
    row = timed.iloc[0]
    assert row["energy_status"] == "unavailable: no meter requested"
    assert row["window_end_epoch_s"] - row["window_start_epoch_s"] >= 1.0 and row["window_iterations"] > 2


def test_torn_journal_line_is_redone(tmp_path: Path) -> None:
    out = tmp_path / "sweep.csv"
    good = {"variant": "a", "mode": "default", "batch_size": 1, "repeat": 0, "latency_ms": 1.0}
    journal_path(out).write_text(json.dumps(good) + "\n" + '{"variant": "a", "mo')
    assert list(load_finished(out)) == [("a", "default", 1, 0)]


def test_progress_bar_and_bad_output_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = dict(FAST, progress=True)
    run_sweep({"a": lambda: TinyNet(4)}, make_inputs, tmp_path / "s.csv", meter=None, **settings)
    assert "sweep on cpu" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"\.csv or \.parquet"):
        run_sweep({"a": lambda: TinyNet(4)}, make_inputs, tmp_path / "s.xlsx", meter=None)


def test_idle_baseline_gives_dynamic_energy_per_row(tmp_path: Path) -> None:
    meter = ScriptedMeter([0.2, 0.4, 3.0], duration_s=2.0)  # idle cold 0.1 W, warm 0.2 W; then one row
    table = run_sweep({"a": lambda: TinyNet(4)}, make_inputs, tmp_path / "s.csv", meter=meter, idle_s=0.01, **FAST)
    row = table.iloc[0]
    assert row["idle_power_w"] == pytest.approx(0.2)  # re-measured after the variant's warm-up
    assert row["idle_drift_w"] == pytest.approx(0.1)
    assert row["dynamic_energy_j"] == pytest.approx((3.0 - 0.2 * 2.0) / 2)
    assert row["energy_j"] == pytest.approx(1.5)


def test_idle_is_re_measured_for_each_variant(tmp_path: Path) -> None:
    meter = ScriptedMeter([0.2, 0.4, 3.0, 0.6, 3.0], duration_s=2.0)  # cold, a's idle, a, b's idle, b
    table = run_sweep(
        {"a": lambda: TinyNet(4), "b": lambda: TinyNet(8)}, make_inputs, tmp_path / "s.csv", meter=meter, idle_s=0.01,
        **FAST,
    )  # fmt: skip
    assert list(table["idle_power_w"]) == [pytest.approx(0.2), pytest.approx(0.3)]
    assert list(table["idle_drift_w"]) == [pytest.approx(0.1), pytest.approx(0.2)]
    assert meter.windows == 5
