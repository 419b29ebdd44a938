"""dvc.yaml and params.yaml agree: every model family has its block of two stages iterating
over its own params section, models feed the report through folders, tiny params cover the
models of every family and data kind (the real ones' images and toy sets)."""

from __future__ import annotations

import yaml

from genlab import families
from genlab.config import is_toy
from tests.conftest import ROOT


def _dvc() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def test_every_family_has_its_block_over_its_own_section(params):
    stages = _dvc()
    for name in families.available():
        family = families.get(name)
        verb = "pretrain" if family.role == "pretrain" else "train"
        for stage, module in ((f"{verb}-{name}", "stages.train"),
                              (f"evaluate-{name}", "stages.evaluate")):
            assert stage in stages, f"dvc.yaml has no stage {stage} for family {name}"
            body = stages[stage]
            assert body["foreach"] == f"${{{name}}}", stage
            assert body["do"]["cmd"] == f"python -m {module} {name} ${{key}}", stage
            assert f"{name}.${{key}}" in body["do"]["params"], stage
            # its data: data/processed/<dataset>, or another data stage's output (data/text)
            assert any(d.startswith("data/") for d in body["do"]["deps"]), stage
        assert name in params, f"params.yaml has no section for family {name}"


def test_report_reads_every_model_through_folders():
    """metrics/eval and figures: a new family's models reach the report with no edit to it."""
    deps = set(_dvc()["report"]["deps"])
    assert {"metrics/eval", "metrics/sweeps", "figures", "metrics/evaluator.json"} <= deps
    for body in _dvc().values():
        metrics = [next(iter(m)) if isinstance(m, dict) else m
                   for m in body.get("do", body).get("metrics", [])]
        for m in metrics:
            assert m.startswith(("metrics/eval/", "metrics/train/")) or m in deps, m


def test_tiny_params_cover_every_family_and_data_kind(params):
    """The end-to-end run trains a subset of each family's models (one per data kind keeps the
    suite fast: a family's toy-set models differ only in their data), with their real names."""
    tiny = yaml.safe_load((ROOT / "tests/e2e/params_tiny.yaml").read_text())
    assert set(tiny) == set(params)
    for name in families.available():
        assert tiny[name] and set(tiny[name]) <= set(params[name]), name
        kinds = {is_toy(m["dataset"]) for m in params[name].values()}
        assert {is_toy(m["dataset"]) for m in tiny[name].values()} == kinds, name
