"""Family `prior` (role generative): a class-conditional GPT prior over a pretrained `vq`
tokenizer's token grids (VQGAN's second stage, Esser et al. 2021): the project's decoder-only
transformer (genlab.models.gpt) reads a class token, then the grid's codes in raster order;
label dropout trains the null class for classifier-free guidance. Samples are drawn with the
autoregressive sampler (KV cache) and decoded by the tokenizer.

Its training data is the tokenizer's token store (data/tokens/<tokenizer>, written by the
evaluate-vq stage, a dvc.yaml dep of the stage)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from genlab.data.processed import load_array
from genlab.data.tokens import read_token_meta
from genlab.errors import DataError
from genlab.families import Built, Family, TrainData, register
from genlab.families.prior.config import PriorConfig
from genlab.models.gpt import decay_groups
from genlab.models.token_prior import TokenPrior
from genlab.objectives.token_prior import ClassPriorLoss
from genlab.training.loop import EpochBatches

TOKENS = Path("data/tokens")  # the vq family's token stores: data/tokens/<tokenizer>/
N_CLASSES = 10  # Fashion-MNIST labels


def token_store(cfg: PriorConfig) -> Path:
    return TOKENS / cfg.tokenizer


def store_meta(cfg: PriorConfig) -> dict:
    """The token store's manifest (codes, latent_shape, dataset), checked against cfg."""
    root = token_store(cfg)
    if not (root / "manifest.json").is_file():
        raise DataError(f"{root}/manifest.json is missing (tokenizer {cfg.tokenizer!r} has no "
                        f"token store): run dvc repro evaluate-vq@{cfg.tokenizer}")
    meta = read_token_meta(root)
    if meta.get("dataset") != cfg.dataset:
        raise DataError(f"{root} holds tokens of {meta.get('dataset')!r}, not {cfg.dataset!r}")
    return meta


def read_grids(cfg: PriorConfig, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """(codes (N, h, w) int32, labels (N,)) of a split of the tokenizer's token store."""
    root, meta = token_store(cfg), store_meta(cfg)
    grids, labels = load_array(root, f"{split}_tokens"), load_array(root, f"{split}_y")
    if grids.min() < 0 or grids.max() >= meta["codes"]:
        raise DataError(f"{root}/{split}_tokens.npy holds codes outside [0, {meta['codes']})")
    if labels.min() < 0 or labels.max() >= N_CLASSES:
        raise DataError(f"{root}/{split}_y.npy holds labels outside [0, {N_CLASSES})")
    return grids, labels


def data(cfg: PriorConfig, seed: int, device: torch.device) -> TrainData:
    """Batches (flattened grids (B, h w) int64, labels (B,)) chosen by (seed, step)."""
    grids, labels = read_grids(cfg, "train")
    x_all = torch.as_tensor(grids).long().flatten(1).to(device)  # (N, h w), raster order
    y_all = torch.as_tensor(labels).long().to(device)
    order = EpochBatches(len(x_all), cfg.batch_size, seed)

    def batches(step: int):
        idx = order(step).to(device)
        return x_all[idx], y_all[idx]

    return TrainData(batches=batches, shape=tuple(x_all.shape[1:]), examples=len(x_all))


def rebuild(arch: dict, cfg: PriorConfig | None = None, nhwc: bool = False) -> nn.Module:
    """TokenPrior(codes, classes, grid, **GPT kwargs) of arch."""
    return TokenPrior(arch["codes"], arch["classes"], tuple(arch["grid"]), **arch["gpt"])


def build(cfg: PriorConfig, shape: tuple[int, ...], nhwc: bool = False) -> Built:
    """The prior over the store's (h, w) grid of `codes` codes, its loss and AdamW groups."""
    meta = store_meta(cfg)
    grid = tuple(meta["latent_shape"][1:])
    if shape != (grid[0] * grid[1],):
        raise DataError(f"{token_store(cfg)}: grids of {shape} tokens, manifest says {grid}")
    n = cfg.net
    arch = {"codes": int(meta["codes"]), "classes": N_CLASSES, "grid": list(grid),
            "gpt": {"dim": n.dim, "layers": n.layers, "heads": n.heads,
                    "mlp_ratio": n.mlp_ratio, "dropout": n.dropout, "positions": n.positions}}
    net = rebuild(arch, cfg)
    return Built(net=net, objective=ClassPriorLoss(cfg.label_dropout), arch=arch,
                 param_groups=decay_groups(net, cfg.weight_decay))


FAMILY = register(Family(name="prior", role="generative", config=PriorConfig, build=build,
                         rebuild=rebuild, data=data))
