"""Dense vs compact execution of a DANCE model on CPU: measured speed against counted MACs.

Writes ``benchmarks/results/compact_speed/<tag>/result.json``: tag ``cpu`` (``cpu-<model>`` for another
zoo model, ``--tag`` to name it; a ``--quick`` run appends ``-quick``), and with calibration the
measured per-block choices to ``compact_speed/calibration-<clip shape>/`` (``calibration.json`` there
is what ``dance3d eval --execution compact --calibration`` reads). Usage::

    python benchmarks/compact_speed.py [--checkpoint AAP_MODEL_PT | --model NAME] [--threads 2] [--quick]

Operating point: with ``--checkpoint`` (a dynamic checkpoint written by ``dance3d aap``) its own
controller decides on moving-digits clips; by default a ``tiny`` model (random weights: speed does
not depend on them) gets decisions drawn at the keep-rate mix recorded by the DANCE benchmark
(``benchmarks/results/dance_moving_digits/default/result.json``), scaled to its recorded mean MAC fraction, the
cost of the controller and its decisions measured separately and added. Dense and compact run
interleaved in one process, warmed up over every decision set, median of many repeats; the dense
baseline is the fastest of eager PyTorch, the oneDNN path compact uses (docs/design.md §2.6, "the CPU conv3d
backend trap") and that path with BatchNorm folded into the convs. Freed host memory is retained (glibc
``mallopt``; ``--release-freed-memory`` for the default), so neither model page-faults its
activations in every pass. Per clip shape and batch size:
MAC ratio, wall-clock ratio, realisation efficiency (speedup / MAC-reduction ratio), overhead shares
(the compact code's ``torch.profiler`` ranges, :mod:`dance3d.dynamic.compact_ranges`) and a per-block
table (module hooks), both from a separate profiled pass; plus a break-even sweep per axis.
``--quick`` is a smoke run: its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.fx.experimental.optimization import fuse as fuse_conv_bn

from dance3d.benchmark_results import ResultDir, save_result
from dance3d.dynamic import BlockDecision, DynamicConfig, convert_model, set_execution_mode
from dance3d.dynamic.compact_backend import fast_conv_backend
from dance3d.dynamic.compact_ranges import PARTS, range_totals_ms
from dance3d.dynamic.compact_tuning import calibrate
from dance3d.models import create_model, list_models
from profiling import collect_env, measure_interleaved, retain_freed_memory

BENCHMARK = "compact_speed"
RESULTS = Path(__file__).resolve().parent / "results"
DANCE_RESULT = RESULTS / "dance_moving_digits" / "default" / "result.json"
AXES = ("frames", "channels", "tiles")
KEEP_KEYS = {"frames": "frame_keep", "channels": "channel_keep", "tiles": "tile_keep"}


# -- operating point -------------------------------------------------------------------------------
def recorded_operating_point(path: Path) -> tuple[dict[str, float], float, tuple[int, ...]]:
    """Mean keep rate per axis (averaged over gates, as recorded), mean MAC fraction and clip shape of the DANCE
    run in ``path``; ValueError with one clear line when the file is missing or lacks them."""
    try:
        result = json.loads(Path(path).read_text())
        run = result["runs"]["dance"]
        rates = {axis: float(run["keep_rates"][key]) for axis, key in KEEP_KEYS.items()}
        return rates, float(run["mean_mac_fraction"]), tuple(int(v) for v in result["settings"]["clip_shape"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"cannot read DANCE's operating point (runs.dance.keep_rates, runs.dance.mean_mac_fraction, "
            f"settings.clip_shape) from {path} ({type(error).__name__}: {error}); "
            "run benchmarks/dance_moving_digits.py or pass --dance-result"
        ) from None


def per_gate_targets(model, rates: dict[str, float]) -> dict[str, list[float]]:
    """Per-gate keep targets whose mean over gates is the recorded rate (gates without a choice keep 1.0)."""
    out = {}
    for axis, mean in rates.items():
        choice = [len(getattr(lv, axis)) > 1 for lv in model.levels]
        fixed = len(choice) - sum(choice)
        target = (mean * len(choice) - fixed) / max(1, sum(choice))
        out[axis] = [target if c else 1.0 for c in choice]
    return out


def draw_decisions(model, targets: dict[str, list[float]], batch: int, rng: np.random.Generator) -> list[BlockDecision]:
    """Per clip and gate: a level drawn between the two levels around the target (mean = target), random units."""
    out = []
    for i, (levels, gated, spec) in enumerate(zip(model.levels, model.gated, model.gate_specs, strict=True)):
        masks = []
        for axis, count in zip(AXES, (spec.num_frames, spec.num_channels, spec.num_tiles), strict=True):
            allowed = np.array(getattr(levels, axis))
            fractions = allowed / count
            target = float(np.clip(targets[axis][i], fractions[0], 1.0))
            hi = int(np.searchsorted(fractions, target - 1e-9))
            lo = max(hi - 1, 0)
            p_hi = 1.0 if hi == lo else (target - fractions[lo]) / (fractions[hi] - fractions[lo])
            rows = np.zeros((batch, count), dtype=bool)
            for b in range(batch):
                kept = allowed[hi if rng.random() < p_hi else lo]
                rows[b, rng.permutation(count)[:kept]] = True
            masks.append(torch.from_numpy(rows))
        out.append(BlockDecision(*masks, gated.grid))
    return out


def matched_targets(model, rates: dict[str, float], mac_fraction: float, *, draws: int = 32) -> tuple[dict, float]:
    """Per-gate targets at the recorded keep-rate mix, the pruned axes scaled by one factor (bisection) so that
    drawn decisions reach the recorded mean MAC fraction (keep rates averaged over gates alone miss it)."""

    def scaled_targets(scale: float) -> dict[str, list[float]]:
        return per_gate_targets(model, {axis: rate * scale if rate < 1.0 else rate for axis, rate in rates.items()})

    def drawn_fraction(scale: float) -> float:
        targets = scaled_targets(scale)
        rng = np.random.default_rng(1)  # the same draws at every scale
        with torch.inference_mode():
            fractions = []
            for _ in range(draws):
                model(torch.zeros(1, 3, *model.clip_shape), decisions=draw_decisions(model, targets, 1, rng))
                fractions.append(float(model.last_mac_fraction.mean()))
        return float(np.mean(fractions))

    low, high = 0.25, 1.0 / max(rates.values())
    for _ in range(12):
        mid = (low + high) / 2
        low, high = (mid, high) if drawn_fraction(mid) < mac_fraction else (low, mid)
    scale = (low + high) / 2
    return scaled_targets(scale), scale


def axis_decisions(model, axis: str, fraction: float, batch: int, rng: np.random.Generator) -> list[BlockDecision]:
    """Everything kept except ``axis``, kept at the level nearest ``fraction`` in every gate (break-even sweep)."""
    targets = {a: [fraction if a == axis else 1.0] * len(model.levels) for a in AXES}
    return draw_decisions(model, targets, batch, rng)


# -- timing -----------------------------------------------------------------------------------------
def interleaved(fns: dict[str, Any], *, warmup: int, repeats: int) -> dict[str, dict[str, float]]:
    """Median / p90 ms of each function, timed round-robin (noise hits all alike)."""
    stats = measure_interleaved(fns, warmup=warmup, repeats=repeats)
    return {name: {"median_ms": s.median_ms, "p90_ms": s.p90_ms} for name, s in stats.items()}


def controller_ms(model, clips: torch.Tensor, *, repeats: int, compiled: bool) -> dict[str, float]:
    """Median ms of the controller and its decisions on the stem output, as a compact forward makes them:
    eager and (``compiled``) through ``torch.compile``."""
    stem = model.backbone.get_submodule(model.stem_name)
    with torch.inference_mode(), fast_conv_backend():
        stem_out = stem(clips)
    set_execution_mode(model, "compact")
    out = {}
    for variant in ("eager", "compiled") if compiled else ("eager",):
        model.compile_controller(variant == "compiled")
        out[variant] = interleaved({"c": lambda: model.decide(stem_out)}, warmup=3, repeats=repeats)["c"]["median_ms"]
    model.compile_controller(False)
    return out


@contextmanager
def block_timers(model, dense_blocks: list[torch.nn.Module]) -> Iterator[dict[str, float]]:
    """Accumulate the wall ms of the stem and of each gated block, compact and dense (forward hooks)."""
    acc: dict[str, float] = defaultdict(float)
    stem = model.backbone.get_submodule(model.stem_name)
    timed_modules = [("stem", stem)] + [
        (f"block{i % len(model.gated)}." + ("compact" if i < len(model.gated) else "dense"), block)
        for i, block in enumerate(model.gated + dense_blocks)
    ]
    handles = []
    for key, block in timed_modules:
        handles.append(
            block.register_forward_pre_hook(lambda m, a, k=key: acc.__setitem__(k + "@", time.perf_counter()))
        )
        handles.append(
            block.register_forward_hook(
                lambda m, a, o, k=key: acc.__setitem__(k, acc[k] + (time.perf_counter() - acc[k + "@"]) * 1e3)
            )
        )
    try:
        yield acc
    finally:
        for handle in handles:
            handle.remove()


@functools.cache
def batchnorm_folded(dense: torch.nn.Module) -> torch.nn.Module | None:
    """The dense model with each BatchNorm folded into its conv (as compact folds them), or None if torch.fx
    cannot trace it."""
    try:
        return fuse_conv_bn(dense)
    except Exception:  # noqa: BLE001 - tracing failures come in many types; the baseline is then skipped
        return None


# -- one setting ------------------------------------------------------------------------------------
def measure(
    model,
    dense,
    pool: list[list[BlockDecision]],
    clips: torch.Tensor,
    *,
    repeats: int,
    ctrl_ms: float,
    with_eager: bool = True,
) -> dict[str, Any]:
    """Dense (eager and oneDNN) vs compact on ``clips`` cycling through the decision sets in ``pool``."""
    counter = {"i": 0}

    def run_compact() -> None:
        model(clips, decisions=pool[counter["i"] % len(pool)])
        counter["i"] += 1

    def run_fast_dense() -> None:
        with fast_conv_backend():
            dense(clips)

    set_execution_mode(model, "compact")
    fns = {"dense_onednn": run_fast_dense, "compact": run_compact}
    if with_eager:
        fns["dense_eager"] = lambda: dense(clips)
        folded = batchnorm_folded(dense)
        if folded is not None:

            def run_folded_dense() -> None:
                with fast_conv_backend():
                    folded(clips)

            fns["dense_onednn_bn_folded"] = run_folded_dense
    times = interleaved(fns, warmup=2 * len(pool), repeats=repeats)
    fractions = []
    with torch.inference_mode():
        for decisions in pool:
            model(clips, decisions=decisions)
            fractions.append(float(model.last_mac_fraction.mean()))
    mac_fraction = float(np.mean(fractions))  # decisions are passed in: controller MACs not counted (~0.1%)
    dense_ms = min(t["median_ms"] for name, t in times.items() if name.startswith("dense"))
    compact_ms = times["compact"]["median_ms"] + ctrl_ms
    speedup = dense_ms / compact_ms
    mac_reduction_ratio = 1.0 / mac_fraction
    return {
        "times": times,
        "dense_baseline": min((n for n in times if n.startswith("dense")), key=lambda n: times[n]["median_ms"]),
        "controller_ms_per_batch": ctrl_ms,
        "compact_ms_with_controller": compact_ms,
        "mac_fraction": mac_fraction,
        "mac_reduction_ratio": mac_reduction_ratio,
        "wall_clock_speedup": speedup,
        "realisation_efficiency": speedup / mac_reduction_ratio,
    }


def breakdown(model, dense, pool, clips: torch.Tensor, *, ctrl_ms: float) -> dict[str, Any]:
    """Overhead shares of compact time and a per-block dense/compact table (a profiled pass)."""
    dense_blocks = [dense.get_submodule(name) for name in model.block_names]
    passes = max(4, len(pool))
    activities = [torch.profiler.ProfilerActivity.CPU]
    with torch.inference_mode(), block_timers(model, dense_blocks) as acc:
        with torch.profiler.profile(activities=activities) as profile:
            for i in range(passes):
                start = time.perf_counter()
                model(clips, decisions=pool[i % len(pool)])
                acc["total.compact"] += (time.perf_counter() - start) * 1e3
                with fast_conv_backend():
                    dense(clips)
        block_macs = [float(m.mean()) for m in model.last_block_macs]
    acc.update(range_totals_ms(profile.events()))  # the compact code's own ranges (dance3d.dynamic.compact_ranges)
    total = acc["total.compact"] / passes + ctrl_ms
    shares = {key: acc[key] / passes / total for key in PARTS}
    shares["stem"] = acc["stem"] / passes / total
    shares["controller"] = ctrl_ms / total
    shares["other (head, Python)"] = 1.0 - sum(shares.values())
    layers = []
    for i, name in enumerate(model.block_names):
        dense_ms, compact_ms = acc[f"block{i}.dense"] / passes, acc[f"block{i}.compact"] / passes
        layers.append(
            {
                "block": name,
                "dense_ms": dense_ms,
                "compact_ms": compact_ms,
                "speedup": dense_ms / compact_ms if compact_ms else None,
                "mac_fraction_of_block_last_pass": block_macs[i] / max(1.0, _dense_block_macs(model, i)),
            }
        )
    kernel_ms = (acc["convolutions"] + acc["stem"]) / passes + ctrl_ms
    return {"compact_ms_instrumented": total, "kernel_ms": kernel_ms, "shares": shares, "per_block": layers}


def _dense_block_macs(model, index: int) -> float:
    names = {c.name for c in model.gated_convs[index]}
    return float(sum(v for k, v in model._dense_layer_macs.items() if k in names))


# -- models -----------------------------------------------------------------------------------------
def build(args, clip_shape: tuple[int, int, int]):
    """(dynamic model, dense twin, decision-pool maker, operating-point description)."""
    if args.checkpoint:
        from dance3d.dynamic.checkpoint import dense_state_dict
        from dance3d.loading import load_model

        loaded = load_model(args.checkpoint)
        model = loaded.model.eval()
        spec = loaded.checkpoint["model"]["backbone"]
        dense = create_model(spec["name"], num_classes=spec["num_classes"], **spec.get("options", {}))
        dense.load_state_dict(dense_state_dict(model))
        return model, dense.eval(), "controller of " + str(args.checkpoint), loaded
    torch.manual_seed(0)
    dense = create_model(args.model, num_classes=8).eval()
    model = convert_model(copy.deepcopy(dense), clip_shape=clip_shape, config=DynamicConfig()).eval()
    return model, dense, f"decisions drawn at the keep rates recorded in {args.dance_result}", None


def controller_pool(model, loaded, batch: int, count: int) -> tuple[list[list[BlockDecision]], torch.Tensor]:
    """Decisions of the checkpoint's controller on moving-digits test clips."""
    from dance3d.data.registry import build_dataset

    dataset = build_dataset(loaded.data, "test", classes=loaded.classes)
    pool, first = [], None
    set_execution_mode(model, "simulate")
    with torch.inference_mode():
        for i in range(count):
            clips = torch.stack([dataset[(i * batch + b) % len(dataset)]["clip"] for b in range(batch)]).float()
            model(clips)
            pool.append(list(model.last_decisions))
            first = clips if first is None else first
    return pool, first


def run_shape(args, clip_shape: tuple[int, int, int]) -> dict[str, Any]:
    model, dense, source, loaded = build(args, clip_shape)
    clip_shape = tuple(model.clip_shape)
    rng = np.random.default_rng(0)
    set_execution_mode(model, "compact")
    targets = None
    if loaded is None:
        rates, recorded_fraction, _ = args.operating_point
        targets, scale = matched_targets(model, rates, recorded_fraction, draws=4 if args.quick else args.match_draws)
        source += f" (keep rates x {scale:.3f}: the recorded mean MAC fraction {recorded_fraction:.3f})"
    backbone = loaded.checkpoint["model"]["backbone"]["name"] if loaded is not None else args.model
    result: dict[str, Any] = {"model": backbone, "clip_shape": list(clip_shape), "operating_point": source}
    if args.calibrate:
        result["calibration"] = str(save_calibration(args, model, clip_shape).relative_to(args.results_root))
    else:
        result["calibration"] = "analytic default (no measured calibration)"
    for batch in args.batch_sizes:
        if loaded is None:
            pool = [draw_decisions(model, targets, batch, rng) for _ in range(args.pool)]
            clips = torch.rand(batch, 3, *clip_shape)
        else:
            pool, clips = controller_pool(model, loaded, batch, args.pool)
        # decisions are replayed in the timed runs; the controller's time on the batch (with its decisions) is added
        ctrl = controller_ms(model, clips, repeats=max(10, args.repeats), compiled=args.compile_controller)
        ctrl_ms = min(ctrl.values())  # a deployment keeps whichever is faster on its device
        set_execution_mode(model, "compact")
        entry = measure(model, dense, pool, clips, repeats=args.repeats, ctrl_ms=ctrl_ms)
        entry["controller_ms_eager_and_compiled"] = ctrl
        entry["breakdown"] = breakdown(model, dense, pool, clips, ctrl_ms=ctrl_ms)
        dense_ms = entry["times"][entry["dense_baseline"]]["median_ms"]
        entry["speedup_bound_kernels_only"] = dense_ms / entry["breakdown"]["kernel_ms"]
        entry["efficiency_bound_kernels_only"] = entry["speedup_bound_kernels_only"] * entry["mac_fraction"]
        result[f"batch{batch}"] = entry
        print(f"{clip_shape} batch {batch}: speedup {entry['wall_clock_speedup']:.2f}x, MAC fraction "
              f"{entry['mac_fraction']:.3f}, efficiency {entry['realisation_efficiency']:.2f} (kernels-only bound "
              f"{entry['speedup_bound_kernels_only']:.2f}x)", flush=True)  # fmt: skip
    sweep: dict[str, list[dict[str, float]]] = {}
    for axis in AXES if args.sweep else ():
        sweep[axis] = []
        for fraction in args.sweep:
            pool = [axis_decisions(model, axis, fraction, 1, rng) for _ in range(args.sweep_pool)]
            clips = torch.rand(1, 3, *clip_shape)
            entry = measure(model, dense, pool, clips, repeats=args.sweep_repeats, ctrl_ms=0, with_eager=False)
            sweep[axis].append(
                {
                    "kept_fraction_target": fraction,
                    "mac_fraction": entry["mac_fraction"],
                    "speedup": entry["wall_clock_speedup"],
                    "realisation_efficiency": entry["realisation_efficiency"],
                }
            )
    if sweep:
        result["break_even_sweep_batch1"] = sweep
    return result


def save_calibration(args, model, clip_shape: tuple[int, int, int]) -> Path:
    """Calibrate ``model`` on this CPU; save it (``calibration.json``) and its result in ``calibration-<shape>``."""
    started = time.perf_counter()
    shape = "x".join(map(str, clip_shape))
    model.compact_calibration = calibrate(model, torch.rand(3, *clip_shape), repeats=args.calibration_repeats)
    calibration_s = time.perf_counter() - started
    tag = f"calibration-{shape}" + ("-quick" if args.quick else "")
    path = model.compact_calibration.save(ResultDir(args.results_root, BENCHMARK, tag).file("calibration.json"))
    save_result(
        {
            "benchmark": BENCHMARK,
            "tag": tag,
            "seed": 0,
            "quick": args.quick,
            "settings": {
                "model": args.model,
                "clip_shape": list(clip_shape),
                "repeats": args.calibration_repeats,
                "threads": args.threads,
            },
            "machine": {**collect_env(), "threads": args.threads, "device": "cpu"},
            "timings_s": {"calibration": calibration_s},
            "targets": {},
            "calibration_file": path.name,
            "calibration": json.loads(path.read_text()),
        },
        args.results_root,
    )
    return path


def targets_met(shape_result: dict[str, Any]) -> dict[str, Any]:
    out = {}
    if "batch1" in shape_result:
        b1 = shape_result["batch1"]
        out["batch1_speedup_at_least_2.0"] = b1["wall_clock_speedup"] >= 2.0
        out["batch1_efficiency_at_least_0.75"] = b1["realisation_efficiency"] >= 0.75
    if "batch8" in shape_result:
        out["batch8_throughput_gain_at_least_1.8"] = shape_result["batch8"]["wall_clock_speedup"] >= 1.8
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="dynamic checkpoint (dance3d aap); default: recorded keep rates")
    parser.add_argument(
        "--clip-shapes", help="TxHxW list (default: the DANCE run's clip, 16x112x112; ignored with --checkpoint)"
    )
    parser.add_argument(
        "--model", default="tiny", choices=list_models(), help="zoo model (random weights) without --checkpoint"
    )
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=60)
    parser.add_argument("--pool", type=int, default=16, help="decision sets cycled through (varied decisions)")
    parser.add_argument("--no-calibrate", dest="calibrate", action="store_false", help="use the analytic default")
    parser.add_argument("--calibration-repeats", type=int, default=7)
    parser.add_argument("--match-draws", type=int, default=32, help="decision sets per step of the MAC-fraction match")
    parser.add_argument("--no-sweep", dest="sweep", action="store_false", help="skip the break-even sweep")
    parser.add_argument(
        "--no-compile-controller",
        dest="compile_controller",
        action="store_false",
        help="time the eager controller only (default: also torch.compile'd, as --compile-controller in eval; "
        "the faster one counts)",
    )
    parser.add_argument(
        "--release-freed-memory",
        dest="retain_freed_memory",
        action="store_false",
        help="keep glibc's default of returning freed blocks to the OS (default: retain them, both models alike; "
        "profiling.retain_freed_memory)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny repeats, one shape (tag gets -quick)")
    parser.add_argument("--dance-result", type=Path, default=DANCE_RESULT, help="the DANCE run whose operating point "
                        "the drawn decisions follow (default: %(default)s)")  # fmt: skip
    parser.add_argument("--results-root", type=Path, default=RESULTS, help="default: %(default)s")
    parser.add_argument("--tag", help="the run's name (default: cpu, or cpu-<model> for another zoo model)")
    args = parser.parse_args(argv)
    if args.checkpoint and args.model != "tiny":
        parser.error("--model picks a zoo model for drawn decisions; a --checkpoint brings its own model")
    args.batch_sizes = [int(v) for v in args.batch_sizes.split(",")]
    try:
        args.operating_point = None if args.checkpoint else recorded_operating_point(args.dance_result)
    except ValueError as error:
        parser.error(str(error))
    recorded = "16x112x112" if args.checkpoint else "x".join(map(str, args.operating_point[2]))
    shapes = [tuple(int(v) for v in s.split("x")) for s in (args.clip_shapes or f"{recorded},16x112x112").split(",")]
    args.sweep = (0.25, 0.5, 0.75, 1.0) if args.sweep else ()
    args.sweep_pool, args.sweep_repeats = 4, max(10, args.repeats // 3)
    if args.quick:
        shapes, args.batch_sizes = shapes[:1], [1, 2]
        args.repeats, args.pool, args.calibration_repeats, args.compile_controller = 3, 2, 1, False
        args.sweep, args.sweep_pool, args.sweep_repeats = (0.5, 1.0) if args.sweep else (), 1, 2
    if args.checkpoint:
        shapes = shapes[:1]
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "operating_point"}
    settings["clip_shapes"] = ["x".join(map(str, shape)) for shape in shapes]
    tag = args.tag or ("cpu" if args.model == "tiny" or args.checkpoint else f"cpu-{args.model}")
    tag += "-quick" if args.quick else ""  # a smoke run never replaces a real result
    torch.set_num_threads(args.threads)
    retained = retain_freed_memory() if args.retain_freed_memory else False
    started = time.perf_counter()
    results, timings_s, targets = {}, {}, {}
    for shape in shapes:
        shape_started = time.perf_counter()
        result = run_shape(args, shape)
        result["targets"] = targets_met(result)
        name = "x".join(map(str, result["clip_shape"]))
        results[name] = result
        timings_s[name] = time.perf_counter() - shape_started
        targets.update({f"{name}.{key}": met for key, met in result["targets"].items()})
    timings_s["total"] = time.perf_counter() - started
    payload = {
        "benchmark": BENCHMARK,
        "tag": tag,
        "seed": 0,  # weights and decision draws
        "quick": args.quick,
        "settings": settings,  # after --quick's reductions: what ran
        "machine": {
            **collect_env(),
            "threads": args.threads,
            "device": "cpu",
            "freed_memory_retained": retained,
        },
        "timings_s": timings_s,
        "targets": targets,
        "notes": [
            "speedup = dense / compact median wall-clock; dense = fastest of eager, oneDNN-forced and oneDNN-forced "
            "with BatchNorm folded into the convs (torch.fx)",
            "compact time includes the controller and its decisions (timed apart on the same batch and added; the "
            "faster of eager and torch.compile'd, eager only with --no-compile-controller); decisions are replayed, "
            "so the replay's own host copy of them is counted twice (conservative)",
            "mac_fraction = analytic model.last_macs / dense MACs (spatial halo not counted)",
            "realisation_efficiency = speedup / mac_reduction_ratio = speedup * mac_fraction",
            "breakdown comes from a separate profiled pass (torch.profiler ranges of the compact code, module hooks "
            "per block; the profiler adds overhead); shares are of its total",
            "speedup_bound_kernels_only = dense / (compact's block convolutions + stem + controller, from the "
            "profiled pass): the speedup if gathers, scatters, index work, head and Python took no time",
            "break-even sweep: one axis at a kept fraction in every gate, others kept; dense = oneDNN path only",
            "targets: batch 1 speedup >= 2.0 with efficiency >= 0.75; batch 8 throughput gain >= 1.8",
        ],
        "results": results,
    }
    print_table(results)
    print(f"wrote {save_result(payload, args.results_root)}")
    return 0


def print_table(results: dict[str, Any]) -> None:
    """Per clip shape and batch: ratios, then the compact time's shares (profiled pass)."""
    rows = [(shape, key, entry) for shape, r in results.items() for key, entry in r.items() if key.startswith("batch")]
    parts = list(rows[0][2]["breakdown"]["shares"]) if rows else []
    print(f"{'clip':<11}{'batch':>6}{'MAC frac':>9}{'speedup':>9}{'effic.':>8}{'kernel bound':>13}")
    for shape, key, e in rows:
        print(f"{shape:<11}{key[5:]:>6}{e['mac_fraction']:>9.3f}{e['wall_clock_speedup']:>8.2f}x"
              f"{e['realisation_efficiency']:>8.2f}{e['speedup_bound_kernels_only']:>12.2f}x")  # fmt: skip
    print("shares of compact time (profiled pass):")
    print(f"{'part':<24}" + "".join(f"{shape + ' b' + key[5:]:>18}" for shape, key, _ in rows))
    for part in parts:
        print(f"{part:<24}" + "".join(f"{e['breakdown']['shares'][part]:>18.3f}" for _, _, e in rows))


if __name__ == "__main__":
    raise SystemExit(main())
