"""Workspaces for end-to-end runs: a temp copy of the repo with the tiny params, the venv's
tools on PATH, and a private MLflow store."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

TINY = ROOT / "tests/e2e/params_tiny.yaml"
COPY = ["dvc.yaml", "stages", "src", "pyproject.toml", "docs/gpu-profile.yaml"]


def make_env(mlflow_uri: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DVC_", "MLFLOW_"))}
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}"
    env["DVC_NO_ANALYTICS"] = "1"
    env |= {"GIT_AUTHOR_NAME": "genlab-test", "GIT_AUTHOR_EMAIL": "test@genlab.invalid",
            "GIT_COMMITTER_NAME": "genlab-test", "GIT_COMMITTER_EMAIL": "test@genlab.invalid"}
    if mlflow_uri:
        env["MLFLOW_TRACKING_URI"] = mlflow_uri
    return env


def make_workspace(dest: Path, git: bool) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in COPY:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dest / name)
    shutil.copy(TINY, dest / "params.yaml")
    shutil.copy(ROOT / ".gitignore", dest / ".gitignore")
    if git:
        env = make_env(None)
        for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"],
                    ["dvc", "config", "core.analytics", "false"],
                    ["git", "add", "-A"], ["git", "commit", "-qm", "tiny"]):
            subprocess.run(cmd, cwd=dest, env=env, check=True, capture_output=True)
    return dest


def set_params(ws: Path, changes: dict) -> None:
    """Edit the workspace's params.yaml: {"a.b.c": value}."""
    params = yaml.safe_load((ws / "params.yaml").read_text())
    for path, value in changes.items():
        *parents, last = path.split(".")
        node = params
        for p in parents:
            node = node[p]
        node[last] = value
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def run(cmd: list[str], cwd: Path, env: dict, timeout: int = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="session")
def prepared_data(tmp_path_factory) -> Path:
    """data/ of the tiny params, made once by the real fetch + preprocess stages."""
    ws = make_workspace(tmp_path_factory.mktemp("prepared"), git=False)
    env = make_env(None)
    set_params(ws, {"tracking.enabled": False})
    for stage in ("fetch", "preprocess"):
        run([sys.executable, "-m", f"stages.{stage}"], ws, env)
    return ws / "data"
