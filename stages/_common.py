"""Wiring shared by the stage entry points: params, paths, environment, tracking, outputs.

Stages are the only place that reads params.yaml and environment variables (DVC_ROOT,
DVC_STAGE, DVC_EXP_NAME, MLFLOW_TRACKING_URI); the library receives plain arguments.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
import yaml

from genlab.config import (
    ConfigError,
    EvaluateConfig,
    RuntimeConfig,
    TrackingConfig,
    check_top_level,
    load,
    load_profile,
    load_section,
    load_seed,
)
from genlab.tracking.mlflow_tracker import StageTracker, TrackingTarget
from genlab.training.device import keep_freed_memory, pick_device

PARAMS = Path("params.yaml")
PROCESSED = Path("data/processed")


# Top-level sections besides one per model family (genlab.families.available()).
SECTIONS = ("seed", "profile", "runtime", "tracking", "data", "evaluator", "evaluate",
            "presets", "concepts", "scratch")


def known_sections() -> tuple[str, ...]:
    from genlab import families

    return SECTIONS + tuple(families.available())


def load_params(path: Path = PARAMS) -> dict:
    """The whole params.yaml as a dict, with its top-level keys checked."""
    if not path.is_file():
        raise ConfigError(f"{path} not found (run stages from the repository root)")
    try:
        params = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {e}") from e
    if not isinstance(params, dict):
        raise ConfigError(f"{path} must hold a mapping at the top level")
    check_top_level(params, known_sections())
    return params


def section(params: dict, key: str) -> Any:
    if key not in params:
        raise ConfigError(f"{key} is missing from {PARAMS}")
    return params[key]


MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def check_model_name(where: str, name: Any) -> None:
    """Model names become paths (models/<name>.pt) and DVC stage keys: letters, digits, _ -."""
    if not isinstance(name, str) or not MODEL_NAME.fullmatch(name):
        raise ConfigError(f"{where}.{name}: a model name must be letters, digits, '_' or '-' "
                          f"(it names models/<name>.pt), got {name!r}")


def model_raw(params: dict, family: str, name: str) -> tuple[str, Any]:
    """(key path, raw section) of model `name`: <family>.<name>, else presets.<family>.<name>."""
    models = params.get(family) or {}
    presets = (params.get("presets") or {}).get(family) or {}
    if isinstance(models, dict) and name in models:
        return f"{family}.{name}", models[name]
    if isinstance(presets, dict) and name in presets:
        return f"presets.{family}.{name}", presets[name]
    raise ConfigError(f"{family}.{name} is not in {PARAMS} (models: "
                      f"{list(models) if isinstance(models, dict) else []}; presets: "
                      f"{list(presets) if isinstance(presets, dict) else []})")


def model_section(argv: list[str], stage: str):
    """(family, name, params, typed config) for `python -m stages.<stage> <family> <name>`."""
    from genlab import families

    if len(argv) != 2:
        raise ConfigError(f"usage: python -m stages.{stage} <family> <name>  (families: "
                          f"{families.available()}; name: a key of that params section)")
    family, name = families.get(argv[0]), argv[1]
    check_model_name(family.name, name)
    params = load_params()
    path, raw = model_raw(params, family.name, name)
    return family, name, params, load_section(family.config, raw, path, load_profile(params))


def evaluate_section(params: dict, profile: str | None = None) -> EvaluateConfig:
    """The typed `evaluate` section with the active profile's overrides (or `profile`'s)."""
    return load_section(EvaluateConfig, params.get("evaluate", {}), "evaluate",
                        profile or load_profile(params))


def runtime(params: dict) -> tuple[RuntimeConfig, torch.device, int]:
    """Validated runtime section, the chosen device and the seed; sets the thread count."""
    rt = load(RuntimeConfig, params.get("runtime", {}), "runtime")
    seed = load_seed(params)
    if rt.keep_freed_memory:
        keep_freed_memory()
    if rt.num_threads:
        torch.set_num_threads(rt.num_threads)
    device = pick_device(rt.device)
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")  # TF32 for what runs outside bf16 autocast
        torch.backends.cudnn.benchmark = True
    return rt, device, seed


def config_hash(*parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def tracking_root() -> Path:
    """The main repository: DVC_ROOT inside dvc (also for queued / temp experiments)."""
    return Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()


def pipeline_run_name() -> str:
    """DVC experiment name when set; else <git short sha>-<params.yaml hash>."""
    if os.environ.get("DVC_EXP_NAME"):
        return os.environ["DVC_EXP_NAME"]
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = "nogit"
    digest = hashlib.sha256(PARAMS.read_bytes()).hexdigest()[:8] if PARAMS.exists() else "none"
    return f"{sha}-{digest}"


def tracking_target(params: dict, default_stage: str) -> TrackingTarget | None:
    cfg = load(TrackingConfig, params.get("tracking", {}), "tracking")
    if not cfg.enabled:
        return None
    root = tracking_root()
    uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{root / 'mlflow.db'}"
    return TrackingTarget(uri=uri, experiment=cfg.experiment,
                          artifact_location=(root / "mlartifacts").as_uri(),
                          pipeline_run=pipeline_run_name(),
                          stage_run=os.environ.get("DVC_STAGE") or default_stage)


def tracker(params: dict, default_stage: str, logged: dict, active: bool = True,
            system_metrics: bool = False) -> StageTracker:
    """A StageTracker for this stage, logging the flattened `logged` params (and MLflow's
    system metrics when asked: the training stages); a no-op one when not `active` (a DDP rank
    other than 0)."""
    from genlab.config import flatten

    cfg = load(TrackingConfig, params.get("tracking", {}), "tracking")
    target = tracking_target(params, default_stage) if active else None
    return StageTracker(target, flatten(logged),
                        timeout_s=cfg.timeout_s, retries=cfg.retries, budget_s=cfg.budget_s,
                        system_metrics_s=cfg.system_metrics_s if system_metrics else 0.0)


def check_writable(*folders: Path) -> None:
    """Create each output folder and make sure this process may write it, before any work."""
    from genlab.errors import OutputError

    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputError(f"cannot create output folder {folder}: {e.strerror}") from e
        if not os.access(folder, os.W_OK | os.X_OK):
            raise OutputError(f"output folder {folder} is not writable; fix its permissions "
                              "and rerun (nothing was trained or overwritten)")


def write_json(path: Path, data: dict | list) -> None:
    """Write a small JSON file via a temp file + rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def write_csv(path: Path, rows: list[dict]) -> None:
    """Write rows as CSV via a temp file + rename (a crash leaves the old file or the new)."""
    import pandas as pd

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    pd.DataFrame(rows).to_csv(tmp, index=False)
    os.replace(tmp, path)


class Outputs:
    """A stage's outputs, published together: each is written under a temp name beside its
    target (`stage(path)` for a file or folder the caller fills; `json`, `csv`, `model`), and
    only when the block ends without an error are they renamed into place, so a failure on the
    way (disk full, a bad value, an exception in a family's code) leaves the previous complete
    set, never new figures beside old metrics. Temp names are those remove_orphans deletes,
    and the targets' orphans of a killed run are deleted on entry."""

    def __init__(self, *targets: Path):
        from genlab.training.checkpoint import remove_orphans

        for target in targets:
            remove_orphans(Path(target))
        self._staged: list[tuple[Path, Path]] = []  # (temp, target) in publication order

    def __enter__(self) -> Outputs:
        return self

    def stage(self, path: Path, folder: bool = False) -> Path:
        """The temp path to write instead of `path` (an empty folder when `folder`)."""
        from genlab.training.checkpoint import temp_path

        tmp = temp_path(Path(path))
        tmp.unlink()  # the name is reserved; a file the stage never writes is not published
        if folder:
            tmp.mkdir()
        self._staged.append((tmp, Path(path)))
        return tmp

    def json(self, path: Path, data: dict | list) -> None:
        self.stage(path).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")

    def csv(self, path: Path, rows: list[dict]) -> None:
        import pandas as pd

        pd.DataFrame(rows).to_csv(self.stage(path), index=False)

    def model(self, path: Path, obj: dict) -> None:
        from genlab.training.checkpoint import write_checkpoint

        write_checkpoint(obj, self.stage(path))

    def __exit__(self, exc_type, exc, tb) -> bool:
        import shutil

        if exc_type is not None:  # nothing published; the previous outputs stay
            for tmp, _ in self._staged:
                if tmp.is_dir():
                    shutil.rmtree(tmp, ignore_errors=True)
                else:
                    tmp.unlink(missing_ok=True)
            return False
        for tmp, target in self._staged:
            if tmp.is_dir():  # a folder cannot be renamed over a non-empty one: swap
                old = target.parent / f".{target.name}.old.tmp"
                shutil.rmtree(old, ignore_errors=True)
                if target.exists():
                    os.replace(target, old)
                os.replace(tmp, target)
                shutil.rmtree(old, ignore_errors=True)
            elif tmp.exists():  # a staged file the stage never wrote is not published
                os.replace(tmp, target)
        return False


def main(fn) -> None:
    """Run a stage's main, turning config / data / checkpoint errors into one clear line."""
    from genlab.errors import CheckpointError, DataError, OutputError, TrainingError

    try:
        fn(sys.argv[1:])
    except (ConfigError, DataError, CheckpointError, TrainingError, OutputError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    quick_exit()


def quick_exit() -> None:
    """End a finished stage without the interpreter's module teardown, which costs ~1.3 s
    with torch, MLflow and pandas loaded (x 75 stages of a repro). Every output is closed
    by now (Outputs, the tracker's context); atexit handlers still run and stdio is
    flushed. A normal exit where another thread or a process group is still alive."""
    import atexit
    import threading

    if any(t is not threading.main_thread() and t.is_alive() and not t.daemon
           for t in threading.enumerate()):
        return
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(0)
