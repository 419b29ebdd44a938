"""The model-family registry (STYLE rule 13; the pattern of torchvision's `register_model`).

A family is a package `genlab/families/<name>/`, named as its params.yaml section:
- its `__init__` registers one `Family`: the typed config of a model's section, how to build
  network + objective, how to rebuild a trained network from its checkpoint;
- its `evaluate` module holds `evaluate(ctx) -> metrics`, the family's evaluation.
The two halves are imported apart, so training depends on no evaluation code. Stages look a
family up by name (`get`, `evaluation`); nothing outside a family branches on which one it
is, and no file lists the families: `available()` reads the package folder.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from genlab.config import ConfigError, EvaluateConfig

ROLES = ("pretrain", "generative")


@dataclass(frozen=True)
class Built:
    """What a family's build returns: the network the loop trains and its objective."""

    net: nn.Module  # trained as is; its EMA copy is what evaluation loads
    objective: Callable[..., torch.Tensor]  # (net, x, cond, generator) -> per-example loss (B,)
    arch: dict  # what `rebuild` needs (kinds, constructor kwargs), saved with the weights
    # optimiser groups (training/loop.py ParamGroups), e.g. a GAN's generator and critic at
    # two learning rates; None: one group of all of net's parameters
    param_groups: list[dict] | None = None


@dataclass(frozen=True)
class TrainData:
    """A family's own training data (Family.data): batches by step, one example's shape."""

    batches: Callable[[int], tuple[torch.Tensor, torch.Tensor | None]]  # step -> (x, cond|None)
    shape: tuple[int, ...]  # one example: (C, H, W), (D,) or (T,) for a token sequence
    examples: int  # how many distinct examples (or windows) the batches draw from


@dataclass(frozen=True)
class Family:
    name: str  # params.yaml section, dvc.yaml stage suffix (train-<name>@<model>)
    role: str  # "pretrain": encoders that other models build on; "generative": the rest
    config: type  # frozen dataclass of one model's section (a genlab.config.LoopConfig)
    # (cfg, example shape (C, H, W) or (D,), nhwc: the U-Net's NHWC code paths) -> Built
    build: Callable[[Any, tuple[int, ...], bool], Built]
    # (arch saved in models/<name>.pt, cfg, nhwc) -> the untrained network of that shape
    rebuild: Callable[[dict, Any, bool], nn.Module]
    # the submodule runtime.compile compiles for sampling (None: nothing is compiled)
    backbone: Callable[[nn.Module], nn.Module | None] = lambda net: None
    # (cfg, seed, device) -> TrainData, for data that is not the processed image or point set
    # named by cfg.dataset (token streams, a tokenizer's latents); None: that processed set
    data: Callable[[Any, int, torch.device], TrainData] | None = None

    def __post_init__(self):
        assert self.role in ROLES, f"role must be one of {ROLES}, got {self.role!r}"


@dataclass(frozen=True)
class EvalContext:
    """Everything a family's evaluate(ctx) needs; the stage builds it from params and paths."""

    name: str  # the model's key in its family section
    cfg: Any  # its typed config
    net: nn.Module  # EMA weights, eval mode, on `device`
    settings: EvaluateConfig  # the `evaluate` section (profile applied)
    seed: int
    device: torch.device
    bf16: bool  # bf16 autocast for sampling on CUDA
    arrays: Callable[[str], np.ndarray]  # processed array by key, e.g. "fashion_mnist/test_x"
    evaluator: Path  # models/evaluator.pt: the FD / precision / recall features
    figures: Path  # folder for this model's figures
    samples: Path  # data/samples/<name>.npz
    sweep: Path  # CSV the family writes: one row per evaluated setting (guidance w, noise)


_REGISTRY: dict[str, Family] = {}


def register(family: Family) -> Family:
    if family.name in _REGISTRY and _REGISTRY[family.name] is not family:
        raise ValueError(f"family {family.name!r} is registered twice")
    _REGISTRY[family.name] = family
    return family


def available() -> list[str]:
    """Names of the family packages in this folder (none is imported)."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.ispkg)


def module(name: str, part: str = "") -> str:
    """Dotted module of family `name` (part "" for its registry entry, "evaluate", ...)."""
    return f"{__name__}.{name}" + (f".{part}" if part else "")


def get(name: str) -> Family:
    """The registered family `name`, importing its package on first use."""
    if name not in _REGISTRY:
        if name not in available():
            raise ConfigError(f"no model family {name!r} (families: {available()})")
        importlib.import_module(module(name))
    return _REGISTRY[name]


def evaluation(name: str) -> Callable[[EvalContext], dict]:
    """The evaluate(ctx) function of family `name`."""
    get(name)
    return importlib.import_module(module(name, "evaluate")).evaluate
