"""Device-aware DANCE on moving-digits: accuracy against measured batch-1 latency for four ways to prune.

One run (``benchmarks/device_aware.py``) builds, from one dense checkpoint and one AVA stage:

* static baselines: magnitude channel pruning and/or a fixed lower frame rate of the residual branches
  (``static_points``: (channel keep, frame keep)), fine-tuned under their fixed decisions;
* DANCE with the MAC objective at each of ``mac_targets``;
* DANCE with the latency objective, charged the AVA model's measured cost table
  (:mod:`dance3d.dance.device_cost`), each at the latency the table predicts for its MAC twin on val
  clips: the same latency, so the two objectives meet at matched cost;
* MDP + DANCE (:func:`dance3d.dance.stacked.run_stacked`): MDP at ``mdp_target_latency``, then DANCE
  with the latency objective on the pruned model.

Every model and the dense one are then timed in one interleaved batch-1 run in compact mode (the
controller included) at ``threads`` threads, on the first ``latency_clips`` test clips, and scored on
the test split. The targets: each latency-objective model is ahead of its MAC twin (paired on the test
clips: at least 1 point more accurate with McNemar p < 0.05 at no more latency, or at least 15% less
latency without a significant accuracy loss) and measures within 10% of its table prediction; its
front covers the MAC objective's (2-D hypervolume, reference: the dense latency at accuracy 0); the
cost table predicts the whole-model compact latency within 10% at every checked keep level; MDP +
DANCE is on the front of all points.
"""

from __future__ import annotations

import copy
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from dance3d.checkpoint import load_checkpoint, load_model, load_network
from dance3d.config import from_dict, to_dict
from dance3d.dance.common import clip_hits
from dance3d.dance.data import ClipCache, cached_split
from dance3d.dance.device_cost import BlockCostTable, mean_table_cost
from dance3d.dance.device_cost_measure import build_cost_table, check_prediction
from dance3d.dance.latency import Forward, batch1_latency_ms, compact_forward, dense_forward
from dance3d.dance.pipeline import DanceSettings, aap_stage, ava_stage, dense_teacher, preset
from dance3d.dance.stacked import StackedRunConfig, StackSettings, run_stacked
from dance3d.dance.static_baseline import StaticPrunedModel, finetune_static, magnitude_decisions
from dance3d.data.registry import DataConfig
from dance3d.dynamic import BlockDecision, DynamicModel, convert_model, set_execution_mode
from dance3d.dynamic.budget import mean_mac_fraction
from dance3d.mdp.calibration import measure_table
from dance3d.mdp.lut import LatencyRuntime
from dance3d.mdp.lut_measure import TableGrid, runtime_threads
from dance3d.mdp.pipeline import MdpSettings
from dance3d.reporting import paired_accuracy
from dance3d.training.trainer import RunConfig, TrainConfig, train
from profiling import collect_env

WITHIN_PCT = 10.0
AHEAD_POINTS = 1.0  # the latency objective ahead of its MAC twin: this many points more accurate (p < 0.05) ...
AHEAD_LATENCY_CUT = 0.15  # ... at no more latency, or this much less latency at no significant accuracy loss


@dataclass(frozen=True)
class DeviceAwareSettings:
    """What one run trains and times (see the module docstring)."""

    dense_train: TrainConfig = field(default_factory=lambda: TrainConfig(model="tiny", epochs=6, num_workers=1))
    data: DataConfig = field(default_factory=DataConfig)  # for a dense model trained here
    dance: DanceSettings = field(default_factory=lambda: preset("default"))
    threads: int = 2
    mac_targets: tuple[float, ...] = (0.35, 0.5)
    static_points: tuple[tuple[float, float], ...] = ((0.5, 1.0), (1.0, 0.5), (0.5, 0.5))
    static_epochs: int = 2
    static_lr: float = 1e-3
    mdp_target_latency: str = "0.75"
    mdp_finetune: TrainConfig = field(
        default_factory=lambda: TrainConfig(model="tiny", epochs=2, lr=1e-3, warmup_steps=10, num_workers=1)
    )
    stack_dance_target: str = "0.8"
    table_runtime: LatencyRuntime = field(default_factory=lambda: LatencyRuntime(threads=2, repeats=10, rounds=3))
    mdp_calibrate: int = 4
    check_keep_fractions: tuple[float, ...] = (1.0, 0.75, 0.5, 0.25)
    test_clips: int | None = None  # None: the whole test split
    latency_clips: int = 16
    latency_repeats: int = 5


SMOKE_DATA = DataConfig(num_frames=8, height=32, width=32, num_train=64, num_val=16, num_test=24)
SETTINGS: dict[str, DeviceAwareSettings] = {
    "default": DeviceAwareSettings(),
    "quick": DeviceAwareSettings(
        dense_train=TrainConfig(model="tiny", epochs=1, num_workers=0, progress=False),
        data=SMOKE_DATA,
        dance=replace(
            preset("smoke"),
            aap=replace(preset("smoke").aap, measure_clips=16, progress=False, joint_epochs=0),
            ava=replace(preset("smoke").ava, measure_clips=16, progress=False),
        ),  # fmt: skip
        mac_targets=(0.5,),
        static_points=((0.5, 1.0),),
        static_epochs=1,
        mdp_target_latency="0.9",
        mdp_finetune=TrainConfig(model="tiny", epochs=1, lr=1e-3, warmup_steps=2, num_workers=0, progress=False),
        table_runtime=LatencyRuntime(threads=2, warmup=1, repeats=2, rounds=1),
        mdp_calibrate=0,
        check_keep_fractions=(1.0, 0.5),
        latency_clips=2,
        latency_repeats=1,
    ),
}


@dataclass
class Point:
    """One model of the comparison: the model (and fixed decisions of a static one), its accuracy and cost."""

    name: str
    method: str  # dense, static, dance_macs, dance_latency, mdp_dance
    model: torch.nn.Module
    decisions: list[BlockDecision] | None
    top1: float
    mac_fraction: float
    predicted_ms: float | None  # by the cost table it was trained against (None: none applies)
    detail: dict[str, Any] = field(default_factory=dict)
    measured_ms: float = float("nan")
    hits: list[bool] = field(default_factory=list)  # per test clip: right or not (paired tests)

    def forward(self) -> Forward:
        """Batch-1 forward as deployed: the dense model through oneDNN, the others in compact mode."""
        if self.method == "dense":
            return dense_forward(self.model)
        return compact_forward(self.model, self.decisions)

    def row(self) -> dict[str, Any]:
        return {
            "name": self.name, "method": self.method, "top1": self.top1, "mac_fraction": self.mac_fraction,
            "measured_ms": self.measured_ms, "predicted_ms": self.predicted_ms, **self.detail,
        }  # fmt: skip


def hypervolume_2d(points: list[tuple[float, float]], *, reference_ms: float) -> float:
    """Area dominated by (latency ms, top-1) points (lower latency, higher accuracy) above accuracy 0 and left of
    ``reference_ms``."""
    front = sorted((ms, top1) for ms, top1 in points if ms < reference_ms)
    area, best = 0.0, 0.0
    for i, (ms, top1) in enumerate(front):
        best = max(best, top1)
        right = front[i + 1][0] if i + 1 < len(front) else reference_ms
        area += (right - ms) * best
    return area


def dominated(point: tuple[float, float], others: list[tuple[float, float]]) -> bool:
    """Whether another (latency, top-1) point is at least as fast and as accurate, and better in one."""
    ms, top1 = point
    return any(o_ms <= ms and o_top1 >= top1 and (o_ms < ms or o_top1 > top1) for o_ms, o_top1 in others)


def _dense_checkpoint(settings: DeviceAwareSettings, given: Path | None, work: Path, log) -> Path:
    if given is not None and given.is_file():
        return given
    path = work / "dense" / "model.pt"
    if path.is_file() and load_checkpoint(path).get("epochs_done", 0) >= settings.dense_train.epochs:
        return path
    log(f"training a dense {settings.dense_train.model} into {path.parent}")
    return train(RunConfig(data=settings.data, train=settings.dense_train), path.parent).checkpoint_path


def _dynamic_point(name: str, method: str, model: DynamicModel, test: ClipCache, table: BlockCostTable | None,
                   latency_clips: torch.Tensor, **detail: Any) -> Point:  # fmt: skip
    set_execution_mode(model, "simulate")
    hits = clip_hits(model, test).tolist()
    fraction = mean_mac_fraction(model, test.clips.float(), batch_size=64)
    predicted = None if table is None else mean_table_cost(model, latency_clips, table, batch_size=1)
    return Point(name, method, model, None, _top1(hits), fraction, predicted, detail, hits=hits)


def _top1(hits: list[bool]) -> float:
    return sum(hits) / len(hits)


def _static_point(model: DynamicModel, decisions: list[BlockDecision], test: ClipCache, table: BlockCostTable,
                  *, channel_keep: float, frame_keep: float) -> Point:  # fmt: skip
    set_execution_mode(model, "simulate")
    hits = clip_hits(StaticPrunedModel(model, decisions), test).tolist()
    model(torch.zeros(1, 3, *model.clip_shape), decisions=decisions)
    levels = [(int(d.kept_frames[0]), int(d.kept_channels[0]), int(d.kept_tiles[0])) for d in decisions]
    detail = {"channel_keep": channel_keep, "frame_keep": frame_keep}
    name = f"static c{channel_keep:g} f{frame_keep:g}"
    return Point(name, "static", model, decisions, _top1(hits), float(model.last_mac_fraction[0]),
                 table.predict(levels, controller=False), detail, hits=hits)  # fmt: skip


def run_device_aware(
    settings: DeviceAwareSettings, *, work_dir: Path, out_dir: Path, dense_checkpoint: Path | None = None,
    seed: int = 0, log=print,
) -> dict[str, Any]:  # fmt: skip
    """The whole comparison; ``work_dir`` gets the checkpoints and the cost and latency tables. Returns the result's
    fields (rows, table check, hypervolumes, targets, timings)."""
    timings: dict[str, float] = {}
    started = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal started
        timings[name] = time.perf_counter() - started
        started = time.perf_counter()

    if settings.threads:
        torch.set_num_threads(settings.threads)
    torch.manual_seed(seed)
    dance = replace(settings.dance, ava=replace(settings.dance.ava, seed=seed), aap=replace(settings.dance.aap,
                    seed=seed))  # fmt: skip
    dense_path = _dense_checkpoint(settings, dense_checkpoint, work_dir, log)
    checkpoint = load_checkpoint(dense_path)
    data, classes = from_dict(DataConfig, checkpoint["data"], prefix="data."), tuple(checkpoint["classes"])
    dense = load_network(checkpoint, source=dense_path).eval()
    shape = (data.num_frames, data.height, data.width)
    lap("dense")
    train_cache = cached_split(data, "train", classes=classes, limit=dance.aap.num_train_clips)
    val = cached_split(data, "val", classes=classes, limit=dance.aap.measure_clips)
    test = cached_split(data, "test", classes=classes, limit=settings.test_clips)
    latency_clips = test.clips[: settings.latency_clips].float()
    amplified, _, _ = ava_stage(dense, train_cache, val, dance.ava, shape=shape, log=log)
    teacher = dense_teacher(amplified, train_cache, shape=shape)
    lap("ava")

    table_model = convert_model(copy.deepcopy(amplified), clip_shape=shape, config=dance.dynamic)
    table = build_cost_table(table_model, checkpoint.model, runtime=settings.table_runtime, seed=seed,
                             progress=False, env=collect_env())  # fmt: skip
    table_path = table.save(work_dir / "cost_table.json")
    table_check = check_prediction(table_model, table, settings.table_runtime,
                                   keep_fractions=settings.check_keep_fractions)  # fmt: skip
    lap("cost_table")

    points: list[Point] = []
    for target in settings.mac_targets:
        aap = replace(dance.aap, target_mac_fraction=target)
        model = aap_stage(amplified, train_cache, aap, shape=shape, dynamic=dance.dynamic, teacher=teacher, log=log)
        point = _dynamic_point(f"dance macs {target:g}", "dance_macs", model.model, test, table, latency_clips,
                               target_mac_fraction=target)  # fmt: skip
        point.detail["val_table_ms"] = mean_table_cost(model.model, val.clips.float(), table)
        points.append(point)
    lap("dance_macs")
    for twin in [p for p in points if p.method == "dance_macs"]:
        target_ms = twin.detail["val_table_ms"]
        aap = replace(dance.aap, cost="latency", cost_table=str(table_path), target_latency_ms=target_ms)
        model = aap_stage(amplified, train_cache, aap, shape=shape, dynamic=dance.dynamic, teacher=teacher, log=log)
        points.append(_dynamic_point(f"dance latency {target_ms:.3g}ms", "dance_latency", model.model, test, table,
                                     latency_clips, target_latency_ms=target_ms, twin=twin.name))  # fmt: skip
    lap("dance_latency")
    for channel_keep, frame_keep in settings.static_points:
        model = convert_model(copy.deepcopy(amplified), clip_shape=shape, config=dance.dynamic)
        decisions = magnitude_decisions(model, channel_keep, frame_keep_fraction=frame_keep,
                                        channel_multiple=dance.dynamic.channel_multiple)  # fmt: skip
        finetune_static(model, decisions, train_cache, epochs=settings.static_epochs, lr=settings.static_lr,
                        batch_size=dance.aap.batch_size, seed=seed, teacher=teacher,
                        distill_weight=dance.aap.distill_weight, progress=False, log=log)  # fmt: skip
        points.append(_static_point(model, decisions, test, table, channel_keep=channel_keep, frame_keep=frame_keep))
    lap("static")

    lut = measure_table(dense, checkpoint.model, (3, *shape), runtime=settings.table_runtime,
                        grid=TableGrid(step=16, max_points=8), calibrate=settings.mdp_calibrate, validate=0,
                        seed=seed, progress=False)  # fmt: skip
    lut_path = lut.save(work_dir / "mdp_latency_table.json")
    stacked = StackedRunConfig(
        stack=StackSettings(dance_target=settings.stack_dance_target, latency_clips=0, seed=seed),
        mdp=MdpSettings(target_latency=settings.mdp_target_latency, seed=seed, progress=False),
        train=replace(settings.mdp_finetune, seed=seed), ava=dance.ava, aap=dance.aap, dynamic=dance.dynamic,
        data=data,
    )  # fmt: skip
    shutil.rmtree(work_dir / "stack", ignore_errors=True)  # every run stacks afresh
    summary = run_stacked(stacked, dense_path, lut_path, work_dir / "stack")
    stack_model = load_model(work_dir / "stack" / "aap" / "model.pt").model
    stack_table = BlockCostTable.load(work_dir / "stack" / "cost_table.json")
    points.append(_dynamic_point("mdp + dance", "mdp_dance", stack_model, test, stack_table, latency_clips,
                                 mdp_predicted_ms=summary["mdp"]["predicted_ms"],
                                 target_latency_ms=summary["target_cost"]))  # fmt: skip
    lap("mdp_dance")

    hits = clip_hits(dense, test).tolist()
    points.insert(0, Point("dense", "dense", dense, None, _top1(hits), 1.0, table.dense_cost(), hits=hits))
    runtime = LatencyRuntime(threads=settings.threads)
    with runtime_threads(runtime), torch.inference_mode():
        measured = batch1_latency_ms({p.name: p.forward() for p in points}, test, count=settings.latency_clips,
                                     repeats=settings.latency_repeats)  # fmt: skip
    for point in points:
        point.measured_ms = measured[point.name]
    lap("latency")
    return _outcome(points, table_check, timings)


def _outcome(points: list[Point], table_check: list[dict[str, Any]], timings: dict[str, float]) -> dict[str, Any]:
    dense_ms = next(p.measured_ms for p in points if p.method == "dense")
    xy = {p.name: (p.measured_ms, p.top1) for p in points}

    def volume(method: str) -> float:
        return hypervolume_2d([xy[p.name] for p in points if p.method == method], reference_ms=dense_ms)

    volumes = {m: volume(m) for m in ("static", "dance_macs", "dance_latency", "mdp_dance")}
    stacked = next(p for p in points if p.method == "mdp_dance")
    others = [xy[p.name] for p in points if p is not stacked]
    for point in points:
        if point.predicted_ms is not None:
            point.detail["prediction_error_pct"] = 100.0 * (point.predicted_ms - point.measured_ms) / point.measured_ms
    by_name = {p.name: p for p in points}
    paired = [twin_comparison(p, by_name[p.detail["twin"]]) for p in points if p.method == "dance_latency"]
    latency_points = [p for p in points if p.method == "dance_latency"]
    targets = {
        "latency_objective_ahead_of_mac_objective": bool(paired) and all(row["ahead"] for row in paired),
        "latency_front_covers_mac_front": bool(volumes["dance_latency"] >= volumes["dance_macs"]),
        "latency_objective_within_10pct_of_its_prediction": all(
            p.measured_ms <= (1 + WITHIN_PCT / 100) * p.predicted_ms for p in latency_points
        ),
        "table_prediction_within_10pct": bool(all(abs(r["error_pct"]) <= WITHIN_PCT for r in table_check)),
        "stacked_on_front": not dominated(xy[stacked.name], others),
    }
    return {
        "rows": [p.row() for p in points],
        "paired": paired,
        "table_check": table_check,
        "hypervolume": {**volumes, "reference_ms": dense_ms},
        "targets": targets,
        "timings_s": timings,
    }


def twin_comparison(latency: Point, macs: Point) -> dict[str, Any]:
    """The latency-objective model against its MAC-objective twin on the same test clips: accuracy difference,
    McNemar's exact test, measured latency ratio, and whether it is ahead (:data:`AHEAD_POINTS`,
    :data:`AHEAD_LATENCY_CUT`)."""
    records = [[{"index": i, "correct": hit} for i, hit in enumerate(p.hits)] for p in (latency, macs)]
    test = paired_accuracy(*records)
    ratio = latency.measured_ms / macs.measured_ms
    significant = test["mcnemar_p"] < 0.05
    more_accurate = test["top1_diff_points"] >= AHEAD_POINTS and significant and ratio <= 1.0
    faster = ratio <= 1.0 - AHEAD_LATENCY_CUT and not (significant and test["top1_diff_points"] < 0)
    return {"latency": latency.name, "macs": macs.name, **test, "latency_ratio": ratio,
            "ahead": bool(more_accurate or faster)}  # fmt: skip


def settings_record(settings: DeviceAwareSettings) -> dict[str, Any]:
    """The settings as plain data (for the result's ``settings``)."""
    return to_dict(settings)


def table_rows(result: dict[str, Any]) -> str:
    """The points as a printed table: method, top-1, MAC fraction, measured and predicted ms."""
    import pandas as pd

    columns = ["name", "top1", "mac_fraction", "measured_ms", "predicted_ms", "prediction_error_pct"]
    frame = pd.DataFrame(result["rows"]).reindex(columns=columns)
    return frame.to_string(index=False, float_format=lambda v: f"{v:.4g}")


def plot_points(result: dict[str, Any], path: Path) -> Path:
    """Accuracy against measured batch-1 latency, one marker per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for method, marker in (("dense", "*"), ("static", "s"), ("dance_macs", "o"), ("dance_latency", "^"),
                           ("mdp_dance", "D")):  # fmt: skip
        rows = [r for r in result["rows"] if r["method"] == method]
        if rows:
            ax.scatter([r["measured_ms"] for r in rows], [r["top1"] for r in rows], marker=marker, label=method)
    ax.set_xlabel("measured batch-1 latency, compact (ms)")
    ax.set_ylabel("test top-1")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
