"""Evaluation of the `prior` family: draw token grids with the autoregressive sampler (KV cache;
one row per guidance weight), decode them with the tokenizer, and score the images like the
pixel and latent diffusion models (FD / precision / recall against the test split with the
evaluator, predicted classes, class accuracy), at the same sample count. Each row's `seconds`
is sampling plus decoding; `seconds_per_1000` scales it to 1,000 images. The held-out
negative log-likelihood of the test grids (nats per code, bits per image) is reported too."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from genlab.data.processed import float_to_images, images_to_float
from genlab.errors import DataError
from genlab.families import EvalContext
from genlab.families.prior import read_grids
from genlab.families.prior.config import PriorConfig
from genlab.metrics.evaluator import class_fractions
from genlab.metrics.samples import ImageScorer
from genlab.models.token_prior import GuidedPrior, TokenPrior
from genlab.objectives.token_prior import ClassPriorLoss
from genlab.samplers.autoregressive import sample_autoregressive
from genlab.tracking.figures import save_bars, save_grid, save_guidance_sweep


def load(cfg: PriorConfig, device: torch.device):
    """The trained tokenizer named by cfg.tokenizer (its decoder draws the images)."""
    from genlab.models.vqvae import load_tokenizer

    path = Path(f"models/{cfg.tokenizer}.pt")
    if not path.is_file():
        raise DataError(f"{path} is missing (tokenizer {cfg.tokenizer!r}): run "
                        f"dvc repro pretrain-vq@{cfg.tokenizer}")
    return load_tokenizer(path, device)


@torch.no_grad()
def sample_grids(prior: TokenPrior, labels: torch.Tensor, w: float, *, temperature: float,
                 top_k: int, top_p: float, generator: torch.Generator, batch_size: int,
                 device: torch.device) -> torch.Tensor:
    """Code grids (n, h, w) int64 on the CPU for labels (n,), guided by w, in batches."""
    guided, out = GuidedPrior(prior, w), []
    for i in range(0, len(labels), batch_size):
        prompt = prior.class_tokens(labels[i:i + batch_size].to(device))  # (b, 1)
        seq = sample_autoregressive(guided, prompt, prior.length, temperature, top_k, top_p,
                                    generator)  # (b, 1 + h w)
        out.append(seq[:, 1:].reshape(-1, *prior.grid).cpu())
    return torch.cat(out)


@torch.no_grad()
def test_nll(prior: TokenPrior, grids: np.ndarray, labels: np.ndarray, batch: int,
             device: torch.device) -> float:
    """Mean -ln p(grid | class) per code (nats) over the test split's token grids."""
    loss, total = ClassPriorLoss(label_dropout=0.0), 0.0
    for i in range(0, len(grids), batch):
        x = torch.as_tensor(grids[i:i + batch]).long().flatten(1).to(device)
        y = torch.as_tensor(labels[i:i + batch]).long().to(device)
        total += loss(prior, x, y).sum().item()
    return total / len(grids)


def evaluate(ctx: EvalContext) -> dict:
    cfg, ev, dev, prior = ctx.cfg, ctx.settings, ctx.device, ctx.net
    tok = load(cfg, dev)
    if tok.codes != prior.codes or tuple(tok.latent_shape[1:]) != prior.grid:
        raise ValueError(f"models/{cfg.tokenizer}.pt has {tok.codes} codes on a "
                         f"{tok.latent_shape[1:]} grid; the prior was trained on {prior.codes} "
                         f"on {prior.grid}: rerun dvc repro train-prior@{ctx.name}")
    test_x = images_to_float(ctx.arrays(f"{cfg.dataset}/test_x"))
    train_x = images_to_float(ctx.arrays(f"{cfg.dataset}/train_x"))
    scorer = ImageScorer(ctx.evaluator, test_x, train_x, k=ev.k, batch=ev.batch_size,
                         seed=ctx.seed)
    n = min(cfg.eval_samples or ev.n_samples, len(test_x))
    labels = torch.arange(n) % prior.classes
    nll = test_nll(prior, *read_grids(cfg, "test"), ev.batch_size, dev)
    metrics = {"n_samples": n, "codes": prior.codes, "tokens_per_image": prior.length,
               "test_nats_per_code": nll, "test_bits_per_image": nll * prior.length / math.log(2)}
    rows, kept = [], None
    for i, w in enumerate(cfg.guidance):
        suffix = "" if i == 0 else f"_w{w:g}"
        g = torch.Generator(device=dev).manual_seed(ctx.seed)
        bs = max(1, ev.sample_batch_size // 2) if w else ev.sample_batch_size
        t0 = time.perf_counter()
        grids = sample_grids(prior, labels, w, temperature=cfg.temperature, top_k=cfg.top_k,
                             top_p=cfg.top_p, generator=g, batch_size=bs, device=dev)
        t_sample = time.perf_counter() - t0
        images = torch.cat([tok.decode_tokens(grids[j:j + bs].to(dev)).float().cpu()
                            for j in range(0, n, bs)])  # (n, C, H, W) in [-1, 1]
        seconds = time.perf_counter() - t0
        rep, pred = scorer.report(images), scorer.predict(images)
        row = {"w": w, "seconds": seconds, "sampling_seconds": t_sample,
               "seconds_per_1000": seconds * 1000 / n}
        row |= {k: rep[k] for k in ("fd", "precision", "recall")}
        row["class_accuracy"] = (pred == labels).float().mean().item()
        save_grid(float_to_images(images[:ev.grid ** 2]), ctx.figures / f"samples{suffix}.png",
                  nrow=ev.grid)
        save_bars(class_fractions(pred), ctx.figures / f"sample_classes{suffix}.png",
                  f"{ctx.name}: predicted classes", "fraction")
        metrics |= {k: v for k, v in rep.items() if k.startswith("fd_")}
        metrics |= {f"sample_{k}{suffix}": v for k, v in row.items() if k != "w"}
        rows.append(row)
        kept = images if kept is None else kept
    pd.DataFrame(rows).to_csv(ctx.sweep, index=False)
    save_guidance_sweep(rows, ctx.figures / "guidance.png", ctx.name)
    np.savez(ctx.samples, images=float_to_images(kept), labels=labels.numpy())
    return metrics
