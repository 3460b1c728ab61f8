"""Measurement conditions: what sets the clocks and power, and how the sensors average.

The same model draws different energy in another power mode, at other clocks or under another
CPU governor, and an INA3221 averaging over more samples smooths what the meters see. These
fields go into ``show-env`` and onto every sweep row so that two numbers can be compared only
when their conditions match. A field is None where this machine does not have it (no Jetson, no
NVIDIA driver) or this user may not read it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from profiling.meters.nvml import import_pynvml
from profiling.meters.sysfs import under_root

_GPU_DEVFREQ = re.compile(r".*(gpu|g[a-z]\d+b)$")  # 17000000.ga10b (Orin), 17000000.gv11b, 57000000.gpu (Nano)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def _one_or_mixed(values: list[str]) -> str | None:
    distinct = sorted(set(values))
    if not distinct:
        return None
    return distinct[0] if len(distinct) == 1 else "mixed: " + ",".join(distinct)


def cpu_conditions(root: str | Path = "/") -> dict[str, Any]:
    """CPU frequency governor(s) and whether every core's frequency is pinned (min == max)."""
    policies = sorted(under_root(root, "/sys/devices/system/cpu/cpufreq").glob("policy*"))
    governors = [g for p in policies if (g := _read(p / "scaling_governor"))]
    pinned = [_read(p / "scaling_min_freq") == _read(p / "scaling_max_freq") for p in policies]
    return {
        "cpu_governor": _one_or_mixed(governors),
        "cpu_freq_pinned": all(pinned) if pinned else None,
    }


def l4t_release(root: str | Path = "/") -> str | None:
    """``R35.4.1`` from ``/etc/nv_tegra_release`` (``# R35 (release), REVISION: 4.1, ...``)."""
    text = _read(under_root(root, "/etc/nv_tegra_release")) or ""
    match = re.search(r"R(\d+) \(release\), REVISION: ([\d.]+)", text)
    return f"R{match.group(1)}.{match.group(2)}" if match else None


def nvpmodel_mode(root: str | Path = "/") -> str | None:
    """The Jetson power mode, ``<id>`` or ``<id> (<name>)``: status from ``/var/lib/nvpmodel/status``
    (``pmode:0002 ...``), name from ``/etc/nvpmodel.conf`` (``< POWER_MODEL ID=2 NAME=15W >``)."""
    status = _read(under_root(root, "/var/lib/nvpmodel/status")) or ""
    match = re.search(r"pmode:(\d+)", status)
    if match is None:
        return None
    mode = int(match.group(1))
    conf = _read(under_root(root, "/etc/nvpmodel.conf")) or ""
    names = dict(re.findall(r"<\s*POWER_MODEL\s+ID=(\d+)\s+NAME=(\S+?)\s*>", conf))
    return f"{mode} ({names[str(mode)]})" if str(mode) in names else str(mode)


def jetson_gpu_conditions(root: str | Path = "/") -> dict[str, Any]:
    """Integrated GPU clock (devfreq) and whether it is pinned, as ``jetson_clocks`` leaves it."""
    devices = [d for d in sorted(under_root(root, "/sys/class/devfreq").glob("*")) if _GPU_DEVFREQ.match(d.name)]
    if not devices:
        return {"jetson_gpu_freq_mhz": None, "jetson_gpu_freq_pinned": None}
    device = devices[0]
    cur, low, high = (_read(device / f) for f in ("cur_freq", "min_freq", "max_freq"))
    return {
        "jetson_gpu_freq_mhz": int(cur) / 1e6 if cur and cur.isdigit() else None,
        "jetson_gpu_freq_pinned": low == high if low and high else None,
    }


def ina3221_conditions(root: str | Path = "/") -> dict[str, Any]:
    """Averaging settings of the INA3221 hwmon chips: ``update_interval`` (ms) and ``samples``."""
    intervals, samples = [], []
    for hwmon in sorted(under_root(root, "/sys/class/hwmon").glob("hwmon*")):
        if _read(hwmon / "name") != "ina3221":
            continue
        intervals += [v for v in [_read(hwmon / "update_interval")] if v]
        samples += [v for v in [_read(hwmon / "samples")] if v]
    return {"ina3221_update_interval_ms": _one_or_mixed(intervals), "ina3221_samples": _one_or_mixed(samples)}


def nvml_conditions(index: int) -> dict[str, Any]:
    """Driver version, current SM/memory clocks and the enforced power limit of NVIDIA GPU ``index``."""
    fields: dict[str, Any] = dict.fromkeys(
        ("nvidia_driver", "gpu_sm_clock_mhz", "gpu_mem_clock_mhz", "gpu_power_limit_w", "nvml_note")
    )
    try:
        nvml = import_pynvml()
        nvml.nvmlInit()
    except Exception as exc:  # noqa: BLE001 - any NVML failure only means "not known here"
        fields["nvml_note"] = f"NVML unavailable: {exc}"
        return fields
    try:
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        queries = {
            "nvidia_driver": lambda: nvml.nvmlSystemGetDriverVersion(),
            "gpu_sm_clock_mhz": lambda: nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_SM),
            "gpu_mem_clock_mhz": lambda: nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_MEM),
            "gpu_power_limit_w": lambda: nvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1e3,
        }
        for name, query in queries.items():
            try:
                value = query()
            except nvml.NVMLError:
                continue
            fields[name] = value.decode() if isinstance(value, bytes) else value
    except nvml.NVMLError as exc:
        fields["nvml_note"] = f"NVML device {index}: {exc}"
    finally:
        nvml.nvmlShutdown()
    return fields


def collect_conditions(device: str = "cpu", *, root: str | Path = "/") -> dict[str, Any]:
    """Every condition field for a measurement on ``device`` (flat, JSON-ready; units in the names)."""
    conditions: dict[str, Any] = {
        "l4t_release": l4t_release(root),
        "nvpmodel_mode": nvpmodel_mode(root),
        **cpu_conditions(root),
        **jetson_gpu_conditions(root),
        **ina3221_conditions(root),
    }
    # jetson_clocks pins the CPU and GPU (and memory) clocks at their maximum: min == max
    if conditions["jetson_gpu_freq_pinned"] is not None:
        pinned = conditions["jetson_gpu_freq_pinned"] and conditions["cpu_freq_pinned"]
        conditions["jetson_clocks"] = "on" if pinned else "off"
    else:
        conditions["jetson_clocks"] = None
    kind, _, index = device.partition(":")
    if kind == "cuda" and conditions["l4t_release"] is None:  # NVML answers nothing useful on Jetson
        conditions.update(nvml_conditions(int(index or 0)))
    return conditions
