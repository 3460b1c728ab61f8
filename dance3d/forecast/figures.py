"""Figures of forecasts: the last input frame, the truth and each model's prediction, per sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def prediction_figure(
    *,
    inputs: np.ndarray,
    targets: np.ndarray,
    predictions: dict[str, np.ndarray],
    variable: str,
    path: str | Path,
    title: str = "",
) -> Path:
    """One row per sample: last input, truth at the first and last lead, each model at the last lead.

    ``inputs`` (N, T_in, H, W), ``targets`` and each prediction (N, T_out, H, W), one channel in physical units.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(predictions)
    rows, cols = len(inputs), 3 + len(names)
    fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 1.9 * rows + 0.4), squeeze=False)
    lead = targets.shape[1]
    low, high = float(min(inputs.min(), targets.min())), float(max(inputs.max(), targets.max()))
    high = high if high > low else low + 1.0  # one colour scale for the whole figure: the data's range
    for r in range(rows):
        panels = [(inputs[r, -1], "last input"), (targets[r, 0], "truth +1"), (targets[r, -1], f"truth +{lead}")]
        panels += [(predictions[name][r, -1], f"{name} +{lead}") for name in names]
        for c, (image, label) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(image, vmin=low, vmax=high, cmap="viridis")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(label, fontsize=8)
    fig.suptitle(f"{title} ({variable})" if title else variable, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
