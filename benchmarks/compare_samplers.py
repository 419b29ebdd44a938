"""Compare samplers on one trained Fashion-MNIST diffusion model: FD / precision / recall.

Loads models/<name>.pt (EMA weights) under params.yaml's diffusion.<name>, draws N samples with
each requested sampler from the same seed, and scores them against the first N test images
with the evaluator (models/evaluator.pt), as the evaluate stage does. Samplers:

    ald:L:T:eps   annealed Langevin dynamics (NCSN Algorithm 1) over the geometric ladder
                  sigma_max -> sigma_min with L levels, T steps per level and step size eps
                  (NCSN / EDM models; the per-step contraction is eps / (2 sigma_min^2))
    heun:N        EDM Heun (Algorithm 1), N steps from sigma_max to sigma_min (NFE 2N - 1)
    ddim:S:eta    DDIM with S steps and stochasticity eta (DDPM models; the method's schedule
                  and clip_x0)
    ancestral     DDPM's ancestral sampler (Algorithm 2), one step per timestep (DDPM models)

sigma_max / sigma_min are the model's method section's unless --sigmas MAX MIN is given.
A sampler whose samples are not finite (a step size too large for sigma_min) gets a row with
its count of non-finite samples and no metrics.
    own           the sampler params.yaml configures for the model

Score-based samplers need a score: an NCSN model is one; for an EDM model the score is read
off its denoiser, s = (D - x) / sigma^2, and D = x + sigma^2 s goes the other way. Conditional
models get labels 0..9 in turn (--label -1: the unconditional branch). FD at small N is biased
upwards: compare rows of one run, not against the evaluate stage's 1,000-sample numbers.

    python benchmarks/compare_samplers.py ncsn_fmnist --n 100 \\
        --samplers ald:50:5:1.5e-4 ald:50:5:5e-5 heun:18 [--grids figs/] [--json out.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

from genlab.data.processed import float_to_images, images_to_float, load_array
from genlab.families.diffusion import N_CLASSES, generate
from genlab.metrics.evaluator import feature_fn, load_evaluator, predict
from genlab.metrics.fd import fd_from_features
from genlab.metrics.image import batched_features
from genlab.metrics.prd import precision_recall
from genlab.models.precond import DenoiserFromScore, ScoreFromDenoiser
from genlab.samplers.edm import edm_heun_sampler
from genlab.samplers.ncsn import annealed_langevin_dynamics
from genlab.samplers.schedules import ncsn_sigmas
from genlab.tracking.figures import save_grid

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the stages package
from stages._common import (  # noqa: E402
    PROCESSED,
    evaluate_section,
    model_section,
    runtime,
    write_json,
)
from stages.evaluate import EVALUATOR, load_model  # noqa: E402

SHAPE = (1, 28, 28)  # one Fashion-MNIST image


def parse_sampler(spec: str) -> tuple:
    """'ald:L:T:eps' -> ('ald', L, T, eps); 'heun:N' -> ('heun', N); 'ddim:S:eta' ->
    ('ddim', S, eta); 'ancestral' / 'own' -> ('ancestral',) / ('own',)."""
    parts = spec.split(":")
    try:
        if parts[0] == "ald" and len(parts) == 4:
            L, T, eps = int(parts[1]), int(parts[2]), float(parts[3])
            if L >= 2 and T >= 1 and eps > 0:
                return "ald", L, T, eps
        elif parts[0] == "heun" and len(parts) == 2 and int(parts[1]) >= 1:
            return "heun", int(parts[1])
        elif parts[0] == "ddim" and len(parts) == 3 and int(parts[1]) >= 1 and float(parts[2]) >= 0:
            return "ddim", int(parts[1]), float(parts[2])
        elif parts in (["own"], ["ancestral"]):
            return (parts[0],)
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(
        f"bad sampler {spec!r}: use ald:L:T:eps (L >= 2, T >= 1, eps > 0), heun:N, "
        "ddim:S:eta (S >= 1, eta >= 0), ancestral or own")


def as_score_and_denoiser(net, kind: str):
    if kind == "ncsn":
        return net, DenoiserFromScore(net)
    if kind == "edm":
        return ScoreFromDenoiser(net), net
    raise ValueError(f"no score / denoiser pair for method.kind {kind!r}")


def draw(spec: tuple, net, method, n: int, labels, seed: int,
         sigmas: tuple[float, float] | None = None) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if spec[0] in ("own", "ddim", "ancestral"):
        if spec[0] == "ddim":
            method = dataclasses.replace(method, sampler="ddim", ddim_steps=spec[1],
                                         ddim_eta=spec[2])
        elif spec[0] == "ancestral":
            method = dataclasses.replace(method, sampler="ancestral")
        return generate(net, method, n, SHAPE, generator=g, labels=labels, batch_size=n)
    score, denoiser = as_score_and_denoiser(net, method.kind)
    hi, lo = sigmas or (method.sigma_max, method.sigma_min)
    if spec[0] == "heun":
        latents = torch.randn((n, *SHAPE), generator=g)
        return edm_heun_sampler(denoiser, latents, class_labels=labels, num_steps=spec[1],
                                sigma_min=lo, sigma_max=hi)
    _, L, T, eps = spec
    ladder = ncsn_sigmas(hi, lo, L)
    x0 = float(ladder[0]) * torch.randn((n, *SHAPE), generator=g)
    return annealed_langevin_dynamics(score, x0, ladder, n_steps_each=T, eps=eps, generator=g,
                                      class_labels=labels)


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name", help="a diffusion.<name> key whose models/<name>.pt exists")
    ap.add_argument("--n", type=int, default=100, help="samples per sampler")
    ap.add_argument("--samplers", nargs="+", type=parse_sampler, default=[parse_sampler("own")])
    ap.add_argument("--label", type=int, default=None,
                    help="one class for every sample of a conditional model (-1: unconditional)")
    ap.add_argument("--sigmas", type=float, nargs=2, metavar=("MAX", "MIN"),
                    help="noise range for ald / heun instead of the method section's")
    ap.add_argument("--grids", type=Path, help="folder for one 8x8 sample grid per sampler")
    ap.add_argument("--json", type=Path, help="write the rows here")
    args = ap.parse_args(argv)
    if args.n < 10:
        ap.error("--n must be >= 10")
    if args.sigmas and not 0 < args.sigmas[1] < args.sigmas[0]:
        ap.error(f"--sigmas {args.sigmas[0]:g} {args.sigmas[1]:g}: need MAX > MIN > 0")

    family, name, params, cfg = model_section(["diffusion", args.name], "evaluate")
    if cfg.dataset != "fashion_mnist":
        raise SystemExit(f"error: diffusion.{name} is not a Fashion-MNIST model")
    fits = {"ald": ("ncsn", "edm"), "heun": ("ncsn", "edm"), "ddim": ("ddpm",),
            "ancestral": ("ddpm",), "own": ("ncsn", "edm", "ddpm")}
    for spec in args.samplers:
        if cfg.method.kind not in fits[spec[0]]:
            raise SystemExit(f"error: sampler {spec[0]} needs a {' or '.join(fits[spec[0]])} "
                             f"model; diffusion.{name}.method.kind is {cfg.method.kind!r}")
    _, _, seed = runtime(params)
    ev = evaluate_section(params)
    net = load_model(family, name, cfg, torch.device("cpu"), nhwc=False)
    labels = None
    if cfg.conditional:
        labels = (torch.full((args.n,), args.label) if args.label is not None
                  else torch.arange(args.n) % N_CLASSES)
    test_x = images_to_float(load_array(PROCESSED, "fashion_mnist/test_x"))[:args.n]
    evaluator = load_evaluator(EVALUATOR)
    feats = feature_fn(evaluator)
    test_f = batched_features(feats, test_x, ev.batch_size)

    rows = []
    for spec in args.samplers:
        t0 = time.perf_counter()
        with torch.no_grad():
            x = draw(spec, net, cfg.method, args.n, labels, seed, args.sigmas)
        seconds = time.perf_counter() - t0
        tag = ":".join(str(s) for s in spec)
        bad = int((~torch.isfinite(x.flatten(1))).any(1).sum())
        if bad:
            rows.append({"sampler": tag, "n": args.n, "nonfinite": bad, "seconds": seconds})
            print(json.dumps(rows[-1]), flush=True)
            continue
        x = x.clamp(-1, 1)
        f = batched_features(feats, x, ev.batch_size)
        p, r = precision_recall(test_f, f, ev.k)
        row = {"sampler": tag, "n": args.n, "fd": fd_from_features(f, test_f), "precision": p,
               "recall": r, "pixel_std": x.std().item(), "seconds": seconds,
               "classes": torch.bincount(predict(evaluator, x), minlength=N_CLASSES).tolist()}
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.grids:
            args.grids.mkdir(parents=True, exist_ok=True)
            save_grid(float_to_images(x[:64]), args.grids / f"{name}_{tag.replace(':', '_')}.png",
                      nrow=8)
    print(f"test-image pixel std {test_x.std().item():.3f}", file=sys.stderr)
    if args.json:
        write_json(args.json, rows)
    return rows


if __name__ == "__main__":
    main()
