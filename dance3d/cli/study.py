"""``dance3d study``: search a model's run-time knobs with Optuna; status, figures, export, deploy.

A dynamic (DANCE) checkpoint's knobs are its logit offsets, scored by accuracy; a co-pruned
forecaster's are its data and channel thresholds, scored by forecast MSE (objective mse).

    dance3d study run    --checkpoint runs/aap/model.pt --objectives accuracy,energy_j \\
                         --constraint "accuracy>=0.95" --trials 60 --storage sqlite:///study.db
    dance3d study status --storage sqlite:///study.db
    dance3d study plot   --storage sqlite:///study.db --out figures/
    dance3d study export --storage sqlite:///study.db --out trials.parquet
    dance3d study deploy --storage sqlite:///study.db --max-accuracy-drop 0.01 --out runs/deployed/model.pt
    dance3d study deploy --storage sqlite:///cp.db --max-mse-increase 0.05 --out runs/deployed/model.pt

``run`` resumes an existing study and stops once it holds --trials complete trials in total.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field, replace

from dance3d.cli.common import (
    add_command,
    add_config_args,
    add_device_arg,
    add_energy_arg,
    add_force_arg,
    add_format_arg,
    add_threads_arg,
    check_out_file,
    non_negative_float,
    non_negative_int,
    positive_int,
    print_json,
    unit_interval,
)
from dance3d.config import load_config
from dance3d.errors import ConfigError
from studies.config import DEFAULT_STUDY_NAME, SAMPLERS, StudyConfig

DEFAULT_STORAGE = "sqlite:///study.db"


@dataclass(frozen=True)
class StudyRunConfig:
    """``study run``'s config file / ``--set`` root: ``study.<StudyConfig field>``."""

    study: StudyConfig = field(default_factory=StudyConfig)


SHORTCUTS = ("objectives", "trials", "sampler", "seed", "knobs", "device")
"""StudyConfig fields with their own ``study run`` option; every field can be set with ``--set study.NAME=...``."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(subparsers, "study", __doc__)
    actions = parser.add_subparsers(dest="study_command", metavar="ACTION", required=True)
    _add_run(actions)
    for name, help_text in (
        ("status", "trial counts by state and the current Pareto set"),
        ("plot", "Pareto fronts, hypervolume and keep-rate heatmap (PNG and SVG)"),
        ("export", "all trials and baselines as a Parquet or CSV table"),
    ):
        sub = actions.add_parser(name, help=help_text, description=help_text)
        _add_storage_args(sub)
        if name == "plot":
            sub.add_argument("--out", required=True, help="folder for the figures")
        if name == "export":
            sub.add_argument("--out", required=True, help="table path ending in .parquet or .csv")
            add_force_arg(sub)
        if name == "status":
            add_format_arg(sub)
        sub.set_defaults(func=run)
    _add_deploy(actions)


def _add_deploy(actions: argparse._SubParsersAction) -> None:
    help_text = "write a checkpoint that runs at a trial's knob values (for eval, profile, sweep)"
    sub = actions.add_parser("deploy", help=help_text, description=help_text)
    _add_storage_args(sub)
    which = sub.add_mutually_exclusive_group(required=True)
    which.add_argument("--trial", type=non_negative_int, help="trial number (see 'study status')")
    which.add_argument(
        "--max-accuracy-drop",
        type=unit_interval,
        help="instead: the Pareto trial with the lowest cost (the study's first objective besides accuracy) "
        "within this accuracy of the dense model (0.01 = 1 point)",
    )
    which.add_argument(
        "--max-mse-increase",
        type=non_negative_float,
        help="for a co-pruned forecaster's study: the Pareto trial with the lowest cost (its first objective "
        "besides mse) whose MSE is at most (1 + this) x the dense model's (0.05 = 5 %% above)",
    )
    sub.add_argument("--out", required=True, help="checkpoint to write, e.g. runs/deployed/model.pt")
    add_force_arg(sub)
    sub.add_argument(
        "--checkpoint",
        help="the study's checkpoint, if it is not where the study saw it (its weights must match)",
    )
    add_format_arg(sub)
    sub.set_defaults(func=run)


def _add_storage_args(parser: argparse.ArgumentParser, *, study_default: str | None = None) -> None:
    parser.add_argument("--storage", default=DEFAULT_STORAGE, help="SQLite file/URL or postgresql:// URL")
    parser.add_argument(
        "--study-name",
        default=study_default,
        help="study in the storage" + ("" if study_default else " (default: the storage's only study)"),
    )


def _add_run(actions: argparse._SubParsersAction) -> None:
    help_text = "create or resume a study and run it to its trial budget (settings: --config/--set study.NAME=...)"
    sub = actions.add_parser("run", help=help_text, description=help_text)
    sub.add_argument(
        "--checkpoint",
        required=True,
        help="dynamic model (dance3d aap output) or co-pruned forecaster (dance3d copruning output) checkpoint",
    )
    _add_storage_args(sub, study_default=DEFAULT_STUDY_NAME)
    sub.add_argument(
        "--objectives",
        help="study.objectives, e.g. accuracy,energy_j (default: accuracy,mac_fraction for a dynamic model; "
        "mse,mac_fraction,latency_ms and energy where a meter works for a co-pruned one)",
    )
    sub.add_argument("--constraint", action="append", default=[], help='e.g. "accuracy>=0.95" (repeatable)')
    sub.add_argument("--trials", type=positive_int, help="complete trials the study should hold (study.trials)")
    sub.add_argument("--sampler", choices=SAMPLERS, help="study.sampler")
    sub.add_argument("--seed", type=non_negative_int, help="sampler seed, give each worker its own (study.seed)")
    sub.add_argument(
        "--knobs", help="search only these knobs, comma-separated; the others stay as trained (study.knobs)"
    )
    add_device_arg(sub, default=None)
    add_threads_arg(sub)
    sub.add_argument("--repeats", type=positive_int, help="timed latency repeats (study.latency_repeats)")
    add_energy_arg(sub, default=None)
    sub.add_argument(
        "--energy-estimate",
        metavar="J_PER_MAC,J_PER_BYTE,STATIC_W",
        help="estimate energy with these coefficients where no meter works, labelled estimated (study.energy_estimate)",
    )
    sub.add_argument("--data", help="validation clips (default: the checkpoint's data)")
    sub.add_argument("--split", default="val", choices=("train", "val", "test"), help="clips from this split")
    sub.add_argument("--limit", type=positive_int, help="use only the first N clips of the split")
    sub.add_argument(
        "--baseline-checkpoint",
        action="append",
        default=[],
        metavar="[NAME=]PATH",
        help="also measure this (e.g. static) checkpoint as a baseline (repeatable)",
    )
    sub.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_config_args(sub)
    sub.set_defaults(func=run)


def _floats(text: str, what: str, count: int) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != count:
        raise ConfigError(f"{what} needs {count} comma-separated numbers, got {text!r}")
    return values


def _baselines(items: list[str]) -> dict[str, str]:
    from pathlib import Path

    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep:
            path, name = item, Path(item).parent.name or Path(item).stem
        if name in out or name == "dense":
            raise ConfigError(f"baseline name {name!r} is taken; use NAME=PATH")
        out[name] = path
    return out


def _run_config(args: argparse.Namespace) -> StudyConfig:
    """Defaults < --config < shortcut options < --set."""
    from studies.objectives import parse_constraints, parse_objectives

    flags: dict[str, object] = {name: getattr(args, name) for name in SHORTCUTS}
    flags["latency_repeats"] = args.repeats
    flags["energy"] = args.energy
    if args.energy_estimate:
        flags["energy_estimate"] = list(_floats(args.energy_estimate, "--energy-estimate", 3))
    overrides = [f"study.{k}={json.dumps(v)}" for k, v in flags.items() if v is not None]
    config = load_config(StudyRunConfig, path=args.config, overrides=overrides + args.overrides).study
    constraints = parse_constraints([*config.constraints, *args.constraint])
    objectives = parse_objectives(config.objectives) if config.objectives else ()  # (): the model's defaults
    return replace(config, objectives=objectives, constraints=tuple(str(c) for c in constraints))


def run(args: argparse.Namespace) -> int:
    if args.study_command == "run":
        return _run(args)
    from studies import export_trials, format_status, load_study, open_storage, study_figures, study_status

    if args.study_command == "plot":
        for path in study_figures(args.storage, args.study_name, args.out):
            print(path)
        return 0
    if args.study_command in ("deploy", "export"):
        suffixes = (".parquet", ".csv") if args.study_command == "export" else ()
        check_out_file(args.out, force=args.force, suffixes=suffixes)
    study = load_study(open_storage(args.storage, must_exist=True), args.study_name)
    if args.study_command == "status":
        status = study_status(study)
        if args.format == "json":
            print_json(status_dict(status))
        else:
            print(format_status(status))
    elif args.study_command == "deploy":
        _print_deployed(study, args)
    else:
        print(f"wrote {export_trials(study, args.out)}")
    return 0


def status_dict(status) -> dict:
    """``study status --format json``: counts, Pareto trials and baselines as plain records."""
    return {
        "study_name": status.study_name,
        "objectives": list(status.objectives),
        "constraints": list(status.constraints),
        "counts": status.counts,
        "pareto": status.pareto.to_dict(orient="records"),
        "baselines": status.baselines.to_dict(orient="records"),
    }


def _print_deployed(study, args: argparse.Namespace) -> None:
    import math

    from studies.deploy import deploy_trial, pick_forecast_trial, pick_trial

    number = args.trial
    if args.max_accuracy_drop is not None:
        number = pick_trial(study, max_accuracy_drop=args.max_accuracy_drop).number
    elif args.max_mse_increase is not None:
        number = pick_forecast_trial(study, max_mse_increase=args.max_mse_increase).number
    deployed = deploy_trial(study, number, args.out, checkpoint=args.checkpoint)
    measured = deployed.measured
    if args.format == "json":
        print_json({"checkpoint": str(deployed.path), "study_name": deployed.study_name, "trial": deployed.number,
                    "knobs": deployed.knobs, "feasible": deployed.feasible, "measured": measured})  # fmt: skip
        return
    knobs = " ".join(f"{name}={value:g}" for name, value in deployed.knobs.items())
    print(f"wrote {deployed.path}: trial {deployed.number} of study {deployed.study_name}, knobs {knobs}")
    metrics = [
        f"{k} {measured[k]:.4g}"
        for k in ("accuracy", "mse", "mac_fraction", "latency_ms", "energy_j")
        if math.isfinite(measured.get(k, math.nan))
    ]
    print(f"the trial measured {', '.join(metrics)} on {measured.get('num_clips', '?')} clips")
    if not deployed.feasible:
        print("note: this trial violates the study's constraints")
    execution = measured.get("execution_mode", "simulate")
    print(f"evaluate it: dance3d eval --checkpoint {deployed.path} --execution {execution}")


def _run(args: argparse.Namespace) -> int:
    from dance3d.checkpoint import load_checkpoint
    from studies import format_status, run_study, study_status

    config = _run_config(args)
    data = None
    if args.data:
        from dance3d.config import from_dict
        from dance3d.data.registry import DataConfig

        data = replace(from_dict(DataConfig, load_checkpoint(args.checkpoint)["data"]), source=args.data)
    result = run_study(
        config,
        checkpoint=args.checkpoint,
        storage=args.storage,
        study_name=args.study_name,
        data=data,
        split=args.split,
        limit=args.limit,
        baseline_checkpoints=_baselines(args.baseline_checkpoint),
        progress=not args.no_progress,
    )
    print(format_status(study_status(result.study)))
    return 0
