"""Datasets: synthetic ``moving-digits`` and class-per-folder real videos."""

from dance3d.data.registry import DataConfig, build_dataset, dataset_classes

__all__ = ["DataConfig", "build_dataset", "dataset_classes"]
