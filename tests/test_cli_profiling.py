"""show-env, profile and sweep from the command line."""

import json

import pandas as pd
import pytest


def test_show_env_explains_every_meter(run_cli):
    code, out, _ = run_cli("show-env", "--format", "json")
    assert code == 0
    env = json.loads(out)
    assert env["torch_threads"] >= 1
    meters = {m["meter"]: m for m in env["meters"]}
    assert {"rapl", "nvml-energy", "jetson-ina3221", "jtop"} <= set(meters)
    for meter in meters.values():  # never a silent "unavailable"
        assert meter["available"] or meter["reason"]


def test_show_env_text_lists_the_measurement_conditions(run_cli):
    code, out, _ = run_cli("show-env")
    assert code == 0
    conditions = out[out.index("conditions:") :].splitlines()
    assert {"  nvpmodel_mode", "  jetson_clocks", "  cpu_governor", "  ina3221_samples"} <= {
        line.partition(":")[0] for line in conditions
    }


def test_profile_zoo_model_by_clip_shape(run_cli):
    code, out, _ = run_cli("profile", "--model", "tiny-test", "--clip-shape", "3x8x32x32",
                           "--repeats", "2", "--no-energy", "--format", "json")  # fmt: skip
    assert code == 0
    report = json.loads(out)
    for key in ("macs", "params", "bytes_read", "bytes_written", "latency_ms", "latency_p90_ms"):
        assert report[key] > 0, key
    assert report["energy_status"] == "not requested" and report["energy_j"] is None


def test_profile_checkpoint_on_data_gives_per_clip_macs(run_cli, trained_tiny):
    code, out, _ = run_cli("profile", "--checkpoint", trained_tiny, "--data", "moving-digits",
                           "--limit", "3", "--repeats", "2", "--no-energy", "--format", "json")  # fmt: skip
    assert code == 0
    report = json.loads(out)
    assert report["per_clip_macs"]["clips"] == 3
    assert report["per_clip_macs"]["mean"] == report["macs"]  # a dense model costs the same on every clip


def test_sweep_writes_tidy_table_and_resumes(run_cli, tmp_path, trained_tiny):
    out_path = tmp_path / "sweep.csv"
    args = ("sweep", "--checkpoint", trained_tiny, "--batch-sizes", "1,2", "--repeats", "2",
            "--no-energy", "--out", str(out_path))  # fmt: skip
    assert run_cli(*args)[0] == 0
    first = pd.read_csv(out_path)
    assert sorted(first["batch_size"]) == [1, 2]
    assert (first["macs"] == first["macs_per_clip"] * first["batch_size"]).all()
    assert run_cli(*args)[0] == 0  # nothing left to do: rows are kept, not re-measured
    pd.testing.assert_frame_equal(pd.read_csv(out_path), first)


def test_bad_clip_shape_is_one_clear_line(run_cli):
    code, _, err = run_cli("profile", "--model", "tiny-test", "--clip-shape", "16x112")
    assert code == 2 and "--clip-shape must look like CxTxHxW" in err


def _rail_log(path, *, start=1000.0, seconds=10.0, mw=4000.0):
    rows = [f"{start + 0.05 * i:.2f},{mw},{mw / 4}" for i in range(int(seconds / 0.05) + 1)]
    path.write_text("epoch_s,VDD_IN_mW,VDD_SOC_mW\n" + "\n".join(rows) + "\n")
    return str(path)


def test_rail_energy_pairs_a_sweep_table_with_a_rail_log(run_cli, tmp_path):
    log = _rail_log(tmp_path / "rails.csv")
    sweep = tmp_path / "sweep.csv"
    pd.DataFrame(
        {"variant": ["a", "b"], "batch_size": [1, 4], "window_iterations": [100, 50],
         "window_start_epoch_s": [1001.0, 1004.0], "window_end_epoch_s": [1003.0, 1005.5]}
    ).to_csv(sweep, index=False)  # fmt: skip
    code, out, _ = run_cli("rail-energy", "--log", log, "--sweep", str(sweep), "--out", str(tmp_path / "j.csv"))
    assert code == 0 and "2 rows" in out
    joined = pd.read_csv(tmp_path / "j.csv")
    assert list(joined["rail_window_energy_j"]) == [pytest.approx(8.0), pytest.approx(6.0)]  # 4 W x 2 s, x 1.5 s
    assert list(joined["rail_energy_per_clip_j"]) == [pytest.approx(0.08), pytest.approx(0.03)]
    code, out, _ = run_cli("rail-energy", "--log", log, "--start", "1001", "--end", "1003", "--calls", "4",
                           "--rails", "VDD_SOC", "--format", "json")  # fmt: skip
    assert code == 0 and json.loads(out)["energy_per_call_j"] == pytest.approx(0.5)


def test_rail_energy_bad_input_is_one_line(run_cli, tmp_path):
    log = _rail_log(tmp_path / "rails.csv")
    code, _, err = run_cli("rail-energy", "--log", log, "--start", "1001.00", "--end", "1001.03")
    assert code == 2 and "fewer than 10" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli("rail-energy", "--log", log, "--start", "999", "--end", "1003")
    assert code == 2 and "not covered" in err
    code, _, err = run_cli("rail-energy", "--log", str(tmp_path / "missing.csv"), "--start", "1", "--end", "2")
    assert code == 2 and "cannot read the rail log" in err
    code, _, err = run_cli("rail-energy", "--log", log, "--start", "1001", "--end", "1003", "--rails", "GPU")
    assert code == 2 and "rails ['GPU'] not in the log" in err
