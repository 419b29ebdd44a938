"""Training loops for the from-scratch models: manual backprop + hand-written Adam, no autograd.

`train_scratch_classifier` (softmax cross-entropy CNN) and `train_scratch_autoencoder`
(MSE conv autoencoder) take uint8 images (N, 28, 28) and return metrics, per-step losses
and timings; the learning rate follows a cosine decay (Loshchilov & Hutter 2017, Eq. 5).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from genlab.scratch import ops
from genlab.scratch.cnn import build_autoencoder, build_classifier
from genlab.scratch.layers import Layer, Sequential
from genlab.scratch.optim import Adam
from genlab.training.device import torch_threads

OnStep = Callable[[int, float], None]
SCHEDULES = ("cosine", "constant")


# ----------------------------------------------------------------------------- data


def _check_images(x, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype != np.uint8 or x.ndim != 3 or len(x) == 0:
        raise ValueError(
            f"{name}: expected non-empty uint8 images (N, H, W), got {x.dtype} {x.shape}"
        )
    return x


def _check_labels(y, n: int, num_classes: int, name: str) -> Tensor:
    y = torch.from_numpy(np.array(y, dtype=np.int64))  # a writable copy
    if y.shape != (n,) or y.min() < 0 or y.max() >= num_classes:
        raise ValueError(f"{name}: expected {n} labels in [0, {num_classes}), got {tuple(y.shape)}")
    return y


def to_float_images(x: np.ndarray, dtype: torch.dtype = torch.float32) -> Tensor:
    """uint8 (N, H, W) -> (N, 1, H, W) in [0, 1]."""
    return torch.from_numpy(np.array(x, dtype=np.uint8)).to(dtype).div_(255.0).unsqueeze(1)


def batches(n: int, batch_size: int, generator: torch.Generator | None) -> Iterator[Tensor]:
    """Index batches covering range(n): shuffled when a generator is given (last may be short)."""
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    yield from order.split(batch_size)


def _check_knobs(epochs: int, batch_size: int, lr: float, width: int, schedule: str) -> None:
    for name, v in dict(epochs=epochs, batch_size=batch_size, width=width).items():
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name}: expected a positive int, got {v!r}")
    if not lr > 0:
        raise ValueError(f"lr: expected lr > 0, got {lr!r}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule: expected one of {SCHEDULES}, got {schedule!r}")


def cosine_lr(base_lr: float, step: int, total_steps: int) -> float:
    """lr_t = base_lr * (1 + cos(pi t / T)) / 2 (SGDR, Eq. 5, one cycle, eta_min = 0)."""
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * step / total_steps))


# ----------------------------------------------------------------------------- loop


def _fit(
    step_fn: Callable[[Tensor], float],
    optimizer: Adam,
    n: int,
    *,
    epochs: int,
    batch_size: int,
    schedule: str,
    generator: torch.Generator,
    progress: bool,
    on_step: OnStep | None,
    desc: str,
) -> list[float]:
    """Run `epochs` passes of shuffled mini-batches; step_fn(index) does forward+backward."""
    total = epochs * math.ceil(n / batch_size)
    base_lr, losses = optimizer.lr, []
    with tqdm(total=total, desc=desc, disable=not progress, mininterval=1.0) as bar:
        for _ in range(epochs):
            for index in batches(n, batch_size, generator):
                if schedule == "cosine":
                    optimizer.lr = cosine_lr(base_lr, len(losses), total)
                losses.append(step_fn(index))
                optimizer.step()
                bar.update()
                if len(losses) % 50 == 0:
                    bar.set_postfix(loss=f"{losses[-1]:.4f}")
                if on_step is not None:
                    on_step(len(losses), losses[-1])
    return losses


def _n_params(model: Layer) -> int:
    return sum(p.value.numel() for p in model.parameters())


# ----------------------------------------------------------------------------- classifier


def classifier_step(model: Sequential, x: Tensor, y: Tensor) -> float:
    """One manual forward + backward: fills every Parameter.grad, returns the mean CE loss."""
    loss, cache = ops.softmax_cross_entropy_forward(model.forward(x), y)
    model.backward(ops.softmax_cross_entropy_backward(cache))
    return float(loss)


@torch.no_grad()
def predict_logits(model: Sequential, x: Tensor, *, batch_size: int = 256) -> Tensor:
    """Logits (N, K) of images x (N, 1, H, W), computed in batches."""
    return torch.cat([model.forward(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def _classifier_data(train_x, train_y, test_x, test_y):
    """Validated tensors: standardised images (N, 1, H, W) float32 and int64 labels (N,)."""
    train_x, test_x = _check_images(train_x, "train_x"), _check_images(test_x, "test_x")
    ytr = _check_labels(train_y, len(train_x), 10, "train_y")
    yte = _check_labels(test_y, len(test_x), 10, "test_y")
    xtr, xte = to_float_images(train_x), to_float_images(test_x)
    mean, std = xtr.mean(), xtr.std()  # standardise with training statistics
    return (xtr - mean) / std, ytr, (xte - mean) / std, yte


class _Clock:
    """Wall-clock and process-CPU seconds since construction."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def seconds(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


@torch.no_grad()
def train_scratch_classifier(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    *,
    epochs: int = 3,
    batch_size: int = 64,
    lr: float = 2e-3,
    width: int = 32,
    seed: int = 0,
    schedule: str = "cosine",
    num_threads: int | None = 1,
    progress: bool = True,
    on_step: OnStep | None = None,
) -> dict:
    """Train the scratch CNN (uint8 images (N, H, W), labels (N,)) with Adam; evaluate on test.

    Returns {"test_accuracy", "test_loss", "losses" (per step), "steps", "n_params",
    "train_seconds", "train_cpu_seconds", "eval_seconds", "samples_per_second"}.
    """
    _check_knobs(epochs, batch_size, lr, width, schedule)
    xtr, ytr, xte, yte = _classifier_data(train_x, train_y, test_x, test_y)
    gen = torch.Generator().manual_seed(seed)
    model = build_classifier(width=width, generator=gen, image_size=xtr.shape[-1])
    opt = Adam(model.parameters(), lr=lr)
    with torch_threads(num_threads):
        clock = _Clock()
        losses = _fit(
            lambda idx: classifier_step(model, xtr[idx], ytr[idx]),
            opt, len(xtr), epochs=epochs, batch_size=batch_size, schedule=schedule,
            generator=gen, progress=progress, on_step=on_step, desc="scratch-cnn",
        )  # fmt: skip
        (train_s, train_cpu), clock = clock.seconds(), _Clock()
        logits = predict_logits(model, xte)
    test_loss, _ = ops.softmax_cross_entropy_forward(logits, yte)
    return {
        "test_accuracy": float((logits.argmax(1) == yte).double().mean()),
        "test_loss": float(test_loss),
        "losses": losses,
        "steps": len(losses),
        "n_params": _n_params(model),
        "train_seconds": train_s,
        "train_cpu_seconds": train_cpu,
        "eval_seconds": clock.seconds()[0],
        "samples_per_second": epochs * len(xtr) / train_s,
    }


# ----------------------------------------------------------------------------- autoencoder


def autoencoder_step(encoder: Sequential, decoder: Sequential, x: Tensor) -> float:
    """One manual forward + backward of the MSE reconstruction loss; returns the loss."""
    loss, diff = ops.mse_forward(decoder.forward(encoder.forward(x)), x)
    encoder.backward(decoder.backward(ops.mse_backward(diff)))
    return float(loss)


@torch.no_grad()
def reconstruct(encoder: Sequential, decoder: Sequential, x: Tensor, *, batch_size: int = 256):
    """Reconstructions (N, 1, H, W) of x (N, 1, H, W), computed in batches."""
    parts = [
        decoder.forward(encoder.forward(x[i : i + batch_size]))
        for i in range(0, len(x), batch_size)
    ]
    return torch.cat(parts)


def _autoencoder_data(train_x, test_x) -> tuple[Tensor, Tensor]:
    """Validated images (N, 1, H, W) in [0, 1], sides divisible by 4 (two stride-2 stages)."""
    xtr = to_float_images(_check_images(train_x, "train_x"))
    xte = to_float_images(_check_images(test_x, "test_x"))
    if xtr.shape[-1] % 4 or xtr.shape[-2] % 4 or xtr.shape[-2:] != xte.shape[-2:]:
        sides = (tuple(xtr.shape[-2:]), tuple(xte.shape[-2:]))
        raise ValueError(f"train_x: sides must match test_x and be divisible by 4, got {sides}")
    return xtr, xte


@torch.no_grad()
def train_scratch_autoencoder(
    train_x: np.ndarray,
    test_x: np.ndarray,
    *,
    epochs: int = 3,
    batch_size: int = 64,
    lr: float = 2e-3,
    width: int = 32,
    latent_channels: int = 4,
    seed: int = 0,
    schedule: str = "cosine",
    num_threads: int | None = 1,
    n_examples: int = 8,
    progress: bool = True,
    on_step: OnStep | None = None,
) -> dict:
    """Train the scratch conv autoencoder on uint8 images (N, H, W) in [0, 1] with MSE + Adam.

    Returns {"test_mse", "losses" (per step), "steps", "n_params", "train_seconds",
    "train_cpu_seconds", "eval_seconds", "originals", "reconstructions"}: the last two are
    float numpy arrays (n_examples, H, W) of the first test images and their reconstructions.
    """
    _check_knobs(epochs, batch_size, lr, width, schedule)
    xtr, xte = _autoencoder_data(train_x, test_x)
    gen = torch.Generator().manual_seed(seed)
    enc, dec = build_autoencoder(width=width, latent_channels=latent_channels, generator=gen)
    opt = Adam(enc.parameters() + dec.parameters(), lr=lr)
    with torch_threads(num_threads):
        clock = _Clock()
        losses = _fit(
            lambda idx: autoencoder_step(enc, dec, xtr[idx]),
            opt, len(xtr), epochs=epochs, batch_size=batch_size, schedule=schedule,
            generator=gen, progress=progress, on_step=on_step, desc="scratch-ae",
        )  # fmt: skip
        (train_s, train_cpu), clock = clock.seconds(), _Clock()
        recon = reconstruct(enc, dec, xte)
    return {
        "test_mse": float(ops.mse_forward(recon, xte)[0]),
        "losses": losses,
        "steps": len(losses),
        "n_params": _n_params(enc) + _n_params(dec),
        "train_seconds": train_s,
        "train_cpu_seconds": train_cpu,
        "eval_seconds": clock.seconds()[0],
        "originals": xte[:n_examples, 0].numpy(),
        "reconstructions": recon[:n_examples, 0].contiguous().numpy(),
    }
