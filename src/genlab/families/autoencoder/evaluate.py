"""Evaluation of the `autoencoder` family: reconstruction MSE / PSNR on the test split (clean and
at each input-noise level), FD / precision / recall of test reconstructions and of samples
decoded from a Gaussian fitted to the training latents; figures and data/samples/<name>.npz."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from genlab.config import is_toy
from genlab.data.processed import float_to_images, images_to_float
from genlab.data.toy2d import density_grid, sample_toy
from genlab.families import EvalContext
from genlab.metrics.autoencoder import latent_gaussian_samples, reconstruct, reconstruction_metrics
from genlab.metrics.evaluator import class_fractions
from genlab.metrics.samples import ImageScorer, toy_report
from genlab.metrics.toy import mmd_rbf, sliced_wasserstein
from genlab.tracking.figures import save_bars, save_grid, save_scatter


def evaluate(ctx: EvalContext) -> dict:
    return (evaluate_points if is_toy(ctx.cfg.dataset) else evaluate_images)(ctx)


def noise_sweep(metrics: dict, noise_levels: tuple[float, ...]) -> list[dict]:
    """Rows (sigma, recon_mse[, recon_psnr]) of reconstruction_metrics' keys, clean first."""
    rows = []
    for sigma in (0.0, *noise_levels):
        suffix = "" if sigma == 0 else f"_s{sigma:g}"
        rows.append({"sigma": sigma} | {k: metrics[f"{k}{suffix}"] for k in
                                        ("recon_mse", "recon_psnr") if f"{k}{suffix}" in metrics})
    return rows


def interleave(a: np.ndarray, b: np.ndarray, nrow: int) -> np.ndarray:
    """Rows of `a` followed by the matching rows of `b`: originals above their outputs."""
    rows = [np.concatenate([a[i:i + nrow], b[i:i + nrow]]) for i in range(0, len(a), nrow)]
    return np.concatenate(rows)


def evaluate_images(ctx: EvalContext) -> dict:
    net, ev, cfg = ctx.net, ctx.settings, ctx.cfg
    test_x = images_to_float(ctx.arrays("fashion_mnist/test_x"))
    train_x = images_to_float(ctx.arrays("fashion_mnist/train_x"))
    g = torch.Generator().manual_seed(ctx.seed)
    n = min(ev.n_samples, len(test_x))

    # 1. Reconstruction error, clean and at each input-noise level.
    metrics = reconstruction_metrics(net, test_x, cfg.objective.noise_levels, g, ev.batch_size)
    pd.DataFrame(noise_sweep(metrics, cfg.objective.noise_levels)).to_csv(ctx.sweep, index=False)

    # 2. Gaussian-latent samples and test reconstructions in the evaluator's feature space.
    scorer = ImageScorer(ctx.evaluator, test_x, train_x, k=ev.k, batch=ev.batch_size,
                         seed=ctx.seed)
    samples = latent_gaussian_samples(net, train_x, n, g, ev.batch_size)
    rep = scorer.report(samples)
    metrics |= {f"sample_{k}" if k in ("fd", "precision", "recall") else k: v
                for k, v in rep.items()}
    recon = reconstruct(net, test_x[:n], 0.0, g, ev.batch_size)
    metrics |= {f"recon_{k}": v for k, v in scorer.against_test(recon).items()}

    # 3. Figures and the samples file.
    k, half = ev.grid, ev.grid * ev.grid // 2
    save_grid(interleave(float_to_images(test_x[:half]), float_to_images(recon[:half]), k),
              ctx.figures / "reconstructions.png", nrow=k)
    for sigma in cfg.objective.noise_levels:
        noisy = test_x[:half] + sigma * torch.randn(test_x[:half].shape, generator=g)
        out = reconstruct(net, noisy, 0.0, g, ev.batch_size)
        save_grid(interleave(float_to_images(noisy), float_to_images(out), k),
                  ctx.figures / f"denoise_s{sigma:g}.png", nrow=k)
    images = float_to_images(samples)  # (N, 1, 28, 28) uint8
    save_grid(images[:k * k], ctx.figures / "samples.png", nrow=k)
    save_bars(class_fractions(scorer.predict(samples)), ctx.figures / "sample_classes.png",
              f"{ctx.name}: evaluator's predicted classes", "fraction")
    np.savez(ctx.samples, images=images, labels=np.full(len(images), -1))
    return metrics


def evaluate_points(ctx: EvalContext) -> dict:
    net, ev, cfg = ctx.net, ctx.settings, ctx.cfg
    toy = cfg.dataset.split("/", 1)[1]
    test_x = torch.as_tensor(ctx.arrays(f"{cfg.dataset}/test_x"))  # (N, 2) float32
    train_x = torch.as_tensor(ctx.arrays(f"{cfg.dataset}/train_x"))
    g = torch.Generator().manual_seed(ctx.seed)
    n = min(ev.toy_n, len(test_x))
    metrics = reconstruction_metrics(net, test_x, cfg.objective.noise_levels, g, ev.batch_size,
                                     image=False)
    pd.DataFrame(noise_sweep(metrics, cfg.objective.noise_levels)).to_csv(ctx.sweep, index=False)
    recon = reconstruct(net, test_x[:n], 0.0, g, ev.batch_size)
    samples = latent_gaussian_samples(net, train_x, n, g, ev.batch_size)
    metrics |= toy_report(samples, toy, g, ev.swd_projections)
    fresh = sample_toy(toy, n, g)
    metrics["recon_swd"] = sliced_wasserstein(recon, fresh, ev.swd_projections, generator=g)
    metrics["recon_mmd"] = mmd_rbf(recon, fresh)
    _, _, p = density_grid(toy, lim=3.0, res=200)
    save_scatter({"test": test_x[:2000].numpy(), "reconstruction": recon[:2000].numpy(),
                  "gaussian-latent sample": samples[:2000].numpy()},
                 ctx.figures / "scatter.png", f"{ctx.name} on {toy}", density=(p.numpy(), 3.0))
    np.savez(ctx.samples, points=samples.numpy().astype(np.float32))
    return metrics
