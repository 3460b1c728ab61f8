"""The forecasting task's hooks into the dense trainer: data, model options, loss, validation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import Dataset

from dance3d.data.forecast.config import is_forecast_source
from dance3d.data.registry import DataConfig, build_dataset
from dance3d.errors import ConfigError
from dance3d.forecast.evaluation import evaluate_forecast

KIND = "forecast"  # checkpoint kind of a trained forecaster


@dataclass(frozen=True)
class ForecastTask:
    """Loss = MSE on normalised values; a checkpoint's ``classes`` are the forecast variables."""

    data: DataConfig
    kind: str = KIND

    @classmethod
    def for_data(cls, data: DataConfig) -> ForecastTask | None:
        """The task when ``data`` is forecasting data, else None (classification)."""
        return cls(data) if is_forecast_source(data.source) else None

    def datasets(self) -> tuple[Dataset, Dataset, tuple[str, ...]]:
        """(train, val, variables)."""
        train_set = build_dataset(self.data, "train")
        variables = tuple(train_set.variables)
        return train_set, build_dataset(self.data, "val", classes=variables), variables

    @staticmethod
    def model_options(model_name: str, options: dict[str, Any], train_set: Dataset) -> dict[str, Any]:
        """The builder keywords of a forecaster for this data: its frame counts, then the user's options."""
        from dance3d.models import model_info

        info = model_info(model_name)
        if info.family != KIND:
            from dance3d.models import list_models

            raise ConfigError(
                f"model {model_name!r} is not a forecaster; forecasting models: {', '.join(list_models(KIND))}"
            )
        sample = train_set[0]
        return {"t_in": int(sample["inputs"].shape[0]), "t_out": int(sample["targets"].shape[0]), **options}

    @staticmethod
    def loss(net: nn.Module, batch: dict[str, Any], device: torch.device) -> tuple[torch.Tensor, int]:
        """(MSE on normalised values, batch size)."""
        inputs, targets = batch["inputs"].to(device), batch["targets"].to(device)
        return F.mse_loss(net(inputs).float(), targets), len(inputs)

    @staticmethod
    def validate(model: nn.Module, val_set: Dataset, *, batch_size: int, device: torch.device) -> dict[str, float]:
        """Validation MSE (normalised) of the model and of persistence."""
        result = evaluate_forecast(model, val_set, batch_size=batch_size, device=device, progress=False)
        return {"val_mse": result.mse_normalised, "val_persistence_mse": result.persistence_mse_normalised}
