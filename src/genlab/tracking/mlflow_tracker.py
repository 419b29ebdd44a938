"""MLflow tracking for one pipeline stage: a child run under the pipeline's parent run, with
buffered metrics (one log_batch per flush), params, artifacts and output hashes as tags.

Tracking must never stop training: any MLflow failure warns once and turns the tracker off.
mlflow is imported lazily (it costs ~1.6 s) and only when tracking is enabled.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PIPELINE_TAG = "genlab_pipeline"  # tag on the parent run holding the pipeline run's name


@dataclass(frozen=True)
class TrackingTarget:
    """Where and under which names a stage logs (resolved by the stage from its environment)."""

    uri: str  # e.g. sqlite:////abs/repo/mlflow.db
    experiment: str  # MLflow experiment name
    artifact_location: str  # file:///abs/repo/mlartifacts, pinned when the experiment is created
    pipeline_run: str  # parent run name: the DVC experiment name or <git sha>-<params hash>
    stage_run: str  # child run name: DVC_STAGE, e.g. train@ae


class StageTracker:
    """Use as a context manager; every method is a no-op when disabled or after a failure."""

    def __init__(self, target: TrackingTarget | None, params: dict[str, Any] | None = None):
        self.target, self.params = target, params or {}
        self.enabled = target is not None
        self.client = self.run_id = self.parent_id = None
        self._buffer: list = []

    # -- lifecycle ----------------------------------------------------------------------------
    def __enter__(self) -> StageTracker:
        self._safe(self._start)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.flush()
        status = "FINISHED" if exc_type is None else "FAILED"
        self._safe(lambda: self.client.set_terminated(self.run_id, status=status))

    def _start(self) -> None:
        from mlflow.tracking import MlflowClient

        t = self.target
        self.client = MlflowClient(tracking_uri=t.uri)
        exp = self.client.get_experiment_by_name(t.experiment)
        exp_id = exp.experiment_id if exp else self.client.create_experiment(
            t.experiment, artifact_location=t.artifact_location)
        self.parent_id = self._parent(exp_id)
        run = self.client.create_run(exp_id, run_name=t.stage_run,
                                     tags={"mlflow.parentRunId": self.parent_id,
                                           "genlab_stage": t.stage_run})
        self.run_id = run.info.run_id
        self.log_params(self.params)

    def _parent(self, exp_id: str) -> str:
        name = self.target.pipeline_run
        found = self.client.search_runs([exp_id], f"tags.{PIPELINE_TAG} = '{name}'",
                                        max_results=1)
        if found:
            return found[0].info.run_id
        run = self.client.create_run(exp_id, run_name=name, tags={PIPELINE_TAG: name})
        return run.info.run_id

    def _safe(self, fn) -> Any:
        if not self.enabled:
            return None
        try:
            return fn()
        except Exception as e:  # tracking must never stop the stage
            warnings.warn(f"MLflow tracking failed and is off for the rest of this stage: "
                          f"{type(e).__name__}: {str(e)[:300]}", stacklevel=3)
            self.enabled = False
            return None

    # -- logging ------------------------------------------------------------------------------
    def log_params(self, params: dict[str, Any]) -> None:
        from_dict = [(k, json.dumps(v) if isinstance(v, list | tuple | dict) else str(v))
                     for k, v in params.items()]

        def send():
            from mlflow.entities import Param

            for i in range(0, len(from_dict), 100):
                batch = [Param(k, v[:6000]) for k, v in from_dict[i:i + 100]]
                self.client.log_batch(self.run_id, params=batch)

        self._safe(send)

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        """Buffer metrics; they are sent with flush() (call it per epoch / checkpoint)."""
        if self.enabled:
            ts = int(time.time() * 1000)
            self._buffer += [(k, float(v), ts, step) for k, v in metrics.items()]

    def flush(self) -> None:
        if not self._buffer:
            return
        rows, self._buffer = self._buffer, []

        def send():
            from mlflow.entities import Metric

            for i in range(0, len(rows), 500):
                batch = [Metric(k, v, ts, s) for k, v, ts, s in rows[i:i + 500]]
                self.client.log_batch(self.run_id, metrics=batch)

        self._safe(send)

    def log_artifact(self, path: Path, subdir: str | None = None) -> None:
        if Path(path).exists():
            self._safe(lambda: self.client.log_artifact(self.run_id, str(path), subdir))

    def set_tags(self, tags: dict[str, str], parent: bool = False) -> None:
        def send():
            run_id = self.parent_id if parent else self.run_id
            for k, v in tags.items():
                self.client.set_tag(run_id, k, str(v)[:5000])

        self._safe(send)

    def tag_outputs(self, paths: list[Path]) -> None:
        """Tag the run with the md5 of each output (file: content; dir: its files' md5s)."""
        self.set_tags({f"out.{Path(p).as_posix()}": md5_of(Path(p)) for p in paths
                       if Path(p).exists()})


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
