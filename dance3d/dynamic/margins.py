"""How far a trained controller's logits sit from changing a kept count: why an axis adapts or not.

A gated block keeps, per clip and axis, the smallest allowed level >= the number of positive logits
(:func:`controllers.primitives.keep_counts`). With logits sorted from the largest and ranked from
0, a clip's count goes **up** a level exactly when the logit at rank ``kept`` turns positive, and
**down** to the next lower level ``L`` exactly when the logit at rank ``L`` turns negative. The
margins say how far those logits must move; the clip spread says how far the clips move a logit.
Margins many times the clip spread mean no clip can change the count: that axis is static in
practice, however input-dependent the controller is in form.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from controllers.primitives import keep_counts
from dance3d.dynamic.knobs import AXES
from dance3d.dynamic.model import DynamicModel
from dance3d.errors import ConfigError


def controller_logits(model: DynamicModel, clips: torch.Tensor, *, axis: str) -> list[torch.Tensor]:
    """Per gated block, the logits (B, units) of ``axis`` on ``clips``, run-time offsets included."""
    if axis not in AXES:
        raise ConfigError(f"unknown axis {axis!r}; choose from {', '.join(AXES)}")
    with torch.no_grad():
        model(clips)
    out = model.last_controller_output  # the forward's own controller run, in every execution mode
    per_gate = {"frames": out.frame_logits, "channels": out.channel_logits, "tiles": out.tile_logits}[axis]
    column = AXES.index(axis)
    return [logits + model.logit_offsets[i, column] for i, logits in enumerate(per_gate)]


def decision_margins(model: DynamicModel, clips: torch.Tensor, *, axis: str = "channels") -> pd.DataFrame:
    """One row per gated block with a choice on ``axis``: the kept counts the clips got and the margins.

    Columns: ``units``, ``levels``, ``kept_counts`` (the distinct counts over the clips), ``wanted_min`` /
    ``wanted_max`` (positive logits per clip), ``up_margin`` / ``down_margin`` (mean over the clips that
    have a level above / below of how far the deciding logit must move; NaN where none has),
    ``clip_std`` (the mean over the block's units of each logit's std across clips) and
    ``margin_in_clip_stds`` (the smaller margin over ``clip_std``).
    """
    if clips.shape[0] < 2:
        raise ConfigError("decision_margins needs at least 2 clips (the clip spread is a std across clips)")
    rows = []
    for index, logits in enumerate(controller_logits(model, clips, axis=axis)):
        levels = getattr(model.levels[index], axis)
        if len(levels) < 2:
            continue
        logits = logits.detach().float().cpu()
        ranked = logits.sort(dim=1, descending=True).values
        kept = keep_counts(logits, levels)
        level_index = torch.searchsorted(torch.tensor(levels), kept)
        ups = [-float(ranked[b, k]) for b, k in enumerate(kept.tolist()) if k < levels[-1]]
        downs = [float(ranked[b, levels[i - 1]]) for b, i in enumerate(level_index.tolist()) if i > 0]
        clip_std = float(logits.std(dim=0).mean())
        up, down = (float(np.mean(m)) if m else float("nan") for m in (ups, downs))
        wanted = (logits > 0).sum(dim=1)
        rows.append(
            {
                "block": index,
                "units": logits.shape[1],
                "levels": list(levels),
                "kept_counts": sorted(set(kept.tolist())),
                "wanted_min": int(wanted.min()),
                "wanted_max": int(wanted.max()),
                "up_margin": up,
                "down_margin": down,
                "clip_std": clip_std,
                "margin_in_clip_stds": float(np.nanmin([up, down]) / clip_std) if clip_std > 0 else float("inf"),
            }
        )
    return pd.DataFrame(rows)
