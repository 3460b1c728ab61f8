"""The standalone Python 3.6 rail logger (run as a subprocess) and the CSV loader."""

from __future__ import annotations

import ast
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from profiling_fakes import make_hwmon, make_iio

import profiling.rail_logger
from profiling import load_rail_log

LOGGER = Path(profiling.rail_logger.__file__)


def run_logger(*args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(LOGGER), *args], capture_output=True, timeout=timeout, text=True)


def vermin_36(path: Path) -> subprocess.CompletedProcess:
    """vermin's verdict on whether ``path`` runs on Python 3.6 and later (exit status 0 if it does)."""
    script = "import sys; from vermin import main; sys.exit(main())"  # vermin has no __main__ module
    command = [sys.executable, "-c", script, "-t=3.6-", "--no-tips", "--violations", str(path)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_logger_source_runs_on_python36_and_is_stdlib_only(tmp_path: Path) -> None:
    verdict = vermin_36(LOGGER)
    assert verdict.returncode == 0, verdict.stdout + verdict.stderr
    broken = tmp_path / "rail_logger.py"  # the checker itself catches a 3.10 feature
    broken.write_text(
        LOGGER.read_text().replace("return _unique(rails)", "return list(zip(rails, rails, strict=True))")
    )
    assert vermin_36(broken).returncode != 0
    for node in ast.walk(ast.parse(LOGGER.read_text())):
        modules = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        modules += [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
        assert all(m.split(".")[0] in sys.stdlib_module_names for m in modules), modules


def test_logger_subprocess_on_hwmon_integrates_to_the_expected_energy(tmp_path: Path) -> None:
    make_hwmon(tmp_path, 0, {"VDD_IN": (5000, 1000), "VDD_SOC": (5000, 200)})
    out = tmp_path / "rails.csv"
    started = time.time()
    done = run_logger("--out", str(out), "--interval-ms", "20", "--duration-s", "0.3", "--root", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "VDD_IN, VDD_SOC" in done.stderr
    log = load_rail_log(out)
    assert log.rails == ["VDD_IN", "VDD_SOC"]
    assert len(log.epoch_s) >= 5
    assert started - 1 <= log.epoch_s[0] <= log.epoch_s[-1] <= time.time()  # wall-clock epoch seconds
    start, end = log.epoch_s[0], log.epoch_s[-1]
    assert log.energy_j(start, end) == pytest.approx(5.0 * (end - start))  # VDD_IN is the total
    assert log.energy_j(start, end, rails=["VDD_SOC"]) == pytest.approx(1.0 * (end - start))


def test_logger_iio_layout_and_sigterm(tmp_path: Path) -> None:
    make_iio(tmp_path, {"POM_5V_IN": 3000, "POM_5V_GPU": 700, "POM_5V_CPU": 600})
    out = tmp_path / "rails.csv"
    proc = subprocess.Popen(
        [sys.executable, str(LOGGER), "--out", str(out), "--interval-ms", "10", "--root", str(tmp_path)],
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 10
    while (not out.exists() or len(out.read_text().splitlines()) < 4) and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    proc.stderr.close()
    log = load_rail_log(out)
    assert log.rails == ["POM_5V_IN", "POM_5V_GPU", "POM_5V_CPU"]
    assert set(log.rails_mw["POM_5V_GPU"]) == {700.0}
    assert log.power_w()[0] == pytest.approx(3.0)


def test_logger_without_rails_exits_with_an_explanation(tmp_path: Path) -> None:
    done = run_logger("--out", str(tmp_path / "x.csv"), "--root", str(tmp_path))
    assert done.returncode == 2
    assert "no INA3221 rails" in done.stderr


def test_logger_refuses_to_append_to_a_different_board_log(tmp_path: Path) -> None:
    make_hwmon(tmp_path, 0, {"VDD_IN": (5000, 1000)})
    out = tmp_path / "rails.csv"
    out.write_text("epoch_s,POM_5V_IN_mW\n1.0,2.0\n")
    done = run_logger("--out", str(out), "--duration-s", "0", "--root", str(tmp_path))
    assert done.returncode == 2 and "use a new file" in done.stderr


def write_log(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_alignment_interpolates_at_the_run_edges(tmp_path: Path) -> None:
    times = [100.0 + 0.25 * i for i in range(13)]  # 100.0 .. 103.0
    rows = [f"{t},{1000 + 1000 * (t - 100):.1f},10" for t in times]  # VDD_IN ramps 1 W -> 4 W
    log = load_rail_log(write_log(tmp_path / "r.csv", "epoch_s,VDD_IN_mW,VDD_SOC_mW", rows))
    # integral of 1 + (t - 100) W over [100.1, 102.6]: 2.5 + (2.6^2 - 0.1^2) / 2 (exact for a ramp)
    assert log.energy_j(100.1, 102.6) == pytest.approx(5.875)
    with pytest.raises(ValueError, match="not covered"):
        log.energy_j(99.0, 102.0)
    with pytest.raises(KeyError, match="GPU"):
        log.energy_j(100.0, 103.0, rails=["GPU"])


def test_a_window_shorter_than_ten_samples_is_refused(tmp_path: Path) -> None:
    rows = [f"{100 + 0.05 * i:.2f},5000" for i in range(100)]  # the logger's default 50 ms
    log = load_rail_log(write_log(tmp_path / "r.csv", "epoch_s,VDD_IN_mW", rows))
    with pytest.raises(ValueError, match="holds 0 rail-log samples, fewer than 10"):
        log.energy_j(101.01, 101.04)  # a 30 ms run: ~3 calls of a 10 ms model
    assert log.energy_j(101.0, 102.0) == pytest.approx(5.0)


def test_loader_sums_rails_without_an_input_rail_and_drops_a_torn_line(tmp_path: Path) -> None:
    path = write_log(tmp_path / "agx.csv", "epoch_s,VDD_GPU_SOC_mW,VDD_CPU_CV_mW", ["1.0,2000,1000", "3.0,2000,1000"])
    with open(path, "a") as handle:
        handle.write("3.5,20")  # the logger was killed mid-line
    log = load_rail_log(path)
    assert log.epoch_s == [1.0, 3.0]
    assert log.power_w() == [pytest.approx(3.0), pytest.approx(3.0)]


def test_loader_rejects_foreign_or_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a rail_logger CSV"):
        load_rail_log(write_log(tmp_path / "a.csv", "time,power", ["1,2"]))
    with pytest.raises(ValueError, match="malformed row"):
        load_rail_log(write_log(tmp_path / "b.csv", "epoch_s,VDD_IN_mW", ["1,2", "x,3", "2,2"]))
    with pytest.raises(ValueError, match="backwards"):
        load_rail_log(write_log(tmp_path / "c.csv", "epoch_s,VDD_IN_mW", ["2,2", "1,2"]))
