"""Shared fixtures: the repository root, the real params.yaml, a pre-migrated MLflow store."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


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
