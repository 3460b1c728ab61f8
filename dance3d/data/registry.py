"""Pick a dataset from a ``DataConfig``: ``moving-digits`` or a path to a video folder."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from torch.utils.data import Dataset

from dance3d.data.forecast.config import ForecastDataConfig, is_forecast_source
from dance3d.data.moving_digits import MovingDigits, MovingDigitsConfig, task_classes
from dance3d.errors import ConfigError, DataError

MOVING_DIGITS = "moving-digits"


@dataclass(frozen=True)
class DataConfig:
    """Where clips come from and their shape. ``source`` is ``moving-digits`` or a folder path.

    A folder either holds ``<class>/<video>`` directly or ``train|val|test/<class>/<video>``.
    """

    source: str = MOVING_DIGITS
    num_frames: int = 16
    height: int = 64
    width: int = 64
    seed: int = 0
    num_train: int = 2400
    num_val: int = 400
    num_test: int = 800
    skip_bad: bool = False
    task: str = "direction"  # moving-digits only: "direction" (8 classes) or "digit-direction" (80)
    max_noise_std: float = 0.12  # moving-digits only: each clip's noise std is drawn from [0, max_noise_std]
    max_distractors: int = 3  # moving-digits only: up to this many static digits (clutter)
    max_moving_distractors: int = 0  # moving-digits only: up to this many smaller, dimmer digits move too
    untrimmed: bool = False  # moving-digits only: one event of per-clip length/position/speed (>= 32 frames)
    forecast: ForecastDataConfig = field(default_factory=ForecastDataConfig)  # forecasting data only

    def __post_init__(self) -> None:
        if self.is_synthetic:
            try:
                self.moving_digits()
            except ValueError as error:
                raise ConfigError(f"data: {error}") from error

    def with_clip_shape(self, clip_shape: tuple[int, int, int]) -> DataConfig:
        """These settings with clips of ``(frames, height, width)`` (e.g. a model's own clip shape)."""
        frames, height, width = clip_shape
        return replace(self, num_frames=frames, height=height, width=width)

    @property
    def is_synthetic(self) -> bool:
        return self.source == MOVING_DIGITS

    def moving_digits(self) -> MovingDigitsConfig:
        return MovingDigitsConfig(
            num_frames=self.num_frames,
            height=self.height,
            width=self.width,
            seed=self.seed,
            num_train=self.num_train,
            num_val=self.num_val,
            num_test=self.num_test,
            task=self.task,
            max_noise_std=self.max_noise_std,
            max_distractors=self.max_distractors,
            max_moving_distractors=self.max_moving_distractors,
            untrimmed=self.untrimmed,
        )


def _split_root(root: Path, split: str) -> Path:
    if not root.exists():
        raise DataError(f"data path not found: {root} (expected moving-digits or a video folder)")
    if not root.is_dir():
        raise DataError(f"data path is not a directory: {root}")
    return root / split if (root / split).is_dir() else root


def build_dataset(config: DataConfig, split: str, *, classes: tuple[str, ...] | None = None) -> Dataset:
    """The dataset of ``split``; ``classes`` fixes the label order (e.g. a checkpoint's).

    Forecasting sources (``storms``, ``traffic``, ``weather``, ``grid:NAME``, a field file) give
    forecasting samples; for them ``classes`` are the variables the model forecasts.
    """
    if is_forecast_source(config.source):
        from dance3d.data.forecast.data import build_forecast_dataset

        return build_forecast_dataset(config.source, config.forecast, split, seed=config.seed, variables=classes)
    if config.is_synthetic:
        if classes is not None and tuple(classes) != task_classes(config.task):
            raise DataError(
                f"this model was not trained on the classes of moving-digits task {config.task!r}; "
                "pass a video folder or the task it was trained on (data.task)"
            )
        return MovingDigits(split, config.moving_digits())
    from dance3d.data.video_folder import VideoFolderConfig, VideoFolderDataset

    video_config = VideoFolderConfig(
        num_frames=config.num_frames, height=config.height, width=config.width, skip_bad=config.skip_bad
    )
    root = _split_root(Path(config.source).expanduser(), split)
    return VideoFolderDataset(root, video_config, classes=classes, seed=config.seed)


def dataset_classes(dataset: Dataset) -> tuple[str, ...]:
    """Class names of a dataset built here."""
    return tuple(dataset.classes)
