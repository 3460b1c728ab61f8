"""``dance3d study``: search a dynamic model's pruning knobs with Optuna; status, figures, export.

    dance3d study run    --checkpoint runs/aap/model.pt --objectives accuracy,energy_j \\
                         --constraint "accuracy>=0.95" --trials 60 --storage sqlite:///study.db
    dance3d study status --storage sqlite:///study.db
    dance3d study plot   --storage sqlite:///study.db --out figures/
    dance3d study export --storage sqlite:///study.db --out trials.parquet
    dance3d study deploy --storage sqlite:///study.db --max-accuracy-drop 0.01 --out runs/deployed/model.pt

``run`` resumes an existing study and stops once it holds --trials complete trials in total.
"""

from __future__ import annotations

import argparse

from dance3d.errors import ConfigError

DEFAULT_STORAGE = "sqlite:///study.db"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "study",
        help="Optuna search of pruning knobs: accuracy vs energy/latency/MACs",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="study_command", metavar="ACTION", required=True)
    _add_run(actions)
    for name, help_text in (
        ("status", "trial counts by state and the current Pareto set"),
        ("plot", "Pareto fronts, hypervolume and keep-rate heatmap (PNG and SVG)"),
        ("export", "all trials and baselines as a Parquet or CSV table"),
    ):
        sub = actions.add_parser(name, help=help_text, description=help_text)
        _add_storage_args(sub)
        if name != "status":
            sub.add_argument(
                "--out", required=True, help="folder (plot) or table path ending in .parquet/.csv (export)"
            )
        sub.set_defaults(func=run)
    _add_deploy(actions)


def _add_deploy(actions: argparse._SubParsersAction) -> None:
    help_text = "write a checkpoint that runs at a trial's knob values (for eval, profile, sweep)"
    sub = actions.add_parser("deploy", help=help_text, description=help_text)
    _add_storage_args(sub)
    which = sub.add_mutually_exclusive_group(required=True)
    which.add_argument("--trial", type=int, help="trial number (see 'study status')")
    which.add_argument(
        "--max-accuracy-drop",
        type=float,
        help="instead: the Pareto trial with the lowest cost (the study's first objective besides accuracy) "
        "within this accuracy of the dense model (0.01 = 1 point)",
    )
    sub.add_argument("--out", required=True, help="checkpoint to write, e.g. runs/deployed/model.pt")
    sub.add_argument("--checkpoint", help="the study's dynamic checkpoint, if it is not where the study saw it")
    sub.set_defaults(func=run)


def _add_storage_args(parser: argparse.ArgumentParser, *, study_default: str | None = None) -> None:
    parser.add_argument("--storage", default=DEFAULT_STORAGE, help="SQLite file/URL or postgresql:// URL")
    parser.add_argument(
        "--study-name",
        default=study_default,
        help="study in the storage" + ("" if study_default else " (default: the storage's only study)"),
    )


def _add_run(actions: argparse._SubParsersAction) -> None:
    from studies.config import DEFAULT_STUDY_NAME, SAMPLERS, StudyConfig

    defaults = StudyConfig()
    sub = actions.add_parser("run", help="create or resume a study and run it to its trial budget")
    sub.add_argument("--checkpoint", required=True, help="dynamic model checkpoint (dance3d aap output)")
    _add_storage_args(sub, study_default=DEFAULT_STUDY_NAME)
    sub.add_argument("--objectives", default=",".join(defaults.objectives), help="e.g. accuracy,energy_j")
    sub.add_argument("--constraint", action="append", default=[], help='e.g. "accuracy>=0.95" (repeatable)')
    sub.add_argument("--trials", type=int, default=defaults.trials, help="complete trials the study should hold")
    sub.add_argument("--sampler", choices=SAMPLERS, default=defaults.sampler)
    sub.add_argument("--seed", type=int, default=defaults.seed, help="sampler seed (give each worker its own)")
    sub.add_argument("--population-size", type=int, default=defaults.population_size, help="NSGA-II population")
    sub.add_argument("--knobs", default="", help="search only these knobs, comma-separated (others stay 0)")
    sub.add_argument("--knob-range", default=f"{defaults.knob_low:g},{defaults.knob_high:g}", help="LOW,HIGH")
    sub.add_argument("--knob-step", type=float, help="search a grid with this step (default: continuous)")
    sub.add_argument("--execution-modes", default=",".join(defaults.execution_modes), help="comma-separated")
    sub.add_argument("--batch-sizes", default=",".join(map(str, defaults.batch_sizes)), help="for latency/energy")
    sub.add_argument("--data", help="validation clips (default: the checkpoint's data)")
    sub.add_argument("--split", default="val", choices=("train", "val", "test"))
    sub.add_argument("--limit", type=int, help="use only the first N clips of the split")
    sub.add_argument("--device", default=defaults.device)
    sub.add_argument("--latency-repeats", type=int, default=defaults.latency_repeats)
    sub.add_argument("--latency-warmup", type=int, default=defaults.latency_warmup)
    sub.add_argument(
        "--energy",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="measure energy (default: only when an objective or constraint needs it)",
    )
    sub.add_argument(
        "--energy-estimate",
        metavar="J_PER_MAC,J_PER_BYTE,STATIC_W",
        help="estimate energy with these coefficients where no meter works (labelled estimated)",
    )
    sub.add_argument(
        "--baseline-checkpoint",
        action="append",
        default=[],
        metavar="[NAME=]PATH",
        help="also measure this (e.g. static) checkpoint as a baseline (repeatable)",
    )
    sub.add_argument("--heartbeat-s", type=int, default=defaults.heartbeat_interval_s)
    sub.add_argument("--grace-period-s", type=int, default=defaults.grace_period_s)
    sub.add_argument("--max-retry", type=int, default=defaults.max_retry, help="retries of a killed worker's trial")
    sub.add_argument("--no-progress", action="store_true")
    sub.set_defaults(func=run)


def _floats(text: str, what: str, count: int) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != count:
        raise ConfigError(f"{what} needs {count} comma-separated numbers, got {text!r}")
    return values


def _names(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


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


def _run_config(args: argparse.Namespace):
    from studies.config import StudyConfig
    from studies.objectives import parse_constraints, parse_objectives

    try:
        batch_sizes = tuple(int(v) for v in _names(args.batch_sizes))
    except ValueError:
        raise ConfigError(f"--batch-sizes must be integers like 1,8; got {args.batch_sizes!r}") from None
    low, high = _floats(args.knob_range, "--knob-range", 2)
    estimate = _floats(args.energy_estimate, "--energy-estimate", 3) if args.energy_estimate else None
    return StudyConfig(
        objectives=parse_objectives(args.objectives),
        constraints=tuple(str(c) for c in parse_constraints(args.constraint)),
        trials=args.trials,
        sampler=args.sampler,
        seed=args.seed,
        population_size=args.population_size,
        knob_low=low,
        knob_high=high,
        knob_step=args.knob_step,
        knobs=_names(args.knobs),
        execution_modes=_names(args.execution_modes),
        batch_sizes=batch_sizes,
        device=args.device,
        latency_warmup=args.latency_warmup,
        latency_repeats=args.latency_repeats,
        energy=args.energy,
        energy_estimate=estimate,
        heartbeat_interval_s=args.heartbeat_s,
        grace_period_s=args.grace_period_s,
        max_retry=args.max_retry,
    )


def run(args: argparse.Namespace) -> int:
    if args.study_command == "run":
        return _run(args)
    from studies import export_trials, format_status, load_study, open_storage, study_figures, study_status

    if args.study_command == "plot":
        for path in study_figures(args.storage, args.study_name, args.out):
            print(path)
        return 0
    study = load_study(open_storage(args.storage, must_exist=True), args.study_name)
    if args.study_command == "status":
        print(format_status(study_status(study)))
    elif args.study_command == "deploy":
        _print_deployed(study, args)
    else:
        print(f"wrote {export_trials(study, args.out)}")
    return 0


def _print_deployed(study, args: argparse.Namespace) -> None:
    import math

    from studies.deploy import deploy_trial, pick_trial

    number = args.trial
    if number is None:
        number = pick_trial(study, max_accuracy_drop=args.max_accuracy_drop).number
    deployed = deploy_trial(study, number, args.out, checkpoint=args.checkpoint)
    measured = deployed.measured
    knobs = " ".join(f"{name}={value:g}" for name, value in deployed.knobs.items())
    print(f"wrote {deployed.path}: trial {deployed.number} of study {deployed.study_name}, knobs {knobs}")
    metrics = [
        f"{k} {measured[k]:.4g}"
        for k in ("accuracy", "mac_fraction", "latency_ms", "energy_j")
        if math.isfinite(measured.get(k, math.nan))
    ]
    print(f"the trial measured {', '.join(metrics)} on {measured.get('num_clips', '?')} clips")
    if not deployed.feasible:
        print("note: this trial violates the study's constraints")
    execution = measured.get("execution_mode", "simulate")
    print(f"evaluate it: dance3d eval --checkpoint {deployed.path} --execution {execution}")


def _run(args: argparse.Namespace) -> int:
    from dataclasses import replace

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
