"""The quickstart's forecasting stage: a tiny forecaster on ``storms``, scored against persistence.

Resumable like the other stages: a finished ``model.pt`` is reused (a killed training resumes) and
the test scores are cached in ``eval.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from dance3d.checkpoint import load_checkpoint, load_model
from dance3d.data.forecast.config import ForecastDataConfig
from dance3d.data.registry import DataConfig, build_dataset
from dance3d.forecast.evaluation import evaluate_forecast
from dance3d.forecast.figures import prediction_figure
from dance3d.training.trainer import RunConfig, TrainConfig, train
from profiling.strict_json import dumps_strict

FIGURE_SAMPLES = 3


@dataclass(frozen=True)
class ForecastStageSettings:
    """What the stage trains: ``model`` on ``data`` (storms by default) for ``epochs``.

    The spatio-temporal Transformer on 64 x 64 fields by default: the backbone whose co-pruning drops
    tokens and so runs faster than dense on a CPU (SimVP's tiled compact path does not, at these sizes).
    """

    data: DataConfig = field(
        default_factory=lambda: DataConfig(
            source="storms", forecast=ForecastDataConfig(height=64, width=64, num_train=256, num_val=32, num_test=128)
        )
    )
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            model="stformer-tiny",
            epochs=3,
            batch_size=16,
            lr=3e-3,
            weight_decay=0.01,
            warmup_steps=10,
            num_workers=0,
        )  # fmt: skip
    )


@dataclass
class ForecastStageResult:
    heading: str
    text: str
    table: pd.DataFrame
    figures: list[Path]


def run_forecast_stage(settings: ForecastStageSettings, out_dir: Path) -> ForecastStageResult:
    """Train (or reuse) the forecaster, score it and persistence on the test split, draw a few forecasts."""
    out_dir = Path(out_dir)
    config = RunConfig(data=settings.data, train=settings.train)
    checkpoint = out_dir / "model.pt"
    if not checkpoint.is_file():
        train(config, out_dir)
    elif load_checkpoint(checkpoint).get("epochs_done", 0) < config.train.epochs:
        train(config, out_dir, resume=True)
    loaded = load_model(checkpoint)
    test_set = build_dataset(settings.data, "test", classes=loaded.classes)
    cached = out_dir / "eval.json"
    if cached.is_file():
        scores = json.loads(cached.read_text())
    else:
        scores = evaluate_forecast(loaded.model, test_set, progress=False).to_dict(with_records=False)
        cached.write_text(dumps_strict(scores))
    figure = _figure(loaded.model, test_set, out_dir / "forecast_predictions.png")
    rows = {side: _row(scores[side]) for side in ("model", "persistence")}
    table = pd.DataFrame(rows).T.rename(index={"model": settings.train.model})
    ratio = scores["mse_ratio_to_persistence"]
    text = (
        f"`{settings.train.model}` trained {settings.train.epochs} epochs on {settings.data.forecast.num_train} "
        f"`{settings.data.source}` samples (VIL-like radar cells); on {scores['num_samples']} test samples its MSE is "
        f"{ratio:.2f} x persistence's (the last input frame repeated: the floor every forecaster must beat). "
        f"Scores in VIL levels (0-255). Evaluate with `dance3d eval --checkpoint {checkpoint}`; "
        "see docs/forecasting.md."
    )
    return ForecastStageResult("Forecasting: storms vs persistence", text, table, [figure])


def _row(scores: dict) -> dict[str, float]:
    csi = {f"CSI >= {level}": scores["categorical"][level]["csi"] for level in ("16", "74", "133")}
    return {"MSE": scores["mse"], "MAE": scores["mae"], **csi}


@torch.no_grad()
def _figure(model: torch.nn.Module, dataset, path: Path) -> Path:  # noqa: ANN001
    batch = [dataset[i] for i in range(FIGURE_SAMPLES)]
    inputs = torch.stack([b["inputs"] for b in batch])
    targets = torch.stack([b["targets"] for b in batch])
    mean, std = float(dataset.mean[0]), float(dataset.std[0])

    def physical(x: torch.Tensor):  # noqa: ANN202
        return x[:, :, 0].numpy() * std + mean

    return prediction_figure(
        inputs=physical(inputs),
        targets=physical(targets),
        predictions={
            "model": physical(model.eval()(inputs)),
            "persistence": physical(inputs[:, -1:].expand_as(targets)),
        },
        variable=dataset.variables[0],
        path=path,
        title="storms test samples",
    )
