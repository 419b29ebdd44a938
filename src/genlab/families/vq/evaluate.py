"""Evaluation of the `vq` family on the test split: reconstruction MSE / PSNR, reconstruction FD
(rFD) with precision / recall in the evaluator's feature space at the autoencoder family's
count (evaluate.n_samples test images), codebook usage (% of codes used) and perplexity, bits
per image of the token grid; figures (reconstructions, code-usage histogram), the per-code
counts as the sweep table, and the token store of both splits for later stages
(genlab.data.tokens, data/tokens/<name>/)."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from genlab.data.processed import float_to_images, images_to_float
from genlab.data.tokens import write_token_store
from genlab.families import EvalContext
from genlab.metrics.image import mse_psnr
from genlab.metrics.samples import ImageScorer
from genlab.models.quantizers import code_counts, code_usage, perplexity
from genlab.tracking.figures import save_grid


@torch.no_grad()
def encode_split(net, x: torch.Tensor, batch: int, device,
                 recon: bool = True) -> dict[str, torch.Tensor]:
    """Tokens (N, h, w), latents and quantised latents (N, D, h, w) and, with recon, the
    reconstructions (N, C, H, W) in [-1, 1] of images x (N, C, H, W), on the CPU."""
    out = {"tokens": [], "latents": [], "quantized": []} | ({"recon": []} if recon else {})
    for chunk in x.split(batch):
        z = net.encoder(chunk.to(device))  # (b, D, h, w)
        q = net.quantizer(z)
        out["tokens"].append(q.indices.int().cpu())
        out["latents"].append(z.float().cpu())
        out["quantized"].append(q.z_q.float().cpu())
        if recon:
            out["recon"].append(net.decode_latent(q.z_q).float().cpu())
    return {k: torch.cat(v) for k, v in out.items()}


def codebook_metrics(tokens: torch.Tensor, codes: int, prefix: str = "") -> dict[str, float]:
    """% of codes used, perplexity, and bits per image of the (N, h, w) token grids: the
    grid's size at log2(codes) bits per token, and at the codes' empirical entropy."""
    per_image = tokens[0].numel()
    ppl = perplexity(tokens, codes)
    return {f"{prefix}code_usage_pct": 100.0 * code_usage(tokens, codes),
            f"{prefix}perplexity": ppl,
            f"{prefix}bits_per_image": per_image * math.log2(codes),
            f"{prefix}bits_per_image_entropy": per_image * math.log2(ppl)}


def interleave(a: np.ndarray, b: np.ndarray, nrow: int) -> np.ndarray:
    """Rows of `a` followed by the matching rows of `b`: originals above their outputs."""
    rows = [np.concatenate([a[i:i + nrow], b[i:i + nrow]]) for i in range(0, len(a), nrow)]
    return np.concatenate(rows)


def save_usage_histogram(counts: np.ndarray, path: Path, title: str) -> None:
    """Codes sorted by how often they occur (log scale): a flat curve is an evenly used
    codebook, a cliff to zero the dead codes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=110)
    order = np.sort(counts)[::-1]
    ax.bar(np.arange(len(order)), np.maximum(order, 0.5), width=1.0)
    ax.set(xlabel="code (sorted by count)", ylabel="occurrences on the test split",
           title=title, yscale="log")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def token_store_dir(ctx: EvalContext) -> Path:
    """data/tokens/<name>: beside data/samples, the folder the stage gives for outputs."""
    return ctx.samples.parent.parent / "tokens" / ctx.name


def evaluate(ctx: EvalContext) -> dict:
    net, ev, cfg, dev = ctx.net, ctx.settings, ctx.cfg, ctx.device
    t0 = time.perf_counter()
    test_x = images_to_float(ctx.arrays(f"{cfg.dataset}/test_x"))  # (N, C, H, W) in [-1, 1]
    train_x = images_to_float(ctx.arrays(f"{cfg.dataset}/train_x"))
    n = min(cfg.eval_samples or ev.n_samples, len(test_x))

    # 1. Reconstructions of the whole test split: MSE and PSNR per image, averaged.
    test = encode_split(net, test_x, ev.batch_size, dev)
    mse, psnr = mse_psnr(test["recon"], test_x)
    metrics = {"recon_mse": mse.mean().item(), "recon_psnr": psnr.mean().item()}

    # 2. rFD, precision, recall of the first n reconstructions against as many test images
    #    (the autoencoder family's recon_fd protocol).
    scorer = ImageScorer(ctx.evaluator, test_x, train_x, k=ev.k, batch=ev.batch_size,
                         seed=ctx.seed)
    metrics |= {f"recon_{k}": v for k, v in scorer.against_test(test["recon"][:n]).items()}
    metrics["n_samples"] = n

    # 3. The codebook on the test split; the latent grid.
    metrics |= codebook_metrics(test["tokens"], net.codes)
    metrics |= {"codes": net.codes, "tokens_per_image": test["tokens"][0].numel(),
                "latent_channels": net.latent_shape[0]}
    metrics["eval_seconds"] = time.perf_counter() - t0

    # 4. Figures and the per-code counts.
    k, half = ev.grid, ev.grid * ev.grid // 2
    save_grid(interleave(float_to_images(test_x[:half]), float_to_images(test["recon"][:half]),
                         k), ctx.figures / "reconstructions.png", nrow=k)
    counts = code_counts(test["tokens"], net.codes).numpy()
    save_usage_histogram(counts, ctx.figures / "code_usage.png",
                         f"{ctx.name}: {metrics['code_usage_pct']:.1f} % of {net.codes} codes "
                         f"used, perplexity {metrics['perplexity']:.0f}")

    # 5. The token store of both splits (train encoded here), with labels and latent stats.
    t1 = time.perf_counter()
    train = encode_split(net, train_x, ev.batch_size, dev, recon=False)
    metrics |= codebook_metrics(train["tokens"], net.codes, prefix="train_")
    train_counts = code_counts(train["tokens"], net.codes).numpy()
    pd.DataFrame({"code": np.arange(net.codes), "count": counts,
                  "train_count": train_counts}).to_csv(ctx.sweep, index=False)
    arrays = {}
    for split, enc in (("train", train), ("test", test)):
        arrays |= {f"{split}_tokens": enc["tokens"].numpy().astype(np.int32),
                   f"{split}_latents": enc["latents"].numpy(),
                   f"{split}_quantized": enc["quantized"].numpy(),
                   f"{split}_y": ctx.arrays(f"{cfg.dataset}/{split}_y")}
    stats = write_token_store(token_store_dir(ctx), arrays, {
        "tokenizer": f"models/{ctx.name}.pt", "codes": net.codes,
        "latent_shape": list(net.latent_shape), "dataset": cfg.dataset})
    metrics |= {f"{kind}_{k}": v for kind, s in stats.items() for k, v in s.items()}
    metrics["token_store_seconds"] = time.perf_counter() - t1
    return metrics
