"""Typed, frozen mirrors of params.yaml sections: load and validate, nothing else.

Every section is a frozen dataclass. Each field carries a one-line "why" (`doc`) and, where
the value has a valid range, a `check`. `load(cls, raw, path)` turns the raw YAML mapping
into an instance, rejecting unknown keys, wrong types and out-of-range values with one
`ConfigError` that names the full key path (e.g. `train.ae.lr must be > 0, got -1`).
Stages call it before touching any data.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class ConfigError(ValueError):
    """A params.yaml value is missing, unknown, mistyped or out of range."""


def knob(
    default: Any = dataclasses.MISSING,
    *,
    doc: str,
    check: Callable | None = None,
    rule: str = "",
    factory: Callable | None = None,
) -> Any:
    """A dataclass field with its documentation and validity check (`rule` names the check)."""
    meta = {"doc": doc, "check": check, "rule": rule}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def positive(x) -> bool:
    return x > 0


def non_negative(x) -> bool:
    return x >= 0


def unit_interval(x) -> bool:
    return 0.0 <= x < 1.0


def one_of(*choices) -> tuple[Callable, str]:
    return (lambda x: x in choices), f"must be one of {list(choices)}"


# ---------------------------------------------------------------------------------------------
# Loading.


def load(cls: type, raw: Any, path: str) -> Any:
    """Build dataclass `cls` from the mapping `raw`, validating every key under `path`."""
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
        _check(f, values[name], key)
    return cls(**values)


def _check(f: dataclasses.Field, value: Any, key: str) -> None:
    check = f.metadata.get("check")
    if check is None:
        return
    if not check(value):
        rule = f.metadata.get("rule") or "is out of range"
        raise ConfigError(f"{key} {rule}, got {value!r}")


def _coerce(tp: Any, value: Any, key: str) -> Any:
    """Check `value` against the annotation `tp`; convert lists to tuples and ints to floats."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for opt in options:
            if opt is type(None):
                continue
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
    """{"a": {"b": 1}} -> {"a.b": 1}; lists become their string form."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


# ---------------------------------------------------------------------------------------------
# Sections shared by every stage.


@dataclass(frozen=True)
class RuntimeConfig:
    device: str = knob(
        "auto",
        doc="where to train: auto picks cuda, then mps, then cpu",
        check=one_of("auto", "cpu", "cuda", "mps")[0],
        rule=one_of("auto", "cpu", "cuda", "mps")[1],
    )
    num_threads: int = knob(
        0,
        doc="CPU threads for torch (0 = torch's default)",
        check=non_negative,
        rule="must be >= 0",
    )
    bf16: bool = knob(True, doc="bf16 autocast on CUDA (ignored on CPU)")
    progress: bool = knob(True, doc="show tqdm progress bars")
    compile: str = knob("auto", doc="torch.compile the trained network: auto = on CUDA only",
                        check=one_of("auto", "on", "off")[0], rule=one_of("auto", "on", "off")[1])
    channels_last: str = knob("auto", doc="NHWC memory layout for conv nets: auto = on CUDA only",
                              check=one_of("auto", "on", "off")[0],
                              rule=one_of("auto", "on", "off")[1])

    def use(self, knob_name: str, device_type: str) -> bool:
        """Whether an auto/on/off knob is active on this device type."""
        value = getattr(self, knob_name)
        return value == "on" or (value == "auto" and device_type == "cuda")


@dataclass(frozen=True)
class TrackingConfig:
    enabled: bool = knob(True, doc="log runs to MLflow (metrics are always written to files)")
    experiment: str = knob(
        "genlab", doc="MLflow experiment name", check=lambda s: len(s) > 0, rule="must not be empty"
    )


# ---------------------------------------------------------------------------------------------
# Data (stages fetch, preprocess).


@dataclass(frozen=True)
class SourceConfig:
    kind: str = knob(
        doc="where to get the files: a local directory or torchvision's download",
        check=one_of("local", "torchvision")[0],
        rule=one_of("local", "torchvision")[1],
    )
    path: str = knob("", doc="directory holding the files (kind: local)")


@dataclass(frozen=True)
class FashionMnistConfig:
    sources: tuple[SourceConfig, ...] = knob(
        doc="sources tried in order until one yields four verified IDX files",
        check=lambda s: len(s) > 0,
        rule="must list at least one source",
    )
    verify_md5: bool = knob(True, doc="check the MD5 of each decompressed IDX file")
    limit_train: int = knob(
        0,
        doc="keep the first N training images (0 = all 60k)",
        check=non_negative,
        rule="must be >= 0",
    )
    limit_test: int = knob(
        0, doc="keep the first N test images (0 = all 10k)", check=non_negative, rule="must be >= 0"
    )


@dataclass(frozen=True)
class TorchvisionSetConfig:
    enabled: bool = knob(False, doc="fetch and preprocess this data set")
    source_dir: str = knob("", doc="a local copy in torchvision's on-disk layout ('' = none)")
    download: bool = knob(True, doc="fall back to torchvision's download when no local copy")
    verify_md5: bool = knob(True, doc="check torchvision's MD5 of every file")
    size: int = knob(
        64,
        doc="output side in pixels (CelebA only; CIFAR-10 stays 32)",
        check=positive,
        rule="must be > 0",
    )
    limit: int = knob(
        0,
        doc="keep the first N images per split (0 = all)",
        check=non_negative,
        rule="must be >= 0",
    )


TOY_NAMES = ("swiss_roll", "two_moons", "eight_gaussians", "checkerboard", "rings")


@dataclass(frozen=True)
class Toy2dConfig:
    names: tuple[str, ...] = knob(
        factory=lambda: TOY_NAMES,
        doc="toy distributions to generate",
        check=lambda n: all(x in TOY_NAMES for x in n),
        rule=f"must only name {list(TOY_NAMES)}",
    )
    n_train: int = knob(
        20000, doc="training points per distribution", check=positive, rule="must be > 0"
    )
    n_test: int = knob(
        5000, doc="held-out points per distribution", check=positive, rule="must be > 0"
    )


@dataclass(frozen=True)
class MovingFmnistConfig:
    enabled: bool = knob(True, doc="build the moving-Fashion-MNIST video set")
    n_videos: int = knob(
        1000, doc="training videos (test gets a fifth as many)", check=positive, rule="must be > 0"
    )
    n_frames: int = knob(16, doc="frames per video", check=positive, rule="must be > 0")
    n_items: int = knob(
        2, doc="Fashion-MNIST items bouncing in each video", check=positive, rule="must be > 0"
    )
    size: int = knob(
        64,
        doc="frame side in pixels (>= 28, the item size)",
        check=lambda s: s >= 28,
        rule="must be >= 28",
    )
    max_speed: float = knob(
        3.0, doc="largest item speed in pixels per frame", check=positive, rule="must be > 0"
    )


@dataclass(frozen=True)
class DataConfig:
    fashion_mnist: FashionMnistConfig = knob(doc="Fashion-MNIST sources and subset")
    cifar10: TorchvisionSetConfig = knob(factory=TorchvisionSetConfig, doc="CIFAR-10 (32x32)")
    celeba: TorchvisionSetConfig = knob(factory=TorchvisionSetConfig, doc="CelebA (64x64)")
    toy2d: Toy2dConfig = knob(factory=Toy2dConfig, doc="2-D toy distributions")
    moving_fmnist: MovingFmnistConfig = knob(factory=MovingFmnistConfig, doc="video set")


# ---------------------------------------------------------------------------------------------
# Training (the generic loop) and the model families.


@dataclass(frozen=True)
class LoopConfig:
    steps: int = knob(2000, doc="optimiser steps", check=positive, rule="must be > 0")
    batch_size: int = knob(128, doc="examples per step", check=positive, rule="must be > 0")
    lr: float = knob(1e-3, doc="peak AdamW learning rate", check=positive, rule="must be > 0")
    weight_decay: float = knob(
        0.0, doc="AdamW decoupled weight decay", check=non_negative, rule="must be >= 0"
    )
    warmup_steps: int = knob(
        100, doc="linear LR warm-up from 0", check=non_negative, rule="must be >= 0"
    )
    decay: str = knob(
        "cosine",
        doc="LR after warm-up: constant or cosine to 0",
        check=one_of("constant", "cosine")[0],
        rule=one_of("constant", "cosine")[1],
    )
    grad_clip: float = knob(
        1.0,
        doc="clip the global grad norm to this (0 = off)",
        check=non_negative,
        rule="must be >= 0",
    )
    ema_half_life: float = knob(
        10000.0,
        doc="EMA half-life in training examples (EDM style)",
        check=positive,
        rule="must be > 0",
    )
    ckpt_every: int = knob(
        500, doc="write a resumable checkpoint every N steps", check=positive, rule="must be > 0"
    )
    log_every: int = knob(
        50,
        doc="average the loss over N steps for logs and the CSV",
        check=positive,
        rule="must be > 0",
    )
    max_seconds: float = knob(
        0.0,
        doc="stop after this much training wall time (0 = run all steps); a cosine schedule "
        "then decays over whichever of steps / time runs out first. Each process's first step "
        "(torch.compile, cuDNN autotuning) is off this clock and reported as warmup_seconds",
        check=non_negative,
        rule="must be >= 0",
    )


@dataclass(frozen=True)
class AEModelConfig:
    kind: str = knob(
        "conv",
        doc="conv: images with a transposed-conv decoder; mlp: 2-D points",
        check=one_of("conv", "mlp")[0],
        rule=one_of("conv", "mlp")[1],
    )
    widths: tuple[int, ...] = knob(
        factory=lambda: (32, 64),
        doc="conv channels per stride-2 level",
        check=lambda w: len(w) > 0 and all(c > 0 for c in w),
        rule="must be a non-empty list of positive ints",
    )
    hidden: int = knob(128, doc="MLP hidden width", check=positive, rule="must be > 0")
    depth: int = knob(3, doc="MLP hidden layers per side", check=positive, rule="must be > 0")
    latent: int = knob(32, doc="bottleneck size", check=positive, rule="must be > 0")


@dataclass(frozen=True)
class AEObjectiveConfig:
    kind: str = knob(
        "recon",
        doc="recon: plain AE; denoise: DAE (corrupt, reconstruct clean)",
        check=one_of("recon", "denoise")[0],
        rule=one_of("recon", "denoise")[1],
    )
    noise_levels: tuple[float, ...] = knob(
        factory=lambda: (0.1, 0.3, 0.5),
        doc="Gaussian noise stds: DAE trains on each (uniform "
        "pick per example) and every AE is evaluated at each",
        check=lambda s: len(s) > 0 and all(x >= 0 for x in s),
        rule="must be a non-empty list of values >= 0",
    )


@dataclass(frozen=True)
class AETrainConfig(LoopConfig):
    family: str = knob(
        "ae",
        doc="model family (picks this config class)",
        check=one_of("ae")[0],
        rule=one_of("ae")[1],
    )
    dataset: str = knob(
        "fashion_mnist",
        doc="fashion_mnist or toy2d/<name>",
        check=lambda d: d == "fashion_mnist" or (d.startswith("toy2d/") and d[6:] in TOY_NAMES),
        rule=f"must be fashion_mnist or toy2d/<one of {list(TOY_NAMES)}>",
    )
    model: AEModelConfig = knob(factory=AEModelConfig, doc="architecture")
    objective: AEObjectiveConfig = knob(factory=AEObjectiveConfig, doc="training objective")

    def __post_init__(self):
        is_toy = self.dataset.startswith("toy2d/")
        if is_toy != (self.model.kind == "mlp"):
            raise ValueError(
                f"model.kind {self.model.kind!r} does not fit dataset "
                f"{self.dataset!r} (toy2d needs mlp, images need conv)"
            )


@dataclass(frozen=True)
class DiffusionNetConfig:
    kind: str = knob("unet", doc="unet: images (genlab.models.unet); mlp: 2-D points",
                     check=one_of("unet", "mlp")[0], rule=one_of("unet", "mlp")[1])
    model_channels: int = knob(32, doc="U-Net base width", check=positive, rule="must be > 0")
    channel_mult: tuple[int, ...] = knob(factory=lambda: (1, 2, 2), doc="width per level",
                                         check=lambda m: len(m) > 0 and all(c > 0 for c in m),
                                         rule="must be a non-empty list of positive ints")
    num_blocks: int = knob(1, doc="ResBlocks per U-Net level", check=positive,
                           rule="must be > 0")
    attn_resolutions: tuple[int, ...] = knob(factory=lambda: (7,),
                                             doc="sides with self-attention")
    num_heads: int = knob(1, doc="attention heads", check=positive, rule="must be > 0")
    dropout: float = knob(0.1, doc="ResBlock dropout", check=unit_interval,
                          rule="must be in [0, 1)")
    embedding: str = knob("positional", doc="noise-label features",
                          check=one_of("positional", "fourier")[0],
                          rule=one_of("positional", "fourier")[1])
    hidden: int = knob(256, doc="MLP width", check=positive, rule="must be > 0")
    depth: int = knob(4, doc="MLP residual layers", check=positive, rule="must be > 0")
    emb_dim: int = knob(64, doc="MLP noise-embedding width (even)",
                        check=lambda e: e >= 2 and e % 2 == 0, rule="must be even and >= 2")


@dataclass(frozen=True)
class EDMConfig:
    kind: str = knob("edm", doc="Karras et al. 2022", check=one_of("edm")[0],
                     rule=one_of("edm")[1])
    P_mean: float = knob(-1.2, doc="mean of ln(sigma) during training (Table 1)")
    P_std: float = knob(1.2, doc="std of ln(sigma) during training", check=positive,
                        rule="must be > 0")
    sigma_data: float = knob(0.5, doc="data std assumed by the preconditioning",
                             check=positive, rule="must be > 0")
    sampler: str = knob("heun", doc="heun (Algorithm 1) or stochastic (Algorithm 2)",
                        check=one_of("heun", "stochastic")[0],
                        rule=one_of("heun", "stochastic")[1])
    num_steps: int = knob(18, doc="sampler steps (NFE = 2 * num_steps - 1)",
                          check=lambda n: n >= 2, rule="must be >= 2")
    sigma_min: float = knob(0.002, doc="smallest sampling sigma", check=positive,
                            rule="must be > 0")
    sigma_max: float = knob(80.0, doc="largest sampling sigma", check=positive,
                            rule="must be > 0")
    rho: float = knob(7.0, doc="time-step exponent (Eq. 5)", check=positive, rule="must be > 0")
    S_churn: float = knob(0.0, doc="stochastic sampler: noise injected per step",
                          check=non_negative, rule="must be >= 0")
    S_noise: float = knob(1.0, doc="stochastic sampler: noise inflation", check=positive,
                          rule="must be > 0")

    def __post_init__(self):
        if self.sigma_min >= self.sigma_max:
            raise ValueError(f"method.sigma_min ({self.sigma_min}) must be < sigma_max")


@dataclass(frozen=True)
class DDPMConfig:
    kind: str = knob("ddpm", doc="Ho et al. 2020", check=one_of("ddpm")[0],
                     rule=one_of("ddpm")[1])
    schedule: str = knob("linear", doc="beta schedule", check=one_of("linear", "cosine")[0],
                         rule=one_of("linear", "cosine")[1])
    num_timesteps: int = knob(1000, doc="T", check=lambda t: t >= 2, rule="must be >= 2")
    noise_label_scale: float = knob(0.001, doc="the backbone sees t * this as its noise label",
                                    check=positive, rule="must be > 0")
    sampler: str = knob("ddim", doc="ancestral (Algorithm 2, T steps) or ddim",
                        check=one_of("ancestral", "ddim")[0],
                        rule=one_of("ancestral", "ddim")[1])
    ddim_steps: int = knob(50, doc="DDIM steps", check=positive, rule="must be > 0")
    ddim_eta: float = knob(0.0, doc="DDIM stochasticity (0 = deterministic)",
                           check=non_negative, rule="must be >= 0")
    clip_x0: float = knob(0.0, doc="clamp the predicted x_0 to [-c, c] while sampling "
                          "(images in [-1, 1]: 1.0; 0 = off)", check=non_negative,
                          rule="must be >= 0")


@dataclass(frozen=True)
class NCSNConfig:
    kind: str = knob("ncsn", doc="Song & Ermon 2019", check=one_of("ncsn")[0],
                     rule=one_of("ncsn")[1])
    sigma_max: float = knob(10.0, doc="sigma_1, the largest noise level", check=positive,
                            rule="must be > 0")
    sigma_min: float = knob(0.01, doc="sigma_L, the smallest noise level", check=positive,
                            rule="must be > 0")
    num_scales: int = knob(50, doc="L, noise levels in the geometric ladder",
                           check=lambda n: n >= 2, rule="must be >= 2")
    n_steps_each: int = knob(20, doc="Langevin steps per noise level (T in Algorithm 1)",
                             check=positive, rule="must be > 0")
    step_lr: float = knob(2e-5, doc="epsilon of Algorithm 1 (alpha_i = eps s_i^2 / s_L^2)",
                          check=positive, rule="must be > 0")
    denoise_final: bool = knob(True, doc="one final Tweedie denoising step (NCSNv2)")
    parametrization: str = knob(
        "score", doc="score: s = F(x; log sigma) / sigma (NCSNv2 Technique 3); denoiser: s = "
        "(D(x; sigma) - x) / sigma^2 with D EDM-preconditioned (Karras et al. 2022, Table 1), "
        "so the network need not reproduce the noise it is given. Same objective and sampler",
        check=one_of("score", "denoiser")[0], rule=one_of("score", "denoiser")[1])
    sigma_data: float = knob(0.5, doc="data std for the denoiser parametrization's c_skip / "
                             "c_out / c_in", check=positive, rule="must be > 0")
    weighting: str = knob(
        "paper", doc="lambda(sigma) of the loss. paper: sigma^2 (Song & Ermon 2019, Eq. 6); "
        "unit: sigma^2 (sigma^2 + sigma_data^2) / sigma_data^2, unit weight on the denoiser "
        "parametrization's network output at every level (the EDM loss's weighting)",
        check=one_of("paper", "unit")[0], rule=one_of("paper", "unit")[1])

    def __post_init__(self):
        if self.sigma_min >= self.sigma_max:
            raise ValueError(f"method.sigma_min ({self.sigma_min}) must be < sigma_max")
        if self.weighting == "unit" and self.parametrization != "denoiser":
            raise ValueError("method.weighting 'unit' weights the denoiser parametrization's "
                             "network output: it needs parametrization 'denoiser', got "
                             f"{self.parametrization!r}")


# Image data sets a diffusion model can train on (data/processed/<set>/train_x); only
# Fashion-MNIST has a trained evaluator for FD / precision / recall.
IMAGE_SETS = ("fashion_mnist", "cifar10", "celeba")

METHODS = {"edm": EDMConfig, "ddpm": DDPMConfig, "ncsn": NCSNConfig}


@dataclass(frozen=True)
class DiffusionTrainConfig(LoopConfig):
    family: str = knob("diffusion", doc="model family (picks this config class)",
                       check=one_of("diffusion")[0], rule=one_of("diffusion")[1])
    dataset: str = knob("fashion_mnist", doc="an image set (IMAGE_SETS) or toy2d/<name>",
                        check=lambda d: d in IMAGE_SETS or (
                            d.startswith("toy2d/") and d[6:] in TOY_NAMES),
                        rule=f"must be one of {list(IMAGE_SETS)} or toy2d/<one of "
                             f"{list(TOY_NAMES)}>")
    net: DiffusionNetConfig = knob(factory=DiffusionNetConfig, doc="backbone")
    method: dict = knob(factory=lambda: {"kind": "edm"},
                        doc="edm / ddpm / ncsn section, typed by its kind")
    conditional: bool = knob(False, doc="class-conditional (images only)")
    label_dropout: float = knob(0.1, doc="conditional: labels dropped for CFG training",
                                check=unit_interval, rule="must be in [0, 1)")
    guidance: tuple[float, ...] = knob(factory=lambda: (0.0,),
                                       doc="conditional: CFG weights w evaluated")
    eval_samples: int = knob(0, doc="samples to evaluate (0 = evaluate.n_samples / toy_n)",
                             check=non_negative, rule="must be >= 0")

    def __post_init__(self):
        is_toy = self.dataset.startswith("toy2d/")
        if is_toy != (self.net.kind == "mlp"):
            raise ValueError(f"net.kind {self.net.kind!r} does not fit dataset "
                             f"{self.dataset!r} (toy2d needs mlp, images need unet)")
        if self.conditional and (is_toy or self.dataset == "celeba"):
            raise ValueError(f"conditional: {self.dataset} has no class labels")


TRAIN_FAMILIES = {"ae": AETrainConfig, "diffusion": DiffusionTrainConfig}


def load_train(raw: Any, name: str, profile: str = "cpu") -> Any:
    """The `train.<name>` section with its `profile` overrides, typed by its `family` key."""
    path = f"train.{name}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must be a mapping, got {type(raw).__name__}")
    overridden = isinstance(raw.get(profile), dict) and bool(raw[profile])
    try:
        return _load_train(apply_profile(raw, profile, path), path)
    except ConfigError as e:
        if overridden and profile in PROFILES:
            raise ConfigError(f"{e} (profile {profile}: with the overrides of "
                              f"{path}.{profile})") from None
        raise


def _load_train(raw: dict, path: str) -> Any:
    family = raw.get("family", "ae")
    if family not in TRAIN_FAMILIES:
        raise ConfigError(f"{path}.family must be one of {list(TRAIN_FAMILIES)}, got {family!r}")
    try:
        cfg = load(TRAIN_FAMILIES[family], raw, path)
        if family == "diffusion":
            kind = cfg.method.get("kind", "edm")
            if kind not in METHODS:
                raise ConfigError(f"{path}.method.kind must be one of {list(METHODS)}, "
                                  f"got {kind!r}")
            cfg = dataclasses.replace(cfg, method=load(METHODS[kind], cfg.method,
                                                       f"{path}.method"))
        return cfg
    except ConfigError:
        raise
    except ValueError as e:  # raised by a __post_init__ cross-field check
        raise ConfigError(f"{path}.{e}") from None


# ---------------------------------------------------------------------------------------------
# Evaluator and evaluation.


@dataclass(frozen=True)
class EvaluatorConfig(LoopConfig):
    width: int = knob(
        32,
        doc="channels of the first conv block (x2 in the second)",
        check=positive,
        rule="must be > 0",
    )
    depth: int = knob(1, doc="3x3 convs per block", check=positive, rule="must be > 0")
    feature_dim: int = knob(
        128,
        doc="penultimate features used for FD and precision/recall",
        check=positive,
        rule="must be > 0",
    )
    dropout: float = knob(
        0.3, doc="dropout before the last layer", check=unit_interval, rule="must be in [0, 1)"
    )
    label_smoothing: float = knob(
        0.0, doc="cross-entropy label smoothing", check=unit_interval, rule="must be in [0, 1)"
    )
    augment: bool = knob(True, doc="random horizontal flips and 2-pixel shifts while training")


@dataclass(frozen=True)
class EvaluateConfig:
    n_samples: int = knob(
        10000, doc="images compared for FD / precision / recall", check=positive, rule="must be > 0"
    )
    batch_size: int = knob(500, doc="evaluation batch size", check=positive, rule="must be > 0")
    sample_batch_size: int = knob(500, doc="images per sampler batch (large on a GPU)",
                                  check=positive, rule="must be > 0")
    k: int = knob(
        3,
        doc="k of the k-NN manifolds (Kynkaanniemi et al. 2019)",
        check=positive,
        rule="must be > 0",
    )
    toy_n: int = knob(
        5000, doc="points compared for the toy metrics", check=positive, rule="must be > 0"
    )
    swd_projections: int = knob(
        256,
        doc="random directions of the sliced Wasserstein distance",
        check=positive,
        rule="must be > 0",
    )
    grid: int = knob(
        8, doc="side of the sample / reconstruction grids", check=positive, rule="must be > 0"
    )


# ---------------------------------------------------------------------------------------------
# The whole file.

TOP_LEVEL = ("seed", "profile", "runtime", "tracking", "data", "evaluator", "train", "presets",
             "evaluate", "concepts", "scratch")

# `profile` picks per-section overrides: a section may hold a `gpu:` (or `cpu:`) mapping whose
# keys replace the section's own when that profile is active (`dvc exp run -S profile=gpu`).
PROFILES = ("cpu", "gpu")


def load_profile(params: dict) -> str:
    profile = params.get("profile", "cpu")
    if profile not in PROFILES:
        raise ConfigError(f"profile must be one of {list(PROFILES)}, got {profile!r}")
    return profile


def _deep_merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for k, v in override.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) \
            else v
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
    return _deep_merge(base, raw.get(profile, {}))


def check_top_level(params: dict, known: tuple[str, ...]) -> None:
    for key in params:
        if key not in known:
            raise ConfigError(f"{key} is not a known top-level key (known: {list(known)})")


def load_seed(params: dict) -> int:
    seed = params.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"seed must be an int >= 0, got {seed!r}")
    return seed


# ---------------------------------------------------------------------------------------------
# Foundations: the concepts demonstrations and the from-scratch CNN / autoencoder.


@dataclass(frozen=True)
class ConceptsConfig:
    dims: tuple[int, ...] = knob(factory=lambda: (2, 5), doc="optimiser test-function dimensions",
                                 check=lambda d: len(d) > 0 and all(x >= 2 for x in d),
                                 rule="must be a non-empty list of ints >= 2")
    budget: int = knob(6000, doc="function evaluations per optimiser, function and dimension",
                       check=lambda x: x >= 50, rule="must be >= 50")
    n_chains: int = knob(64, doc="parallel MCMC chains per sampler", check=positive,
                         rule="must be > 0")
    n_steps: int = knob(1000, doc="MCMC steps (first 20% burn-in)", check=lambda x: x >= 10,
                        rule="must be >= 10")
    ksg_n: int = knob(1000, doc="KSG mutual-information sample size (O(n^2) memory)",
                      check=lambda x: 10 <= x <= 5000, rule="must be in [10, 5000]")
    ksg_k: int = knob(3, doc="KSG neighbours", check=positive, rule="must be > 0")
    n_rho: int = knob(8, doc="correlations on the KSG-vs-truth curve", check=lambda x: x >= 2,
                      rule="must be >= 2")
    sde_particles: int = knob(5000, doc="particles of the diffusion-process demos",
                              check=lambda x: x >= 10, rule="must be >= 10")
    sde_steps: int = knob(500, doc="Euler-Maruyama steps", check=lambda x: x >= 10,
                          rule="must be >= 10")


@dataclass(frozen=True)
class ScratchNetConfig:
    epochs: int = knob(3, doc="passes over the training set", check=positive, rule="must be > 0")
    batch_size: int = knob(64, doc="examples per step", check=positive, rule="must be > 0")
    lr: float = knob(2e-3, doc="peak learning rate of the hand-written Adam", check=positive,
                     rule="must be > 0")
    width: int = knob(32, doc="channels of the first conv layer", check=positive,
                      rule="must be > 0")
    schedule: str = knob("cosine", doc="learning-rate schedule",
                         check=one_of("cosine", "constant")[0],
                         rule=one_of("cosine", "constant")[1])
    latent_channels: int = knob(4, doc="autoencoder only: channels of the 7x7 code",
                                check=positive, rule="must be > 0")
    limit_train: int = knob(0, doc="train on the first N images (0 = all)", check=non_negative,
                            rule="must be >= 0")
    num_threads: int = knob(1, doc="torch threads while training (small matmuls: 1 is fastest "
                            "on a shared 2-core machine)", check=positive, rule="must be > 0")


@dataclass(frozen=True)
class ScratchConfig:
    cnn: ScratchNetConfig = knob(factory=ScratchNetConfig, doc="from-scratch CNN classifier")
    ae: ScratchNetConfig = knob(factory=ScratchNetConfig,
                                doc="from-scratch conv autoencoder (scratch transposed conv)")
