"""Figures of co-pruning: the masks of a calm and a stormy sample, and MACs against error per method."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dance3d.copruning.base import CoprunedForecaster
from dance3d.copruning.tiles import position_mask


@torch.no_grad()
def sample_masks(model: CoprunedForecaster, inputs: torch.Tensor) -> dict[str, np.ndarray]:
    """For (B, t_in, C, H, W) inputs: ``S`` and the data mask at input resolution (B, H, W), the
    forecast (B, t_out, C, H, W) and each sample's MAC fraction (B,)."""
    model.eval()
    forecast = model(inputs)
    decisions = model.last_decisions
    assert decisions is not None and model.last_mac_fraction is not None
    height, width = inputs.shape[-2:]
    scores = model.generator(inputs)[:, None]
    scale = height // scores.shape[-2] if height % scores.shape[-2] == 0 else 4
    upscaled = F.interpolate(scores, scale_factor=scale, mode="nearest")[:, 0, :height, :width]
    mask = position_mask(decisions.tiles, decisions.grid, scale=4)[:, 0, :height, :width]
    return {
        "scores": upscaled.numpy(),
        "data_mask": mask.numpy(),
        "forecast": forecast.numpy(),
        "mac_fraction": model.last_mac_fraction.numpy(),
    }


def masks_figure(
    *,
    inputs: np.ndarray,
    targets: np.ndarray,
    masks: dict[str, np.ndarray],
    labels: list[str],
    path: str | Path,
    value_range: tuple[float, float] = (0.0, 255.0),
    title: str = "",
) -> Path:
    """One row per sample: last input, ``S``, data mask, forecast and truth at the last lead.

    ``inputs`` (N, t_in, H, W) and ``targets`` (N, t_out, H, W) in physical units of one variable,
    drawn over ``value_range``; ``masks`` from :func:`sample_masks` with the forecast already in
    physical units (N, t_out, H, W).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = ("last input", "importance S", "data mask (kept tiles)", "co-pruned forecast", "truth")
    fig, axes = plt.subplots(len(labels), len(columns), figsize=(3.0 * len(columns), 3.0 * len(labels)), squeeze=False)
    vmin, vmax = value_range
    for row, label in enumerate(labels):
        panels = (
            (inputs[row, -1], dict(cmap="viridis", vmin=vmin, vmax=vmax)),
            (masks["scores"][row], dict(cmap="magma", vmin=0, vmax=1)),
            (masks["data_mask"][row], dict(cmap="gray", vmin=0, vmax=1)),
            (masks["forecast"][row, -1], dict(cmap="viridis", vmin=vmin, vmax=vmax)),
            (targets[row, -1], dict(cmap="viridis", vmin=vmin, vmax=vmax)),
        )
        for col, (image, style) in enumerate(panels):
            ax = axes[row, col]
            ax.imshow(image, **style)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(columns[col], fontsize=9)
        axes[row, 0].set_ylabel(f"{label}\nMAC fraction {masks['mac_fraction'][row]:.2f}", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def calm_and_stormy_figure(
    model: CoprunedForecaster,
    dataset,  # noqa: ANN001
    calm_fraction: dict[int, float],
    path: str | Path,
    *,
    title: str = "",
) -> Path:
    """:func:`masks_figure` of the calmest and the stormiest sample of ``dataset`` (a forecast split in
    normalised units, with ``mean`` / ``std`` and ``variables``), by ``calm_fraction`` (dataset index
    -> calm fraction). Its first variable is drawn: VIL over 0-255, any other over the two samples' range."""
    picks = [
        (max(calm_fraction, key=calm_fraction.get), "calmest"),
        (min(calm_fraction, key=calm_fraction.get), "stormiest"),
    ]
    items = [dataset[index] for index, _ in picks]
    inputs = torch.stack([item["inputs"] for item in items])
    targets = torch.stack([item["targets"] for item in items])
    mean, std = float(dataset.mean[0]), float(dataset.std[0])
    masks = sample_masks(model.set_mode("simulate"), inputs)
    masks["forecast"] = masks["forecast"][:, :, 0] * std + mean
    shown_inputs, shown_targets = inputs[:, :, 0].numpy() * std + mean, targets[:, :, 0].numpy() * std + mean
    variable = dataset.variables[0]
    if variable == "vil":
        value_range = (0.0, 255.0)
    else:
        value_range = (float(min(shown_inputs.min(), shown_targets.min())),
                       float(max(shown_inputs.max(), shown_targets.max())))  # fmt: skip
    return masks_figure(
        inputs=shown_inputs,
        targets=shown_targets,
        masks=masks,
        labels=[f"{label} (calm {calm_fraction[index]:.2f})" for index, label in picks],
        path=path,
        value_range=value_range,
        title=f"{title}: {variable}" if title else "",
    )


def mac_mse_figure(
    summary: dict[str, dict[str, float]], path: str | Path, *, title: str = "", mse_unit: str = "VIL levels^2"
) -> Path:
    """Mean MAC fraction (x) against test MSE in ``mse_unit`` (y), one point per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    for name, row in summary.items():
        marker, size = ("*", 140) if name == "coupled" else ("o", 40)
        ax.scatter(row["mac_fraction"], row["mse"], s=size, marker=marker, label=name, alpha=0.8)
    ax.legend(fontsize=8, loc="best")
    ax.set_xlabel("mean MAC fraction of dense (test split)")
    ax.set_ylabel(f"test MSE ({mse_unit})")
    ax.set_title(title or "MACs against forecast error")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


__all__ = ["calm_and_stormy_figure", "mac_mse_figure", "masks_figure", "sample_masks"]
