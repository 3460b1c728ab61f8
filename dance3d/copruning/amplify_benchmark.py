"""Does an amplifying first stage help co-pruning? Three arms of the coupled co-pruning of one dense
forecaster, compared sample by sample on the test split.

- ``plain``: co-pruning alone (the ``dyna_forecast`` benchmark's coupled model).
- ``extra``: ``amplify_epochs`` epochs of plain MSE fine-tuning first (``amplify_weight`` 0): the same
  extra training without the amplifying term.
- ``amplified``: ``amplify_epochs`` epochs of the amplifying loss first (:mod:`dance3d.copruning.amplify`).

``amplified`` wins against another arm when its test MAC fraction is at most that arm's + 0.02 and its
per-sample squared error is lower (mean difference > 0, Wilcoxon p < 0.05); the target
``amplifying_stage_helps`` holds when it wins against both. :func:`run_retarget` compares the same models
again at one MAC budget: each re-targeted on the validation split without training. Design:
docs/experiments/2026-12-07-dyna-forecast-amplify-design.md.
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn as nn
from torch.utils.data import Dataset

from dance3d.benchmark_results import ResultDir
from dance3d.checkpoint import load_model
from dance3d.config import from_dict, to_dict
from dance3d.copruning.benchmark import DynaSettings, check_dense, coprune_run_config, csi_level, evaluate, train_dense
from dance3d.copruning.budget import fit_copruned_budget
from dance3d.copruning.comparison import PairedTest, paired_test
from dance3d.copruning.training import coprune
from dance3d.data.registry import DataConfig, build_dataset
from dance3d.errors import ConfigError
from profiling import collect_env

BENCHMARK = "dyna_amplify"
ARMS = ("plain", "extra", "amplified")
MAC_MATCH_TOLERANCE = 0.02
WIN_RULE = (f"amplified wins against plain and against extra: test MAC fraction <= theirs + {MAC_MATCH_TOLERANCE} "
            "and per-sample squared error lower (Wilcoxon p < 0.05, mean difference > 0)")  # fmt: skip


def arm_run_config(settings: DynaSettings, backbone: str, arm: str, *, amplify_epochs: int):  # noqa: ANN201
    """The coupled co-pruning run of ``arm``: the benchmark's, with the arm's first stage."""
    run = coprune_run_config(settings, backbone, data_mask=True, model_mask=True)
    if arm == "plain":
        return run
    weight = 0.0 if arm == "extra" else run.train.amplify_weight
    return replace(run, train=replace(run.train, amplify_epochs=amplify_epochs, amplify_weight=weight))


def run_amplify_benchmark(
    settings: DynaSettings,
    *,
    amplify_epochs: int,
    work: Path,
    out: ResultDir,
    quick: bool,
    threads: int,
    dense_checkpoint: Path | None = None,
    log=print,  # noqa: ANN001
) -> dict[str, Any]:
    """Co-prune the dense model three ways into ``work``, evaluate on the test split; the result payload."""
    if amplify_epochs < 1:
        raise ConfigError(f"--amplify-epochs must be >= 1, got {amplify_epochs}")
    started, timings = time.perf_counter(), {}
    if dense_checkpoint is None:
        log("== dense training")
        dense_checkpoint = train_dense(settings, work / "dense", threads=threads)
        timings["dense_train"] = time.perf_counter() - started
    backbone = check_dense(dense_checkpoint)
    settings = replace(settings, backbone=backbone)
    loaded = load_model(dense_checkpoint)
    data = from_dict(DataConfig, loaded.checkpoint.data)
    if data.source != settings.source:
        raise ConfigError(f"--dense-checkpoint was trained on {data.source!r}, not on --source {settings.source!r}")
    test_set = build_dataset(data, "test", classes=loaded.classes)
    level = csi_level(settings.source)

    runs, models = {}, {}
    for arm in ARMS:
        log(f"== co-pruning: {arm}")
        clock = time.perf_counter()
        result = coprune(arm_run_config(settings, backbone, arm, amplify_epochs=amplify_epochs), dense_checkpoint,
                         work / arm)  # fmt: skip
        runs[arm] = {"val_mse": result.val_mse, "val_mac_fraction": result.val_mac_fraction,
                     "dense_val_mse": result.dense_val_mse, "history": result.history,
                     "amplification": result.amplification}  # fmt: skip
        models[arm] = load_model(result.checkpoint_path).model.eval()
        timings[arm] = time.perf_counter() - clock
    summary, tests, wins = _compare(models, loaded.model.eval(), test_set, level=level, out=out, seed=settings.seed)
    timings["total"] = time.perf_counter() - started
    return {
        "benchmark": BENCHMARK,
        "tag": out.tag,
        "seed": settings.seed,
        "quick": quick,
        "settings": {
            **asdict(settings),
            "amplify_epochs": amplify_epochs,
            "threads": torch.get_num_threads(),
            "data": to_dict(data),
            "dense_checkpoint": str(dense_checkpoint),
        },  # fmt: skip
        "machine": collect_env(),
        "timings_s": timings,
        "targets": {"amplifying_stage_helps": all(wins.values())},
        "target_notes": {"amplifying_stage_helps": WIN_RULE},
        "wins": wins,
        "csi_level": level,
        "summary": summary,
        "paired_tests": {rival: test.to_dict() for rival, test in tests.items()},
        "coprune_runs": runs,
        "records": "records.parquet",
    }


def _compare(
    models: dict[str, nn.Module], dense: nn.Module, test_set: Dataset, *, level: str | None, out: ResultDir, seed: int
) -> tuple[dict[str, Any], dict[str, PairedTest], dict[str, bool]]:
    """Score dense and the three arms on the test split (``records.parquet``); paired tests and wins of amplified."""
    summary, records = {}, []
    summary["dense"], rows, _ = evaluate("dense", dense, test_set, level=level)
    records += rows
    for arm, model in models.items():
        summary[arm], rows, _ = evaluate(arm, model, test_set, level=level)
        records += rows
    frame = pd.DataFrame(records)
    frame.to_parquet(out.file("records.parquet"), index=False)
    errors = {name: group.sort_values("sample")["mse"].to_numpy() for name, group in frame.groupby("method")}
    tests = {rival: paired_test(errors["amplified"], errors[rival], names=("amplified", rival), seed=seed)
             for rival in ("plain", "extra")}  # fmt: skip
    wins = {
        rival: test.reference_ahead
        and summary["amplified"]["mac_fraction"] <= summary[rival]["mac_fraction"] + MAC_MATCH_TOLERANCE
        for rival, test in tests.items()
    }
    return summary, tests, wins


def run_retarget(
    settings: DynaSettings, *, target_mac_fraction: float, work: Path, out: ResultDir, dense_checkpoint: Path,
    log=print,  # noqa: ANN001
) -> dict[str, Any]:  # fmt: skip
    """Re-target the three arms a finished run left in ``work`` to ``target_mac_fraction`` on the validation split
    (:func:`~dance3d.copruning.budget.fit_copruned_budget`, no training) and compare them on the test split."""
    started = time.perf_counter()
    missing = [str(work / arm / "model.pt") for arm in ARMS if not (work / arm / "model.pt").is_file()]
    if missing:
        raise ConfigError(f"--retarget needs the finished run's models in --work; missing {', '.join(missing)}")
    loaded = load_model(dense_checkpoint)
    data = from_dict(DataConfig, loaded.checkpoint.data)
    val_set = build_dataset(data, "val", classes=loaded.classes)
    test_set = build_dataset(data, "test", classes=loaded.classes)
    inputs = torch.stack([val_set[i]["inputs"] for i in range(len(val_set))])
    models, fits = {}, {}
    for arm in ARMS:
        log(f"== re-targeting: {arm}")
        models[arm] = load_model(work / arm / "model.pt").model.eval()
        fit = fit_copruned_budget(models[arm], inputs, target_mac_fraction)
        fits[arm] = {"offset": fit.offset, "thresholds": fit.thresholds,
                     "val_mac_fraction_before": fit.mac_fraction_before,
                     "val_mac_fraction": fit.mac_fraction}  # fmt: skip
    level = csi_level(settings.source)
    summary, tests, wins = _compare(models, loaded.model.eval(), test_set, level=level, out=out, seed=settings.seed)
    return {
        "benchmark": BENCHMARK,
        "tag": out.tag,
        "seed": settings.seed,
        "quick": False,
        "settings": {
            "target_mac_fraction": target_mac_fraction,
            "fitted_on": f"validation split, {len(inputs)} samples",
            "work": str(work),
            "dense_checkpoint": str(dense_checkpoint),
            "data": to_dict(data),
            "threads": torch.get_num_threads(),
        },  # fmt: skip
        "machine": collect_env(),
        "timings_s": {"total": time.perf_counter() - started},
        "targets": {"amplifying_stage_helps": all(wins.values())},
        "target_notes": {"amplifying_stage_helps": WIN_RULE + ", every arm re-targeted to the same MAC fraction"},
        "wins": wins,
        "csi_level": level,
        "summary": summary,
        "paired_tests": {rival: test.to_dict() for rival, test in tests.items()},
        "fits": fits,
        "records": "records.parquet",
    }


def table(payload: dict[str, Any]) -> str:
    """The run's summary as text: each arm's MAC fraction, MSE ÷ dense, CSI, and the tests."""
    dense = payload["summary"]["dense"]
    lines = [f"{'arm':<11}{'MAC frac':>9}{'MSE':>10}{'÷ dense':>9}{'CSI':>7}{'amplified ahead, p':>20}"]
    for name, row in payload["summary"].items():
        test = payload["paired_tests"].get(name)
        p = f"{test['reference_ahead']}, {test['wilcoxon_p']:.3g}" if test else "-"
        lines.append(f"{name:<11}{row['mac_fraction']:>9.3f}{row['mse']:>10.2f}{row['mse'] / dense['mse']:>9.3f}"
                     f"{row['csi74']:>7.3f}{p:>20}")  # fmt: skip
    if "coprune_runs" in payload:
        amplification = payload["coprune_runs"]["amplified"]["amplification"]
        before, after = amplification["cv_before"], amplification["cv_after"]
        lines.append("CV (validation) before -> after amplifying: "
                     + ", ".join(f"{k} {before[k]:.3f} -> {after[k]:.3f}" for k in before))  # fmt: skip
    lines.append(f"target amplifying_stage_helps: {payload['targets']['amplifying_stage_helps']}")
    return "\n".join(lines)
