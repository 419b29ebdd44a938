"""Params that would steer a write or fail late are refused by real stage processes: exit 2,
one line naming the key, nothing trained or written."""

from __future__ import annotations

import shutil
import subprocess
import sys

import yaml

from tests.e2e.conftest import make_env, make_workspace, set_params


def _run(ws, *argv):
    return subprocess.run([sys.executable, "-m", *argv], cwd=ws, env=make_env(None),
                          capture_output=True, text=True, timeout=300)


def test_a_model_name_that_is_a_path_is_refused_by_the_check_and_the_stage(tmp_path):
    ws = make_workspace(tmp_path / "ws", git=False)
    params = yaml.safe_load((ws / "params.yaml").read_text())
    params["autoencoder"]["../../somewhere/x"] = params["autoencoder"]["ae"]
    (ws / "params.yaml").write_text(yaml.safe_dump(params))
    message = "a model name must be letters, digits, '_' or '-'"
    check = _run(ws, "stages.check_params")
    assert check.returncode == 2 and message in check.stderr, check.stderr
    train = _run(ws, "stages.train", "autoencoder", "../../somewhere/x")
    assert train.returncode == 2 and message in train.stderr, train.stderr
    assert not (tmp_path / "somewhere").exists() and not (ws / "models").exists()


def test_a_batch_larger_than_the_data_is_a_config_error_before_training(tmp_path,
                                                                         prepared_data):
    ws = make_workspace(tmp_path / "ws", git=False)
    shutil.copytree(prepared_data, ws / "data")
    set_params(ws, {"tracking.enabled": False, "autoencoder.ae_toy.batch_size": 10_000_000})
    proc = _run(ws, "stages.train", "autoencoder", "ae_toy")
    assert proc.returncode == 2, proc.stderr
    assert "autoencoder.ae_toy.batch_size: 10000000 is larger than the training data" \
        in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (ws / "models" / "ae_toy.pt").exists()
    assert not (ws / "checkpoints" / "ae_toy").exists() or \
        not any((ws / "checkpoints" / "ae_toy").iterdir())
