"""preprocess is deterministic: the same params give byte-identical arrays (same sha256s)."""

from __future__ import annotations

import json
import shutil
import sys

from tests.e2e.conftest import make_env, make_workspace, run, set_params


def test_same_params_same_bytes(tmp_path, prepared_data):
    ws = make_workspace(tmp_path / "again", git=False)
    shutil.copytree(prepared_data / "raw", ws / "data/raw")
    set_params(ws, {"tracking.enabled": False})
    run([sys.executable, "-m", "stages.preprocess"], ws, make_env(None))
    first = json.loads((prepared_data / "processed/manifest.json").read_text())
    again = json.loads((ws / "data/processed/manifest.json").read_text())
    assert again == first
    assert {"fashion_mnist/train_x", "toy2d/two_moons/train_x", "moving_fmnist/train"} <= set(
        first["arrays"])
