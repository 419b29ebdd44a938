"""Every repo file a stage imports is a DVC dependency of that stage, and the code fingerprint
that keys resumable checkpoints follows those files.

A file missing from `deps:` can change what a stage writes while `dvc status` stays clean, so
`dvc repro` would keep stale models and metrics.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from stages._deps import code_fingerprint, import_closure, output_shaping_files
from tests.conftest import ROOT


def covered(path: str, deps: list[str]) -> bool:
    return any(path == dep or path.startswith(dep.rstrip("/") + "/") for dep in deps)


def stage_specs() -> list[tuple[str, str, list[str]]]:
    """(stage name, entry module, deps without ${...} templates) for every dvc.yaml stage."""
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    specs = []
    for name, stage in dvc["stages"].items():
        body = stage.get("do", stage)
        cmd = body["cmd"].split()
        assert cmd[:2] == ["python", "-m"], f"stage {name}: cmd {body['cmd']!r} is not python -m"
        specs.append((name, cmd[2], [d for d in body.get("deps", []) if "${" not in d]))
    return specs


SPECS = stage_specs()


@pytest.mark.parametrize("stage,module,deps", SPECS, ids=[s[0] for s in SPECS])
def test_stage_lists_every_file_it_imports(stage, module, deps):
    missing = [rel for rel in output_shaping_files(module) if not covered(rel, deps)]
    assert not missing, f"dvc.yaml stage {stage!r} imports {missing}: add them to its deps"


def test_closure_follows_imports_through_packages():
    files = {p.relative_to(ROOT).as_posix() for p in import_closure("stages.train")}
    assert {"stages/train.py", "stages/_common.py",   # from stages._common import ...
            "src/genlab/config.py",                    # imported by stages/_common.py
            "src/genlab/models/unet.py",
            "src/genlab/__init__.py"} <= files         # a package's __init__ runs on import
    assert "src/genlab/scratch/cnn.py" not in files    # the train stage never imports it


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
