"""``load_model``: rebuild the model of any checkpoint kind dance3d ships.

Importing this module registers them: each method's ``checkpoint`` module registers its own kind
with :mod:`dance3d.checkpoint` when imported (a new method adds its import here).
"""

import dance3d.copruning.checkpoint  # noqa: F401 - kind "copruned"
import dance3d.dynamic.checkpoint  # noqa: F401 - kind "dynamic"
import dance3d.forecast.checkpoint  # noqa: F401 - kind "forecast"
import dance3d.mdp.checkpoint  # noqa: F401 - kind "pruned"
import dance3d.models  # noqa: F401 - kind "dense"
from dance3d.checkpoint import LoadedModel, load_model

__all__ = ["LoadedModel", "load_model"]
