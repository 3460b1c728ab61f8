"""Named ranges around the parts of compact execution, for ``torch.profiler``.

Compact execution marks its index work, gathers, scatters and convolutions with
:func:`torch.profiler.record_function` ranges while a profiler records, and with nothing otherwise
(one flag check, well under a microsecond). Read them from a profile with :func:`range_totals_ms`::

    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        model(clips)
    range_totals_ms(prof.events())  # {"gather": ..., "convolutions": ..., ...}

The ranges never nest inside one another, so their totals add up.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from torch.profiler import record_function

PREFIX = "dance3d.compact."
HOST_DECISIONS = "index: host decisions"  # the decisions' one device-to-host copy
PLAN_BUILDING = "index: plan building"  # a bucket's gather/scatter plan (cache misses only)
WEIGHT_SLICING = "index: weight slicing"  # a bucket's sliced weights (cache misses only)
GATHER = "gather"  # the compressed clip's frames and tile regions
SCATTER = "scatter"  # the residual added back at the kept positions
CONVOLUTIONS = "convolutions"  # the block's convs on the kept frames / channels / tiles
PARTS = (HOST_DECISIONS, PLAN_BUILDING, WEIGHT_SLICING, GATHER, SCATTER, CONVOLUTIONS)

_NO_RANGE = nullcontext()


def compact_range(part: str) -> AbstractContextManager[Any]:
    """A profiler range ``dance3d.compact.<part>`` while a profiler records, else a no-op."""
    if torch._C._autograd._profiler_enabled():
        return record_function(PREFIX + part)
    return _NO_RANGE


def range_totals_ms(events: Iterable[Any]) -> dict[str, float]:
    """Total wall ms of each part in profiler events (``prof.events()``); 0.0 for parts that never ran."""
    totals = dict.fromkeys(PARTS, 0.0)
    for event in events:
        name = event.name
        if name.startswith(PREFIX) and name[len(PREFIX) :] in totals:
            totals[name[len(PREFIX) :]] += event.cpu_time_total / 1e3  # profiler times are in microseconds
    return totals


__all__ = ["PARTS", "compact_range", "range_totals_ms"]
