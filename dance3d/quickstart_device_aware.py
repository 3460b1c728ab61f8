"""Quickstart stage: DANCE charged this CPU's measured latency instead of MACs, alone and on the MDP model.

Counted MACs are not time: the quickstart's DANCE model (charged MACs) is not faster than dense at
batch 1 on these small clips, because what it saves in its convolutions the controller and the
compact path's bookkeeping spend again. Here the controller is charged what its decisions cost on
this CPU instead (``aap.cost=latency``, a block cost table timed here):

1. DANCE charged latency: the cost table of the quickstart's dynamic model (``dance_cost_table.json``),
   then AAP from the quickstart's AVA model toward ``dance_target`` of its dense table latency;
2. MDP + DANCE charged latency (``dance3d.dance.stacked`` on the quickstart's MDP run): the pruned
   model's cost table, AVA and AAP toward ``stack_target`` of its dense table latency.

Then dense (oneDNN), MDP, DANCE charged MACs and both latency-charged models (compact execution,
controller included, eagerly and with the controller compiled where ``torch.compile`` works) are
timed side by side at batch 1 on the same test clips with the tables' thread count; each dynamic
model's measured latency stands next to what its table predicted for the same clips.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from dance3d.benchmark_results import dumps_strict
from dance3d.dance.aap import AapSettings
from dance3d.dance.ava import AvaSettings
from dance3d.dance.data import cached_split
from dance3d.dance.device_cost import BlockCostTable, mean_table_cost
from dance3d.dance.device_cost_measure import build_cost_table, dynamic_model_of
from dance3d.dance.latency import batch1_latency_ms, dance_forwards, dense_forward
from dance3d.dance.pipeline import DanceRunConfig, run_aap
from dance3d.dance.stacked import StackedRunConfig, StackSettings, dance_target, run_stacked
from dance3d.data.registry import DataConfig, build_dataset
from dance3d.evaluation import evaluate
from dance3d.figures import subplots
from dance3d.loading import load_model
from dance3d.mdp.lut import LatencyTable
from dance3d.mdp.lut_measure import runtime_threads
from dance3d.reporting import paired_accuracy
from profiling import collect_env, count_macs

HEADING = "Device-aware DANCE: the controller charged measured latency"


@dataclass(frozen=True)
class DeviceAwareStageSettings:
    """The stacked model's latency target and the side-by-side timing."""

    dance_target: str = "0.75"  # DANCE charged latency: fraction of the dense model's table latency (or "<v>ms")
    stack_target: str = "0.7"  # MDP + DANCE: fraction of the MDP model's dense table latency (or "<value>ms")
    latency_clips: int = 16  # test clips every model is timed on (batch 1, round-robin)
    repeats: int = 5  # passes over those clips per model
    compile_controller: bool = True  # also time the dynamic models with their controller torch.compile'd

    def __post_init__(self) -> None:
        if self.latency_clips < 1 or self.repeats < 1:
            raise ValueError("device_aware.latency_clips and device_aware.repeats must be >= 1")


@dataclass
class DeviceAwareStageResult:
    heading: str
    text: str
    table: pd.DataFrame
    figures: list[Path]
    rows: list[dict[str, Any]]


def _dense_model_table(checkpoint: Path, lut: LatencyTable, path: Path) -> BlockCostTable:
    """The cost table of the quickstart's dynamic model, on the MDP table's runtime (cached at ``path``)."""
    if path.is_file():
        return BlockCostTable.load(path)
    model, spec = dynamic_model_of(checkpoint)
    table = build_cost_table(model, spec, runtime=lut.runtime, progress=False, env=collect_env())
    table.save(path)
    return table


def _latency_dance(
    settings: DeviceAwareStageSettings, config: DanceRunConfig, ava_checkpoint: Path, table_path: Path, out: Path
) -> Path:
    """AAP charged latency from the quickstart's AVA model (cached at ``out/model.pt``)."""
    checkpoint = out / "model.pt"
    if not checkpoint.is_file():
        target = dance_target(settings.dance_target, BlockCostTable.load(table_path).dense_cost(), cost="latency")
        aap = replace(config.aap, cost="latency", cost_table=str(table_path), target_latency_ms=target)
        run_aap(replace(config, aap=aap), ava_checkpoint, out)
    return checkpoint


def _evaluated(checkpoint: Path, data: DataConfig, path: Path) -> dict[str, Any]:
    if path.is_file():
        return json.loads(path.read_text())
    loaded = load_model(checkpoint)
    result = evaluate(loaded.model, build_dataset(data, "test", classes=loaded.classes), classes=loaded.classes)
    path.write_text(dumps_strict(result.to_dict()))
    return result.to_dict()


def _mean_macs(evaluated: dict[str, Any]) -> float:
    records = evaluated["records"]
    return sum(r["macs"] for r in records) / len(records)


def run_device_aware_stage(
    settings: DeviceAwareStageSettings,
    out_dir: Path,
    *,
    dense_checkpoint: Path,
    mac_dance_checkpoint: Path,
    ava_checkpoint: Path,
    mdp_dir: Path,
    latency_table: Path,
    data: DataConfig,
    ava: AvaSettings,
    aap: AapSettings,
    evaluations: dict[str, dict[str, Any]],
) -> DeviceAwareStageResult:
    """The stage into ``out_dir`` (stages reused when their output exists). ``evaluations``: the test-split
    evaluations (with records) of ``dense``, ``mdp`` and ``dance`` (the model charged MACs, AAP from
    ``ava_checkpoint``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    lut = LatencyTable.load(latency_table)
    dance_table = out_dir / "dance_cost_table.json"
    table = _dense_model_table(mac_dance_checkpoint, lut, dance_table)
    latency_ckpt = _latency_dance(
        settings, DanceRunConfig(ava=ava, aap=aap, data=data), ava_checkpoint, dance_table, out_dir / "dance-latency"
    )
    stack_config = StackedRunConfig(
        stack=StackSettings(dance_target=settings.stack_target, latency_clips=0), ava=ava, aap=aap, data=data
    )
    summary = run_stacked(stack_config, dense_checkpoint, latency_table, out_dir / "mdp-dance", mdp_dir=mdp_dir)
    stacked_ckpt = Path(summary["checkpoints"]["aap"])
    stacked_table = BlockCostTable.load(out_dir / "mdp-dance" / "cost_table.json")
    tables = {"dance": table, "latency": table, "stacked": stacked_table}
    evaluations = {
        **evaluations,
        "latency": _evaluated(latency_ckpt, data, latency_ckpt.parent / "test_eval.json"),
        "stacked": _evaluated(stacked_ckpt, data, stacked_ckpt.parent / "test_eval.json"),
    }
    rows = _side_by_side(
        settings, data, lut, tables, evaluations,
        checkpoints={"dense": dense_checkpoint, "mdp": mdp_dir / "model.pt", "dance": mac_dance_checkpoint,
                     "latency": latency_ckpt, "stacked": stacked_ckpt},
    )  # fmt: skip
    (out_dir / "latency.json").write_text(dumps_strict(rows))
    paired = paired_accuracy(evaluations["latency"]["records"], evaluations["dance"]["records"])
    figure = _plot(rows, out_dir / "device_aware.png")
    return DeviceAwareStageResult(HEADING, _text(settings, lut, rows, paired), _table(rows), [figure], rows)


LABELS = {
    "dense": "dense",
    "mdp": "MDP",
    "dance": "DANCE charged MACs",
    "latency": "DANCE charged latency",
    "stacked": "MDP + DANCE charged latency",
}
DYNAMIC = ("dance", "latency", "stacked")


def _side_by_side(
    settings: DeviceAwareStageSettings,
    data: DataConfig,
    lut: LatencyTable,
    tables: dict[str, BlockCostTable],
    evaluations: dict[str, dict[str, Any]],
    *,
    checkpoints: dict[str, Path],
) -> list[dict[str, Any]]:
    """Every model timed in one round-robin measurement at the tables' thread count; the dynamic models run eagerly
    also get their table's prediction for the same clips (the table times the controller eagerly), dense and MDP
    their table's all-kept cost (the wrapped model with every unit kept: the wrapper's bookkeeping included)."""
    loaded = {name: load_model(path) for name, path in checkpoints.items()}
    clips = cached_split(data, "test", classes=loaded["dense"].classes, limit=settings.latency_clips)
    first = clips.batch(torch.tensor([0]))[0].float()
    macs = {name: count_macs(loaded[name].model.eval(), first).macs for name in ("dense", "mdp")}
    forwards, names = {}, {}
    predicted = {LABELS["dense"]: tables["dance"].dense_cost(), LABELS["mdp"]: tables["stacked"].dense_cost()}
    with runtime_threads(lut.runtime), torch.no_grad():  # not inference_mode: the compiled copy needs versions
        for name in ("dense", "mdp"):
            forwards[LABELS[name]] = dense_forward(loaded[name].model.eval())
            names[LABELS[name]] = name
        for name in DYNAMIC:
            model = loaded[name].model.eval()
            for key, forward in dance_forwards(model, clips, compile_controller=settings.compile_controller).items():
                compiled = key.endswith("compiled_controller")
                label = LABELS[name] + (", compiled controller" if compiled else "")
                forwards[label], names[label] = forward, name
            predicted[LABELS[name]] = mean_table_cost(model, clips.clips.float(), tables[name], batch_size=1)
        measured = batch1_latency_ms(forwards, clips, count=settings.latency_clips, repeats=settings.repeats)
    rows = []
    for label, ms in measured.items():
        name = names[label]
        if name in DYNAMIC:
            mac_fraction = _mean_macs(evaluations[name]) / macs["dense"]
        else:
            mac_fraction = macs[name] / macs["dense"]
        table_ms = predicted.get(label)
        rows.append({
            "model": label,
            "test top-1": evaluations[name]["top1"],
            "MAC fraction": mac_fraction,
            "measured ms": ms,
            "vs dense": ms / measured[LABELS["dense"]],
            "table ms": table_ms,
            "table error %": None if table_ms is None else 100.0 * (table_ms - ms) / ms,
        })  # fmt: skip
    return rows


def _plot(rows: list[dict[str, Any]], path: Path) -> Path:
    """Test top-1 against measured batch-1 latency; a table's prediction as an open marker joined to its point."""
    fig, ax = subplots(figsize=(6.0, 3.6))
    dense = next(row for row in rows if row["model"] == LABELS["dense"])
    ax.axvline(dense["measured ms"], color="0.6", ls=":", lw=1, label="dense latency")
    for row in rows:
        point = ax.scatter(row["measured ms"], row["test top-1"], s=36, label=row["model"])
        if row["table ms"] is not None:
            color = point.get_facecolor()[0]
            ax.plot([row["table ms"], row["measured ms"]], [row["test top-1"]] * 2, color=color, lw=0.8)
            ax.scatter(row["table ms"], row["test top-1"], s=36, facecolors="none", edgecolors=[color])
    ax.set_xlabel("measured batch-1 latency (ms); open: table prediction")
    ax.set_ylabel("test top-1")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def _table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows).set_index("model")


def _text(settings: DeviceAwareStageSettings, lut: LatencyTable, rows: list[dict[str, Any]], paired: dict) -> str:
    by_model = {row["model"]: row for row in rows}
    dense = by_model[LABELS["dense"]]
    threads = lut.runtime.threads or torch.get_num_threads()

    def standing(name: str) -> str:
        eager = by_model[LABELS[name]]
        compiled = by_model.get(LABELS[name] + ", compiled controller")
        text = f"{eager['measured ms']:.2f} ms ({eager['vs dense']:.2f}x dense"
        if compiled is not None:
            text += f"; {compiled['vs dense']:.2f}x with its controller compiled"
        return text + f") at top-1 {eager['test top-1']:.4f} and {eager['MAC fraction']:.2f} of the MACs"

    return (
        f"The controller charged the latency its decisions cost on this CPU (`aap.cost=latency`) instead of MACs: "
        f"DANCE charged latency (AAP from the AVA model above, toward {settings.dance_target} of the dense model's "
        f"table latency; table `dance_cost_table.json`) and MDP + DANCE charged latency (on the MDP model above, "
        f"toward {settings.stack_target} of its table latency; `mdp-dance/`, what `dance3d stack` runs). All models "
        f"timed side by side at batch 1 on the same {settings.latency_clips} test clips, {threads} thread"
        f"{'s' if threads != 1 else ''} (the tables' thread count), the dynamic ones in compact execution with the "
        f"controller included; `table ms` is what each dynamic model's cost table predicts for those clips "
        f"(controller run eagerly), for dense and MDP their table's all-kept cost (the model wrapped for dynamic "
        f"execution with every unit kept and no controller, so it includes the wrapper's bookkeeping). "
        f"Dense {dense['measured ms']:.2f} ms at top-1 {dense['test top-1']:.4f}. "
        f"DANCE charged MACs: {standing('dance')}. DANCE charged latency: {standing('latency')}. MDP + DANCE charged "
        f"latency: {standing('stacked')}. Test clips only one of the two DANCE models gets right: charged latency "
        f"{paired['only_a_correct']}, charged MACs {paired['only_b_correct']} (McNemar p = {paired['mcnemar_p']:.3g})."
    )
