"""Evaluation of the `gan` family, one row per latent temperature (metrics/sweep CSV). Images:
FD / precision / recall against the test split with the floor and ceiling and the evaluator's
predicted classes (min_class_frac: the rarest class's share, a collapse check). Toy points:
sliced Wasserstein and MMD against fresh true draws and, on the sets with known modes (8
Gaussians, rings), mode coverage and the share of high-quality samples (Srivastava et al.
2017). The first temperature gives the headline metrics; later ones add a _t<t> suffix."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch

from genlab.config import is_toy
from genlab.data.processed import float_to_images, images_to_float
from genlab.data.toy2d import density_grid, sample_toy
from genlab.families import EvalContext
from genlab.families.gan import generate
from genlab.metrics.evaluator import class_fractions
from genlab.metrics.modes import TOY_MODES, mode_coverage
from genlab.metrics.samples import ImageScorer, toy_report
from genlab.metrics.toy import sliced_wasserstein
from genlab.tracking.figures import save_bars, save_grid, save_scatter


def evaluate(ctx: EvalContext) -> dict:
    return (evaluate_points if is_toy(ctx.cfg.dataset) else evaluate_images)(ctx)


def _suffix(i: int, t: float) -> str:
    return "" if i == 0 else f"_t{t:g}"


def _sample(ctx: EvalContext, n: int, t: float) -> tuple[torch.Tensor, float]:
    """n samples at temperature t (the same latents' seed at every t) and their seconds."""
    g = torch.Generator(device=ctx.device).manual_seed(ctx.seed)
    t0 = time.perf_counter()
    samples = generate(ctx.net, n, generator=g, temperature=t,
                       batch_size=ctx.settings.sample_batch_size, device=ctx.device)
    return samples, time.perf_counter() - t0


def evaluate_points(ctx: EvalContext) -> dict:
    cfg, ev = ctx.cfg, ctx.settings
    toy = cfg.dataset.split("/", 1)[1]
    n = cfg.eval_samples or ev.toy_n
    metrics, rows, kept = {}, [], None
    for i, t in enumerate(cfg.temperatures):
        samples, seconds = _sample(ctx, n, t)
        g = torch.Generator().manual_seed(ctx.seed)
        if i == 0:  # the headline: SWD / MMD with their floors (MMD is O(n^2): once)
            rep = toy_report(samples, toy, g, ev.swd_projections)
            metrics |= rep
            row = {"swd": rep["sample_swd"], "swd_over_floor": rep["swd_over_floor"]}
            kept = samples
        else:
            swd = sliced_wasserstein(samples, sample_toy(toy, n, g), ev.swd_projections,
                                     generator=g)
            row = {"swd": swd, "swd_over_floor": swd / metrics["swd_floor"]}
            metrics[f"sample_swd{_suffix(i, t)}"] = swd
        row = {"temperature": t, "seconds": seconds} | row | _coverage(samples, toy)
        keep = ("modes_covered", "high_quality_frac", "mode_tv") + (("n_modes",) if i == 0 else ())
        metrics |= {f"{k}{_suffix(i, t)}": v for k, v in row.items() if k in keep}
        rows.append(row)
    pd.DataFrame(rows).to_csv(ctx.sweep, index=False)
    _scatter(ctx, kept, toy)
    np.savez(ctx.samples, points=kept.numpy().astype(np.float32))
    return metrics


def _coverage(points: torch.Tensor, toy: str) -> dict:
    """Mode coverage of a set with known modes; {} for the others."""
    if toy not in TOY_MODES:
        return {}
    c = mode_coverage(points, TOY_MODES[toy]())
    return {"modes_covered": float(c.covered), "n_modes": float(c.n_modes),
            "high_quality_frac": c.high_quality, "mode_tv": c.tv}


def _scatter(ctx: EvalContext, points: torch.Tensor, toy: str) -> None:
    """Samples over the true density; on sets with known modes, high-quality samples (within
    3 std of a mode) and the rest in two colours."""
    _, _, p = density_grid(toy, lim=3.0, res=200)
    pts = points[:3000]
    if toy in TOY_MODES:
        modes = TOY_MODES[toy]()
        hq = modes.distance(pts).min(dim=1).values <= 3.0 * modes.std
        sets = {"high-quality": pts[hq].numpy(), "off-mode": pts[~hq].numpy()}
    else:
        sets = {"samples": pts.numpy()}
    save_scatter(sets, ctx.figures / "scatter.png", f"{ctx.name} on {toy}",
                 density=(p.numpy(), 3.0))


def evaluate_images(ctx: EvalContext) -> dict:
    cfg, ev = ctx.cfg, ctx.settings
    test_x = images_to_float(ctx.arrays(f"{cfg.dataset}/test_x"))
    train_x = images_to_float(ctx.arrays(f"{cfg.dataset}/train_x"))
    n = min(cfg.eval_samples or ev.n_samples, len(test_x))
    scorer = ImageScorer(ctx.evaluator, test_x, train_x, k=ev.k, batch=ev.batch_size,
                         seed=ctx.seed)
    metrics, rows, kept = {"n_samples": n}, [], None
    for i, t in enumerate(cfg.temperatures):
        sfx = _suffix(i, t)
        samples, seconds = _sample(ctx, n, t)
        # floor and ceiling once (they do not depend on the samples)
        rep = scorer.report(samples) if i == 0 else scorer.against_test(samples)
        fractions = class_fractions(scorer.predict(samples))
        save_bars(fractions, ctx.figures / f"sample_classes{sfx}.png",
                  f"{ctx.name}: predicted classes (t = {t:g})", "fraction")
        save_grid(float_to_images(samples[:ev.grid ** 2]), ctx.figures / f"samples{sfx}.png",
                  nrow=ev.grid)
        row = {"temperature": t, "seconds": seconds, "fd": rep["fd"],
               "precision": rep["precision"], "recall": rep["recall"],
               "min_class_frac": min(fractions.values())}
        metrics |= {k: v for k, v in rep.items() if k.startswith("fd_")}
        metrics |= {f"sample_{k}{sfx}": row[k] for k in ("fd", "precision", "recall")}
        metrics[f"min_class_frac{sfx}"] = row["min_class_frac"]
        rows.append(row)
        kept = samples if kept is None else kept
    pd.DataFrame(rows).to_csv(ctx.sweep, index=False)
    np.savez(ctx.samples, images=float_to_images(kept), labels=np.full(n, -1))
    return metrics
