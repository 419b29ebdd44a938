"""Evaluation of the `latent` family: draw latents with the EDM sampler (one row per guidance
weight for conditional models), decode them with the tokenizer, and score the images like the
pixel diffusion models (FD / precision / recall against the test split with the evaluator,
predicted classes, class accuracy). Each row's `seconds` is sampling plus decoding, what a user
waits for; `seconds_per_1000` scales it to 1,000 images for the pixel-vs-latent table."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch

from genlab.data.processed import float_to_images, images_to_float
from genlab.families import EvalContext
from genlab.families.diffusion import N_CLASSES, generate, nfe
from genlab.families.latent import load
from genlab.metrics.evaluator import class_fractions
from genlab.metrics.samples import ImageScorer
from genlab.models.latent import decode_all
from genlab.tracking.figures import save_bars, save_grid, save_guidance_sweep


def evaluate(ctx: EvalContext) -> dict:
    cfg, ev, dev = ctx.cfg, ctx.settings, ctx.device
    tok = load(cfg, dev)
    test_x = images_to_float(ctx.arrays(f"{cfg.dataset}/test_x"))
    train_x = images_to_float(ctx.arrays(f"{cfg.dataset}/train_x"))
    scorer = ImageScorer(ctx.evaluator, test_x, train_x, k=ev.k, batch=ev.batch_size,
                         seed=ctx.seed)
    n = min(cfg.eval_samples or ev.n_samples, len(test_x))
    labels = (torch.arange(n) % N_CLASSES) if cfg.conditional else None
    latent_shape = _latent_shape(ctx.net)
    metrics = {"nfe": nfe(cfg.method), "n_samples": n, "latent_scale": float(ctx.net.scale),
               "latent_channels": latent_shape[0], "latent_side": latent_shape[1]}
    rows, kept = [], None
    for i, w in enumerate(cfg.guidance if cfg.conditional else (None,)):
        suffix = "" if i == 0 else f"_w{w:g}"
        g = torch.Generator(device=dev).manual_seed(ctx.seed)
        bs = max(1, ev.sample_batch_size // 2) if w else ev.sample_batch_size
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        z = generate(ctx.net, cfg.method, n, latent_shape, generator=g, labels=labels,
                     guidance=w, batch_size=bs, device=dev, bf16=ctx.bf16)  # (n, C, h, w)
        t_sample = time.perf_counter() - t0
        images = decode_all(lambda b: tok.decode_latent(ctx.net.to_tokenizer(b.to(dev))), z)
        seconds = time.perf_counter() - t0
        rep, pred = scorer.report(images), scorer.predict(images)
        row = {"w": w, "seconds": seconds, "sampling_seconds": t_sample,
               "seconds_per_1000": seconds * 1000 / n}
        row |= {k: rep[k] for k in ("fd", "precision", "recall")}
        if labels is not None:
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
    if cfg.conditional:
        save_guidance_sweep(rows, ctx.figures / "guidance.png", ctx.name)
    np.savez(ctx.samples, images=float_to_images(kept),
             labels=(labels if labels is not None else torch.full((n,), -1)).numpy())
    return metrics


def _latent_shape(net) -> tuple[int, int, int]:
    """(C, h, w) of the latents the U-Net inside `net` takes."""
    from genlab.families.latent import backbone

    unet = backbone(net)
    return (unet.in_channels, unet.resolution, unet.resolution)
