"""MLflow tracking for one pipeline stage that survives store outages: a child run under the
pipeline's parent run, with buffered metrics (one log_batch per flush), params, artifacts and
output hashes as tags.

Tracking never stops the stage, and an outage loses nothing:
- MLflow's HTTP requests get a short timeout and no retries of their own (MLflow's
  MLFLOW_HTTP_REQUEST_TIMEOUT / MLFLOW_HTTP_REQUEST_MAX_RETRIES, set only where the user has not),
  and a stage spends at most `budget_s` seconds in failed tracking calls, all told;
- what cannot be sent goes to a spool file: JSON lines, each written and fsync'd on its own so
  that a SIGKILL keeps all but a torn last line, one file per run (named by the run id, or by a
  placeholder while the run could not be created). The tracker retries the store later in the
  stage (with a growing pause); the next stage run or `make sync-tracking` replays what is left
  into the same run id (creating the run if the store never saw it). A replay skips the
  (key, step, value) points and params the run holds already, so replaying twice adds nothing,
  and a spool file is removed only once its replay succeeded;
- a stage that raises ends its run FAILED, SIGTERM or Ctrl-C ends it KILLED; a run left RUNNING
  by a process that is gone (SIGKILL) is marked KILLED by the next run or sync; a parent run
  takes the worst status of its children's latest runs once none is running.
mlflow is imported lazily (it costs ~1.6 s) and only when tracking is enabled.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import signal
import socket
import threading
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

PIPELINE_TAG = "genlab_pipeline"  # tag on the parent run holding the pipeline run's name
SPOOL_TAG = "genlab_spool"  # tag on a run created by a replay: the spool's placeholder id
HOST_TAG, PID_TAG, PID_START_TAG = "genlab_host", "genlab_pid", "genlab_pid_start"

# Defaults; the environment variables override them (a stage reads no tracking knobs yet).
TIMEOUT_S = 2  # MLFLOW_HTTP_REQUEST_TIMEOUT unless set: seconds per HTTP request
RETRIES = 0  # MLFLOW_HTTP_REQUEST_MAX_RETRIES unless set: the tracker retries itself, later
BUDGET_S = 8.0  # GENLAB_TRACKING_BUDGET_S: seconds a stage may lose in failed tracking calls
PAUSES_S = (2.0, 4.0, 8.0, 16.0, 30.0)  # wait before each next try at the store in a stage
SPOOL_DIR = "mlspool"  # beside the artifact folder (<DVC_ROOT>/mlspool), or GENLAB_TRACKING_SPOOL


@dataclass(frozen=True)
class TrackingTarget:
    """Where and under which names a stage logs (resolved by the stage from its environment)."""

    uri: str  # e.g. sqlite:////abs/repo/mlflow.db
    experiment: str  # MLflow experiment name
    artifact_location: str  # file:///abs/repo/mlartifacts, pinned when the experiment is created
    pipeline_run: str  # parent run name: the DVC experiment name or <git sha>-<params hash>
    stage_run: str  # child run name: DVC_STAGE, e.g. train@ae


class StageKilled(BaseException):
    """Raised by the SIGTERM handler so that the stage unwinds and its run ends KILLED."""


def spool_dir_for(target: TrackingTarget) -> Path:
    """GENLAB_TRACKING_SPOOL, else `mlspool/` beside a file artifact location, else ./mlspool."""
    if os.environ.get("GENLAB_TRACKING_SPOOL"):
        return Path(os.environ["GENLAB_TRACKING_SPOOL"])
    loc = urlparse(target.artifact_location)
    if loc.scheme == "file":
        return Path(unquote(loc.path)).parent / SPOOL_DIR
    return Path.cwd() / SPOOL_DIR


class StageTracker:
    """Use as a context manager; every method is a no-op when tracking is disabled, and never
    raises because of the store: what the store does not take is spooled and replayed later."""

    def __init__(self, target: TrackingTarget | None, params: dict[str, Any] | None = None, *,
                 timeout_s: int | None = None,  # per HTTP request; None: env, else TIMEOUT_S
                 retries: int | None = None,  # MLflow's own retries; None: env, else RETRIES
                 budget_s: float | None = None,  # None: GENLAB_TRACKING_BUDGET_S, else BUDGET_S
                 spool_dir: Path | None = None,  # None: spool_dir_for(target)
                 system_metrics_s: float = 0.0):  # MLflow system metrics every N s (0: off)
        self.target, self.params = target, params or {}
        self.system_metrics_s, self._monitor = system_metrics_s, None
        self._http = (timeout_s, retries)
        self.enabled = target is not None  # tracking configured (stays so through outages)
        self.online = False  # the run exists in the store and the last call reached it
        self.client = self.run_id = self.parent_id = None
        self.budget_s = budget_s if budget_s is not None else float(
            os.environ.get("GENLAB_TRACKING_BUDGET_S", BUDGET_S))
        self.spool_dir = spool_dir or (spool_dir_for(target) if target else None)
        self.spool: Spool | None = None
        self.failed_s = 0.0  # time spent in failed calls
        self._buffer: list = []
        self._tries = 0  # failed tries in a row, for the pause before the next one
        self._next_try = 0.0
        self._start_ms = int(time.time() * 1000)
        self._spool_id = f"pending-{uuid.uuid4().hex}"
        self._old_sigterm = None

    # -- lifecycle ----------------------------------------------------------------------------
    def __enter__(self) -> StageTracker:
        if not self.enabled:
            return self
        configure_http(*self._http)
        self._catch_sigterm()
        with contextlib.suppress(Exception):  # failures are spooled inside _call
            self._call(self._start)
        self.log_params(self.params)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self.enabled:
            return
        self._release_sigterm()
        self._stop_system_metrics()
        self.flush()
        killed = exc_type is not None and issubclass(exc_type, StageKilled | KeyboardInterrupt)
        status = "FINISHED" if exc_type is None else "KILLED" if killed else "FAILED"
        self._emit({"kind": "end", "status": status, "end_time": int(time.time() * 1000)},
                   last=True)
        if self.spool is not None:
            warnings.warn(f"MLflow tracking: {self.spool.path} keeps what the store did not "
                          f"take; `make sync-tracking` (or the next stage) replays it",
                          stacklevel=2)
            self.spool.close(remove=False)
        if exc_type is not None and issubclass(exc_type, StageKilled):
            os.kill(os.getpid(), exc.args[0])  # die of the signal, as without the handler

    def _start_system_metrics(self) -> None:
        if self.system_metrics_s > 0 and self._monitor is None:
            try:
                self._monitor = _system_metrics_monitor(self.run_id, self.target.uri,
                                                        self.system_metrics_s)
            except Exception as e:  # the run goes on without them
                warnings.warn(f"MLflow system metrics are off: {e}", stacklevel=2)

    def _stop_system_metrics(self) -> None:
        if self._monitor is not None:
            with contextlib.suppress(Exception):
                self._monitor.finish()
            self._monitor = None

    def _start(self) -> None:
        from mlflow.tracking import MlflowClient

        t = self.target
        self.client = MlflowClient(tracking_uri=t.uri)
        exp_id = experiment_id(self.client, t.experiment, t.artifact_location)
        self.parent_id = parent_run(self.client, exp_id, t.pipeline_run)
        run = self.client.create_run(exp_id, run_name=t.stage_run, start_time=self._start_ms,
                                     tags={"mlflow.parentRunId": self.parent_id,
                                           "genlab_stage": t.stage_run, **process_tags()})
        self.run_id = run.info.run_id
        self.client.update_run(self.parent_id, status="RUNNING")
        self.online = True
        self._start_system_metrics()
        t0 = time.monotonic()
        try:  # what earlier stages left behind: spools to replay, runs of dead processes
            replay_spools(self.spool_dir, t.uri, self.client, stop=True)
            mark_stale_runs(self.client, [exp_id])
        except Exception as e:  # counts against the budget, but the run itself is fine
            self.failed_s += time.monotonic() - t0
            warnings.warn(f"MLflow tracking: could not tidy up after earlier stages: "
                          f"{_brief(e)}", stacklevel=4)

    # -- signals ------------------------------------------------------------------------------
    def _catch_sigterm(self) -> None:
        """SIGTERM raises StageKilled (SIGINT raises KeyboardInterrupt already), where SIGTERM
        has its default action and this is the main thread."""
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL):
            owner = os.getpid()

            def on_sigterm(signum, frame):
                if os.getpid() != owner:  # a forked child (data loader worker): just die
                    signal.signal(signum, signal.SIG_DFL)
                    os.kill(os.getpid(), signum)
                raise StageKilled(signum)

            self._old_sigterm = signal.signal(signal.SIGTERM, on_sigterm)

    def _release_sigterm(self) -> None:
        if self._old_sigterm is not None:
            signal.signal(signal.SIGTERM, self._old_sigterm)
            self._old_sigterm = None

    # -- sending, spooling, retrying ----------------------------------------------------------
    def _call(self, fn) -> Any:
        """fn() against the store within the budget; a failure is timed, warned about (once per
        outage) and re-raised. A call that the budget cannot cover is not made."""
        timeout = float(os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT", TIMEOUT_S))
        retries = int(os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES", RETRIES))
        if self.failed_s + timeout * (1 + retries) > self.budget_s:
            self.online = False
            raise TimeoutError(f"tracking time budget spent ({self.failed_s:.1f} s of "
                               f"{self.budget_s:g} s in failed calls)")
        t0 = time.monotonic()
        try:
            return fn()
        except Exception as e:  # (a signal's exception is no store failure: it just unwinds)
            self.failed_s += time.monotonic() - t0
            if self.online or self._tries == 0:
                warnings.warn(f"MLflow tracking failed; spooling to {self.spool_dir} and "
                              f"retrying later: {_brief(e)}", stacklevel=4)
            self.online = False
            self._tries += 1
            pause = PAUSES_S[min(self._tries, len(PAUSES_S)) - 1]
            self._next_try = time.monotonic() + pause
            raise

    def _emit(self, record: dict, last: bool = False) -> None:
        """Send `record` if the store is up, else spool it and try the store again when due."""
        if self.online:
            try:
                self._call(lambda: send(self.client, self.run_id, self.parent_id, record))
            except Exception:  # spooled; the next try waits for its pause
                self._spool_record(record)
                return
            except BaseException:  # a signal mid-send: keep the record, then go on unwinding
                self._spool_record(record)
                raise
        else:
            self._spool_record(record)
        if self.spool is not None and (last or time.monotonic() >= self._next_try):
            with contextlib.suppress(Exception):
                self._call(self._recover)

    def _spool_record(self, record: dict) -> None:
        try:
            if self.spool is None:
                self.spool = Spool.create(self.spool_dir, self._spool_header())
            self.spool.append(record)
        except OSError as e:
            warnings.warn(f"MLflow tracking: cannot write the spool in {self.spool_dir}, "
                          f"this record is lost: {_brief(e)}", stacklevel=4)

    def _spool_header(self) -> dict:
        t = self.target
        return {"kind": "run", "spool_id": self._spool_id, "run_id": self.run_id,
                "parent_id": self.parent_id, "uri": t.uri, "experiment": t.experiment,
                "artifact_location": t.artifact_location, "pipeline_run": t.pipeline_run,
                "stage_run": t.stage_run, "start_time": self._start_ms, "tags": process_tags()}

    def _recover(self) -> None:
        """Replay the spool into the run (creating it if need be); then drop the spool."""
        from mlflow.tracking import MlflowClient

        if self.spool is None:
            return
        self.client = self.client or MlflowClient(tracking_uri=self.target.uri)
        fresh = self.run_id is None
        self.run_id, self.parent_id = replay(self.client, read_records(self.spool.path))
        self.spool.close(remove=True)
        self.spool, self.online, self._tries = None, True, 0
        warnings.warn(f"MLflow tracking is back: spooled records replayed into run "
                      f"{self.run_id}", stacklevel=5)
        if fresh:
            self.client.update_run(self.parent_id, status="RUNNING")

    # -- logging ------------------------------------------------------------------------------
    def log_params(self, params: dict[str, Any]) -> None:
        if self.enabled and params:
            self._emit({"kind": "params", "params": {
                k: (json.dumps(v) if isinstance(v, list | tuple | dict) else str(v))[:6000]
                for k, v in params.items()}})

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        """Buffer metrics; they are sent with flush() (call it per epoch / checkpoint)."""
        if self.enabled:
            ts = int(time.time() * 1000)
            self._buffer += [(k, float(v), ts, step) for k, v in metrics.items()]

    def flush(self) -> None:
        if self._buffer:
            rows, self._buffer = self._buffer, []
            self._emit({"kind": "metrics", "rows": rows})

    def log_artifact(self, path: Path, subdir: str | None = None) -> None:
        """A file (under subdir), or a folder's files (under subdir, as an MLflow model's)."""
        if self.enabled and Path(path).exists():
            self._emit({"kind": "artifact", "path": str(Path(path).resolve()), "subdir": subdir})

    def set_tags(self, tags: dict[str, str], parent: bool = False) -> None:
        if self.enabled and tags:
            self._emit({"kind": "tags", "parent": parent,
                        "tags": {k: str(v)[:5000] for k, v in tags.items()}})

    def tag_outputs(self, paths: list[Path]) -> None:
        """Tag the run with the md5 of each output (file: content; dir: its files' md5s)."""
        self.set_tags({f"out.{Path(p).as_posix()}": md5_of(Path(p)) for p in paths
                       if Path(p).exists()})


# -- the store ---------------------------------------------------------------------------------
def configure_http(timeout_s: int | None = None, retries: int | None = None) -> None:
    """MLflow reads its HTTP settings from the environment only: set the values given, and
    else a short timeout and no per-request retries unless the user chose otherwise."""
    for var, value, default in (("MLFLOW_HTTP_REQUEST_TIMEOUT", timeout_s, TIMEOUT_S),
                                ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", retries, RETRIES)):
        if value is not None:
            os.environ[var] = str(int(value))
        else:
            os.environ.setdefault(var, str(default))


def experiment_id(client, name: str, artifact_location: str) -> str:
    exp = client.get_experiment_by_name(name)
    return exp.experiment_id if exp else client.create_experiment(
        name, artifact_location=artifact_location)


def parent_run(client, exp_id: str, name: str) -> str:
    found = client.search_runs([exp_id], f"tags.{PIPELINE_TAG} = '{name}'", max_results=1)
    if found:
        return found[0].info.run_id
    return client.create_run(exp_id, run_name=name, tags={PIPELINE_TAG: name}).info.run_id


def send(client, run_id: str, parent_id: str, record: dict) -> None:
    """One record to the store, as it comes (no check for what the run holds already)."""
    from mlflow.entities import Metric, Param, RunTag

    kind = record["kind"]
    if kind == "params":
        items = list(record["params"].items())
        for i in range(0, len(items), 100):
            client.log_batch(run_id, params=[Param(k, v) for k, v in items[i:i + 100]])
    elif kind == "metrics":
        rows = record["rows"]
        for i in range(0, len(rows), 500):
            client.log_batch(run_id, metrics=[Metric(k, v, ts, s)
                                              for k, v, ts, s in rows[i:i + 500]])
    elif kind == "tags":
        items = list(record["tags"].items())
        for i in range(0, len(items), 100):
            client.log_batch(parent_id if record["parent"] else run_id,
                             tags=[RunTag(k, v) for k, v in items[i:i + 100]])
    elif kind == "artifact":
        if Path(record["path"]).is_dir():  # a folder's files go under subdir (an MLflow model)
            client.log_artifacts(run_id, record["path"], record["subdir"])
        elif Path(record["path"]).exists():
            client.log_artifact(run_id, record["path"], record["subdir"])
    elif kind == "end":
        client.set_terminated(run_id, status=record["status"], end_time=record["end_time"])
        close_parent(client, parent_id)


def close_parent(client, parent_id: str) -> None:
    """End the parent run with the worst status of its children's latest runs (one per stage
    name), once none of those is running; leave it RUNNING otherwise."""
    exp_id = client.get_run(parent_id).info.experiment_id
    children = client.search_runs([exp_id], f"tags.mlflow.parentRunId = '{parent_id}'",
                                  max_results=5000)
    latest = {}
    for run in sorted(children, key=lambda r: r.info.start_time or 0):
        latest[run.info.run_name] = run.info
    statuses = {info.status for info in latest.values()}
    if not statuses or statuses - {"FINISHED", "FAILED", "KILLED"}:
        return
    status = next(s for s in ("FAILED", "KILLED", "FINISHED") if s in statuses)
    end = max(info.end_time or 0 for info in latest.values()) or None
    client.set_terminated(parent_id, status=status, end_time=end)


def _system_metrics_monitor(run_id: str, uri: str, interval_s: float):
    """MLflow's system metrics thread for a run (CPU, memory, disk, network; GPU utilisation
    and memory when nvidia-ml-py is installed), or None where psutil is missing."""
    try:
        import psutil  # noqa: F401  (MLflow's CPU monitor needs it)
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor
    except ImportError:
        return None
    monitor = SystemMetricsMonitor(run_id, sampling_interval=interval_s, tracking_uri=uri)
    monitor.start()
    return monitor


def process_tags() -> dict[str, str]:
    """Who runs the stage: host, pid and the pid's start time (pids are reused)."""
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid()),
            PID_START_TAG: pid_start(os.getpid())}


def pid_start(pid: int) -> str:
    """The process's start time in clock ticks since boot ('' where /proc is not there)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]  # field 22, counted after the command name


def process_alive(pid: int, start: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's
    return not start or pid_start(pid) in ("", start)


def mark_stale_runs(client, exp_ids: list[str]) -> list[str]:
    """Mark KILLED the RUNNING runs started on this host by a process that is gone."""
    host = socket.gethostname()
    runs = client.search_runs(exp_ids, f"attributes.status = 'RUNNING' and "
                                       f"tags.{HOST_TAG} = '{host}'", max_results=5000)
    killed = []
    for run in runs:
        tags = run.data.tags
        if PID_TAG in tags and not process_alive(int(tags[PID_TAG]), tags.get(PID_START_TAG, "")):
            client.set_terminated(run.info.run_id, status="KILLED")
            if tags.get("mlflow.parentRunId"):
                close_parent(client, tags["mlflow.parentRunId"])
            killed.append(run.info.run_id)
    return killed


# -- the spool ---------------------------------------------------------------------------------
class Spool:
    """An append-only JSON-lines file of tracking records, each written with one write() and
    fsync'd. Its writer holds an exclusive flock on it while alive, so that a replay from
    another process skips a spool in use (the kernel drops the lock when its writer dies)."""

    def __init__(self, path: Path, fd: int):
        self.path, self.fd = path, fd

    @classmethod
    def create(cls, folder: Path, header: dict) -> Spool:
        """A new spool whose first record is `header`; it appears under its name (the run id or
        the placeholder) only once locked and holding the header."""
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{header['run_id'] or header['spool_id']}.{time.time_ns()}"
        part = folder / f".{name}.part"
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        spool = cls(folder / f"{name}.jsonl", fd)
        spool.append(header)
        os.replace(part, spool.path)
        _fsync_dir(folder)
        return spool

    @classmethod
    def claim(cls, path: Path) -> Spool | None:
        """Lock a spool left by another process; None if its writer is alive or it is gone."""
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        if os.fstat(fd).st_nlink == 0:  # replayed and removed since we listed it
            os.close(fd)
            return None
        return cls(path, fd)

    def append(self, record: dict) -> None:
        os.write(self.fd, (json.dumps(record) + "\n").encode())
        os.fsync(self.fd)

    def close(self, remove: bool) -> None:
        if remove:
            self.path.unlink(missing_ok=True)
            _fsync_dir(self.path.parent)
        os.close(self.fd)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_records(path: Path) -> list[dict]:
    """The records of a spool; a line torn by a kill (the last one) is skipped."""
    records = []
    for line in Path(path).read_bytes().splitlines():
        with contextlib.suppress(ValueError):
            records.append(json.loads(line))
    if not records or records[0].get("kind") != "run":
        raise ValueError(f"{path} is not a tracking spool (no header record)")
    return records


def replay(client, records: list[dict], abandoned: bool = False) -> tuple[str, str]:
    """Send a spool's records into its run, creating the run (and its experiment and parent)
    if the store never saw it; returns (run id, parent id). Idempotent: metric points
    (key, step, value) and params the run holds already are skipped. An abandoned spool (its
    process is gone) without an end record ends its run KILLED."""
    head = records[0]
    run_id, parent_id = head["run_id"], head["parent_id"]
    if run_id is None:
        run_id, parent_id = spooled_run(client, head)
    body = records[1:]
    _replay_params(client, run_id, {k: v for r in body if r["kind"] == "params"
                                    for k, v in r["params"].items()})
    _replay_metrics(client, run_id, [row for r in body if r["kind"] == "metrics"
                                     for row in r["rows"]])
    for r in body:
        if r["kind"] in ("tags", "artifact"):
            send(client, run_id, parent_id, r)
    ends = [r for r in body if r["kind"] == "end"]
    if ends or abandoned:
        end = ends[-1] if ends else {"kind": "end", "status": "KILLED",
                                     "end_time": int(time.time() * 1000)}
        send(client, run_id, parent_id, end)
    return run_id, parent_id


def spooled_run(client, head: dict) -> tuple[str, str]:
    """The run of a spool whose stage could not create it: found by its SPOOL_TAG (a replay
    that failed half-way made it already), else created with the stage's start time."""
    exp_id = experiment_id(client, head["experiment"], head["artifact_location"])
    parent_id = head["parent_id"] or parent_run(client, exp_id, head["pipeline_run"])
    found = client.search_runs([exp_id], f"tags.{SPOOL_TAG} = '{head['spool_id']}'",
                               max_results=1)
    if found:
        return found[0].info.run_id, parent_id
    run = client.create_run(exp_id, run_name=head["stage_run"], start_time=head["start_time"],
                            tags={"mlflow.parentRunId": parent_id,
                                  "genlab_stage": head["stage_run"],
                                  SPOOL_TAG: head["spool_id"], **head["tags"]})
    return run.info.run_id, parent_id


def _replay_params(client, run_id: str, params: dict[str, str]) -> None:
    have = client.get_run(run_id).data.params
    for key in [k for k in params if k in have and have[k] != params[k]]:
        warnings.warn(f"MLflow replay: run {run_id} has param {key}={have[key]!r}, the spool "
                      f"{params.pop(key)!r}; kept the run's", stacklevel=3)
    missing = {k: v for k, v in params.items() if k not in have}
    if missing:
        send(client, run_id, None, {"kind": "params", "params": missing})


def _replay_metrics(client, run_id: str, rows: list) -> None:
    """Send the rows whose (key, step, value) the run does not hold, each once."""
    seen = {(m.key, m.step, _same(m.value)) for key in {r[0] for r in rows}
            for m in client.get_metric_history(run_id, key)}
    todo = []
    for k, v, ts, s in rows:
        if (k, s, _same(v)) not in seen:
            seen.add((k, s, _same(v)))
            todo.append((k, v, ts, s))
    if todo:
        send(client, run_id, None, {"kind": "metrics", "rows": todo})


def _same(value: float) -> str:
    return repr(float(value))  # NaN == NaN, and exact: floats round-trip through repr


@dataclass
class SyncReport:
    replayed: list[str]  # run ids
    in_use: list[Path]  # spools whose writer is still running
    failed: dict[str, str]  # spool or store -> why it failed (the store still down, ...)
    killed: list[str]  # stale RUNNING runs marked KILLED


def replay_spools(folder: Path | None, uri: str | None = None, client=None,
                  stop: bool = False) -> SyncReport:
    """Replay every spool in `folder` whose writer is gone (only those for `uri` if given,
    through `client`); a spool is removed once replayed, kept on failure (then raised if
    `stop`: the store may be down, and each further try could wait for a timeout)."""
    from mlflow.tracking import MlflowClient

    report = SyncReport([], [], {}, [])
    for path in sorted(folder.glob("*.jsonl")) if folder and folder.is_dir() else []:
        spool = Spool.claim(path)
        if spool is None:
            report.in_use.append(path)
            continue
        try:
            records = read_records(path)
            head = records[0]
            if uri is not None and head["uri"] != uri:
                spool.close(remove=False)
                continue
            store = client if uri is not None else MlflowClient(tracking_uri=head["uri"])
            run_id, _ = replay(store, records, abandoned=True)
            spool.close(remove=True)
            report.replayed.append(run_id)
        except Exception as e:
            spool.close(remove=False)
            report.failed[str(path)] = _brief(e)
            if stop:
                raise
    return report


def sync(target: TrackingTarget, spool_dir: Path | None = None) -> SyncReport:
    """`make sync-tracking`: replay the spools, then mark stale runs of the target's store."""
    from mlflow.tracking import MlflowClient

    configure_http()
    report = replay_spools(spool_dir or spool_dir_for(target))
    client = MlflowClient(tracking_uri=target.uri)
    try:
        exp = client.get_experiment_by_name(target.experiment)
        if exp is not None:
            report.killed += mark_stale_runs(client, [exp.experiment_id])
    except Exception as e:
        report.failed[target.uri] = _brief(e)
    return report


def _brief(e: BaseException) -> str:
    return f"{type(e).__name__}: {str(e)[:300]}"


def md5_of(path: Path) -> str:
    if path.is_file():
        h = hashlib.md5()
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
        return h.hexdigest()
    listing = [(p.relative_to(path).as_posix(), md5_of(p)) for p in sorted(path.rglob("*"))
               if p.is_file()]
    return hashlib.md5(json.dumps(listing).encode()).hexdigest() + ".dir"
