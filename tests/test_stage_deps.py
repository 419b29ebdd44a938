"""Every repo file a stage imports is a DVC dependency of that stage, and no other code file
is; the code fingerprint that keys resumable checkpoints follows those files.

A file missing from `deps:` can change what a stage writes while `dvc status` stays clean, so
`dvc repro` would keep stale models and metrics; a code file listed that the stage never runs
reruns it (and throws its checkpoints away) for nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from stages._deps import code_fingerprint, import_closure, output_shaping_files, stage_modules
from tests.conftest import ROOT


def covered(path: str, deps: list[str]) -> bool:
    return any(path == dep or path.startswith(dep.rstrip("/") + "/") for dep in deps)


def stage_specs() -> list[tuple[str, list[str], list[str]]]:
    """(stage name, modules its command runs, deps without data/model paths) per dvc.yaml
    stage. A family stage's `python -m stages.train <family> ${key}` runs the family too."""
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    specs = []
    for name, stage in dvc["stages"].items():
        body = stage.get("do", stage)
        cmd = body["cmd"].split()
        assert cmd[:2] == ["python", "-m"], f"stage {name}: cmd {body['cmd']!r} is not python -m"
        argv = [a for a in cmd[2:] if "${" not in a]
        code = [d for d in body.get("deps", []) if d.startswith(("src/", "stages/"))]
        specs.append((name, stage_modules(argv), code))
    return specs


SPECS = stage_specs()


@pytest.mark.parametrize("stage,modules,deps", SPECS, ids=[s[0] for s in SPECS])
def test_stage_lists_exactly_the_files_it_imports(stage, modules, deps):
    closure = output_shaping_files(modules)
    missing = [rel for rel in closure if not covered(rel, deps)]
    assert not missing, f"dvc.yaml stage {stage!r} imports {missing}: add them to its deps"
    extra = [dep for dep in deps if not any(covered(rel, [dep]) for rel in closure)]
    assert not extra, f"dvc.yaml stage {stage!r} lists {extra}, which it never imports"
    wide = [dep for dep in deps if (ROOT / dep).is_dir()]
    assert not wide, f"dvc.yaml stage {stage!r} lists folders {wide}: list the files it runs"


# A family built on another one, by design: latent diffusion is the diffusion family's EDM
# (config types, backbone, sampler) on a tokenizer's latents, so an edit there reruns it too.
BUILDS_ON = {"latent": ("diffusion",)}


def test_family_code_is_a_dep_of_that_family_only():
    """Each family's files are deps of that family's stages (and of the families declared to
    build on it) and of no other stage."""
    for stage, _, deps in SPECS:
        own = stage.split("@")[0].rsplit("-", 1)[-1]
        for dep in deps:
            if dep.startswith("src/genlab/families/") and dep.count("/") > 3:
                family = dep.split("/")[3]
                assert family == own or family in BUILDS_ON.get(own, ()), (stage, dep)


def test_closure_follows_imports_through_packages():
    files = set(output_shaping_files(stage_modules(["stages.train", "diffusion"])))
    assert {"stages/train.py", "stages/_common.py",   # from stages._common import ...
            "src/genlab/config.py",                    # imported by stages/_common.py
            "src/genlab/families/diffusion/__init__.py",  # the family the command names
            "src/genlab/models/unet.py"} <= files      # ... and what that family imports
    assert "src/genlab/scratch/cnn.py" not in files    # the train stage never imports it
    assert "src/genlab/families/diffusion/evaluate.py" not in files  # training runs no eval
    assert not any("autoencoder" in f for f in files)  # nor another family
    every = {p.relative_to(ROOT).as_posix() for p in import_closure("stages.train")}
    assert "src/genlab/__init__.py" in every           # a package's __init__ runs on import


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_relative_imports_and_function_level_imports(tmp_path):
    _write(tmp_path, "src/pkg/__init__.py", "")
    _write(tmp_path, "src/pkg/a.py", "from . import b\nfrom .sub.c import f\n")
    _write(tmp_path, "src/pkg/b.py", "def g():\n    from pkg.sub import d\n")
    _write(tmp_path, "src/pkg/sub/__init__.py", "X = 1\n")
    _write(tmp_path, "src/pkg/sub/c.py", "from ..b import g\nimport os\n")
    _write(tmp_path, "src/pkg/sub/d.py", "")
    _write(tmp_path, "src/pkg/unused.py", "")
    files = {p.relative_to(tmp_path).as_posix() for p in import_closure("pkg.a", tmp_path)}
    assert files == {"src/pkg/__init__.py", "src/pkg/a.py", "src/pkg/b.py",
                     "src/pkg/sub/__init__.py", "src/pkg/sub/c.py", "src/pkg/sub/d.py"}
    # empty files run nothing and are left out of what must be listed
    assert output_shaping_files("pkg.a", tmp_path) == [
        "src/pkg/a.py", "src/pkg/b.py", "src/pkg/sub/__init__.py", "src/pkg/sub/c.py"]


def test_fingerprint_changes_with_any_closure_file_and_only_those(tmp_path):
    _write(tmp_path, "stages/run.py", "from pkg import model\n")
    _write(tmp_path, "src/pkg/model.py", "W = 1\n")
    _write(tmp_path, "src/pkg/other.py", "V = 1\n")
    before = code_fingerprint("stages.run", tmp_path)
    assert before == code_fingerprint("stages.run", tmp_path)
    _write(tmp_path, "src/pkg/other.py", "V = 2\n")           # not imported: no change
    assert code_fingerprint("stages.run", tmp_path) == before
    _write(tmp_path, "src/pkg/model.py", "W = 2\n")           # imported: changes
    changed = code_fingerprint("stages.run", tmp_path)
    assert changed != before
    _write(tmp_path, "stages/run.py", "from pkg import model  # edited\n")
    assert code_fingerprint("stages.run", tmp_path) not in (before, changed)
