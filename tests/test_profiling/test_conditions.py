"""Measurement conditions from a fake Jetson tree, a patched NVML, and on sweep rows."""

from __future__ import annotations

from pathlib import Path

import pytest
from profiling_fakes import make_hwmon, make_jetson_conditions

from profiling.conditions import collect_conditions, nvml_conditions


def test_jetson_power_mode_release_clocks_and_sensor_averaging(tmp_path: Path) -> None:
    make_jetson_conditions(tmp_path, pinned=False)
    make_hwmon(tmp_path, 0, {"VDD_IN": (5000, 1000)})
    conditions = collect_conditions("cuda:0", root=tmp_path)
    assert conditions == {
        "l4t_release": "R35.4.1",
        "nvpmodel_mode": "0 (15W)",
        "cpu_governor": "schedutil",
        "cpu_freq_pinned": False,
        "jetson_gpu_freq_mhz": pytest.approx(624.75),
        "jetson_gpu_freq_pinned": False,
        "ina3221_update_interval_ms": "6",
        "ina3221_samples": "1",
        "jetson_clocks": "off",
    }  # no NVML fields: on a Jetson NVML answers nothing useful


def test_jetson_clocks_on_when_cpu_and_gpu_are_pinned(tmp_path: Path) -> None:
    make_jetson_conditions(tmp_path, pinned=True)
    assert collect_conditions(root=tmp_path)["jetson_clocks"] == "on"


def test_a_plain_machine_has_no_jetson_fields(tmp_path: Path) -> None:
    conditions = collect_conditions(root=tmp_path)
    assert conditions["nvpmodel_mode"] is None and conditions["jetson_clocks"] is None
    assert conditions["cpu_governor"] is None and conditions["ina3221_samples"] is None


def test_nvml_driver_clocks_and_power_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    pynvml = pytest.importorskip("pynvml")
    clocks = {pynvml.NVML_CLOCK_SM: 1980, pynvml.NVML_CLOCK_MEM: 2619}
    monkeypatch.setattr(pynvml, "nvmlInit", lambda: None)
    monkeypatch.setattr(pynvml, "nvmlShutdown", lambda: None)
    monkeypatch.setattr(pynvml, "nvmlDeviceGetHandleByIndex", lambda index: ("gpu", index))
    monkeypatch.setattr(pynvml, "nvmlSystemGetDriverVersion", lambda: "550.54.15")
    monkeypatch.setattr(pynvml, "nvmlDeviceGetClockInfo", lambda handle, kind: clocks[kind])
    monkeypatch.setattr(pynvml, "nvmlDeviceGetEnforcedPowerLimit", lambda handle: 700_000)
    assert nvml_conditions(0) == {
        "nvidia_driver": "550.54.15",
        "gpu_sm_clock_mhz": 1980,
        "gpu_mem_clock_mhz": 2619,
        "gpu_power_limit_w": 700.0,
        "nvml_note": None,
    }


def test_nvml_missing_is_noted_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "pynvml", None)
    conditions = nvml_conditions(0)
    assert conditions["nvidia_driver"] is None and "pip install nvidia-ml-py" in conditions["nvml_note"]


def test_every_sweep_row_carries_the_conditions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch
    from torch import nn

    import profiling.sweep
    from profiling import run_sweep

    make_jetson_conditions(tmp_path, pinned=True)
    monkeypatch.setattr(profiling.sweep, "collect_conditions", lambda device: collect_conditions(device, root=tmp_path))
    table = run_sweep(
        {"a": lambda: nn.Conv3d(3, 4, 1), "b": lambda: nn.Conv3d(3, 8, 1)},
        lambda batch_size: torch.randn(batch_size, 3, 2, 4, 4),
        tmp_path / "sweep.csv",
        meter=None,
        warmup=0,
        latency_repeats=2,
        progress=False,
    )
    assert len(table) == 2
    assert list(table["nvpmodel_mode"]) == ["0 (15W)"] * 2 and list(table["jetson_clocks"]) == ["on"] * 2
    assert list(table["l4t_release"]) == ["R35.4.1"] * 2
