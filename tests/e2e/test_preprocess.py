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


def test_a_raw_file_changed_since_the_fetch_is_refused(tmp_path, prepared_data):
    """Same size, one byte flipped: the IDX structure still parses, the recorded MD5 does not."""
    import subprocess

    ws = make_workspace(tmp_path / "tampered", git=False)
    shutil.copytree(prepared_data / "raw", ws / "data/raw")
    set_params(ws, {"tracking.enabled": False})
    path = ws / "data/raw/fashion_mnist/t10k-images-idx3-ubyte"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    proc = subprocess.run([sys.executable, "-m", "stages.preprocess"], cwd=ws, env=make_env(None),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "t10k-images-idx3-ubyte: its MD5" in proc.stderr and "rerun fetch" in proc.stderr
    assert not (ws / "data/processed").exists()
