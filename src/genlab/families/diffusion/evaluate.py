"""Evaluation of the `diffusion` family. Images: FD / precision / recall against the test split
with the floor and ceiling, the evaluator's predicted classes and, for conditional models, one
row per classifier-free guidance weight (metrics/guidance/<name>.csv); sets without a trained
evaluator (CIFAR-10, CelebA) get per-channel moment gaps. Toy points: sliced Wasserstein and
MMD against fresh true draws, and the sampler's path over the true density."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch

from genlab.config import is_toy
from genlab.data.processed import float_to_images, images_to_float
from genlab.data.toy2d import density_grid
from genlab.families import EvalContext
from genlab.families.diffusion import N_CLASSES, generate, nfe, sample_with_path
from genlab.metrics.evaluator import class_fractions
from genlab.metrics.samples import ImageScorer, toy_report
from genlab.tracking.figures import (
    save_bars,
    save_grid,
    save_guidance_sweep,
    save_panels,
    save_scatter,
)

# Image sets with a trained evaluator (FD / precision / recall); the others get moment gaps.
SCORED = ("fashion_mnist",)


def evaluate(ctx: EvalContext) -> dict:
    return (evaluate_points if is_toy(ctx.cfg.dataset) else evaluate_images)(ctx)


def evaluate_points(ctx: EvalContext) -> dict:
    cfg, ev = ctx.cfg, ctx.settings
    toy = cfg.dataset.split("/", 1)[1]
    g = torch.Generator().manual_seed(ctx.seed)
    n = cfg.eval_samples or ev.toy_n
    t0 = time.perf_counter()
    samples, path = sample_with_path(ctx.net, cfg.method, n, (2,), generator=g)  # path (S+1,n,2)
    seconds = time.perf_counter() - t0
    metrics = {"nfe": nfe(cfg.method)} | toy_report(samples, toy, g, ev.swd_projections)
    pd.DataFrame([{"w": None, "seconds": seconds, "swd": metrics["sample_swd"],
                   "mmd": metrics["sample_mmd"]}]).to_csv(ctx.sweep, index=False)
    _, _, p = density_grid(toy, lim=3.0, res=200)
    density = (p.numpy(), 3.0)
    save_scatter({"samples": samples[:3000].numpy()}, ctx.figures / "scatter.png",
                 f"{ctx.name} on {toy}", density=density)
    picks = np.linspace(0, len(path) - 1, 4).round().astype(int)
    save_panels({f"step {i} of {len(path) - 1}": path[i, :1000].numpy() for i in picks},
                ctx.figures / "sampling_path.png", f"{ctx.name}: sampler path", density)
    np.savez(ctx.samples, points=samples.numpy().astype(np.float32))
    return metrics


def evaluate_images(ctx: EvalContext) -> dict:
    """One row per guidance weight (a single unguided row for unconditional models); the first
    row's numbers are the headline sample_* metrics, later rows add a _w<w> suffix."""
    cfg, ev = ctx.cfg, ctx.settings
    test_x = images_to_float(ctx.arrays(f"{cfg.dataset}/test_x"))
    n = min(cfg.eval_samples or ev.n_samples, len(test_x))
    scorer = None
    if cfg.dataset in SCORED:
        train_x = images_to_float(ctx.arrays(f"{cfg.dataset}/train_x"))
        scorer = ImageScorer(ctx.evaluator, test_x, train_x, k=ev.k, batch=ev.batch_size,
                             seed=ctx.seed)
    labels = (torch.arange(n) % N_CLASSES) if cfg.conditional else None
    metrics, rows, kept = {"nfe": nfe(cfg.method), "n_samples": n}, [], None
    for i, w in enumerate(cfg.guidance if cfg.conditional else (None,)):
        suffix = "" if i == 0 else f"_w{w:g}"
        samples, row = _sample_and_score(ctx, n, labels, w, scorer, test_x, suffix)
        save_grid(float_to_images(samples[:ev.grid ** 2]), ctx.figures / f"samples{suffix}.png",
                  nrow=ev.grid)
        context = {k: row.pop(k) for k in list(row) if k.startswith("fd_")}
        metrics |= context | {f"sample_{k}{suffix}": v for k, v in row.items() if k != "w"}
        rows.append(row)
        kept = samples if kept is None else kept  # data/samples/<name>.npz: the first row's
    pd.DataFrame(rows).to_csv(ctx.sweep, index=False)
    if cfg.conditional and scorer is not None:
        save_guidance_sweep(rows, ctx.figures / "guidance.png", ctx.name)
    np.savez(ctx.samples, images=float_to_images(kept),
             labels=(labels if labels is not None else torch.full((n,), -1)).numpy())
    return metrics


def _sample_and_score(ctx: EvalContext, n: int, labels, w, scorer, test_x, suffix) -> tuple:
    """n samples at guidance w (None: unguided) and their row of the guidance table."""
    ev, dev = ctx.settings, ctx.device
    g = torch.Generator(device=dev).manual_seed(ctx.seed)
    # CFG runs both branches in one call of twice the batch: halving it keeps the network's
    # input shape fixed across the sweep (no torch.compile recompilation per w).
    bs = max(1, ev.sample_batch_size // 2) if w else ev.sample_batch_size
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    samples = generate(ctx.net, ctx.cfg.method, n, tuple(test_x.shape[1:]), generator=g,
                       labels=labels, guidance=w, batch_size=bs, device=dev, bf16=ctx.bf16)
    row = {"w": w, "seconds": time.perf_counter() - t0}
    if scorer is None:
        dims = (0, 2, 3)  # per-channel colour statistics against the test images
        row["mean_gap"] = (samples.mean(dims) - test_x[:n].mean(dims)).abs().max().item()
        row["std_gap"] = (samples.std(dims) - test_x[:n].std(dims)).abs().max().item()
        return samples, row
    rep, pred = scorer.report(samples), scorer.predict(samples)
    row |= {k: rep[k] for k in ("fd", "precision", "recall")}
    if labels is not None:
        row["class_accuracy"] = (pred == labels).float().mean().item()
    save_bars(class_fractions(pred), ctx.figures / f"sample_classes{suffix}.png",
              f"{ctx.name}: predicted classes", "fraction")
    row |= {k: v for k, v in rep.items() if k.startswith("fd_")}
    return samples, row
