"""StageTracker against a real MLflow SQLite store: parent/child runs, batched metrics,
artifacts, output tags, and failures that warn and spool instead of stopping the stage
(outages in depth: test_outage.py)."""

from __future__ import annotations

import warnings

from mlflow.tracking import MlflowClient

from genlab.tracking.mlflow_tracker import (
    PIPELINE_TAG,
    StageTracker,
    TrackingTarget,
    md5_of,
    read_records,
)


def _target(uri, tmp_path, stage="train@ae", pipeline="exp-1") -> TrackingTarget:
    return TrackingTarget(uri=uri, experiment="genlab-test",
                          artifact_location=(tmp_path / "artifacts").as_uri(),
                          pipeline_run=pipeline, stage_run=stage)


def test_child_runs_share_one_parent(mlflow_uri, tmp_path):
    png = tmp_path / "grid.png"
    png.write_bytes(b"\x89PNG fake bytes")
    with StageTracker(_target(mlflow_uri, tmp_path), {"train.ae.lr": 0.002}) as tr:
        for step in range(1, 4):
            tr.log_metrics({"train_loss": 1.0 / step}, step)
        tr.flush()
        tr.log_artifact(png, "figures")
        tr.tag_outputs([png])
    with StageTracker(_target(mlflow_uri, tmp_path, stage="evaluate@ae"), {}) as tr2:
        tr2.log_metrics({"recon_mse": 0.01})

    client = MlflowClient(tracking_uri=mlflow_uri)
    exp = client.get_experiment_by_name("genlab-test")
    assert exp.artifact_location == (tmp_path / "artifacts").as_uri()
    runs = client.search_runs([exp.experiment_id])
    by_name = {r.info.run_name: r for r in runs}
    assert set(by_name) == {"exp-1", "train@ae", "evaluate@ae"}
    parent = by_name["exp-1"]
    assert parent.data.tags[PIPELINE_TAG] == "exp-1"
    for child in ("train@ae", "evaluate@ae"):
        assert by_name[child].data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert by_name[child].info.status == "FINISHED"
    train = by_name["train@ae"]
    assert train.data.params["train.ae.lr"] == "0.002"
    history = client.get_metric_history(train.info.run_id, "train_loss")
    assert [(m.step, round(m.value, 4)) for m in history] == [(1, 1.0), (2, 0.5), (3, 0.3333)]
    assert train.data.tags[f"out.{png.as_posix()}"] == md5_of(png)
    assert [a.path for a in client.list_artifacts(train.info.run_id, "figures")] == [
        "figures/grid.png"]
    assert by_name["evaluate@ae"].data.metrics["recon_mse"] == 0.01


def test_failed_stage_marks_run_failed(mlflow_uri, tmp_path):
    try:
        with StageTracker(_target(mlflow_uri, tmp_path), {}):
            raise KeyError("boom")
    except KeyError:
        pass
    client = MlflowClient(tracking_uri=mlflow_uri)
    exp = client.get_experiment_by_name("genlab-test")
    (run,) = client.search_runs([exp.experiment_id], "attributes.run_name = 'train@ae'")
    assert run.info.status == "FAILED"


def test_unreachable_store_warns_spools_and_the_stage_goes_on(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    bad = f"sqlite:///{blocker}/mlflow.db"  # cannot be created, even by root
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with StageTracker(_target(bad, tmp_path), {"a": 1}) as tr:
            tr.log_metrics({"x": 1.0})
            tr.flush()
            done = True
    assert done and tr.enabled and not tr.online and tr.run_id is None
    assert sum("MLflow tracking failed" in str(w.message) for w in caught) == 1
    (spool,) = (tmp_path / "mlspool").glob("pending-*.jsonl")
    assert [r["kind"] for r in read_records(spool)] == ["run", "params", "metrics", "end"]


def test_failure_mid_run_spools_the_rest(mlflow_uri, tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with StageTracker(_target(mlflow_uri, tmp_path), {}) as tr:
            tr.log_metrics({"x": 1.0}, 1)
            tr.flush()
            assert tr.online
            tr.run_id = "0" * 32  # the run disappears under us (e.g. deleted in the UI)
            tr.log_metrics({"x": 2.0}, 2)
            tr.flush()
            assert tr.enabled and not tr.online
            tr.log_metrics({"x": 3.0}, 3)  # spooled too
            tr.flush()
    assert sum("MLflow tracking failed" in str(w.message) for w in caught) == 1
    (spool,) = (tmp_path / "mlspool").glob(f"{'0' * 32}.*.jsonl")
    records = read_records(spool)
    assert [row[::3] for r in records if r["kind"] == "metrics" for row in r["rows"]] == [
        ["x", 2], ["x", 3]]


def test_disabled_tracker_does_nothing(tmp_path):
    with StageTracker(None, {"a": 1}) as tr:
        tr.log_metrics({"x": 1.0})
        tr.flush()
    assert not tr.enabled and tr.client is None


def test_md5_of_dir_depends_on_names_and_content(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "a.txt").write_text("1")
    h1 = md5_of(d)
    (d / "a.txt").write_text("2")
    assert md5_of(d) != h1 and h1.endswith(".dir")
