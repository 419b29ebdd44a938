"""Stage evaluate@<name>: metrics/<name>.json, grids / scatter plots and the loss curve for a
trained model; image models also write data/samples/<name>.npz."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from genlab.data.fashion_mnist import CLASSES
from genlab.data.processed import float_to_images, images_to_float, load_array
from genlab.data.toy2d import density_grid, sample_toy
from genlab.metrics.autoencoder import latent_gaussian_samples, reconstruct, reconstruction_metrics
from genlab.metrics.evaluator import feature_fn, load_evaluator, predict
from genlab.metrics.fd import fd_from_features
from genlab.metrics.image import batched_features, image_fd_report
from genlab.metrics.prd import precision_recall
from genlab.metrics.toy import context_numbers, mmd_rbf, sliced_wasserstein
from genlab.models import diffusion
from genlab.models.ae import AE_MODELS
from genlab.models.diffusion import N_CLASSES
from genlab.models.unet import UNet
from genlab.samplers.generate import generate, nfe
from genlab.samplers.ncsn import annealed_langevin_dynamics
from genlab.tracking.figures import (
    save_bars,
    save_grid,
    save_guidance_sweep,
    save_loss_curve,
    save_panels,
    save_scatter,
)
from genlab.training.checkpoint import CheckpointError, load_checkpoint, load_weights
from stages._common import (
    PROCESSED,
    evaluate_section,
    main,
    model_section,
    runtime,
    tracker,
    write_csv,
    write_json,
)

EVALUATOR = Path("models/evaluator.pt")


def load_model(name: str, cfg, device: torch.device) -> torch.nn.Module:
    """The EMA weights of models/<name>.pt in their architecture."""
    path = Path(f"models/{name}.pt")
    state = load_checkpoint(path, map_location=device)
    if state.get("family") != cfg.family or "arch" not in state:
        raise CheckpointError(f"{path} holds family {state.get('family')!r}, params.yaml says "
                              f"train.{name}.family is {cfg.family!r}; rerun train@{name}")
    if cfg.family == "diffusion":
        net = diffusion.wrap(cfg.method, diffusion.make_backbone(state["kind"], state["arch"]))
    else:
        net = AE_MODELS[state["kind"]](**state["arch"])
    load_weights(net, state["ema"], path)
    return net.to(device).eval()


def speed_up(net: torch.nn.Module, rt, device: torch.device) -> torch.nn.Module:
    """runtime.channels_last / runtime.compile for sampling: NHWC weights and an in-place
    torch.compile of the backbone (the sampler and the preconditioning wrapper stay eager).
    The first batch of each new shape pays the compile time."""
    backbone = next((m for m in net.modules() if isinstance(m, UNet)), None)
    if backbone is None:
        return net
    if rt.use("channels_last", device.type):
        net.to(memory_format=torch.channels_last)
    if rt.use("compile", device.type):
        backbone.compile()
    return net


def interleave(a: np.ndarray, b: np.ndarray, nrow: int) -> np.ndarray:
    """Rows of `a` followed by the matching rows of `b`: originals above their outputs."""
    rows = [np.concatenate([a[i:i + nrow], b[i:i + nrow]]) for i in range(0, len(a), nrow)]
    return np.concatenate(rows)


def evaluate_images(name, net, cfg, ev, seed, figs: Path) -> dict:
    test_x = images_to_float(load_array(PROCESSED, "fashion_mnist/test_x"))
    train_x = images_to_float(load_array(PROCESSED, "fashion_mnist/train_x"))
    g = torch.Generator().manual_seed(seed)
    n = min(ev.n_samples, len(test_x))
    metrics = reconstruction_metrics(net, test_x, cfg.objective.noise_levels, g, ev.batch_size)

    # FD / precision / recall of Gaussian-latent samples (with the two context numbers) and of
    # test reconstructions, in the evaluator's feature space.
    evaluator = load_evaluator(EVALUATOR)
    feats = feature_fn(evaluator)
    samples = latent_gaussian_samples(net, train_x, n, g, ev.batch_size)
    metrics |= {f"sample_{k}" if k in ("fd", "precision", "recall") else k: v
                for k, v in image_fd_report(feats, test_x[:n], train_x, samples, k=ev.k,
                                            batch=ev.batch_size, generator=g).items()}
    recon = reconstruct(net, test_x[:n], 0.0, g, ev.batch_size)
    test_f = batched_features(feats, test_x[:n], ev.batch_size)
    recon_f = batched_features(feats, recon, ev.batch_size)
    metrics["recon_fd"] = fd_from_features(recon_f, test_f)
    metrics["recon_precision"], metrics["recon_recall"] = precision_recall(test_f, recon_f, ev.k)

    # Figures and the samples file.
    k = ev.grid
    save_grid(interleave(float_to_images(test_x[:k * k // 2]), float_to_images(recon[:k * k // 2]),
                         k), figs / "reconstructions.png", nrow=k)
    for sigma in cfg.objective.noise_levels:
        noisy = (test_x[:k * k // 2] + sigma * torch.randn(test_x[:k * k // 2].shape, generator=g))
        out = reconstruct(net, noisy, 0.0, g, ev.batch_size)
        save_grid(interleave(float_to_images(noisy), float_to_images(out), k),
                  figs / f"denoise_s{sigma:g}.png", nrow=k)
    images = float_to_images(samples)  # (N, 1, 28, 28) uint8
    save_grid(images[:k * k], figs / "samples.png", nrow=k)
    counts = Counter(predict(evaluator, samples).tolist())
    save_bars({CLASSES[c]: counts.get(c, 0) / n for c in range(len(CLASSES))},
              figs / "sample_classes.png", f"{name}: evaluator's predicted classes", "fraction")
    Path("data/samples").mkdir(parents=True, exist_ok=True)
    np.savez(f"data/samples/{name}.npz", images=images, labels=np.full(len(images), -1))
    return metrics


def evaluate_points(name, net, cfg, ev, seed, figs: Path) -> dict:
    toy = cfg.dataset.split("/", 1)[1]
    test_x = torch.as_tensor(load_array(PROCESSED, f"toy2d/{toy}_test"))
    train_x = torch.as_tensor(load_array(PROCESSED, f"toy2d/{toy}_train"))
    g = torch.Generator().manual_seed(seed)
    n = min(ev.toy_n, len(test_x))
    metrics = reconstruction_metrics(net, test_x, cfg.objective.noise_levels, g, ev.batch_size,
                                     image=False)
    fresh = sample_toy(toy, n, g)
    recon = reconstruct(net, test_x[:n], 0.0, g, ev.batch_size)
    samples = latent_gaussian_samples(net, train_x, n, g, ev.batch_size)
    for label, pts in (("recon", recon), ("sample", samples)):
        metrics[f"{label}_swd"] = sliced_wasserstein(pts, fresh, ev.swd_projections, generator=g)
        metrics[f"{label}_mmd"] = mmd_rbf(pts, fresh)
    metrics |= context_numbers(lambda m, gen: sample_toy(toy, m, gen), n, g,
                               n_projections=ev.swd_projections)
    _, _, p = density_grid(toy, lim=3.0, res=200)
    save_scatter({"test": test_x[:2000].numpy(), "reconstruction": recon[:2000].numpy(),
                  "gaussian-latent sample": samples[:2000].numpy()}, figs / "scatter.png",
                 f"{name} on {toy}", density=(p.numpy(), 3.0))
    Path("data/samples").mkdir(parents=True, exist_ok=True)
    np.savez(f"data/samples/{name}.npz", points=samples.numpy().astype(np.float32))
    return metrics


def diffusion_points(name, net, cfg, ev, seed, figs: Path) -> dict:
    """Toy diffusion model: SW / MMD of samples vs fresh true samples, with the two context
    numbers; scatter over the true density; NCSN's annealing path."""
    toy = cfg.dataset.split("/", 1)[1]
    g = torch.Generator().manual_seed(seed)
    n = cfg.eval_samples or ev.toy_n
    samples = generate(net, cfg.method, n, (2,), generator=g, batch_size=max(n, 1))
    fresh = sample_toy(toy, n, g)
    metrics = {"sample_swd": sliced_wasserstein(samples, fresh, ev.swd_projections, generator=g),
               "sample_mmd": mmd_rbf(samples, fresh), "nfe": nfe(cfg.method)}
    metrics |= context_numbers(lambda m, gen: sample_toy(toy, m, gen), n, g,
                               n_projections=ev.swd_projections)
    metrics["swd_over_floor"] = metrics["sample_swd"] / metrics["swd_floor"]
    _, _, p = density_grid(toy, lim=3.0, res=200)
    save_scatter({"samples": samples[:3000].numpy()}, figs / "scatter.png",
                 f"{name} on {toy}", density=(p.numpy(), 3.0))
    if cfg.method.kind == "ncsn":
        save_annealing_path(net, cfg.method, g, figs / "annealing.png", (p.numpy(), 3.0))
    Path("data/samples").mkdir(parents=True, exist_ok=True)
    np.savez(f"data/samples/{name}.npz", points=samples.numpy().astype(np.float32))
    return metrics


def save_annealing_path(score, method, g, path: Path, density) -> None:
    """Snapshots of annealed Langevin dynamics at a few noise levels (NCSN Algorithm 1)."""
    sigmas = diffusion.ncsn_ladder(method)
    x0 = float(sigmas[0]) * torch.randn(1000, 2, generator=g)
    _, traj = annealed_langevin_dynamics(score, x0, sigmas, n_steps_each=method.n_steps_each,
                                         eps=method.step_lr, generator=g, keep_trajectory=True,
                                         denoise_final=method.denoise_final)
    picks = np.linspace(0, len(traj) - 1, 4).round().astype(int)
    save_panels({f"level {i}" + (f" (sigma {float(sigmas[i - 1]):.3g})" if 0 < i <= len(sigmas)
                 else ""): traj[i].numpy() for i in picks}, path, "NCSN annealing path", density)


def diffusion_images(name, net, cfg, ev, seed, figs: Path, bf16: bool = False) -> dict:
    """Image diffusion model: sample grid and data/samples/<name>.npz; on Fashion-MNIST also
    FD / precision / recall (with floor and ceiling) and the predicted-class histogram, and for
    conditional models the classifier-free guidance sweep. CIFAR-10 / CelebA have no trained
    evaluator here: their samples get grids and per-channel moments against the test set."""
    test_x = images_to_float(load_array(PROCESSED, f"{cfg.dataset}/test_x"))
    n = min(cfg.eval_samples or ev.n_samples, len(test_x))
    scored = cfg.dataset == "fashion_mnist"
    if scored:
        train_x = images_to_float(load_array(PROCESSED, "fashion_mnist/train_x"))
        evaluator = load_evaluator(EVALUATOR)
        feats = feature_fn(evaluator)
    dev = next(net.parameters()).device
    metrics, sweep = {"nfe": nfe(cfg.method), "n_samples": n}, []
    ws = cfg.guidance if cfg.conditional else (None,)
    for w in ws:
        g = torch.Generator(device=dev).manual_seed(seed)
        labels = (torch.arange(n) % N_CLASSES) if cfg.conditional else None
        # CFG runs both branches in one call of twice the batch: halving it keeps the network's
        # input shape fixed across the sweep (no torch.compile recompilation per w).
        bs = max(1, ev.sample_batch_size // 2) if w else ev.sample_batch_size
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        samples = generate(net, cfg.method, n, tuple(test_x.shape[1:]), generator=g,
                           labels=labels, guidance=w, batch_size=bs,
                           device=dev, bf16=bf16)
        row = {"w": w, "sample_seconds": time.perf_counter() - t0}
        suffix = "" if w is None else f"_w{w:g}"
        save_grid(float_to_images(samples[:ev.grid ** 2]), figs / f"samples{suffix}.png",
                  nrow=ev.grid)
        if scored:
            rep = image_fd_report(feats, test_x[:n], train_x, samples, k=ev.k, batch=ev.batch_size,
                                  generator=torch.Generator().manual_seed(seed))
            pred = predict(evaluator, samples)
            row |= {"fd": rep["fd"], "precision": rep["precision"], "recall": rep["recall"]}
            if labels is not None:
                row["class_accuracy"] = (pred == labels).float().mean().item()
            metrics |= {k: v for k, v in rep.items() if k.startswith("fd_")}
            counts = Counter(pred.tolist())
            save_bars({CLASSES[c]: counts.get(c, 0) / n for c in range(N_CLASSES)},
                      figs / f"sample_classes{suffix}.png", f"{name}: predicted classes",
                      "fraction")
        else:
            row |= channel_moment_gaps(samples, test_x[:n])
        sweep.append(row)
        if len(sweep) == 1:  # data/samples/<name>.npz holds the first sweep entry (w = 0)
            kept = samples
        metrics |= {f"sample_{k}{suffix}": v for k, v in row.items() if k != "w"}
    if cfg.conditional:
        if scored:
            save_guidance_sweep(sweep, figs / "guidance.png", name)
        write_csv(Path(f"metrics/guidance/{name}.csv"), sweep)
    Path("data/samples").mkdir(parents=True, exist_ok=True)
    np.savez(f"data/samples/{name}.npz", images=float_to_images(kept),
             labels=(labels if labels is not None else torch.full((n,), -1)).numpy())
    return metrics


def channel_moment_gaps(samples: torch.Tensor, real: torch.Tensor) -> dict:
    """Largest gaps of per-channel mean and std between samples and real images (both in
    [-1, 1]): a coarse colour-statistics check for sets without a feature evaluator."""
    dims = (0, 2, 3)
    return {"mean_gap": (samples.mean(dims) - real.mean(dims)).abs().max().item(),
            "std_gap": (samples.std(dims) - real.std(dims)).abs().max().item()}


EVALUATORS = {("ae", True): evaluate_images, ("ae", False): evaluate_points,
              ("diffusion", True): diffusion_images, ("diffusion", False): diffusion_points}


def run(argv: list[str]) -> None:
    # 1. Params, validated before any model or data is read.
    name, params, cfg = model_section(argv, "evaluate")
    ev = evaluate_section(params)
    rt, device, seed = runtime(params)

    with tracker(params, f"evaluate@{name}", {"evaluate": params.get("evaluate", {})}) as tr:
        # 2. Metrics and figures.
        net = speed_up(load_model(name, cfg, device), rt, device)  # no-op without a U-Net
        figs = Path(f"figures/{name}")
        is_image = not cfg.dataset.startswith("toy2d/")
        fn = EVALUATORS[(cfg.family, is_image)]
        extra = {"bf16": rt.bf16} if fn is diffusion_images else {}
        metrics = fn(name, net, cfg, ev, seed, figs, **extra)
        history = json.loads(Path(f"metrics/train/{name}.json").read_text())
        metrics |= {"final_train_loss": history["final_loss"],
                    "train_seconds": history["train_seconds"]}
        import pandas as pd

        rows = pd.read_csv(f"metrics/loss/{name}.csv").to_dict("records")
        save_loss_curve(rows, figs / "loss.png", f"{name}: training loss")

        # 3. Outputs.
        metrics = {k: float(v) for k, v in metrics.items() if v is not None}
        write_json(Path(f"metrics/{name}.json"), metrics)
        tr.log_metrics(metrics)
        for png in sorted(figs.glob("*.png")):
            tr.log_artifact(png, "figures")
        tr.tag_outputs([Path(f"metrics/{name}.json"), figs])
        print(f"evaluate@{name}: " + ", ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items())))


if __name__ == "__main__":
    main(run)
