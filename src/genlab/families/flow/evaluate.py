"""Evaluation of the `flow` family. Images: the exact test log-likelihood in bits/dim (one
uniform dequantisation draw per image), and samples at each temperature scored by FD /
precision / recall with the floor and ceiling and the evaluator's predicted classes. Toy
points: test NLL, KL(p_true || model) = test NLL - true entropy (Monte Carlo over the test
points, with its standard error), sliced Wasserstein / MMD of samples, and the model's density
beside the true one."""

from __future__ import annotations

import math
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from genlab.config import is_toy  # noqa: E402
from genlab.data.processed import float_to_images, images_to_float  # noqa: E402
from genlab.data.toy2d import density_grid, log_density, sample_toy  # noqa: E402
from genlab.families import EvalContext  # noqa: E402
from genlab.families.flow import generate  # noqa: E402
from genlab.metrics.evaluator import class_fractions  # noqa: E402
from genlab.metrics.samples import ImageScorer, toy_report  # noqa: E402
from genlab.metrics.toy import sliced_wasserstein  # noqa: E402
from genlab.objectives.flow import image_bits_per_dim, log_prob  # noqa: E402
from genlab.tracking.figures import save_bars, save_grid, save_scatter  # noqa: E402

SCORED = ("fashion_mnist",)  # image sets with a trained evaluator
LIM, RES = 3.0, 200  # density maps: [-LIM, LIM]^2 on a RES x RES grid


def evaluate(ctx: EvalContext) -> dict:
    return (evaluate_points if is_toy(ctx.cfg.dataset) else evaluate_images)(ctx)


def _suffix(i: int, temperature: float) -> str:
    """'' for the headline (first) temperature, _t<T> for the others."""
    return "" if i == 0 else f"_t{temperature:g}"


def mean_and_se(v: torch.Tensor) -> tuple[float, float]:
    """The mean of v and its standard error std / sqrt(n)."""
    v = v.double()
    return v.mean().item(), (v.std() / math.sqrt(len(v))).item()


# ---------------------------------------------------------------------------------------------
# Toy points.


@torch.no_grad()
def model_log_prob(net, x: torch.Tensor, batch: int = 4096) -> torch.Tensor:
    """log q(x) (N,) of a 2-D flow at points x (N, 2), in batches on the flow's device."""
    dev = next(net.parameters()).device
    return torch.cat([log_prob(net, x[i:i + batch].to(dev)).cpu()
                      for i in range(0, len(x), batch)])


def kl_report(net, toy: str, test_x: torch.Tensor) -> dict[str, float]:
    """Test NLL, true entropy and KL(p_true || q) = E_p[log p - log q] in nats, each a Monte
    Carlo mean over the test points with its standard error (KL's from the paired
    differences, whose spread is far smaller than either term's)."""
    log_q = model_log_prob(net, test_x).double()
    log_p = log_density(toy, test_x.double())
    nll, nll_se = mean_and_se(-log_q)
    entropy, entropy_se = mean_and_se(-log_p)
    kl, kl_se = mean_and_se(log_p - log_q)
    return {"test_nll": nll, "test_nll_se": nll_se, "true_entropy": entropy,
            "true_entropy_se": entropy_se, "kl": kl, "kl_se": kl_se}


def save_densities(net, toy: str, path, title: str) -> None:
    """The model's density heat map beside the true density, on the same grid and scale."""
    _, _, p_true = density_grid(toy, lim=LIM, res=RES)  # p[i, j] at (xs[j], ys[i])
    axis = torch.linspace(-LIM, LIM, RES)
    gy, gx = torch.meshgrid(axis, axis, indexing="ij")
    q = model_log_prob(net, torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)).exp()
    q = q.reshape(RES, RES)
    vmax = max(p_true.max().item(), 1e-12)
    fig, axes = plt.subplots(1, 2, figsize=(7.6, 3.9), dpi=110)
    for ax, (name, grid) in zip(axes, (("model", q), ("true", p_true)), strict=True):
        ax.imshow(grid.numpy(), extent=(-LIM, LIM, -LIM, LIM), origin="lower", cmap="viridis",
                  vmin=0.0, vmax=vmax)
        ax.set(title=f"{name} density", aspect="equal")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def sample_swd(points: torch.Tensor, toy: str, seed: int, projections: int) -> float:
    """toy_report's sample_swd of points (N, 2) (the same fresh true draws and directions for
    the same seed) without its floors and MMDs, whose O(N^2) kernel sums are most of its time."""
    g = torch.Generator().manual_seed(seed)
    fresh = sample_toy(toy, len(points), g)
    return sliced_wasserstein(points, fresh, projections, generator=g)


def evaluate_points(ctx: EvalContext) -> dict:
    cfg, ev = ctx.cfg, ctx.settings
    toy = cfg.dataset.split("/", 1)[1]
    test_x = torch.as_tensor(ctx.arrays(f"{cfg.dataset}/test_x")).float()  # (N, 2)
    metrics = kl_report(ctx.net, toy, test_x)

    n, rows, kept = cfg.eval_samples or ev.toy_n, [], None
    for i, temperature in enumerate(cfg.temperatures):
        g = torch.Generator(device=ctx.device).manual_seed(ctx.seed)
        t0 = time.perf_counter()
        samples = generate(ctx.net, n, temperature, generator=g)  # (n, 2)
        seconds = time.perf_counter() - t0
        if i == 0:  # the headline: swd / mmd with their floors and Gaussian numbers
            rep = toy_report(samples, toy, torch.Generator().manual_seed(ctx.seed),
                             ev.swd_projections)
            metrics |= rep
            kept = samples
        else:  # the other temperatures: the sliced Wasserstein distance only (fast)
            rep = {"sample_swd": sample_swd(samples, toy, ctx.seed, ev.swd_projections)}
            metrics[f"sample_swd{_suffix(i, temperature)}"] = rep["sample_swd"]
        rows.append({"temperature": temperature, "seconds": seconds,
                     "swd": rep["sample_swd"], "mmd": rep.get("sample_mmd", float("nan"))})
    pd.DataFrame(rows).to_csv(ctx.sweep, index=False)

    _, _, p = density_grid(toy, lim=LIM, res=RES)
    save_scatter({f"samples (T = {cfg.temperatures[0]:g})": kept[:3000].numpy()},
                 ctx.figures / "scatter.png", f"{ctx.name} on {toy}", density=(p.numpy(), LIM))
    save_densities(ctx.net, toy, ctx.figures / "density.png",
                   f"{ctx.name}: KL(p || q) = {metrics['kl']:.3f} ± {metrics['kl_se']:.3f} nats")
    np.savez(ctx.samples, points=kept.numpy().astype(np.float32))
    return metrics


# ---------------------------------------------------------------------------------------------
# Images.


@torch.no_grad()
def test_bits_per_dim(ctx: EvalContext, test_x: torch.Tensor) -> dict[str, float]:
    """Bits/dim of each test image under the flow (dequantisation bound, one uniform draw per
    image from the seed), its mean and standard error, and the time it took."""
    g = torch.Generator(device=ctx.device).manual_seed(ctx.seed)
    bs = ctx.settings.batch_size
    t0 = time.perf_counter()
    bpd = torch.cat([image_bits_per_dim(ctx.net, test_x[i:i + bs].to(ctx.device), ctx.cfg.alpha,
                                        g).cpu() for i in range(0, len(test_x), bs)])
    mean, se = mean_and_se(bpd)
    return {"test_bpd": mean, "test_bpd_se": se,
            "test_nll_nats": mean * test_x[0].numel() * math.log(2),  # per image
            "test_images": len(test_x), "test_seconds": time.perf_counter() - t0}


def evaluate_images(ctx: EvalContext) -> dict:
    """The test bits/dim, then one row per sampling temperature; the first temperature's
    numbers are the headline sample_* metrics, later ones add a _t<T> suffix."""
    cfg, ev = ctx.cfg, ctx.settings
    test_x = images_to_float(ctx.arrays(f"{cfg.dataset}/test_x"))
    metrics = test_bits_per_dim(ctx, test_x[:cfg.eval_test or len(test_x)])
    n = min(cfg.eval_samples or ev.n_samples, len(test_x))
    scorer = None
    if cfg.dataset in SCORED:
        train_x = images_to_float(ctx.arrays(f"{cfg.dataset}/train_x"))
        scorer = ImageScorer(ctx.evaluator, test_x, train_x, k=ev.k, batch=ev.batch_size,
                             seed=ctx.seed)
    metrics["n_samples"] = n
    rows, kept = [], None
    for i, temperature in enumerate(cfg.temperatures):
        suffix = _suffix(i, temperature)
        g = torch.Generator(device=ctx.device).manual_seed(ctx.seed)
        t0 = time.perf_counter()
        samples = generate(ctx.net, n, temperature, generator=g, alpha=cfg.alpha,
                           batch_size=ev.sample_batch_size)  # (n, C, H, W) in [-1, 1]
        row = {"temperature": temperature, "seconds": time.perf_counter() - t0}
        save_grid(float_to_images(samples[:ev.grid ** 2]),
                  ctx.figures / f"samples_t{temperature:g}.png", nrow=ev.grid)
        if scorer is not None:
            rep = scorer.report(samples)
            row |= {k: rep[k] for k in ("fd", "precision", "recall")}
            metrics |= {k: v for k, v in rep.items() if k.startswith("fd_")}
            fractions = class_fractions(scorer.predict(samples))
            row["min_class_frac"] = min(fractions.values())  # the rarest class: a collapse check
            save_bars(fractions,
                      ctx.figures / f"sample_classes_t{temperature:g}.png",
                      f"{ctx.name}: predicted classes (T = {temperature:g})", "fraction")
        metrics |= {(k if k == "min_class_frac" else f"sample_{k}") + suffix: v
                    for k, v in row.items() if k != "temperature"}
        rows.append(row)
        kept = samples if kept is None else kept
    pd.DataFrame(rows).to_csv(ctx.sweep, index=False)
    np.savez(ctx.samples, images=float_to_images(kept), labels=np.full(n, -1))
    return metrics
