"""Evaluation of the `vae` family on the test split. Images: the ELBO and the importance-weighted
bound (Burda et al. 2016) in nats and bits/dim, active latent units, reconstructions, prior
samples scored by FD / precision / recall (with the floor and ceiling) and their predicted
classes, a latent interpolation grid. Points: the same bounds against the true entropy, and
samples scored by SWD / MMD over the true density."""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import torch

from genlab.config import is_toy
from genlab.data.processed import float_to_images, images_to_float
from genlab.data.toy2d import density_grid, log_density, sample_toy
from genlab.families import EvalContext
from genlab.metrics.evaluator import class_fractions
from genlab.metrics.likelihood import active_units, bits_per_dim, importance_weighted_bounds
from genlab.metrics.samples import ImageScorer, toy_report
from genlab.metrics.toy import sliced_wasserstein
from genlab.objectives.vae import gaussian_kl, log_importance_weights
from genlab.tracking.figures import save_bars, save_grid, save_scatter


def evaluate(ctx: EvalContext) -> dict:
    return (evaluate_points if is_toy(ctx.cfg.dataset) else evaluate_images)(ctx)


# ---------------------------------------------------------------------------------------------
# Pieces shared by images and points.


@torch.no_grad()
def encode_means(net, x: torch.Tensor, batch: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior means and log-variances (N, L) each, on the CPU."""
    out = [net.encode(c.to(device)) for c in x.split(batch)]
    return (torch.cat([m.float().cpu() for m, _ in out]),
            torch.cat([v.float().cpu() for _, v in out]))


@torch.no_grad()
def decode(net, z: torch.Tensor, batch: int, device, generator=None) -> torch.Tensor:
    """Means of p(x | z) (generator None) or draws of it, on the CPU; z (N, L)."""
    head = net.head
    out = []
    for c in z.split(batch):
        params = net.decode(c.to(device))
        out.append((head.mean(params) if generator is None
                    else head.sample(params, generator)).float().cpu())
    return torch.cat(out)


def likelihood_metrics(ctx: EvalContext, x: torch.Tensor) -> dict:
    """ELBO and IWAE bound (k = cfg.iwae_k) on x as NLLs in nats per example (with their
    standard errors), the mean KL term and the reconstruction term."""
    cfg, dev = ctx.cfg, ctx.device
    g = torch.Generator(device=dev).manual_seed(ctx.seed + 1)
    net = ctx.net
    t0 = time.perf_counter()
    elbo, iwae = importance_weighted_bounds(
        lambda xc, k: log_importance_weights(net, xc.to(dev), k, g), x, cfg.iwae_k,
        cfg.iwae_batch)
    seconds = time.perf_counter() - t0
    mu, logvar = encode_means(net, x, ctx.settings.batch_size, dev)
    kl = gaussian_kl(mu.double(), logvar.double()).sum(1)  # (N,) closed form
    se = lambda v: (v.std() / math.sqrt(len(v))).item()  # noqa: E731
    return {"nll_elbo": -elbo.mean().item(), "nll_elbo_se": se(elbo),
            "nll_iwae": -iwae.mean().item(), "nll_iwae_se": se(iwae),
            "iwae_gap": (iwae - elbo).mean().item(),  # nats the k draws gain over the ELBO
            "kl": kl.mean().item(), "recon_nll": -(elbo + kl).mean().item(),
            "latent": mu.shape[1], "iwae_k": cfg.iwae_k,
            "iwae_n": len(x), "iwae_seconds": seconds}


def prior_latents(n: int, latent: int, temperature: float, seed: int) -> torch.Tensor:
    """z = T eps, eps ~ N(0, I): (n, latent)."""
    g = torch.Generator().manual_seed(seed)
    return temperature * torch.randn(n, latent, generator=g)


# ---------------------------------------------------------------------------------------------
# Images.


def interleave(a: np.ndarray, b: np.ndarray, nrow: int) -> np.ndarray:
    """Rows of `a` followed by the matching rows of `b`: originals above their outputs."""
    rows = [np.concatenate([a[i:i + nrow], b[i:i + nrow]]) for i in range(0, len(a), nrow)]
    return np.concatenate(rows)


def interpolation_grid(net, x: torch.Tensor, steps: int, batch: int, device) -> torch.Tensor:
    """For consecutive pairs (x[2i], x[2i + 1]): decoded means along the straight line between
    their posterior means, `steps` points per row, ends included: (len(x) // 2 * steps, ...)."""
    mu, _ = encode_means(net, x, batch, device)
    a, b = mu[0::2], mu[1::2]  # (R, L) each
    t = torch.linspace(0, 1, steps).view(1, steps, 1)
    z = (a[:, None] * (1 - t) + b[:, None] * t).reshape(-1, mu.shape[1])  # (R * steps, L)
    return decode(net, z, batch, device)


def image_bounds(ctx: EvalContext, test_x: torch.Tensor) -> dict:
    """likelihood_metrics on the first iwae_n test images, with bits/dim where p(x | z) is a
    pmf over the 256 levels (the discretised logistic: its nats need no rescaling)."""
    x = test_x[:ctx.cfg.iwae_n]
    metrics = likelihood_metrics(ctx, x)
    if ctx.net.head.discrete_levels:
        dims = x[0].numel()
        for key in ("nll_elbo", "nll_iwae", "recon_nll", "kl"):
            metrics[f"{key}_bpd"] = bits_per_dim(metrics[key], dims)
    return metrics


def evaluate_images(ctx: EvalContext) -> dict:
    net, ev, cfg, dev = ctx.net, ctx.settings, ctx.cfg, ctx.device
    test_x = images_to_float(ctx.arrays("fashion_mnist/test_x"))  # (N, 1, 28, 28) in [-1, 1]
    train_x = images_to_float(ctx.arrays("fashion_mnist/train_x"))
    n = min(cfg.eval_samples or ev.n_samples, len(test_x))

    # 1. ELBO and IWAE bound; active units from the posterior means of the whole test split.
    metrics = image_bounds(ctx, test_x)
    mu, _ = encode_means(net, test_x, ev.batch_size, dev)
    metrics["active_units"] = active_units(mu)[0]

    # 2. Prior samples (means of p(x | z)) at each temperature, and draws of p(x | z) at the
    #    first: one row each; the first row is the headline sample_fd / precision / recall.
    scorer = ImageScorer(ctx.evaluator, test_x, train_x, k=ev.k, batch=ev.batch_size,
                         seed=ctx.seed)
    rows, headline = [], None
    for i, temp in enumerate(cfg.temperatures):
        z = prior_latents(n, net.latent, temp, ctx.seed)
        for output in ("mean", "draw") if i == 0 else ("mean",):
            g = torch.Generator(device=dev).manual_seed(ctx.seed) if output == "draw" else None
            samples = decode(net, z, ev.sample_batch_size, dev, g)
            if headline is None:
                headline = samples
                rep = scorer.report(samples)
                metrics |= {k: v for k, v in rep.items() if k.startswith("fd_")}
            else:
                rep = scorer.against_test(samples)
            rows.append({"temperature": temp, "output": output,
                         **{k: rep[k] for k in ("fd", "precision", "recall")}})
            if output == "draw":
                save_grid(float_to_images(samples[:ev.grid ** 2]),
                          ctx.figures / "samples_drawn.png", nrow=ev.grid)
    pd.DataFrame(rows).to_csv(ctx.sweep, index=False)
    metrics |= {f"sample_{k}": rows[0][k] for k in ("fd", "precision", "recall")}
    metrics |= {f"sample_{k}_drawn": rows[1][k] for k in ("fd", "precision", "recall")}
    metrics["n_samples"] = n

    # 3. Figures and the samples file.
    k, half = ev.grid, ev.grid * ev.grid // 2
    recon = decode(net, encode_means(net, test_x[:half], ev.batch_size, dev)[0], ev.batch_size,
                   dev)
    save_grid(interleave(float_to_images(test_x[:half]), float_to_images(recon), k),
              ctx.figures / "reconstructions.png", nrow=k)
    images = float_to_images(headline)  # (N, 1, 28, 28) uint8
    save_grid(images[:k * k], ctx.figures / "samples.png", nrow=k)
    steps = 10
    save_grid(float_to_images(interpolation_grid(net, test_x[:2 * k], steps, ev.batch_size, dev)),
              ctx.figures / "interpolation.png", nrow=steps)
    save_bars(class_fractions(scorer.predict(headline)), ctx.figures / "sample_classes.png",
              f"{ctx.name}: evaluator's predicted classes", "fraction")
    np.savez(ctx.samples, images=images, labels=np.full(len(images), -1))
    return metrics


# ---------------------------------------------------------------------------------------------
# Points.


def evaluate_points(ctx: EvalContext) -> dict:
    net, ev, cfg, dev = ctx.net, ctx.settings, ctx.cfg, ctx.device
    toy = cfg.dataset.split("/", 1)[1]
    test_x = torch.as_tensor(ctx.arrays(f"{cfg.dataset}/test_x"))  # (N, 2) float32
    n = cfg.eval_samples or ev.toy_n

    # 1. Bounds on log p(x) against the true density: KL(p || model) <= NLL bound - H(p).
    x = test_x[:cfg.iwae_n]
    metrics = likelihood_metrics(ctx, x)
    true_nll = -log_density(toy, x.double()).mean().item()  # Monte Carlo entropy H(p)
    metrics |= {"true_nll": true_nll, "kl_iwae_bound": metrics["nll_iwae"] - true_nll}
    mu, _ = encode_means(net, test_x, ev.batch_size, dev)
    metrics["active_units"] = active_units(mu)[0]

    # 2. Samples x ~ p(x | z), z ~ N(0, T^2 I): the first temperature's draws are the
    #    headline (toy_report: SWD / MMD with the floor and the Gaussian fit); the other rows
    #    (decoded means, other temperatures) get the SWD against fresh true draws only, over
    #    the same floor (toy_report's MMD and context numbers cost seconds per call).
    g = torch.Generator().manual_seed(ctx.seed)
    rows, drawn = [], None
    for temp in cfg.temperatures:
        z = prior_latents(n, net.latent, temp, ctx.seed)
        for output in ("draw", "mean"):
            gen = torch.Generator(device=dev).manual_seed(ctx.seed) if output == "draw" else None
            points = decode(net, z, ev.batch_size, dev, gen)
            if drawn is None:
                drawn = points
                metrics |= toy_report(points, toy, g, ev.swd_projections)
                swd = metrics["sample_swd"]
            else:
                swd = sliced_wasserstein(points, sample_toy(toy, n, g), ev.swd_projections,
                                         generator=g)
            rows.append({"temperature": temp, "output": output, "swd": swd,
                         "swd_over_floor": swd / metrics["swd_floor"]})
    pd.DataFrame(rows).to_csv(ctx.sweep, index=False)

    # 3. Scatter over the true density, and the samples file.
    _, _, p = density_grid(toy, lim=3.0, res=200)
    save_scatter({"samples": drawn[:3000].numpy()}, ctx.figures / "scatter.png",
                 f"{ctx.name} on {toy}", density=(p.numpy(), 3.0))
    np.savez(ctx.samples, points=drawn.numpy().astype(np.float32))
    return metrics
