"""dvc.yaml and params.yaml agree: every train key is a stage pair and feeds the report."""

from __future__ import annotations

import yaml

from tests.conftest import ROOT


def test_report_depends_on_every_models_metrics(params):
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    deps = set(dvc["stages"]["report"]["deps"])
    for name in params["train"]:
        assert f"metrics/{name}.json" in deps, f"add metrics/{name}.json to report's deps"
    assert "metrics/evaluator.json" in deps


def test_train_and_evaluate_iterate_the_train_section():
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    for stage in ("train", "evaluate"):
        assert dvc["stages"][stage]["foreach"] == "${train}"
        assert "train.${key}" in dvc["stages"][stage]["do"]["params"]


def test_tiny_params_cover_the_same_models(params):
    tiny = yaml.safe_load((ROOT / "tests/e2e/params_tiny.yaml").read_text())
    assert set(tiny["train"]) == set(params["train"])
    assert set(tiny) == set(params)
