"""What an edit reruns, asked of real DVC: in a copy of the repository whose dvc.lock records the
current code, `dvc status` after touching a family's file lists only that family's stages, and
the DAG puts only the report (and, for a pretrain family, its consumers) downstream of them.
Adding a family (its package and its params section) changes no existing stage."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import yaml

from tests.conftest import ROOT
from tests.e2e.conftest import make_env

COPY = ["dvc.yaml", "params.yaml", "src", "stages"]


def _lock_current_code(ws) -> None:
    """dvc.lock with every stage's deps hashed as they are now (data and outputs absent).
    DVC writes lock entries only after running a stage; this uses its own serializer
    (dvc.stage.serialize, pinned dvc) to record the hashes without running anything."""
    from dvc.repo import Repo
    from dvc.stage.serialize import to_single_stage_lockfile

    lock = {}
    with Repo(str(ws)) as repo:
        for stage in repo.index.stages:
            stage.save_deps(allow_missing=True)
            lock[stage.name] = json.loads(json.dumps(to_single_stage_lockfile(stage)))
    (ws / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": lock},
                                                sort_keys=False))


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    ws = tmp_path_factory.mktemp("granularity")
    for name in COPY:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, ws / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, ws / name)
    env = make_env(None)
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        subprocess.run(cmd, cwd=ws, env=env, check=True, capture_output=True)
    _lock_current_code(ws)
    return ws


def code_changed(ws) -> set[str]:
    """Stages `dvc status` reports with a modified code (src/, stages/) dependency."""
    out = subprocess.run(["dvc", "status", "--json"], cwd=ws, env=make_env(None), check=True,
                         capture_output=True, text=True, timeout=120).stdout
    changed = set()
    for stage, items in json.loads(out).items():
        for item in items:
            deps = item.get("changed deps", {}) if isinstance(item, dict) else {}
            if any(p.startswith(("src/", "stages/")) and how == "modified"
                   for p, how in deps.items()):
                changed.add(stage)
    return changed


def downstream(ws, stages: set[str]) -> set[str]:
    """Stages that depend, directly or not, on an output of `stages` (DVC's own DAG)."""
    import networkx as nx
    from dvc.repo import Repo

    with Repo(str(ws)) as repo:
        graph = repo.index.graph  # edges: stage -> the stages whose outputs it depends on
        by_name = {s.name: s for s in graph.nodes}
        return {a.name for s in stages for a in nx.ancestors(graph, by_name[s])} - stages


def changed_after_editing(ws, path: str) -> set[str]:
    """code_changed(ws) with a comment appended to `path`, which is restored afterwards."""
    original = (ws / path).read_text()
    try:
        (ws / path).write_text(original + "# edited\n")
        return code_changed(ws)
    finally:
        (ws / path).write_text(original)


def _models(family: str) -> list[str]:
    return list(yaml.safe_load((ROOT / "params.yaml").read_text())[family])


def _stages_of(family: str) -> set[str]:
    """The stages of `family` over its models; "<verb>-<family>" names that stage only."""
    from genlab.families import get

    if "-" in family:
        return {f"{family}@{m}" for m in _models(family.split("-", 1)[1])}
    verb = "pretrain" if get(family).role == "pretrain" else "train"
    return {f"{s}@{m}" for s in (f"{verb}-{family}", f"evaluate-{family}")
            for m in _models(family)}


# (file, the families whose stages run it): latent diffusion is built on the diffusion
# family's U-Net and EDM sampler (tests/test_stage_deps.py BUILDS_ON) and decodes with the vq
# tokenizer; the token prior is the gpt family's transformer (models/gpt.py, not its family
# files) over the vq tokenizer's grids. `then`: stages that rerun because an output of those
# changes (besides the report).
@pytest.mark.parametrize("path,families,then", [
    ("src/genlab/models/ae.py", ("autoencoder",), ()),
    ("src/genlab/families/autoencoder/config.py", ("autoencoder",), ()),
    ("src/genlab/models/unet.py", ("diffusion", "latent"), ()),
    ("src/genlab/samplers/edm.py", ("diffusion", "latent"), ()),
    ("src/genlab/models/gpt.py", ("gpt", "prior"), ()),  # the token prior is that GPT
    # latent encodes and decodes with the tokenizer; the prior decodes its samples with it,
    # and trains on the grids evaluate-vq writes (data/tokens/<t>), so it retrains after
    ("src/genlab/models/vqvae.py", ("vq", "latent", "evaluate-prior"), ("train-prior",)),
    ("src/genlab/models/token_prior.py", ("prior",), ()),
])
def test_touching_a_family_file_reruns_that_family_and_the_report(ws, path, families, then):
    assert code_changed(ws) == set()
    changed = changed_after_editing(ws, path)
    assert changed == set().union(*(_stages_of(f) for f in families))
    assert downstream(ws, changed) == {"report"}.union(*(_stages_of(f) for f in then))


def test_touching_evaluation_code_reruns_no_training(ws):
    changed = changed_after_editing(ws, "src/genlab/families/diffusion/evaluate.py")
    assert changed == {f"evaluate-diffusion@{m}" for m in _models("diffusion")}


def test_adding_a_family_changes_no_existing_stage(ws):
    pkg = ws / "src/genlab/families/newfamily"
    params = (ws / "params.yaml").read_text()
    try:
        pkg.mkdir()
        (pkg / "__init__.py").write_text('"""A new family."""\n')
        (pkg / "evaluate.py").write_text('"""Its evaluation."""\n')
        (ws / "params.yaml").write_text(params + "newfamily:\n  m1: {dataset: fashion_mnist}\n")
        assert code_changed(ws) == set()
        out = subprocess.run(["dvc", "status", "--json"], cwd=ws, env=make_env(None),
                             check=True, capture_output=True, text=True).stdout
        assert not any("changed params" in json.dumps(v) for v in json.loads(out).values())
    finally:
        shutil.rmtree(pkg, ignore_errors=True)
        (ws / "params.yaml").write_text(params)
