"""Trained models outside the pipeline: load models/<name>.pt (EMA weights, the config and
architecture saved with them) and reach its family's inference hooks.

A family that can be sampled from has a module `genlab/families/<family>/inference.py` with
any of these functions (the CLI offers a command where the hook exists; the train stage uses
them only for the MLflow model it logs, not for a DVC output, so they are no stage's deps and
adding one reruns nothing):

    sample(m: Trained, n, generator, *, label, guidance, steps, temperature)
        -> (n, C, H, W) in [-1, 1] or (n, D) points; an option left None takes the model's
        own setting, one the family cannot use is a UsageError (`unsupported`)
    interpolate(m: Trained, rows, steps, generator) -> (rows * steps, C, H, W) in [-1, 1]
    generate_text(m: Trained, prompt, chars, generator, *, temperature, top_k, top_p) -> str
    classes(m: Trained) -> int        labels a class-conditional model takes (0: none)
    bundle(m: Trained) -> {path: rows | None}   workspace files the hooks read, for the
        self-contained MLflow model (tracking/mlflow_model.py; rows: keep the first rows)
    example_input(m: Trained) -> np.ndarray      the forward's input, for a model without a
        sampler (its MLflow signature)
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import nn

from genlab import families
from genlab.config import ConfigError, is_toy, load
from genlab.training.checkpoint import load_checkpoint, load_weights

MODELS = Path("models")
PROCESSED = Path("data/processed")
HOOKS = ("sample", "interpolate", "generate_text")


class UsageError(Exception):
    """A request the models on disk cannot serve: one line, with the command that fixes it."""


@dataclass(frozen=True)
class Trained:
    name: str  # the model's key in its params section
    family: families.Family
    cfg: Any  # its typed config, as saved with the weights
    net: nn.Module  # EMA weights, eval mode, on `device`
    device: torch.device
    path: Path  # models/<name>.pt


def hooks(family: str) -> ModuleType | None:
    """The family's inference module, or None when it has none."""
    name = families.module(family, "inference")
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name == name:
            return None
        raise


def stage_of(name: str, params: dict) -> str | None:
    """`dvc repro` target that trains model `name` per params.yaml (None: no such key)."""
    for family in families.available():
        section = params.get(family)
        if isinstance(section, dict) and name in section:
            role = families.get(family).role
            return f"{'pretrain' if role == 'pretrain' else 'train'}-{family}@{name}"
    return None


def trained_names(root: Path = Path(".")) -> list[str]:
    return sorted(p.stem for p in (root / MODELS).glob("*.pt") if p.stem != "evaluator")


def load_trained(name: str, params: dict, device: torch.device | str = "cpu",
                 root: Path = Path(".")) -> Trained:
    """The EMA network of models/<name>.pt; a UsageError naming the model and the command to
    run when it is not trained or not a key of params.yaml."""
    path = root / MODELS / f"{name}.pt"
    stage = stage_of(name, params)
    if not path.is_file():
        if stage is None:
            raise UsageError(f"no model {name!r}: not a key of any family section in "
                             f"params.yaml (trained: {', '.join(trained_names(root)) or 'none'})")
        raise UsageError(f"model {name!r} is not trained yet ({path} is missing); "
                         f"run: dvc repro {stage}")
    device = torch.device(device)
    state = load_checkpoint(path, map_location=device)
    if "family" not in state or "arch" not in state or "config" not in state:
        raise UsageError(f"{path} is not a trained model of a family (no family / arch / "
                         "config saved with it)")
    family = families.get(state["family"])
    try:
        cfg = load(family.config, state["config"], f"{family.name}.{name}")
    except ConfigError as e:
        raise UsageError(f"{path}: its saved config no longer loads ({e}); "
                         f"run: dvc repro {stage or name}") from None
    net = family.rebuild(state["arch"], cfg, False)
    load_weights(net, state["ema"], path)
    return Trained(name=name, family=family, cfg=cfg, net=net.to(device).eval(),
                   device=device, path=path)


def hook(m: Trained, what: str):
    """Family hook `what` for model m, or a UsageError listing what the family offers."""
    module = hooks(m.family.name)
    fn = getattr(module, what, None) if module else None
    if fn is None:
        offered = [h.replace("_", "-") for h in HOOKS if module and hasattr(module, h)]
        raise UsageError(f"model {m.name!r} (family {m.family.name}) has no "
                         f"{what.replace('_', '-')}; it offers: {', '.join(offered) or 'nothing'}")
    return fn


def unsupported(m: Trained, **options) -> None:
    """UsageError naming the first option that was given (not None) for a model whose family
    cannot use it."""
    given = [k for k, v in options.items() if v is not None]
    if given:
        raise UsageError(f"model {m.name!r} (family {m.family.name}) takes no "
                         f"--{given[0]}")


def classes(m: Trained) -> int:
    module = hooks(m.family.name)
    return int(module.classes(m)) if module and hasattr(module, "classes") else 0


def example_shape(dataset: str, root: Path = Path(".")) -> tuple[int, ...]:
    """One training example's shape for a processed data set: (C, H, W) or (D,)."""
    path = root / PROCESSED / dataset / "test_x.npy"
    if not path.is_file():
        raise UsageError(f"{path} is missing; run: dvc repro preprocess")
    shape = np.load(path, mmap_mode="r").shape[1:]
    if is_toy(dataset):
        return tuple(shape)
    return (1, *shape) if len(shape) == 2 else (shape[2], shape[0], shape[1])


def test_images(dataset: str, n: int, root: Path = Path(".")) -> torch.Tensor:
    """The first n processed test images as floats (n, C, H, W) in [-1, 1]."""
    from genlab.data.processed import images_to_float

    path = root / PROCESSED / dataset / "test_x.npy"
    if not path.is_file():
        raise UsageError(f"{path} is missing; run: dvc repro preprocess")
    return images_to_float(np.array(np.load(path, mmap_mode="r")[:n]))


def test_pairs(dataset: str, rows: int, generator: torch.Generator,
               pool: int = 2000) -> torch.Tensor:
    """2 * rows test images drawn (without replacement) from the first `pool`, as consecutive
    (start, end) pairs: (2 * rows, C, H, W) in [-1, 1]."""
    x = test_images(dataset, pool)
    if 2 * rows > len(x):
        raise UsageError(f"--rows {rows} needs {2 * rows} test images; {len(x)} are there")
    return x[torch.randperm(len(x), generator=cpu_generator(generator))[:2 * rows]]


def cpu_generator(generator: torch.Generator) -> torch.Generator:
    """A CPU generator seeded by one draw of `generator` (which may live on the GPU)."""
    seed = torch.randint(0, 2**62, (), generator=generator, device=generator.device)
    return torch.Generator().manual_seed(int(seed))
