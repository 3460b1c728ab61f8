"""Matplotlib figures through the object API: no pyplot state and no backend switch, so plotting from
dance3d leaves a notebook's (or any caller's) matplotlib setup as it was. matplotlib is imported lazily."""

from __future__ import annotations

from typing import Any


def subplots(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float], squeeze: bool = True) -> tuple[Any, Any]:
    """A new ``matplotlib.figure.Figure`` and its axes, like ``pyplot.subplots`` but owned by the caller alone.

    ``fig.savefig(path)`` renders it (the file's format picks the renderer); nothing needs closing.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, squeeze=squeeze)
