"""Typed, frozen mirrors of params.yaml sections: the generic loader, profile merging and the
sections every stage shares (runtime, tracking, the training loop, evaluation settings).

Each section is a frozen dataclass whose fields are `knob`s: a default, a one-line "why"
(`doc`) and, where the value has a valid range, a `Check` that carries its own message.
`load(cls, raw, path)` turns a raw YAML mapping into an instance, rejecting unknown keys, wrong
types and out-of-range values with one `ConfigError` that names the full key path
(`diffusion.edm_toy.lr must be > 0 and finite, got -1.0`). A field typed as a union of
dataclasses is a tagged section: its `kind` key picks the class. The sections of a model
family live with that family (genlab.families.<name>.config); data, evaluator, scratch and
concepts sections live beside their code.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class ConfigError(ValueError):
    """A params.yaml value is missing, unknown, mistyped or out of range."""


# ---------------------------------------------------------------------------------------------
# Checks: a test and the words that finish "<key> ..." when it fails.


@dataclass(frozen=True)
class Check:
    test: Callable[[Any], bool]
    rule: str  # e.g. "must be > 0 and finite"

    def __call__(self, value: Any) -> bool:
        return bool(self.test(value))


def _finite(x) -> bool:
    return isinstance(x, int) or math.isfinite(x)


positive = Check(lambda x: _finite(x) and x > 0, "must be > 0 and finite")
non_negative = Check(lambda x: _finite(x) and x >= 0, "must be >= 0 and finite")
unit_interval = Check(lambda x: 0.0 <= x < 1.0, "must be in [0, 1)")
non_empty = Check(lambda s: len(s) > 0, "must not be empty")


def at_least(lo) -> Check:
    return Check(lambda x: _finite(x) and x >= lo, f"must be >= {lo}")


def between(lo, hi) -> Check:
    return Check(lambda x: lo <= x <= hi, f"must be in [{lo}, {hi}]")


def one_of(*choices) -> Check:
    return Check(lambda x: x in choices, f"must be one of {list(choices)}")


def items(check: Check) -> Check:
    """A non-empty list whose every item passes `check`."""
    return Check(lambda xs: len(xs) > 0 and all(check(x) for x in xs),
                 f"must be a non-empty list whose items each {check.rule}")


def knob(default: Any = dataclasses.MISSING, *, doc: str, check: Check | None = None,
         factory: Callable | None = None) -> Any:
    """A dataclass field with its documentation and validity check."""
    meta = {"doc": doc, "check": check}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


# ---------------------------------------------------------------------------------------------
# Loading.


def load(cls: type, raw: Any, path: str) -> Any:
    """Build dataclass `cls` from the mapping `raw`, validating every key under `path`.
    A ValueError from the class's __post_init__ (a cross-field check, worded relative to the
    section) becomes a ConfigError under `path`."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must be a mapping, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"{path}.{unknown[0]} is not a known key (known: {sorted(fields)})")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, f in fields.items():
        key = f"{path}.{name}"
        if name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{key} is required ({f.metadata.get('doc', '')})")
            continue
        values[name] = _coerce(hints[name], raw[name], key)
        check = f.metadata.get("check")
        if check is not None and not check(values[name]):
            raise ConfigError(f"{key} {check.rule}, got {raw[name]!r}")
    try:
        return cls(**values)
    except ConfigError:
        raise
    except ValueError as e:
        raise ConfigError(f"{path}.{e}") from None


def _coerce(tp: Any, value: Any, key: str) -> Any:
    """Check `value` against the annotation `tp`; convert lists to tuples and ints to floats."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = [o for o in typing.get_args(tp) if o is not type(None)]
        if value is None and len(options) < len(typing.get_args(tp)):
            return None
        if len(options) > 1 and all(dataclasses.is_dataclass(o) for o in options):
            return _load_tagged(options, value, key)
        errors = []
        for opt in options:
            try:
                return _coerce(opt, value, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0])
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key} must be a list, got {type(value).__name__}")
        (item_tp, *_rest) = typing.get_args(tp)
        return tuple(_coerce(item_tp, v, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping, got {type(value).__name__}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        return load(tp, value, key)
    return _scalar(tp, value, key)


def kind_of(cls: type) -> str:
    """The `kind` a tagged section class stands for (its `kind` field's default)."""
    return next(f.default for f in dataclasses.fields(cls) if f.name == "kind")


def _load_tagged(options: list[type], value: Any, key: str) -> Any:
    """A section typed by its `kind` key: one of several dataclasses, each with its own kind."""
    if not isinstance(value, dict):
        raise ConfigError(f"{key} must be a mapping, got {type(value).__name__}")
    by_kind = {kind_of(cls): cls for cls in options}
    kind = value.get("kind", kind_of(options[0]))
    if kind not in by_kind:
        raise ConfigError(f"{key}.kind must be one of {list(by_kind)}, got {kind!r}")
    return load(by_kind[kind], value, key)


def _scalar(tp: Any, value: Any, key: str) -> Any:
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp in (str, bool) and type(value) is tp:
        return value
    if tp is Any:
        return value
    raise ConfigError(f"{key} must be {tp.__name__}, got {type(value).__name__} {value!r}")


def to_dict(obj: Any) -> dict:
    """Plain nested dict of a config (tuples as lists), e.g. for MLflow params."""
    return dataclasses.asdict(obj)


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists stay values."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


# ---------------------------------------------------------------------------------------------
# Profiles: a section may hold a `gpu:` (or `cpu:`) mapping whose keys replace the section's
# own when that profile is active (`dvc exp run -S profile=gpu`).

PROFILES = ("cpu", "gpu")


def load_profile(params: dict) -> str:
    profile = params.get("profile", "cpu")
    if profile not in PROFILES:
        raise ConfigError(f"profile must be one of {list(PROFILES)}, got {profile!r}")
    return profile


def _deep_merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for k, v in override.items():
        merge = isinstance(v, dict) and isinstance(out.get(k), dict)
        out[k] = _deep_merge(out[k], v) if merge else v
    return out


def apply_profile(raw: Any, profile: str, path: str) -> Any:
    """A section with its `<profile>:` overrides merged in and every profile key removed."""
    if not isinstance(raw, dict):
        return raw
    for p in PROFILES:
        if p in raw and not isinstance(raw[p], dict):
            raise ConfigError(f"{path}.{p} must be a mapping of overrides, "
                              f"got {type(raw[p]).__name__}")
    base = {k: v for k, v in raw.items() if k not in PROFILES}
    return _deep_merge(base, raw.get(profile) or {})


def load_section(cls: type, raw: Any, path: str, profile: str) -> Any:
    """`load` of a section with its profile overrides; an error in a merged value also names
    the override block it may have come from."""
    try:
        return load(cls, apply_profile(raw, profile, path), path)
    except ConfigError as e:
        if isinstance(raw, dict) and isinstance(raw.get(profile), dict) and raw[profile]:
            raise ConfigError(f"{e} (profile {profile}: with the overrides of "
                              f"{path}.{profile})") from None
        raise


def load_seed(params: dict) -> int:
    seed = params.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"seed must be an int >= 0, got {seed!r}")
    return seed


def check_top_level(params: dict, known: tuple[str, ...]) -> None:
    for key in params:
        if key not in known:
            raise ConfigError(f"{key} is not a known top-level key (known: {list(known)})")


# ---------------------------------------------------------------------------------------------
# Data sets a model can name (its `dataset` key): processed by the preprocess stage.

TOY_NAMES = ("swiss_roll", "two_moons", "eight_gaussians", "checkerboard", "rings")
# Image sets (data/processed/<set>/train_x); only Fashion-MNIST has a trained evaluator.
IMAGE_SETS = ("fashion_mnist", "cifar10", "celeba")


def is_toy(dataset: str) -> bool:
    return dataset.startswith("toy2d/")


def datasets(images: tuple[str, ...] = IMAGE_SETS, toy: bool = True) -> Check:
    """A `dataset` value: one of `images`, or toy2d/<name> when `toy`."""
    allowed = list(images) + ([f"toy2d/<one of {list(TOY_NAMES)}>"] if toy else [])
    return Check(lambda d: d in images or (toy and is_toy(d) and d[6:] in TOY_NAMES),
                 f"must be one of {allowed}")


# ---------------------------------------------------------------------------------------------
# Sections shared by every stage.


@dataclass(frozen=True)
class RuntimeConfig:
    device: str = knob("auto", doc="where to train: auto picks cuda, then mps, then cpu",
                       check=one_of("auto", "cpu", "cuda", "mps"))
    num_threads: int = knob(0, doc="CPU threads for torch (0 = torch's default)",
                            check=non_negative)
    bf16: bool = knob(True, doc="bf16 autocast on CUDA (ignored on CPU)")
    progress: bool = knob(True, doc="show tqdm progress bars")
    compile: str = knob("auto", doc="torch.compile the trained network: auto = on CUDA only",
                        check=one_of("auto", "on", "off"))
    channels_last: str = knob("auto", doc="NHWC memory layout (and the U-Net's NHWC code "
                              "paths) for conv nets: auto = on CUDA only",
                              check=one_of("auto", "on", "off"))
    keep_freed_memory: bool = knob(False, doc="glibc malloc reuses freed blocks up to 32 MiB "
                                   "instead of unmapping them (CPU: about 2x faster sampling; "
                                   "values unchanged)")
    processes: int = knob(1, doc="training processes per machine (DDP under torchrun; one a "
                          "GPU); 1 = no torchrun, no process group", check=positive)
    nodes: int = knob(1, doc="machines in a multi-node DDP run (each runs the stage)",
                      check=positive)
    rdzv_endpoint: str = knob("", doc="host:port of torchrun's rendezvous, needed when nodes "
                              "> 1 (the same on every machine)")

    def use(self, knob_name: str, device_type: str) -> bool:
        """Whether an auto/on/off knob is active on this device type."""
        value = getattr(self, knob_name)
        return value == "on" or (value == "auto" and device_type == "cuda")


@dataclass(frozen=True)
class TrackingConfig:
    enabled: bool = knob(True, doc="log runs to MLflow (metrics are always written to files)")
    experiment: str = knob("genlab", doc="MLflow experiment name", check=non_empty)
    timeout_s: int = knob(2, doc="seconds per MLflow HTTP request before it counts as failed",
                          check=positive)
    retries: int = knob(0, doc="MLflow's own retries of a failed request (the stage retries "
                        "later and spools what the store does not take)", check=non_negative)
    budget_s: float = knob(8.0, doc="seconds a stage may spend in failed tracking calls in all; "
                           "after that it spools until the end", check=non_negative)
    system_metrics_s: float = knob(10.0, doc="MLflow system metrics (CPU, memory; GPU with "
                                   "nvidia-ml-py) every N seconds of a train stage; 0 = off",
                                   check=non_negative)


@dataclass(frozen=True)
class LoopConfig:
    """The generic training loop's knobs; every trained model's section extends it."""

    steps: int = knob(2000, doc="optimiser steps", check=positive)
    batch_size: int = knob(128, doc="examples per step", check=positive)
    lr: float = knob(1e-3, doc="peak AdamW learning rate", check=positive)
    weight_decay: float = knob(0.0, doc="AdamW decoupled weight decay", check=non_negative)
    warmup_steps: int = knob(100, doc="linear LR warm-up from 0", check=non_negative)
    decay: str = knob("cosine", doc="LR after warm-up: constant or cosine to 0",
                      check=one_of("constant", "cosine"))
    grad_clip: float = knob(1.0, doc="clip the global grad norm to this (0 = off)",
                            check=non_negative)
    ema_half_life: float = knob(10000.0, doc="EMA half-life in training examples (EDM style)",
                                check=positive)
    ema_rampup: float = knob(0.05, doc="EMA ramp-up (EDM's ema_rampup_ratio): the half-life "
                             "is at most this fraction of the examples seen so far, so a short "
                             "run's average does not keep its random start (0 = off)",
                             check=non_negative)
    max_bad_steps: int = knob(20, doc="consecutive steps with a non-finite loss or gradient "
                              "(each skipped: optimiser, schedule and EMA untouched) that abort "
                              "the run", check=positive)
    accumulate: int = knob(1, doc="micro-batches per optimiser step (gradient accumulation): "
                           "each holds batch_size / accumulate examples (per DDP process), "
                           "so the update equals one step on the whole batch in less memory",
                           check=positive)
    ckpt_every: int = knob(500, doc="write a resumable checkpoint every N steps",
                           check=positive)
    log_every: int = knob(50, doc="average the loss over N steps for logs and the CSV",
                          check=positive)
    max_seconds: float = knob(
        0.0, check=non_negative,
        doc="stop after this much training wall time (0 = run all steps); a cosine schedule "
        "then decays over whichever of steps / time runs out first. Each process's first step "
        "(torch.compile, cuDNN autotuning) is off this clock and reported as warmup_seconds")


@dataclass(frozen=True)
class EvaluateConfig:
    """How every model is evaluated (stage evaluate-<family>, and the evaluator's protocol)."""

    n_samples: int = knob(10000, doc="images compared for FD / precision / recall "
                          "(a model's eval_samples overrides it)", check=positive)
    batch_size: int = knob(500, doc="evaluation batch size", check=positive)
    sample_batch_size: int = knob(500, doc="images per sampler batch (large on a GPU)",
                                  check=positive)
    k: int = knob(3, doc="k of the k-NN manifolds (Kynkaanniemi et al. 2019)", check=positive)
    toy_n: int = knob(5000, doc="points compared for the toy metrics", check=positive)
    swd_projections: int = knob(256, doc="random directions of the sliced Wasserstein "
                                "distance", check=positive)
    grid: int = knob(8, doc="side of the sample / reconstruction grids", check=positive)
