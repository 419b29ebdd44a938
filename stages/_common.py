"""Wiring shared by the stage entry points: params, paths, environment, tracking, outputs.

Stages are the only place that reads params.yaml and environment variables (DVC_ROOT,
DVC_STAGE, DVC_EXP_NAME, MLFLOW_TRACKING_URI); the library receives plain arguments.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
import yaml

from genlab.config import (
    TOP_LEVEL,
    ConfigError,
    RuntimeConfig,
    TrackingConfig,
    check_top_level,
    load,
    load_profile,
    load_seed,
)
from genlab.tracking.mlflow_tracker import StageTracker, TrackingTarget
from genlab.training.device import pick_device

PARAMS = Path("params.yaml")
PROCESSED = Path("data/processed")


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
    check_top_level(params, TOP_LEVEL)
    return params


def section(params: dict, key: str) -> Any:
    if key not in params:
        raise ConfigError(f"{key} is missing from {PARAMS}")
    return params[key]


def model_section(argv: list[str], stage: str) -> tuple[str, dict, Any]:
    """(name, params, typed config) for `python -m stages.<stage> <name>`, name a train key."""
    from genlab.config import load_train

    if len(argv) != 1:
        raise ConfigError(f"usage: python -m stages.{stage} <name>  (a key of the train section)")
    name = argv[0]
    params = load_params()
    train_section = section(params, "train")
    presets = params.get("presets") or {}
    if name in train_section:
        return name, params, load_train(train_section[name], name, load_profile(params))
    if isinstance(presets, dict) and name in presets:
        return name, params, _load_preset(presets[name], name, load_profile(params))
    raise ConfigError(f"train.{name} is not in params.yaml (have: {list(train_section)}; "
                      f"presets: {list(presets) if isinstance(presets, dict) else []})")


def evaluate_section(params: dict):
    """The typed `evaluate` section with the active profile's overrides."""
    from genlab.config import EvaluateConfig, apply_profile

    raw = apply_profile(params.get("evaluate", {}), load_profile(params), "evaluate")
    return load(EvaluateConfig, raw, "evaluate")


def runtime(params: dict) -> tuple[RuntimeConfig, torch.device, int]:
    """Validated runtime section, the chosen device and the seed; sets the thread count."""
    rt = load(RuntimeConfig, params.get("runtime", {}), "runtime")
    seed = load_seed(params)
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


def tracker(params: dict, default_stage: str, logged: dict) -> StageTracker:
    """A StageTracker for this stage, logging the flattened `logged` params."""
    from genlab.config import flatten

    return StageTracker(tracking_target(params, default_stage), flatten(logged))


def write_json(path: Path, data: dict | list) -> None:
    """Write a small JSON file via a temp file + rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def write_csv(path: Path, rows: list[dict]) -> None:
    import pandas as pd

    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)


def main(fn) -> None:
    """Run a stage's main, turning config / data / checkpoint errors into one clear line."""
    from genlab.errors import CheckpointError, DataError

    try:
        fn(sys.argv[1:])
    except (ConfigError, DataError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


def _load_preset(raw, name: str, profile: str):
    """A presets.<name> section, validated like train.<name>; errors name presets.<name>."""
    from genlab.config import load_train

    try:
        return load_train(raw, name, profile)
    except ConfigError as e:
        raise ConfigError(str(e).replace(f"train.{name}", f"presets.{name}")) from None


def validate_params(params: dict) -> None:
    """Validate every section of params.yaml at once (used by `make check-params` and tests)."""
    from genlab.config import PROFILES, DataConfig, EvaluatorConfig, load_train

    check_top_level(params, TOP_LEVEL)
    load_seed(params)
    active = load_profile(params)
    load(RuntimeConfig, params.get("runtime", {}), "runtime")
    load(TrackingConfig, params.get("tracking", {}), "tracking")
    load(DataConfig, section(params, "data"), "data")
    load(EvaluatorConfig, section(params, "evaluator"), "evaluator")
    train = section(params, "train")
    if not isinstance(train, dict) or not train:
        raise ConfigError("train must be a non-empty mapping of model name -> section")
    presets = params.get("presets") or {}
    if not isinstance(presets, dict):
        raise ConfigError(f"presets must be a mapping of name -> train section, "
                          f"got {type(presets).__name__}")
    for name in presets:
        if name in train:
            raise ConfigError(f"presets.{name} has the name of train.{name}: rename one")
    for profile in (active, *[p for p in PROFILES if p != active]):  # every preset, active first
        evaluate_section({**params, "profile": profile})
        for name, raw in train.items():
            load_train(raw, name, profile)
        for name, raw in presets.items():
            _load_preset(raw, name, profile)
    from genlab.config import ConceptsConfig, ScratchConfig

    load(ConceptsConfig, params.get("concepts", {}), "concepts")
    load(ScratchConfig, params.get("scratch", {}), "scratch")
