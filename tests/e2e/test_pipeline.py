"""The real pipeline end to end: `dvc repro` on tiny params in a temp git repo with a temp
SQLite MLflow store, then a no-op repro, then `dvc exp run -S` visible in DVC and MLflow."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from genlab import families
from tests.e2e.conftest import TINY, make_env, make_workspace, run


def _verb(family: str) -> str:
    return "pretrain" if families.get(family).role == "pretrain" else "train"


_TINY = yaml.safe_load(TINY.read_text())
FAMILY_MODELS = {f: tuple(_TINY[f]) for f in families.available()}  # as params.yaml
MODELS = tuple(m for models in FAMILY_MODELS.values() for m in models)
STAGES = ["fetch", "preprocess", "text", "evaluator", "concepts", "scratch", "report"] + [
    f"{stage}@{m}" for family, models in FAMILY_MODELS.items()
    for stage in (f"{_verb(family)}-{family}", f"evaluate-{family}") for m in models]


@pytest.fixture(scope="module")
def repro(tmp_path_factory, migrated_db):
    import shutil

    ws = make_workspace(tmp_path_factory.mktemp("pipeline") / "repo", git=True)
    db = ws.parent / "mlflow.db"
    shutil.copy(migrated_db, db)
    env = make_env(f"sqlite:///{db}")
    out = run(["dvc", "repro"], ws, env, timeout=900)
    return ws, env, f"sqlite:///{db}", out.stdout


def _runs(uri) -> list:
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("genlab")
    return client.search_runs([exp.experiment_id], max_results=1000)


def test_outputs_exist_and_are_finite(repro):
    ws, *_ = repro
    paths = [f"metrics/{m}.json" for m in ("evaluator", "concepts", "scratch_cnn", "scratch_ae")]
    for path in paths + [f"metrics/eval/{m}.json" for m in MODELS]:
        metrics = json.loads((ws / path).read_text())
        assert metrics and all(math.isfinite(v) for v in metrics.values()
                               if isinstance(v, float)), path
    assert (ws / "figures/ae/reconstructions.png").stat().st_size > 1000
    assert (ws / "figures/dae/denoise_s0.5.png").exists()
    assert (ws / "figures/ae_toy/scatter.png").exists()
    assert (ws / "figures/evaluator/loss.png").exists()
    assert (ws / "data/samples/ae.npz").exists()
    summary = pd.read_csv(ws / "metrics/summary.csv", index_col="model")
    report = (ws / "reports/report.md").read_text()
    assert set(summary.index) == {"evaluator", *MODELS}
    for m in ("edm_toy", "ddpm_toy", "ncsn_toy"):
        assert (ws / f"figures/{m}/sampling_path.png").exists(), m
    for m in ("edm_fmnist", "ddpm_fmnist", "ncsn_fmnist"):
        assert np.load(ws / f"data/samples/{m}.npz")["images"].shape == (60, 1, 28, 28), m
    for family in ("diffusion", "vae", "flow", "gan"):  # the generative image models
        for m, section in _TINY[family].items():
            if section["dataset"] == "fashion_mnist":
                # the headline FD of every image model, conditional or not, is in the overview
                assert math.isfinite(summary.loc[m, "sample_fd"]), m
                assert m in report.split("## Ranking: Fashion-MNIST")[1].split("## ")[0], m
    assert list(pd.read_csv(ws / "metrics/sweeps/edm_fmnist.csv")["w"]) == [0.0, 2.0]
    assert list(pd.read_csv(ws / "metrics/sweeps/dae.csv")["sigma"]) == [0.0, 0.1, 0.3, 0.5]
    assert "Foundations" in report
    html = (ws / "reports/index.html").read_text()
    assert "data:image/png;base64," in html and "not comparable to Inception FID" in html
    assert "At the GPU profile:</b> FD 0.784" in html  # docs/gpu-profile.yaml, per model
    lock = yaml.safe_load((ws / "dvc.lock").read_text())
    assert set(lock["stages"]) == set(STAGES)


def test_noise_hurts_the_ae_more_than_the_dae(repro):
    """The DAE trains on the noise levels it is evaluated at: its reconstruction error grows
    less from clean inputs to sigma = 0.5 than the plain AE's (same data, steps and net)."""
    ws, *_ = repro
    ae, dae = (json.loads((ws / f"metrics/eval/{m}.json").read_text()) for m in ("ae", "dae"))
    assert ae["recon_mse_s0.5"] > ae["recon_mse"]  # noise hurts a plain AE
    assert dae["recon_mse_s0.5"] - dae["recon_mse"] < ae["recon_mse_s0.5"] - ae["recon_mse"]


def test_mlflow_has_one_parent_with_a_child_per_stage(repro):
    _, _, uri, _ = repro
    runs = _runs(uri)
    parents = [r for r in runs if "genlab_pipeline" in r.data.tags]
    assert len(parents) == 1
    children = {r.info.run_name: r for r in runs
                if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id}
    assert set(children) == set(STAGES)
    train = children["pretrain-autoencoder@ae"]
    assert train.data.params["autoencoder.ae.lr"] == "0.002"
    assert math.isfinite(train.data.metrics["train_loss"])
    assert any(k.startswith("out.models/ae.pt") for k in train.data.tags)
    assert all(r.info.status == "FINISHED" for r in children.values())


def test_each_training_run_logs_a_model_that_loads_back_and_samples(repro, monkeypatch):
    import mlflow
    import torch

    ws, _, uri, _ = repro
    monkeypatch.chdir(ws.parent)  # loading must not need the workspace
    mlflow.set_tracking_uri(uri)
    parent = next(r for r in _runs(uri) if "genlab_pipeline" in r.data.tags)
    runs = {r.info.run_name: r.info.run_id for r in _runs(uri)
            if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    trained = [s for s in STAGES if s.startswith(("train-", "pretrain-"))]
    client = MlflowClient(tracking_uri=uri)
    for stage in trained:  # every training run holds an MLflow model with a signature
        names = {a.path for a in client.list_artifacts(runs[stage], "model")}
        assert "model/MLmodel" in names, (stage, names)
    request = pd.DataFrame({"n": [3], "seed": [7], "class": [4]})
    edm = mlflow.pyfunc.load_model(f"runs:/{runs['train-diffusion@edm_fmnist']}/model")
    a, b = edm.predict(request), edm.predict(request)
    assert a.shape == (3, 1, 28, 28) and np.isfinite(a).all() and np.array_equal(a, b)
    assert not np.array_equal(a, edm.predict(request.assign(seed=8)))
    assert edm.metadata.get_input_schema().input_names()[0] == "n"
    for stage in ("train-latent@ldm_fmnist", "pretrain-autoencoder@ae",
                  "train-gan@gan_eight_gaussians", "train-prior@prior_fmnist"):
        x = mlflow.pyfunc.load_model(f"runs:/{runs[stage]}/model").predict(
            pd.DataFrame({"n": [2]}))
        assert len(x) == 2 and np.isfinite(x).all(), stage
    net_inputs = {"pretrain-vq@vqgan_fmnist": np.zeros((2, 1, 28, 28), np.float32),
                  "train-gpt@recall_rope": np.zeros((2, 16), np.int64)}
    for stage, x in net_inputs.items():  # no sampler: the network's forward
        model = mlflow.pyfunc.load_model(f"runs:/{runs[stage]}/model")
        y = model.predict(x)
        assert len(y) == 2 and np.isfinite(y).all(), stage
        assert isinstance(model.unwrap_python_model().model.net, torch.nn.Module), stage


def test_second_repro_is_a_noop(repro):
    ws, env, *_ = repro
    out = run(["dvc", "repro"], ws, env).stdout
    assert "Running stage" not in out and "up to date" in out


def test_exp_run_is_visible_in_dvc_and_mlflow(repro):
    ws, env, uri, _ = repro
    run(["dvc", "exp", "run", "-n", "lr-sweep-1", "-S", "autoencoder.ae.lr=0.003"], ws, env)
    shown = json.loads(run(["dvc", "exp", "show", "--json"], ws, env).stdout)
    names = [e.get("name") for b in shown for e in (b.get("experiments") or [])
             for e in [e] + (e.get("revs") or [])]
    assert "lr-sweep-1" in json.dumps(shown), names
    runs = _runs(uri)
    (parent,) = [r for r in runs if r.data.tags.get("genlab_pipeline") == "lr-sweep-1"]
    assert parent.info.run_name == "lr-sweep-1"
    children = {r.info.run_name: r for r in runs
                if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    assert {"pretrain-autoencoder@ae", "evaluate-autoencoder@ae", "report"} <= set(children)
    # only the edited model's stages and the report reran
    assert not any(n.startswith(("train-diffusion", "evaluator")) for n in children), children
    assert children["pretrain-autoencoder@ae"].data.params["autoencoder.ae.lr"] == "0.003"
