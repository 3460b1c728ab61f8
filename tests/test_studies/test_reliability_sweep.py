"""``dance3d sweep --modes``: each row runs in its own execution mode, the same as ``profile --execution``."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from dance3d.cli.main import main

FAST = ["--repeats", "1", "--no-energy", "--threads", "1"]


def _profile(capsys, checkpoint: str, mode: str) -> dict:
    assert (
        main(["profile", "--checkpoint", checkpoint, "--execution", mode, "--limit", "1", *FAST, "--format", "json"])
        == 0
    )
    return json.loads(capsys.readouterr().out)


def test_sweep_rows_run_in_their_mode(dynamic_checkpoint, tmp_path, capsys):
    out = tmp_path / "sweep.csv"
    assert (
        main(["sweep", "--checkpoint", dynamic_checkpoint, "--modes", "simulate,compact", "--out", str(out), *FAST])
        == 0
    )
    capsys.readouterr()
    rows = pd.read_csv(out).set_index("mode")
    for mode in ("simulate", "compact"):
        profiled = _profile(capsys, dynamic_checkpoint, mode)
        assert profiled["execution"] == mode
        for column in ("macs", "bytes_read", "bytes_written"):
            assert rows.loc[mode, column] == profiled[column], (mode, column)
    assert rows.loc["simulate", "bytes_read"] != rows.loc["compact", "bytes_read"]


@pytest.mark.parametrize(
    ("which", "modes", "message"),
    [
        ("dynamic", "simulate,bogus", "--modes takes default, simulate, compact; got 'simulate,bogus'"),
        ("dense", "compact", "runs in --modes default only"),
    ],
)
def test_sweep_refuses_modes_it_cannot_apply(
    which, modes, message, dynamic_checkpoint, dense_checkpoint, tmp_path, capsys
):
    checkpoint = dynamic_checkpoint if which == "dynamic" else dense_checkpoint
    assert main(["sweep", "--checkpoint", checkpoint, "--modes", modes, "--out", str(tmp_path / "s.csv")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "s.csv").exists()
