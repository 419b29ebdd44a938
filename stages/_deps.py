"""The repo code a stage runs: its import closure and a fingerprint of it.

Two uses, one definition:
- tests/test_stage_deps.py checks that dvc.yaml lists every file of a stage's closure under
  `deps:`, so an edit that can change a stage's outputs makes `dvc repro` rerun it;
- the train and evaluator stages key their resumable checkpoints to the fingerprint, so a
  rerun after a code edit trains afresh instead of resuming the old run at its last step.

The closure is read statically: every `import` statement of every file (those inside
functions too), followed through src/genlab and stages/. That over-approximates what runs and
so errs towards a rerun.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Repo files that write only to MLflow, never to a stage's outputs: an edit to them must not
# rerun training or invalidate its checkpoints. Each entry says why.
NOT_OUTPUT_SHAPING = {
    "src/genlab/tracking/mlflow_tracker.py": "logs params, metrics and artifacts to MLflow only",
    "src/genlab/tracking/mlflow_model.py": "writes the MLflow model the train stage logs only",
    "src/genlab/inference.py": "loads models/<name>.pt for the CLI and the MLflow model only",
}


def module_file(name: str, root: Path = ROOT) -> Path | None:
    """The file of a dotted module name inside the repo (src/<name> or <name> from the root,
    as stages.*), or None for a module from outside it."""
    for base in (root / "src", root):
        stem = base.joinpath(*name.split("."))
        for path in (stem.with_suffix(".py"), stem / "__init__.py"):
            if path.is_file():
                return path
    return None


def imported_modules(path: Path, root: Path = ROOT) -> set[str]:
    """Dotted names of every module `path` imports. `from pkg import x` gives pkg and pkg.x
    (x may be a submodule); relative imports are resolved against the file's package."""
    src = root / "src"
    rel = path.relative_to(src if path.is_relative_to(src) else root)
    package = list(rel.parent.parts)
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # from . import x (level 1) / from .. import x (level 2) ...
                parts = package[:len(package) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_closure(module: str, root: Path = ROOT) -> set[Path]:
    """Repo files that `import module` executes: the module, the __init__ of each package
    on its dotted path, and so on for everything they import."""
    seen: set[Path] = set()
    todo = [module]
    while todo:
        parts = todo.pop().split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a, a.b and a.b.c
            path = module_file(".".join(parts[:i]), root)
            if path is not None and path not in seen:
                seen.add(path)
                todo.extend(imported_modules(path, root))
    return seen


# Stages whose first argument names a model family: they also run that family's package
# (registry entry) or its evaluate module, which they import by name at run time.
FAMILY_PART = {"stages.train": "", "stages.evaluate": "evaluate"}


def stage_modules(argv: list[str]) -> list[str]:
    """The dotted modules a stage command runs: `[module, *args]` of `python -m module args`.
    A family stage adds genlab.families.<family> (train) or its evaluate module."""
    module, *args = argv
    if module in FAMILY_PART and args:
        part = FAMILY_PART[module]
        return [module, f"genlab.families.{args[0]}" + (f".{part}" if part else "")]
    return [module]


def output_shaping_files(modules: str | list[str], root: Path = ROOT) -> list[str]:
    """The closure of `modules` as sorted root-relative paths, less NOT_OUTPUT_SHAPING and empty
    files (an empty __init__.py runs nothing)."""
    paths = set().union(*(import_closure(m, root) for m in
                          ([modules] if isinstance(modules, str) else modules)))
    return sorted(
        rel for path in paths
        if (rel := path.relative_to(root).as_posix()) not in NOT_OUTPUT_SHAPING
        and path.read_text().strip())


def code_fingerprint(modules: str | list[str], root: Path = ROOT) -> str:
    """sha256 (16 hex digits) over the paths and bytes of output_shaping_files(modules)."""
    digest = hashlib.sha256()
    for rel in output_shaping_files(modules, root):
        digest.update(rel.encode() + b"\0" + (root / rel).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


if __name__ == "__main__":
    # `python -m stages._deps stages.train <family>`: the code deps of that stage command, as
    # the YAML list its dvc.yaml block needs (data and model files are added by hand).
    import sys

    for rel in output_shaping_files(stage_modules(sys.argv[1:])):
        print(f"        - {rel}")
