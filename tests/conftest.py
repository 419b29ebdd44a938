"""Shared fixtures: the repository root, the real params.yaml, a pre-migrated MLflow store."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

# Test files that take minutes, longest first. `make test` runs pytest-xdist with
# --dist loadfile (every file on one worker, files handed out in collection order), so these
# go first: started last, the pipeline's module alone would set the suite's wall time.
LONG_FILES = ("tests/e2e/test_pipeline.py", "tests/benchmarks/gpu/test_inductor_layouts.py",
              "tests/e2e/test_diffusion_stages.py", "tests/e2e/test_resume.py",
              "tests/e2e/test_presets.py")


def pytest_collection_modifyitems(session, config, items):
    """Long files first, the rest in the usual order (a stable sort)."""
    rank = {path: i for i, path in enumerate(LONG_FILES)}
    items.sort(key=lambda item: rank.get(item.location[0], len(rank)))


@pytest.fixture
def params() -> dict:
    """A fresh copy of the committed params.yaml."""
    return yaml.safe_load((ROOT / "params.yaml").read_text())


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory) -> Path:
    """An MLflow SQLite store whose schema is built once per session (it takes ~1.5 s)."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow") / "template.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def mlflow_uri(migrated_db, tmp_path) -> str:
    """A private copy of the migrated store for one test."""
    db = tmp_path / "mlflow.db"
    shutil.copy(migrated_db, db)
    return f"sqlite:///{db}"
