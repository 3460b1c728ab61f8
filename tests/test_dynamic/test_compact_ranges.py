"""Compact execution's profiler ranges: present under torch.profiler, disjoint, and no-ops without one."""

import time

import torch
from model_helpers import make_dense
from test_compact import Always, partial_decisions

from dance3d.dynamic import DynamicConfig, convert_model, set_execution_mode
from dance3d.dynamic.compact_ranges import PARTS, PREFIX, compact_range, range_totals_ms

CLIP = (8, 64, 64)


def _profiled_forward(model, clips, decisions) -> tuple[dict[str, float], list, float]:
    # the autograd profiler sees the same record_function ranges as torch.profiler.profile (which the
    # benchmarks use) and starts in milliseconds rather than seconds on a CPU-only machine
    with torch.inference_mode(), torch.autograd.profiler.profile(use_kineto=False) as prof:
        start = time.perf_counter()
        model(clips, decisions=decisions)
        total_ms = (time.perf_counter() - start) * 1e3
    events = list(prof.function_events)
    return range_totals_ms(events), events, total_ms


def test_every_part_of_a_first_compact_forward_shows_up_as_a_profiler_range():
    config = DynamicConfig(channel_multiple=4, tile_size=8)
    model = convert_model(make_dense("tiny-test"), clip_shape=CLIP, config=config)
    model.eval().compact_calibration = Always("compact")  # tiled buckets: gathers of tile regions and scatters
    set_execution_mode(model, "compact")
    decisions = partial_decisions(model, 2, seed=5)
    clips = torch.rand(2, 3, *CLIP)
    totals, events, total_ms = _profiled_forward(model, clips, decisions)
    assert set(totals) == set(PARTS)
    assert all(totals[part] > 0 for part in PARTS), totals  # first forward: plans and weights are built too
    assert sum(totals.values()) <= total_ms  # disjoint ranges inside the forward
    names = [e.name for e in events if e.name.startswith(PREFIX)]
    convs_per_forward = names.count(PREFIX + "convolutions")
    assert convs_per_forward >= sum(len(g.compact_runtime.stages) for g in model.gated)

    again, events, _ = _profiled_forward(model, clips, decisions)  # the same decisions: cached plans and weights
    assert again["index: plan building"] == 0.0 and again["index: weight slicing"] == 0.0
    assert [e.name for e in events if e.name.startswith(PREFIX)].count(PREFIX + "convolutions") == convs_per_forward


def test_ranges_record_nothing_without_a_profiler():
    with compact_range("gather"):
        pass
    with torch.autograd.profiler.profile(use_kineto=False) as prof:
        with compact_range("gather"):
            torch.zeros(1)
    assert range_totals_ms(prof.function_events)["gather"] > 0
    assert compact_range("gather") is compact_range("scatter")  # outside a profiler: the one shared no-op
