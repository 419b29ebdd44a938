"""A training stage killed with SIGKILL mid-run resumes from its last checkpoint and ends with
the same weights as an uninterrupted run (CPU, same seed)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time

import pandas as pd
import torch

from genlab.training.checkpoint import load_checkpoint
from tests.e2e.conftest import make_env, make_workspace, run, set_params

STEPS = {"autoencoder.ae.steps": 200, "autoencoder.ae.ckpt_every": 20,
         "autoencoder.ae.log_every": 20,
         "tracking.enabled": False}


def _workspace(tmp_path, name, prepared_data):
    ws = make_workspace(tmp_path / name, git=False)
    shutil.copytree(prepared_data, ws / "data")
    set_params(ws, STEPS)
    return ws


def test_sigkill_then_resume_matches_uninterrupted(tmp_path, prepared_data):
    env = make_env(None)
    cmd = [sys.executable, "-m", "stages.train", "autoencoder", "ae"]

    # 1. Start, wait for a checkpoint past the first one, SIGKILL mid-run.
    killed = _workspace(tmp_path, "killed", prepared_data)
    ckpt = killed / "checkpoints/ae/last.pt"
    proc = subprocess.Popen(cmd, cwd=killed, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if ckpt.exists() and load_checkpoint(ckpt)["step"] >= 40:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    step_at_kill = load_checkpoint(ckpt)["step"]
    assert 40 <= step_at_kill < 200
    assert not (killed / "models/ae.pt").exists()

    # 2. Rerun: it must say where it restarted and record it.
    out = run(cmd, killed, env).stdout
    assert f"resumed from step {step_at_kill}" in out
    summary = json.loads((killed / "metrics/train/ae.json").read_text())
    assert summary["resumed_from_step"] == step_at_kill

    # 3. An uninterrupted run gives bit-identical weights (raw and EMA) and loss history.
    clean = _workspace(tmp_path, "clean", prepared_data)
    run(cmd, clean, env)
    a = torch.load(killed / "models/ae.pt", weights_only=True)
    b = torch.load(clean / "models/ae.pt", weights_only=True)
    for key in ("model", "ema"):
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), f"{key}.{name} differs"
    cols = ["step", "loss", "lr"]  # examples_per_s is a timing, the rest must match exactly
    assert (pd.read_csv(killed / "metrics/loss/ae.csv")[cols]
            .equals(pd.read_csv(clean / "metrics/loss/ae.csv")[cols]))


def test_a_code_edit_sets_the_checkpoint_aside(tmp_path, prepared_data):
    """DVC reruns train@ae when its code changes; the rerun must then train afresh, not resume
    the finished run at its last step and rewrite the old weights."""
    env = make_env(None)
    cmd = [sys.executable, "-m", "stages.train", "autoencoder", "ae"]
    ws = _workspace(tmp_path, "ws", prepared_data)
    set_params(ws, {"autoencoder.ae.steps": 40})
    where = run([sys.executable, "-c", "import stages, genlab; print(genlab.__file__)"], ws, env)
    assert where.stdout.strip() == str(ws / "src/genlab/__init__.py"), "runs another tree's code"
    run(cmd, ws, env)

    # Same params, same code: resumes at the end (nothing to train).
    out = run(cmd, ws, env)
    assert "resumed from step 40" in out.stdout + out.stderr

    # A code edit in the stage's import closure: the checkpoint is moved aside, step 0.
    ae = ws / "src/genlab/models/ae.py"
    ae.write_text(ae.read_text() + "\n# an edit\n")
    out = run(cmd, ws, env)
    assert "other params or code" in out.stdout + out.stderr
    assert json.loads((ws / "metrics/train/ae.json").read_text())["resumed_from_step"] == 0
    assert list((ws / "checkpoints/ae").glob("last.stale-*.pt")), "old checkpoint was lost"
