"""Tracking through store outages (issue 26, part 3): MLflow's own server app, in-process on
loopback over a real SQLite store, behind a switch that answers 500s, hangs (client timeouts)
or closes the port (refused connections). Nothing logged may be lost or duplicated, the time
a stage loses stays within the budget, and runs end FINISHED / FAILED / KILLED."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from mlflow.tracking import MlflowClient

from genlab.tracking.mlflow_tracker import (
    BUDGET_S,
    StageTracker,
    TrackingTarget,
    read_records,
    replay,
    sync,
)
from tests.conftest import ROOT

STEPS, WORK_S = 30, 0.1  # a stage: STEPS steps of WORK_S seconds, one flush per step
PARAMS = {"train.tiny.lr": 0.001, "train.tiny.steps": STEPS}


class FaultSwitch:
    """WSGI middleware: pass requests to MLflow's app, or answer 500, or hang until released."""

    def __init__(self, app):
        self.app, self.mode, self.release = app, "ok", threading.Event()

    def __call__(self, environ, start_response):
        mode = self.mode
        if mode == "hang":  # until the client has timed out and the test switches back
            self.release.wait(20)
        if mode != "ok":
            start_response("500 INTERNAL SERVER ERROR", [("Content-Type", "application/json")])
            return [b'{"error_code": "INTERNAL_ERROR", "message": "injected fault"}']
        return self.app(environ, start_response)


class Server:
    """MLflow's tracking server on 127.0.0.1 in a thread; set("refused") closes the port and a
    later set("ok") reopens it on the same port."""

    def __init__(self, app):
        self.switch, self.port, self.httpd = FaultSwitch(app), 0, None
        self.start()

    def start(self):
        from werkzeug.serving import make_server

        self.httpd = make_server("127.0.0.1", self.port, self.switch, threaded=True)
        self.port = self.httpd.server_port
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    def stop(self):
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

    def set(self, mode: str) -> float:
        """Switch the fault; returns the seconds the switch itself took (not the stage's)."""
        t0 = time.monotonic()
        if mode == "refused":
            self.stop()
        elif self.httpd is None:
            self.start()
        self.switch.release.set()  # frees requests hanging from before
        self.switch.release = threading.Event()
        self.switch.mode = "ok" if mode == "refused" else mode
        return time.monotonic() - t0

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def server(migrated_db, tmp_path_factory):
    folder = tmp_path_factory.mktemp("server")
    shutil.copy(migrated_db, folder / "mlflow.db")
    os.environ["_MLFLOW_SERVER_FILE_STORE"] = f"sqlite:///{folder / 'mlflow.db'}"
    os.environ["_MLFLOW_SERVER_ARTIFACT_ROOT"] = str(folder / "artifacts")
    from mlflow.server import app

    srv = Server(app)
    srv.db = MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")  # read behind it
    yield srv
    srv.set("ok")
    srv.stop()


@pytest.fixture(autouse=True)
def short_http(monkeypatch):
    for var in ("MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
                "GENLAB_TRACKING_BUDGET_S", "GENLAB_TRACKING_SPOOL"):
        monkeypatch.delenv(var, raising=False)  # the tracker's own defaults


def target(uri, tmp_path, stage="train@tiny") -> TrackingTarget:
    return TrackingTarget(uri=uri, experiment=f"outage-{tmp_path.name}",
                          artifact_location=(tmp_path / "artifacts").as_uri(),
                          pipeline_run=f"pipe-{tmp_path.name}", stage_run=stage)


def run_stage(tgt, server=None, faults=None, fail_at=None, limit_s=60.0):
    """A fake stage: STEPS steps, each logs two metrics and flushes; `faults` {step: mode}
    switches the server before that step. Returns (tracker, logged points, seconds lost).
    It runs in a thread, so that a tracker without a time budget fails the test fast."""
    out = {}

    def body():
        logged, switching, t0 = set(), 0.0, time.monotonic()
        try:
            with StageTracker(tgt, PARAMS) as tr:
                out["tr"] = tr
                for step in range(1, STEPS + 1):
                    if server and step in (faults or {}):
                        switching += server.set(faults[step])
                    if step == fail_at:
                        raise RuntimeError("the stage fails")
                    time.sleep(WORK_S)
                    tr.log_metrics({"loss": 1.0 / step, "lr": 0.001 * step}, step)
                    logged |= {("loss", step, 1.0 / step), ("lr", step, 0.001 * step)}
                    tr.flush()
                tr.set_tags({"out.models/tiny.pt": "abc123"})
        except RuntimeError:
            pass
        out["logged"] = logged
        out["lost"] = time.monotonic() - t0 - STEPS * WORK_S - switching

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    thread.join(limit_s)
    assert not thread.is_alive(), f"the stage did not end within {limit_s} s"
    return out["tr"], out["logged"], out["lost"]


def points(client, run_id) -> list[tuple]:
    return sorted((m.key, m.step, m.value) for key in ("loss", "lr")
                  for m in client.get_metric_history(run_id, key))


def the_run(client, tgt):
    exp = client.get_experiment_by_name(tgt.experiment)
    runs = client.search_runs([exp.experiment_id], f"attributes.run_name = '{tgt.stage_run}'")
    assert len(runs) == 1, [r.info.run_name for r in runs]
    return runs[0]


def parent_of(client, run):
    return client.get_run(run.data.tags["mlflow.parentRunId"])


@pytest.mark.parametrize("fault", ["500", "hang", "refused"])
def test_outage_mid_stage_is_replayed_later_in_the_stage(server, tmp_path, fault):
    tgt = target(server.uri, tmp_path)
    tr, logged, lost = run_stage(tgt, server, faults={5: fault, 12: "ok"})
    run = the_run(server.db, tgt)
    assert run.info.run_id == tr.run_id and tr.online
    assert points(server.db, tr.run_id) == sorted(logged)  # no gap, no duplicate
    assert run.data.params["train.tiny.lr"] == "0.001"
    assert run.data.tags["out.models/tiny.pt"] == "abc123"
    assert run.info.status == "FINISHED" and parent_of(server.db, run).info.status == "FINISHED"
    assert not list((tmp_path / "mlspool").glob("*.jsonl"))
    assert lost <= BUDGET_S + 1.0


def test_server_hanging_the_whole_stage_costs_the_budget_then_sync_replays(server, tmp_path):
    tgt = target(server.uri, tmp_path)
    server.set("hang")
    try:
        tr, logged, lost = run_stage(tgt)
    finally:
        server.set("ok")
    assert tr.run_id is None  # never created: the spool has a placeholder
    assert lost <= BUDGET_S + 1.0, f"{lost:.1f} s lost with the server hanging"
    (spool,) = (tmp_path / "mlspool").glob("*.jsonl")
    kept = read_records(spool)

    report = sync(tgt)
    assert len(report.replayed) == 1 and not report.failed and not spool.exists()
    run = the_run(server.db, tgt)
    assert points(server.db, run.info.run_id) == sorted(logged)
    assert run.info.status == "FINISHED" and run.data.params["train.tiny.steps"] == str(STEPS)
    assert parent_of(server.db, run).info.status == "FINISHED"

    assert replay(server.db, kept)[0] == run.info.run_id  # a second replay adds nothing
    assert points(server.db, run.info.run_id) == sorted(logged)
    assert len(server.db.search_runs([run.info.experiment_id])) == 2  # parent + stage


def test_500s_to_the_end_replay_into_the_same_run_id_and_end_failed(server, tmp_path):
    tgt = target(server.uri, tmp_path)
    try:
        tr, logged, _ = run_stage(tgt, server, faults={10: "500"}, fail_at=20)
    finally:
        server.set("ok")
    assert tr.run_id is not None and not tr.online
    assert the_run(server.db, tgt).info.status == "RUNNING"  # nothing reached it since step 10

    report = sync(tgt)
    assert report.replayed == [tr.run_id]
    run = server.db.get_run(tr.run_id)
    assert points(server.db, tr.run_id) == sorted(logged) and len(logged) == 2 * 19
    assert run.info.status == "FAILED" and parent_of(server.db, run).info.status == "FAILED"
    assert sync(tgt).replayed == []  # nothing left


def test_refused_store_is_replayed_by_the_next_stage(server, tmp_path):
    first = target(server.uri, tmp_path, stage="train@tiny")
    server.set("refused")
    try:
        tr, logged, lost = run_stage(first)
    finally:
        server.set("ok")
    assert tr.run_id is None and lost <= 2.0  # refused connections fail at once
    with StageTracker(target(server.uri, tmp_path, stage="evaluate@tiny"), {}) as second:
        second.log_metrics({"fd": 1.5})
    run = the_run(server.db, first)
    assert points(server.db, run.info.run_id) == sorted(logged)
    assert run.info.status == "FINISHED"
    assert not list((tmp_path / "mlspool").glob("*.jsonl"))
    assert parent_of(server.db, run).info.run_id == second.parent_id
    assert parent_of(server.db, run).info.status == "FINISHED"


# -- signals: stage processes of their own, on a SQLite store ---------------------------------
CHILD = textwrap.dedent("""
    import sys, time
    from genlab.tracking.mlflow_tracker import StageTracker, TrackingTarget
    uri, art, exp = sys.argv[1:4]
    tgt = TrackingTarget(uri=uri, experiment=exp, artifact_location=art,
                         pipeline_run="pipe", stage_run="train@child")
    with StageTracker(tgt, {"lr": 0.1}) as tr:
        for step in range(1, 41):
            tr.log_metrics({"loss": 1.0 / step}, step)
            tr.flush()
        print("ready", flush=True)
        time.sleep(60)
""")


def child_stage(tmp_path, uri, sig) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'src'}:{ROOT}")
    proc = subprocess.Popen([sys.executable, "-c", CHILD, uri, (tmp_path / "artifacts").as_uri(),
                             "signals"], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(sig)
    proc.wait(30)
    return proc


def child_run(client):
    exp = client.get_experiment_by_name("signals")
    (run,) = client.search_runs([exp.experiment_id], "attributes.run_name = 'train@child'")
    return run


LOSS = [("loss", s, 1.0 / s) for s in range(1, 41)]


@pytest.mark.parametrize("sig", [signal.SIGTERM,
                                 pytest.param(signal.SIGINT, marks=pytest.mark.slow)])
def test_sigterm_or_sigint_ends_the_run_and_its_parent_killed(mlflow_uri, tmp_path, sig):
    proc = child_stage(tmp_path, mlflow_uri, sig)
    assert proc.returncode == -sig  # still dies of the signal (Python does so for SIGINT)
    client = MlflowClient(tracking_uri=mlflow_uri)
    run = child_run(client)
    assert run.info.status == "KILLED" and parent_of(client, run).info.status == "KILLED"
    assert sorted((m.key, m.step, m.value) for m in client.get_metric_history(
        run.info.run_id, "loss")) == LOSS


def test_sigkill_leaves_running_runs_the_next_stage_marks_killed(mlflow_uri, tmp_path):
    proc = child_stage(tmp_path, mlflow_uri, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    client = MlflowClient(tracking_uri=mlflow_uri)
    assert child_run(client).info.status == "RUNNING"
    tgt = TrackingTarget(uri=mlflow_uri, experiment="signals",
                         artifact_location=(tmp_path / "artifacts").as_uri(),
                         pipeline_run="pipe", stage_run="evaluate@child")
    with StageTracker(tgt, {}):
        pass
    run = child_run(client)
    assert run.info.status == "KILLED" and parent_of(client, run).info.status == "KILLED"


def test_sigkill_while_the_store_is_down_loses_no_point(migrated_db, tmp_path):
    store = tmp_path / "store"
    store.write_text("a file where the store's folder should be: the store is unreachable")
    uri = f"sqlite:///{store / 'mlflow.db'}"
    proc = child_stage(tmp_path, uri, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    store.unlink()  # the store comes back
    store.mkdir()
    shutil.copy(migrated_db, store / "mlflow.db")

    tgt = TrackingTarget(uri=uri, experiment="signals",
                         artifact_location=(tmp_path / "artifacts").as_uri(),
                         pipeline_run="pipe", stage_run="sync")
    report = sync(tgt)
    assert len(report.replayed) == 1 and not report.failed
    client = MlflowClient(tracking_uri=uri)
    run = child_run(client)
    assert run.info.status == "KILLED" and run.data.params["lr"] == "0.1"
    assert sorted((m.key, m.step, m.value) for m in client.get_metric_history(
        run.info.run_id, "loss")) == LOSS
