"""Controller networks and decision primitives (a leaf package: imports nothing from dance3d).

- :mod:`controllers.primitives`: straight-through hard masks, keep-level quantisation;
- :mod:`controllers.stem_controller`: the DANCE controller that reads the stem output.
"""

from controllers.primitives import keep_counts, keep_mask_host, level_counts, ste_mask, topk_mask
from controllers.stem_controller import GateSpec, StemController, StemControllerOutput

__all__ = [
    "GateSpec",
    "StemController",
    "StemControllerOutput",
    "keep_counts",
    "keep_mask_host",
    "level_counts",
    "ste_mask",
    "topk_mask",
]
