from dataclasses import dataclass, field

import pytest

from dance3d.config import load_config, parse_overrides, save_config
from dance3d.errors import ConfigError
from dance3d.training.trainer import RunConfig


@dataclass(frozen=True)
class Inner:
    rate: float = 0.1
    names: tuple[str, ...] = ("a",)


@dataclass(frozen=True)
class Outer:
    inner: Inner = field(default_factory=Inner)
    count: int = 3
    path: str | None = None


def test_overrides_nest_and_parse_values():
    assert parse_overrides(["a.b=1", "a.c=x", "d=[1, 2]"]) == {"a": {"b": 1, "c": "x"}, "d": [1, 2]}


def test_file_then_overrides_win(tmp_path):
    (tmp_path / "c.yaml").write_text("count: 5\ninner:\n  rate: 0.5\n")
    config = load_config(Outer, path=tmp_path / "c.yaml", overrides=["inner.rate=0.25", "inner.names=x,y"])
    assert config == Outer(inner=Inner(rate=0.25, names=("x", "y")), count=5)


def test_toml_config(tmp_path):
    (tmp_path / "c.toml").write_text('count = 7\npath = "/data"\n[inner]\nrate = 2\n')
    config = load_config(Outer, path=tmp_path / "c.toml")
    assert config.count == 7 and config.path == "/data" and config.inner.rate == 2.0


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("cuont=3", "unknown config key(s) cuont"),
        ("count=three", "count: expected an integer"),
        ("inner.rate=fast", "inner.rate: expected a number"),
        ("count", "must look like key=value"),
    ],
)
def test_bad_values_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(Outer, overrides=[override])


def test_validation_errors_become_config_errors():
    with pytest.raises(ConfigError, match="train.epochs must be >= 1, got 0"):
        load_config(RunConfig, overrides=["train.epochs=0"])
    with pytest.raises(ConfigError, match="not one of 'adamw', 'sgd'"):
        load_config(RunConfig, overrides=["train.optimizer=adam"])


def test_model_options_are_a_mapping_of_builder_keywords():
    config = load_config(RunConfig, overrides=["train.model_options.inner_multiplier=0.5"])
    assert config.train.model_options == {"inner_multiplier": 0.5}
    with pytest.raises(ConfigError, match="train.model_options: expected a mapping"):
        load_config(RunConfig, overrides=["train.model_options=0.5"])


def test_saved_config_loads_back(tmp_path):
    config = load_config(RunConfig, overrides=["train.lr=0.01", "data.num_frames=8"])
    save_config(config, tmp_path / "config.yaml")
    assert load_config(RunConfig, path=tmp_path / "config.yaml") == config
