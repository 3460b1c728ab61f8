"""show-env, profile and sweep from the command line."""

import json

import pandas as pd

from dance3d.cli.main import main


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_show_env_explains_every_meter(capsys):
    code, out, _ = run_cli(capsys, "show-env", "--format", "json")
    assert code == 0
    env = json.loads(out)
    assert env["torch_threads"] >= 1
    meters = {m["meter"]: m for m in env["meters"]}
    assert {"rapl", "nvml-energy", "jetson-ina3221", "jtop"} <= set(meters)
    for meter in meters.values():  # never a silent "unavailable"
        assert meter["available"] or meter["reason"]


def test_profile_zoo_model_by_clip_shape(capsys):
    code, out, _ = run_cli(capsys, "profile", "--model", "tiny-test", "--clip-shape", "3x8x32x32",
                           "--repeats", "2", "--no-energy", "--format", "json")  # fmt: skip
    assert code == 0
    report = json.loads(out)
    for key in ("macs", "params", "bytes_read", "bytes_written", "latency_ms", "latency_p90_ms"):
        assert report[key] > 0, key
    assert report["energy_status"] == "not requested" and report["energy_j"] is None


def test_profile_checkpoint_on_data_gives_per_clip_macs(capsys, trained_tiny):
    code, out, _ = run_cli(capsys, "profile", "--checkpoint", trained_tiny, "--data", "moving-digits",
                           "--limit", "3", "--repeats", "2", "--no-energy", "--format", "json")  # fmt: skip
    assert code == 0
    report = json.loads(out)
    assert report["per_clip_macs"]["clips"] == 3
    assert report["per_clip_macs"]["mean"] == report["macs"]  # a dense model costs the same on every clip


def test_sweep_writes_tidy_table_and_resumes(capsys, tmp_path, trained_tiny):
    out_path = tmp_path / "sweep.csv"
    args = ("sweep", "--checkpoint", trained_tiny, "--batch-sizes", "1,2", "--repeats", "2",
            "--no-energy", "--out", str(out_path))  # fmt: skip
    assert run_cli(capsys, *args)[0] == 0
    first = pd.read_csv(out_path)
    assert sorted(first["batch_size"]) == [1, 2]
    assert (first["macs"] == first["macs_per_clip"] * first["batch_size"]).all()
    assert run_cli(capsys, *args)[0] == 0  # nothing left to do: rows are kept, not re-measured
    pd.testing.assert_frame_equal(pd.read_csv(out_path), first)


def test_bad_clip_shape_is_one_clear_line(capsys):
    code, _, err = run_cli(capsys, "profile", "--model", "tiny-test", "--clip-shape", "16x112")
    assert code == 2 and "--clip-shape must look like CxTxHxW" in err
