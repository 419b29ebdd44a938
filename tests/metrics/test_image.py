"""Tests for image metrics: MSE/PSNR closed forms, per-pixel noise images, and the FD report's
ordering floor < imperfect model < noise ceiling on synthetic smooth images."""

import math

import pytest
import torch
import torch.nn.functional as F

from genlab.metrics.image import (
    batched_features,
    gaussian_noise_images,
    image_fd_report,
    mse_psnr,
    pixel_mean_std,
)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _smooth_images(n: int, generator: torch.Generator, gain: float = 1.5) -> torch.Tensor:
    """Smooth random images in [-1, 1] (n, 3, 16, 16): tanh of upsampled 4x4 Gaussian fields."""
    field = torch.randn(n, 3, 4, 4, generator=generator)
    return torch.tanh(gain * F.interpolate(field, size=(16, 16), mode="bilinear"))


def _pool_features(images: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(images, 4).flatten(1)  # (B, 3, 4, 4) -> (B, 48)


def test_mse_psnr_closed_form():
    x = torch.zeros(3, 1, 4, 4)
    y = torch.stack([torch.full((1, 4, 4), v) for v in (0.2, -0.02, 0.0)])
    mse, psnr = mse_psnr(x, y)
    torch.testing.assert_close(mse, torch.tensor([0.04, 0.0004, 0.0], dtype=torch.float64))
    assert psnr[0].item() == pytest.approx(10 * math.log10(4 / 0.04))  # 20 dB
    assert psnr[1].item() == pytest.approx(40.0)
    assert psnr[2].item() == math.inf
    assert mse_psnr(x, y, data_range=1.0)[1][0].item() == pytest.approx(10 * math.log10(25))


def test_mse_matches_torch_mse_loss_per_image():
    gen = _gen(0)
    x = torch.rand(5, 3, 8, 8, generator=gen) * 2 - 1
    y = torch.rand(5, 3, 8, 8, generator=gen) * 2 - 1
    mse, _ = mse_psnr(x, y)
    want = torch.stack([F.mse_loss(a.double(), b.double()) for a, b in zip(x, y, strict=True)])
    torch.testing.assert_close(mse, want)


def test_gaussian_noise_images_have_the_requested_pixel_statistics():
    gen = _gen(1)
    mean_img = 0.5 * torch.rand(2, 5, 5, generator=gen) - 0.25
    std_img = 0.05 + 0.1 * torch.rand(2, 5, 5, generator=gen)  # far from the clip at +-1
    imgs = gaussian_noise_images(mean_img, std_img, n=8000, generator=_gen(2))
    assert imgs.shape == (8000, 2, 5, 5)
    torch.testing.assert_close(imgs.mean(0), mean_img, atol=0.006, rtol=0)
    torch.testing.assert_close(imgs.std(0), std_img, atol=0.006, rtol=0)
    assert torch.equal(imgs, gaussian_noise_images(mean_img, std_img, n=8000, generator=_gen(2)))


def test_gaussian_noise_images_are_clipped_to_the_image_range():
    imgs = gaussian_noise_images(torch.full((1, 4, 4), 0.9), torch.ones(1, 4, 4), 500, _gen(3))
    assert imgs.max().item() == 1.0 and imgs.min().item() >= -1.0
    with pytest.raises(ValueError, match="mean_img"):
        gaussian_noise_images(torch.zeros(4, 4), torch.ones(4, 4), 5, _gen(0))


def test_pixel_mean_std_matches_torch():
    imgs = torch.rand(37, 3, 6, 6, generator=_gen(4)) * 2 - 1
    mean, std = pixel_mean_std(imgs, batch=5)
    torch.testing.assert_close(mean, imgs.double().mean(0))
    torch.testing.assert_close(std, imgs.double().std(0, correction=0))


def test_batched_features_batches_under_no_grad_and_matches_one_call():
    sizes = []

    def feature_fn(x):
        assert not torch.is_grad_enabled()
        sizes.append(x.shape[0])
        return _pool_features(x)

    imgs = _smooth_images(23, _gen(5)).requires_grad_()
    feats = batched_features(feature_fn, imgs, batch=10)
    assert sizes == [10, 10, 3] and not feats.requires_grad
    torch.testing.assert_close(feats, _pool_features(imgs.detach()))


@pytest.fixture(scope="module")
def real_sets():
    gen = _gen(6)
    return _smooth_images(300, gen), _smooth_images(600, gen)  # test, train


def test_report_orders_floor_below_imperfect_model_below_noise_ceiling(real_sets):
    test, train = real_sets
    # Measured: floor 1.28, this fake 2.86, ceiling 10.5 (48-d pooled features, 300 images).
    fake = _smooth_images(300, _gen(7), gain=0.7)  # right structure, too little contrast
    got = image_fd_report(_pool_features, test, train, fake, batch=128, generator=_gen(8))
    assert set(got) == {"fd", "precision", "recall", "fd_floor_train_vs_test", "fd_noise_ceiling"}
    assert 1.5 * got["fd_floor_train_vs_test"] < got["fd"] < 0.5 * got["fd_noise_ceiling"]
    # Low-contrast samples sit inside the real manifold but do not cover it.
    assert got["precision"] > 0.9 and got["recall"] < 0.1
    again = image_fd_report(_pool_features, test, train, fake, batch=128, generator=_gen(8))
    assert again == got


def test_report_high_contrast_fake_covers_but_strays(real_sets):
    test, train = real_sets
    fake = _smooth_images(300, _gen(9), gain=3.0)
    got = image_fd_report(_pool_features, test, train, fake, batch=128)
    assert got["precision"] < 0.5 < 0.9 < got["recall"]


def test_report_on_a_copy_of_the_test_set_is_perfect(real_sets):
    test, train = real_sets
    got = image_fd_report(_pool_features, test, train, test.clone(), batch=128)
    assert got["fd"] < 1e-8
    assert (got["precision"], got["recall"]) == (1.0, 1.0)
    assert got["fd_floor_train_vs_test"] < got["fd_noise_ceiling"]


def test_report_needs_enough_train_images(real_sets):
    test, train = real_sets
    with pytest.raises(ValueError, match="real_train"):
        image_fd_report(_pool_features, train, test, test)
