"""The train stage under torchrun (2 gloo processes on the CPU): a rank killed with SIGKILL fails
the job cleanly and a rerun resumes exactly; the stage inside `dvc repro` tracks one MLflow run;
queued experiments run two at a time, each under its own MLflow parent run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

from genlab.training.checkpoint import load_checkpoint
from tests.e2e.conftest import make_env, make_workspace, run, set_params

pytestmark = pytest.mark.slow

DDP = {"runtime.processes": 2, "runtime.num_threads": 1, "tracking.enabled": False,
       "diffusion.edm_toy.steps": 300, "diffusion.edm_toy.ckpt_every": 10,
       "diffusion.edm_toy.log_every": 50}
TRAIN = [sys.executable, "-m", "stages.train", "diffusion", "edm_toy"]


def _workspace(path: Path, prepared_data: Path, changes: dict, git: bool = False) -> Path:
    ws = make_workspace(path, git=False)
    shutil.copytree(prepared_data, ws / "data")
    set_params(ws, changes)
    if git:
        env = make_env(None)
        for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"],
                    ["dvc", "config", "core.analytics", "false"]):
            subprocess.run(cmd, cwd=ws, env=env, check=True, capture_output=True)
    return ws


def _workers(root_pid: int) -> dict[int, int]:
    """{rank: pid} of the torchrun workers below root_pid (read from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = {}, [root_pid]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        ranks = [e.split(b"=", 1)[1] for e in env if e.startswith(b"RANK=")]
        if ranks and any(e.startswith(b"LOCAL_RANK=") for e in env):
            found[int(ranks[0])] = pid
    return found


def test_sigkill_of_one_rank_fails_cleanly_and_a_rerun_resumes(tmp_path, prepared_data):
    env = make_env(None)
    ws = _workspace(tmp_path / "killed", prepared_data, DDP)
    ckpt = ws / "checkpoints/edm_toy/last.pt"

    # 1. Two ranks; once a checkpoint past step 20 is written, SIGKILL rank 1.
    proc = subprocess.Popen(TRAIN, cwd=ws, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if ckpt.exists() and load_checkpoint(ckpt)["step"] >= 20:
            break
        time.sleep(0.01)
    workers = _workers(proc.pid)
    assert set(workers) == {0, 1}, f"the run ended before it could be killed: {workers}"
    os.kill(workers[1], signal.SIGKILL)
    out, _ = proc.communicate(timeout=120)

    # 2. The job fails with one clear line; the checkpoint is whole; nothing is published.
    assert proc.returncode == 2, out[-2000:]
    assert "torchrun exited with status" in out
    step_at_kill = load_checkpoint(ckpt)["step"]  # verifies the sha256
    assert 20 <= step_at_kill < 300
    assert not (ws / "models/edm_toy.pt").exists()
    assert not list(ckpt.parent.glob("*.tmp*"))

    # 3. A rerun resumes on both ranks and ends as an uninterrupted 2-process run does.
    out = run(TRAIN, ws, env).stdout
    assert out.count(f"resumed from step {step_at_kill}") == 2  # rank 0 and rank 1
    assert json.loads((ws / "metrics/train/edm_toy.json").read_text())[
        "resumed_from_step"] == step_at_kill
    clean = _workspace(tmp_path / "clean", prepared_data, DDP)
    run(TRAIN, clean, env)
    a = torch.load(ws / "models/edm_toy.pt", weights_only=True)
    b = torch.load(clean / "models/edm_toy.pt", weights_only=True)
    for key in ("model", "ema"):
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), f"{key}.{name} differs"


def test_a_batch_that_does_not_split_is_refused_before_torchrun(tmp_path, prepared_data):
    ws = _workspace(tmp_path / "odd", prepared_data, {**DDP, "runtime.processes": 3})
    proc = subprocess.run(TRAIN, cwd=ws, env=make_env(None), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert "diffusion.edm_toy.batch_size: 64 does not split into 3" in proc.stderr
    assert "torch.distributed.run" not in proc.stdout


def _runs(uri: str) -> list:
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("genlab")
    return client.search_runs([exp.experiment_id], max_results=1000)


def _dvc_workspace(tmp_path, prepared_data, migrated_db, changes):
    """A git + DVC repo whose fetch and preprocess outputs are in its DVC cache."""
    ws = _workspace(tmp_path / "repo", prepared_data, changes, git=True)
    db = tmp_path / "mlflow.db"
    shutil.copy(migrated_db, db)
    uri = f"sqlite:///{db}"
    env = make_env(uri)
    run(["dvc", "commit", "-f", "-q", "fetch", "preprocess"], ws, env)
    run(["git", "add", "-A"], ws, env)
    run(["git", "commit", "-qm", "data"], ws, env)
    return ws, env, uri


def test_a_two_process_stage_inside_dvc_repro(tmp_path, prepared_data, migrated_db):
    changes = {**DDP, "tracking.enabled": True, "diffusion.edm_toy.steps": 40,
               "tracking.system_metrics_s": 1.0}
    ws, env, uri = _dvc_workspace(tmp_path, prepared_data, migrated_db, changes)
    out = run(["dvc", "repro", "train-diffusion@edm_toy"], ws, env).stdout
    assert "--nproc-per-node 2 --standalone -m stages.train diffusion edm_toy" in out
    lock = yaml.safe_load((ws / "dvc.lock").read_text())["stages"]
    assert "train-diffusion@edm_toy" in lock and "preprocess" in lock
    summary = json.loads((ws / "metrics/train/edm_toy.json").read_text())
    assert summary["steps"] == 40 and summary["examples_seen"] == 40 * 64
    stage_runs = [r for r in _runs(uri) if r.info.run_name == "train-diffusion@edm_toy"]
    assert len(stage_runs) == 1  # rank 0 only
    assert stage_runs[0].data.metrics["steps"] == 40
    assert "train_loss" in stage_runs[0].data.metrics
    assert "system/cpu_utilization_percentage" in stage_runs[0].data.metrics


def test_queued_experiments_two_at_a_time_each_under_its_parent_run(
        tmp_path, prepared_data, migrated_db):
    changes = {"tracking.enabled": True, "runtime.num_threads": 1,
               "diffusion.edm_toy.steps": 30, "diffusion.edm_toy.log_every": 10}
    ws, env, uri = _dvc_workspace(tmp_path, prepared_data, migrated_db, changes)
    lrs = {"sweep-lr-1": 0.001, "sweep-lr-2": 0.004}
    t0 = time.perf_counter()
    for name, lr in lrs.items():
        run(["dvc", "exp", "run", "--queue", "-n", name, "-S", f"diffusion.edm_toy.lr={lr}",
             "train-diffusion@edm_toy"], ws, env)
    run(["dvc", "queue", "start", "-j", "2"], ws, env)
    deadline = time.time() + 600
    while time.time() < deadline:
        status = run(["dvc", "queue", "status"], ws, env).stdout
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(2)
    print(f"sweep of 2 queued experiments, -j 2: {time.perf_counter() - t0:.1f} s")
    assert "Failed" not in status, status + run(["dvc", "queue", "logs", "sweep-lr-1"],
                                                ws, env).stdout
    shown = json.loads(run(["dvc", "exp", "show", "--json"], ws, env).stdout)
    names = {e.get("name") for b in shown for e in (b.get("experiments") or [])}
    assert set(lrs) <= names
    runs = _runs(uri)
    for name, lr in lrs.items():
        (parent,) = [r for r in runs if r.data.tags.get("genlab_pipeline") == name]
        assert parent.info.run_name == name
        (child,) = [r for r in runs if r.data.tags.get("mlflow.parentRunId") ==
                    parent.info.run_id]
        assert child.info.run_name == "train-diffusion@edm_toy"
        assert float(child.data.params["diffusion.edm_toy.lr"]) == lr
        assert child.data.metrics["steps"] == 30
