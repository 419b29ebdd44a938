"""Training loops of the scratch CNN classifier and conv autoencoder (synthetic fast, real slow)."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from genlab.scratch.train import (
    cosine_lr,
    train_scratch_autoencoder,
    train_scratch_classifier,
)


def _pattern_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Noisy uint8 28x28 images whose class k in 0..9 is a bright 7x7 block at grid cell k."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, size=n)
    images = rng.integers(0, 60, size=(n, 28, 28))
    for i, k in enumerate(labels):
        r, c = divmod(int(k), 4)
        images[i, 7 * r : 7 * r + 7, 7 * c : 7 * c + 7] += 180
    return images.astype(np.uint8), labels


def test_classifier_learns_synthetic_patterns_and_reports():
    train_x, train_y = _pattern_images(320, seed=0)
    test_x, test_y = _pattern_images(200, seed=1)
    calls = []
    out = train_scratch_classifier(
        train_x, train_y, test_x, test_y,
        epochs=2, batch_size=32, lr=3e-3, width=4, seed=0, progress=False,
        on_step=lambda step, loss: calls.append((step, loss)),
    )  # fmt: skip
    assert out["steps"] == 2 * 10 == len(out["losses"]) == len(calls)
    assert [s for s, _ in calls] == list(range(1, 21))
    assert out["test_accuracy"] > 0.9  # chance is 0.1
    assert np.mean(out["losses"][-5:]) < 0.5 * np.mean(out["losses"][:5])
    assert out["train_seconds"] > 0 and out["samples_per_second"] > 0
    assert out["n_params"] == (9 * 4 + 4) + (4 * 9 * 8 + 8) + (8 * 49 * 128 + 128) + 1290


def test_classifier_is_deterministic_given_the_seed():
    x, y = _pattern_images(64, seed=2)
    kw = dict(epochs=1, batch_size=16, lr=1e-3, width=2, progress=False)
    a = train_scratch_classifier(x, y, x, y, seed=7, **kw)
    b = train_scratch_classifier(x, y, x, y, seed=7, **kw)
    c = train_scratch_classifier(x, y, x, y, seed=8, **kw)
    assert a["losses"] == b["losses"]
    assert a["losses"] != c["losses"]


def test_autoencoder_overfits_a_tiny_batch():
    x, _ = _pattern_images(16, seed=3)
    out = train_scratch_autoencoder(
        x, x, epochs=60, batch_size=16, lr=1e-2, width=8, latent_channels=4, seed=0,
        schedule="constant", progress=False,
    )  # fmt: skip
    assert out["steps"] == 60
    assert out["losses"][-1] < 0.25 * out["losses"][0]
    assert out["test_mse"] == pytest.approx(out["losses"][-1], rel=0.2)  # same 16 images
    assert out["reconstructions"].shape == out["originals"].shape == (8, 28, 28)
    assert 0 < out["reconstructions"].min() and out["reconstructions"].max() < 1  # sigmoid


def test_cosine_schedule_closed_form():
    assert cosine_lr(2.0, 0, 10) == 2.0
    assert cosine_lr(2.0, 5, 10) == pytest.approx(1.0)
    assert cosine_lr(2.0, 10, 10) == pytest.approx(0.0, abs=1e-15)
    assert cosine_lr(1.0, 2, 12) == pytest.approx(0.5 * (1 + math.cos(math.pi / 6)))


def test_training_arguments_are_validated():
    x, y = _pattern_images(8, seed=4)
    ok = dict(progress=False, epochs=1)
    with pytest.raises(ValueError, match="train_x"):
        train_scratch_classifier(x.astype(np.float32), y, x, y, **ok)
    with pytest.raises(ValueError, match="test_y"):
        train_scratch_classifier(x, y, x, y + 10, **ok)
    with pytest.raises(ValueError, match="schedule"):
        train_scratch_classifier(x, y, x, y, schedule="step", **ok)
    with pytest.raises(ValueError, match="batch_size"):
        train_scratch_autoencoder(x, x, batch_size=0, progress=False)
    with pytest.raises(ValueError, match="lr"):
        train_scratch_autoencoder(x, x, lr=0.0, progress=False)


@pytest.mark.slow
def test_classifier_reaches_90_percent_on_fashion_mnist(fashion_mnist):
    start = time.process_time()
    out = train_scratch_classifier(
        fashion_mnist["train_x"], fashion_mnist["train_y"],
        fashion_mnist["test_x"], fashion_mnist["test_y"], progress=False,
    )  # fmt: skip
    cpu = time.process_time() - start
    print(
        f"\nscratch CNN (defaults): test accuracy {out['test_accuracy']:.4f}, "
        f"train {out['train_seconds']:.0f} s wall, {cpu:.0f} s CPU, {out['steps']} steps"
    )
    assert out["test_accuracy"] >= 0.90


@pytest.mark.slow
def test_autoencoder_trains_on_fashion_mnist(fashion_mnist):
    train_x, test_x = fashion_mnist["train_x"][:6000], fashion_mnist["test_x"][:2000]
    out = train_scratch_autoencoder(train_x, test_x, epochs=1, progress=False)
    test = test_x.astype(np.float64) / 255.0
    mean_image_mse = np.mean((test - train_x.astype(np.float64).mean(0) / 255.0) ** 2)
    print(f"\nscratch AE: test MSE {out['test_mse']:.4f} vs mean-image MSE {mean_image_mse:.4f}")
    assert out["test_mse"] < 0.5 * mean_image_mse
