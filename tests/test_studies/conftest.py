"""Fixtures: tiny dynamic and dense checkpoints shared by the study tests."""

from __future__ import annotations

import pytest
from study_helpers import save_dense, save_dynamic


@pytest.fixture(scope="session")
def dynamic_checkpoint(tmp_path_factory) -> str:
    return str(save_dynamic(tmp_path_factory.mktemp("dynamic") / "model.pt"))


@pytest.fixture(scope="session")
def dense_checkpoint(tmp_path_factory) -> str:
    return str(save_dense(tmp_path_factory.mktemp("static") / "model.pt"))
