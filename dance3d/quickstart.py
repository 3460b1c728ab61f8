"""The quickstart pipeline: embedded defaults, end to end on a CPU in minutes, a report with figures.

Stages: data (redundancy distribution) → dense training → test evaluation → DANCE stage 1 (AVA)
→ stage 2 (AAP) → dynamic evaluation (MAC fraction per clip, adaptivity, per-block MACs) →
budgets (the controller re-targeted to other MAC fractions, no training) → profile (latency of
dense vs dynamic execution) → MDP (latency table of this CPU, MILP at a latency target, the smaller
model fine-tuned and evaluated) → MDP + DANCE charged this CPU's measured latency (a cost table of
the pruned model's gated blocks, AVA + AAP on it), timed side by side with dense, MDP and DANCE charged
MACs, next to the tables' predictions → Optuna study of the run-time knobs (Pareto front) → the study's
pick deployed as a checkpoint and evaluated → a tiny forecaster on ``storms`` against persistence
→ that forecaster co-pruned (tile and channel masks from one importance map) → an Optuna study of its
thresholds → report. A killed
quickstart resumes: finished stages are reused (each leaves a ``model.pt``, a
JSON or a study database), training continues from its checkpoint.
"""

from __future__ import annotations

import json
import platform
import shutil
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dance3d.benchmark_results import dumps_strict
from dance3d.checkpoint import load_checkpoint, load_network
from dance3d.config import save_config
from dance3d.copruning.quickstart_stage import CopruningStageSettings, run_copruning_stage
from dance3d.dance.aap import AapSettings
from dance3d.dance.ava import AvaSettings
from dance3d.dance.pipeline import PRESETS, DanceRunConfig, run_dance
from dance3d.dance.plots import plot_adaptivity, plot_tradeoff
from dance3d.data.registry import DataConfig, build_dataset
from dance3d.dynamic import set_execution_mode
from dance3d.dynamic.budget import retarget_checkpoint
from dance3d.errors import ConfigError
from dance3d.evaluation import EvalResult, evaluate
from dance3d.loading import load_model
from dance3d.mdp.lut import LatencyRuntime, LatencyTable
from dance3d.mdp.pipeline import MdpSettings
from dance3d.quickstart_copruning_study import CopruningStudySettings, run_copruning_study_stage
from dance3d.quickstart_device_aware import DeviceAwareStageSettings, run_device_aware_stage
from dance3d.quickstart_forecast import ForecastStageSettings, run_forecast_stage
from dance3d.quickstart_seeds import extra_seed_rows, seed_row, seed_section
from dance3d.reporting import (
    Report,
    paired_accuracy,
    plot_block_macs,
    plot_group_widths,
    plot_per_class,
    plot_redundancy,
    plot_training_curve,
    redundancy_spearman,
    redundancy_table,
)
from dance3d.training.trainer import RunConfig, TrainConfig, train
from profiling import collect_env
from profiling.energy_stage import energy_rows, energy_section, open_energy_stage
from studies import StudyConfig, deploy_trial, pick_trial, run_study, study_figures, study_status
from studies.deploy import most_accurate
from studies.objectives import with_energy_objective

QUICK_DATA = DataConfig(num_frames=16, height=32, width=32, num_train=1200, num_val=200, num_test=400)
QUICK_TRAIN = TrainConfig(model="tiny", epochs=5, batch_size=16, lr=3e-3, num_workers=0)
QUICK_LATENCY = LatencyRuntime(threads=1, warmup=2, repeats=5, rounds=2)  # 1 thread: steady on a busy machine
QUICK_MDP = MdpSettings(target_latency="0.6", importance_batches=4, refine_rounds=2, progress=False)
QUICK_MDP_FINETUNE = TrainConfig(model="tiny", epochs=1, batch_size=16, lr=1e-3, warmup_steps=10, num_workers=0)
QUICK_STUDY = StudyConfig(
    objectives=("accuracy", "mac_fraction", "latency_ms"),
    trials=16,
    startup_trials=6,
    latency_warmup=1,
    latency_repeats=5,
)


@dataclass(frozen=True)
class QuickstartConfig:
    """Every stage's settings; override any with ``--set run.train.epochs=2``, ``aap.target_mac_fraction=0.5``..."""

    run: RunConfig = field(default_factory=lambda: RunConfig(data=QUICK_DATA, train=QUICK_TRAIN))
    ava: AvaSettings = PRESETS["quickstart"].ava
    aap: AapSettings = PRESETS["quickstart"].aap
    latency: LatencyRuntime = QUICK_LATENCY  # how the MDP latency table and models are timed
    mdp: MdpSettings = QUICK_MDP
    mdp_finetune: TrainConfig = QUICK_MDP_FINETUNE
    study: StudyConfig = QUICK_STUDY
    budget_targets: tuple[float, ...] = (0.25, 0.3, 0.35, 0.5)  # the trained controller re-targeted (no training)
    study_clips: int = 200  # validation clips each trial evaluates (and each budget is fitted on)
    deploy_max_accuracy_drop: float = 0.01  # the deployed trial: fewest MACs within this of dense accuracy
    forecast: ForecastStageSettings = field(default_factory=ForecastStageSettings)  # tiny forecaster vs persistence
    copruning: CopruningStageSettings = field(default_factory=CopruningStageSettings)  # that forecaster co-pruned
    copruning_study: CopruningStudySettings = field(default_factory=CopruningStudySettings)  # its thresholds searched
    device_aware: DeviceAwareStageSettings = field(default_factory=DeviceAwareStageSettings)  # MDP + DANCE on latency
    dance_seeds: tuple[int, ...] = ()  # more DANCE seeds (AVA + AAP each, minutes apiece): the spread on this CPU


def _train_dense(config: RunConfig, out_dir: Path) -> Path:
    checkpoint = out_dir / "model.pt"
    if checkpoint.is_file():
        done = load_checkpoint(checkpoint).get("epochs_done", 0)
        if done >= config.train.epochs:
            return checkpoint
        return train(config, out_dir, resume=True).checkpoint_path
    return train(config, out_dir).checkpoint_path


def _evaluated(checkpoint: Path, dataset, out: Path, *, fresh: bool = False) -> dict[str, Any]:
    """Test-split evaluation of ``checkpoint``, cached in ``out`` (JSON) unless ``fresh``."""
    if out.is_file() and not fresh:
        return json.loads(out.read_text())
    loaded = load_model(checkpoint)
    result: EvalResult = evaluate(loaded.model, dataset, classes=loaded.classes, progress=True)
    out.write_text(dumps_strict(result.to_dict()))
    return result.to_dict()


def _block_macs(checkpoint: Path, dataset, *, clips: int = 64) -> tuple[list[float], list[float]]:
    """Per gated block: MAC fraction of the dense model and mean of the dynamic model over ``clips``."""
    model = load_model(checkpoint).model.eval()
    batch = torch.stack([dataset[i]["clip"] for i in range(min(clips, len(dataset)))])
    with torch.no_grad():
        model(batch, decisions=model.full_decisions(len(batch)))
        dense = [float(m[0]) / model.dense_macs for m in model.last_block_macs]
        model(batch)
        dynamic = [float(m.mean()) / model.dense_macs for m in model.last_block_macs]
    return dense, dynamic


def _profile_latency(dense_checkpoint: Path, dynamic_checkpoint: Path, clip: torch.Tensor) -> list[dict[str, Any]]:
    """Batch-1 median latency: the dense model eagerly and through oneDNN (the backend compact execution
    uses; docs/design.md §2.6), and the dynamic model in each execution mode."""
    from dance3d.dynamic import EXECUTION_MODES, set_execution_mode
    from dance3d.dynamic.compact_backend import fast_conv_backend
    from profiling import measure_latency

    rows = []
    dense = load_model(dense_checkpoint).model.eval()
    for execution, backend in (("eager", nullcontext()), ("oneDNN", fast_conv_backend())):
        with torch.no_grad(), backend:
            timing = measure_latency(dense, clip[None], warmup=3, repeats=20)
        rows.append({"model": "dense", "execution": execution, "latency_ms": timing.median_ms, "mac_fraction": 1.0})
    dynamic = load_model(dynamic_checkpoint).model.eval()

    def dynamic_row(execution: str) -> dict[str, Any]:
        with torch.no_grad():
            timing = measure_latency(dynamic, clip[None], warmup=3, repeats=20)
        fraction = float(dynamic.last_mac_fraction[0])
        return {"model": "dance", "execution": execution, "latency_ms": timing.median_ms, "mac_fraction": fraction}

    for mode in (m for m in EXECUTION_MODES if m != "train"):
        set_execution_mode(dynamic, mode)
        rows.append(dynamic_row(mode))
    dynamic.compile_controller()  # compact mode is still set
    try:
        rows.append(dynamic_row("compact, compiled controller"))
    except Exception as error:  # noqa: BLE001 - torch.compile fails in many ways (e.g. no C++ compiler)
        warnings.warn(f"compiled-controller row skipped: torch.compile failed ({error})", stacklevel=2)
    return rows


def _mdp(config: QuickstartConfig, dense_ckpt: Path, out_dir: Path) -> tuple[Path, LatencyTable, Path]:
    """The latency table of this CPU (``lut.json``) and the MDP run at the configured target (``mdp/``)."""
    from dance3d.mdp.calibration import measure_table
    from dance3d.mdp.lut_measure import TableGrid
    from dance3d.mdp.pipeline import MdpRunConfig, run_mdp

    table_path, mdp_dir = out_dir / "lut.json", out_dir / "mdp"
    data = config.run.data
    if table_path.is_file():
        table = LatencyTable.load(table_path)
    else:
        checkpoint = load_checkpoint(dense_ckpt)
        dense = load_network(checkpoint, source=dense_ckpt)
        clip_shape = (3, data.num_frames, data.height, data.width)
        grid = TableGrid(step=16, max_points=4)
        table = measure_table(
            dense, checkpoint["model"], clip_shape, runtime=config.latency, grid=grid, calibrate=2, validate=0
        )
        table.save(table_path)
    finished = (mdp_dir / "model.pt").is_file() and (
        load_checkpoint(mdp_dir / "model.pt").get("epochs_done", 0) >= config.mdp_finetune.epochs
    )
    if not finished:
        shutil.rmtree(mdp_dir, ignore_errors=True)  # a killed MDP stage starts over (it takes seconds)
        run_mdp(MdpRunConfig(mdp=config.mdp, data=data, train=config.mdp_finetune), dense_ckpt, table_path, mdp_dir)
    return table_path, table, mdp_dir / "model.pt"


def _mdp_rows(dense_ckpt: Path, pruned_ckpt: Path, runtime: LatencyRuntime, clip: torch.Tensor) -> list[dict]:
    """MACs and latency of the dense and the MDP model, timed in the same interleaved rounds."""
    from dance3d.mdp.lut_measure import measure_models_ms
    from profiling import count_macs

    models = [load_model(dense_ckpt).model.eval(), load_model(pruned_ckpt).model.eval()]
    latency = measure_models_ms(models, tuple(clip.shape), runtime)
    macs = [count_macs(m, clip[None]).macs for m in models]
    return [
        {"model": name, "gmacs": m / 1e9, "mac_fraction": m / macs[0], "latency_ms": ms}
        for name, m, ms in zip(("dense", "mdp"), macs, latency, strict=True)
    ]


def _mac_fractions(evaluated: dict[str, Any]) -> np.ndarray:
    """Per-clip MAC fractions of an evaluation (1 for a dense model, which records none)."""
    return np.array([r.get("mac_fraction", 1.0) for r in evaluated["records"]])


def _budget_section(
    config: QuickstartConfig, aap_ckpt: Path, test_set, out_dir: Path, *, dense: dict, dynamic: dict
) -> tuple[str, Any, Path]:
    """``dance3d budget`` at each of ``config.budget_targets`` (fitted on val clips), evaluated on the test split."""
    import pandas as pd

    rows = [
        {
            "target": "as trained",
            "offset": 0.0,
            "test MAC fraction": _mac_fractions(dynamic).mean(),
            "test top-1": dynamic["top1"],
        }
    ]
    unreachable = []
    for target in config.budget_targets:
        path = out_dir / f"budget-{target:.2f}" / "model.pt"
        if not path.is_file():
            try:
                retarget_checkpoint(aap_ckpt, path, target, split="val", limit=config.study_clips)
            except ConfigError:
                unreachable.append(f"{target:g}")
                continue
        fit = load_checkpoint(path)["budget"]
        evaluated = _evaluated(path, test_set, path.parent / "test_eval.json")
        rows.append(
            {
                "target": f"{target:g}",
                "offset": fit["offset"],
                "val MAC fraction": fit["mac_fraction"],
                "test MAC fraction": _mac_fractions(evaluated).mean(),
                "test top-1": evaluated["top1"],
            }
        )
    if len(rows) > 1:  # the trained controller on the clips the budgets were fitted on
        rows[0]["val MAC fraction"] = fit["mac_fraction_before"]
    columns = ["target", "offset", "val MAC fraction", "test MAC fraction", "test top-1"]
    table = pd.DataFrame(rows, columns=columns).set_index("target")
    points = list(zip(table["test MAC fraction"], table["test top-1"], strict=True))
    figure = plot_tradeoff({"one controller, re-targeted": points}, out_dir / "budgets.png", dense_top1=dense["top1"])
    text = (
        f"`dance3d budget --checkpoint {aap_ckpt} --target-mac-fraction T --out DIR/model.pt` shifts every knob by "
        f"the largest logit offset whose mean MAC fraction on {config.study_clips} validation clips is at most T: "
        "a new operating point from the same controller, without training (AAP trains for one target)."
        + (f" Targets below what the controller can reach: {', '.join(unreachable)}." if unreachable else "")
    )
    return text, table, figure


def _deploy_section(
    config: QuickstartConfig, study, storage: str, out_dir: Path, test_set, *, dense: dict, dynamic: dict
) -> tuple[str, str, Any]:
    """Deploy the study's pick (``dance3d study deploy --max-accuracy-drop``) and evaluate it on the test split."""
    import pandas as pd

    drop = config.deploy_max_accuracy_drop
    points = f"{100 * drop:g} point" + ("" if drop == 0.01 else "s")
    try:
        trial = pick_trial(study, max_accuracy_drop=drop)
        why = f"the Pareto trial with the fewest MACs within {points} of the dense model's val top-1"
    except ConfigError:
        trial = most_accurate(study.best_trials)
        why = f"no Pareto trial was within {points} of the dense model's val top-1: the most accurate"
    deployed = deploy_trial(study, trial.number, out_dir / "deployed" / "model.pt")
    result = _evaluated(deployed.path, test_set, out_dir / "deployed_eval.json", fresh=True)
    rows = []
    for name, evaluated in (("dense", dense), ("DANCE as trained", dynamic), (f"trial {trial.number}", result)):
        fractions = _mac_fractions(evaluated)
        rows.append(
            {
                "model": name,
                "test top-1": evaluated["top1"],
                "mean MAC fraction": fractions.mean(),
                "p10": np.percentile(fractions, 10),
                "p90": np.percentile(fractions, 90),
            }
        )
    knobs = ", ".join(f"{name} {value:+.2f}" for name, value in deployed.knobs.items())
    text = (
        f"`dance3d study deploy --storage {storage} --max-accuracy-drop {drop:g} --out {deployed.path}` picked "
        f"trial {trial.number}, {why} (val top-1 {deployed.measured['accuracy']:.4f} at a MAC fraction of "
        f"{deployed.measured['mac_fraction']:.3f}; knobs {knobs}). The knobs are stored in the checkpoint, so "
        f"`dance3d eval --checkpoint {deployed.path}` runs this operating point; on the test split:"
    )
    return "Deploy: the study's pick as a checkpoint", text, pd.DataFrame(rows).set_index("model")


def run_quickstart(config: QuickstartConfig, out_dir: str | Path) -> Path:
    """Run every stage into ``out_dir``; returns the path of ``report.md``."""
    import pandas as pd

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, out_dir / "config.yaml")
    started = time.perf_counter()
    report = Report("dance3d quickstart", root=out_dir)
    data = config.run.data

    test_set = build_dataset(data, "test")
    metas = [test_set[i]["meta"] for i in range(len(test_set))]
    report.add(
        "Data: moving-digits",
        f"{data.num_train}/{data.num_val}/{data.num_test} train/val/test clips of "
        f"{data.num_frames}x{data.height}x{data.width}; label = direction of motion. "
        "Per-clip redundancy of the test split:",
        table=redundancy_table(metas),
        figures=[plot_redundancy(metas, out_dir / "redundancy.png")],
    )

    dense_ckpt = _train_dense(config.run, out_dir / "dense")
    history = load_checkpoint(dense_ckpt)["history"]
    report.add(
        f"Dense training ({config.run.train.model})",
        f"{len(history)} epochs, {sum(r['epoch_s'] for r in history):.0f} s of training.",
        figures=[plot_training_curve(history, out_dir / "training_curve.png")],
    )
    dense = _evaluated(dense_ckpt, test_set, out_dir / "dense_eval.json")
    report.add(
        "Dense evaluation (test split)",
        f"top-1 **{dense['top1']:.4f}**, top-5 {dense['top5']:.4f} on {dense['num_clips']} clips.",
        figures=[plot_per_class(dense["per_class_accuracy"], out_dir / "per_class.png")],
    )

    dance_config = DanceRunConfig(data=data, ava=config.ava, aap=config.aap)
    dance = run_dance(dance_config, dense_ckpt, out_dir)
    ava_ckpt, aap_ckpt, dynamic = dance.ava_checkpoint, dance.aap_checkpoint, dance.test
    ava = load_checkpoint(ava_ckpt)["ava"]
    cv = pd.DataFrame({"before": ava["cv_mean_before"], "after": ava["cv_mean_after"]})
    report.add(
        "DANCE stage 1: AVA",
        f"{config.ava.epochs} epoch(s) of activation-variability amplification. Val top-1 "
        f"{ava['top1_before']:.4f} → {ava['top1_after']:.4f}. Mean coefficient of variation of the per-unit "
        "statistics the decisions use:",
        table=cv,
        figures=[ava_ckpt.parent / "ava_variability.png"],
    )

    fractions = _mac_fractions(dynamic)
    redundancy = np.array([r["redundancy"] for r in dynamic["records"]])
    rho = redundancy_spearman(redundancy, fractions)
    p10, p50, p90 = np.percentile(fractions, [10, 50, 90])
    paired = paired_accuracy(dynamic["records"], dense["records"])
    dense_blocks, dynamic_blocks = _block_macs(aap_ckpt, test_set)
    report.add(
        "DANCE stage 2: AAP (dynamic model, test split)",
        f"top-1 **{dynamic['top1']:.4f}** (dense {dense['top1']:.4f}) at a mean MAC fraction of "
        f"**{fractions.mean():.3f}** ({1 - fractions.mean():.0%} fewer MACs, controller included); per clip "
        f"p10/p50/p90 {p10:.3f}/{p50:.3f}/{p90:.3f}. Spearman correlation of the per-clip MAC fraction with "
        f"the clip's redundancy: {rho:+.2f} (more redundant clips get fewer MACs when negative). Clips only one "
        f"model gets right: DANCE {paired['only_a_correct']}, dense {paired['only_b_correct']} (McNemar "
        f"p = {paired['mcnemar_p']:.3f}: the gap is {'more than' if paired['mcnemar_p'] < 0.05 else 'within'} "
        "chance at the 5% level).",
        figures=[
            plot_adaptivity(redundancy, fractions, out_dir / "adaptivity.png", rho=rho),
            plot_block_macs(dense_blocks, dynamic_blocks, out_dir / "block_macs.png"),
        ],
    )

    seeds = [seed_row(config.aap.seed, dynamic, dense=dense)]
    seeds += extra_seed_rows(dance_config, dense_ckpt, out_dir, config.dance_seeds, dense=dense)
    cpu = collect_env()["cpu_model"]
    threads = torch.get_num_threads()
    machine = f"{cpu}, {threads} thread{'s' if threads != 1 else ''}"
    text, table, figure = seed_section(seeds, out_dir, machine=machine)
    report.add("DANCE across seeds: this run against the committed spread", text, table=table, figures=[figure])

    text, table, figure = _budget_section(config, aap_ckpt, test_set, out_dir, dense=dense, dynamic=dynamic)
    report.add("DANCE budgets: the trained controller re-targeted", text, table=table, figures=[figure])

    latency = pd.DataFrame(_profile_latency(dense_ckpt, aap_ckpt, test_set[0]["clip"]))
    latency.to_csv(out_dir / "latency.csv", index=False)
    report.add(
        "Profile (batch 1, this CPU)",
        "Median latency of one test clip (20 repeats after 3 warm-ups). `simulate` applies the decisions as "
        "masks on dense tensors (the numerical reference: no faster than dense); `compact` skips the work and "
        "runs its convolutions through oneDNN, so compare it with dense through oneDNN (eager PyTorch picks a "
        "slower kernel for small batch-1 conv3d calls); `compiled controller` runs the controller through "
        "torch.compile (`--compile-controller` in eval and profile).",
        table=latency.set_index(["model", "execution"]),
    )
    energy = open_energy_stage("cpu")
    dance = load_model(aap_ckpt).model.eval()
    set_execution_mode(dance, "compact")
    models = {"dense": load_model(dense_ckpt).model.eval(), "dance (compact)": dance}
    heading, text, table = energy_section(energy, energy_rows(models, test_set[0]["clip"], energy))
    report.add(heading, text, table=table)

    table_path, table, mdp_ckpt = _mdp(config, dense_ckpt, out_dir)
    solution = json.loads((mdp_ckpt.parent / "solution.json").read_text())
    mdp_eval = _evaluated(mdp_ckpt, test_set, out_dir / "mdp_eval.json")
    mdp_rows = pd.DataFrame(_mdp_rows(dense_ckpt, mdp_ckpt, config.latency, test_set[0]["clip"]))
    mdp_rows["top1"] = [dense["top1"], mdp_eval["top1"]]
    mdp_rows.to_csv(out_dir / "mdp.csv", index=False)
    removed = ", ".join(solution["removed_blocks"]) or "none"
    measured = solution["measured_ms"]
    report.add(
        "MDP: latency-constrained static pruning",
        f"Latency table of this CPU (`{table_path.name}`; {config.latency.threads or 'default'} thread(s); every "
        f"layer over its width grid, {config.latency.rounds} rounds of {config.latency.repeats} repeats). Target "
        f"{config.mdp.target_latency} of the dense latency ({solution['requested_budget_ms']:.2f} ms): the MILP "
        f"chose the widths below and removed blocks: {removed}; solved in {solution['solve_s']:.2f} s (gap "
        f"{solution['mip_gap']:.1e}). Predicted {solution['predicted_ms']:.2f} ms, measured "
        + (f"{measured:.2f} ms" if measured is not None else "not measured")
        + f" after {len(solution['refinement_rounds'])} round(s); fine-tuned {config.mdp_finetune.epochs} "
        f"epoch(s). Dense and MDP models timed again side by side, with test top-1:",
        table=mdp_rows.set_index("model"),
        figures=[
            plot_group_widths(
                {g: grid[-1] for g, grid in table.group_grids.items()},
                solution["widths"],
                out_dir / "mdp_widths.png",
                title=f"MDP widths at {config.mdp.target_latency} of dense latency",
            )
        ],
    )

    device_aware = run_device_aware_stage(
        config.device_aware, out_dir / "device-aware", dense_checkpoint=dense_ckpt, mac_dance_checkpoint=aap_ckpt,
        ava_checkpoint=ava_ckpt, mdp_dir=mdp_ckpt.parent, latency_table=table_path, data=data, ava=config.ava,
        aap=config.aap, evaluations={"dense": dense, "mdp": mdp_eval, "dance": dynamic},
    )  # fmt: skip
    report.add(device_aware.heading, device_aware.text, table=device_aware.table, figures=device_aware.figures)

    storage = f"sqlite:///{(out_dir / 'study.db').resolve()}"
    objectives = with_energy_objective(config.study.objectives, meter_works=energy.meter is not None)
    study_config = replace(config.study, objectives=objectives)
    energy.close()  # the study opens its own meter
    study_run = run_study(
        study_config, checkpoint=aap_ckpt, storage=storage, split="val", limit=config.study_clips, progress=True
    )
    status = study_status(study_run.study)
    figures = [p for p in study_figures(storage, study_run.study_name, out_dir / "study") if p.suffix == ".png"]
    report.add(
        "Study: run-time knobs (Optuna)",
        f"{study_run.complete_trials} complete trials over the controller's per-stage logit offsets; "
        f"objectives {', '.join(study_config.objectives)} on {config.study_clips} validation clips. "
        f"Storage `{storage}` (re-run `dance3d study plot --storage {storage} --out DIR` to redraw).",
        table=status.pareto.dropna(axis=1, how="all").set_index("number"),
        figures=figures,
    )

    study = study_run.study
    heading, text, table = _deploy_section(config, study, storage, out_dir, test_set, dense=dense, dynamic=dynamic)
    report.add(heading, text, table=table)

    forecast = run_forecast_stage(config.forecast, out_dir / "forecast")
    report.add(forecast.heading, forecast.text, table=forecast.table, figures=forecast.figures)
    copruned = run_copruning_stage(config.copruning, out_dir / "forecast" / "model.pt", out_dir / "copruning")
    report.add(copruned.heading, copruned.text, table=copruned.table, figures=copruned.figures)
    cp_study = run_copruning_study_stage(
        config.copruning_study, out_dir / "copruning" / "model.pt", out_dir / "copruning-study"
    )
    report.add(cp_study.heading, cp_study.text, table=cp_study.table, figures=cp_study.figures)

    report.add(
        "Run",
        f"{time.perf_counter() - started:.0f} s for this invocation (stages finished earlier are reused) on "
        f"{cpu} ({platform.machine()}), {threads} torch thread{'s' if threads != 1 else ''}, torch "
        f"{torch.__version__}.",
    )
    return report.write(out_dir / "report.md")
