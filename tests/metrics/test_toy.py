"""Tests for sliced W1 and unbiased RBF MMD^2: scipy and brute-force oracles, Gaussian closed
forms, unbiasedness over seeds, and the floor/ceiling context numbers."""

import math

import numpy as np
import pytest
import scipy.stats
import torch

from genlab.metrics.toy import (
    context_numbers,
    mmd_rbf,
    random_directions,
    sliced_wasserstein,
    wasserstein1_1d,
)

BANDWIDTHS = (0.1, 0.2, 0.5, 1.0, 2.0)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _mmd_oracle(x: np.ndarray, y: np.ndarray, bandwidths) -> float:
    """Unbiased MMD^2 by explicit double loops over pairs."""

    def k(a, b):
        return np.mean([math.exp(-((a - b) ** 2).sum() / (2 * s * s)) for s in bandwidths])

    n, m = len(x), len(y)
    kxx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    kyy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kxy = sum(k(a, b) for a in x for b in y) / (n * m)
    return kxx + kyy - 2 * kxy


def _mmd_population(shift: np.ndarray, bandwidths) -> float:
    """MMD^2 between N(0, I) and N(shift, I) via E exp(-|z|^2 / 2s^2) for z ~ N(mu, 2 I)."""
    d, total = len(shift), 0.0
    for s in bandwidths:
        scale = (s * s / (s * s + 2.0)) ** (d / 2)
        total += scale * (2.0 - 2.0 * math.exp(-(shift**2).sum() / (2 * (s * s + 2.0))))
    return total / len(bandwidths)


def test_w1_1d_matches_scipy_for_unequal_sizes():
    gen = _gen(0)
    u = torch.randn(4, 37, generator=gen, dtype=torch.float64)
    v = torch.rand(4, 53, generator=gen, dtype=torch.float64)
    got = wasserstein1_1d(u, v)
    want = [scipy.stats.wasserstein_distance(a, b) for a, b in zip(u, v, strict=True)]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-14)


def test_w1_1d_equal_sizes_is_mean_abs_difference_of_sorted_samples():
    gen = _gen(1)
    u, v = torch.randn(3, 64, generator=gen).double(), torch.randn(3, 64, generator=gen).double()
    want = (u.sort(dim=1).values - v.sort(dim=1).values).abs().mean(dim=1)
    torch.testing.assert_close(wasserstein1_1d(u, v), want, rtol=1e-12, atol=1e-14)


def test_sliced_w1_in_one_dimension_is_exact_w1():
    gen = _gen(2)
    x, y = torch.randn(500, 1, generator=gen), torch.randn(700, 1, generator=gen) * 2 + 1
    want = scipy.stats.wasserstein_distance(x[:, 0].double().numpy(), y[:, 0].double().numpy())
    assert sliced_wasserstein(x, y, 8, generator=_gen(0)) == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("m", [0.5, 2.0, -3.0])
def test_sliced_w1_between_unit_gaussians_is_abs_shift(m):
    gen = _gen(3)
    x, y = torch.randn(20_000, 1, generator=gen), torch.randn(20_000, 1, generator=gen) + m
    assert sliced_wasserstein(x, y, 4, generator=_gen(0)) == pytest.approx(abs(m), abs=0.04)


def test_sliced_w1_of_a_translation_is_mean_projected_shift():
    # Projections of x and x + m differ by the constant theta.m, so W1 on each slice is |theta.m|
    # exactly; over uniform directions in 2-D, E|theta.m| = 2 |m| / pi.
    x = torch.randn(300, 2, generator=_gen(4), dtype=torch.float64)
    m = torch.tensor([1.5, -2.0], dtype=torch.float64)
    got = sliced_wasserstein(x, x + m, 2000, generator=_gen(7))
    theta = random_directions(2000, 2, _gen(7))
    assert got == pytest.approx((theta @ m).abs().mean().item(), rel=1e-10)
    assert got == pytest.approx(2 * m.norm().item() / math.pi, rel=0.03)


def test_sliced_w1_is_deterministic_given_the_generator():
    gen = _gen(5)
    x, y = torch.randn(200, 3, generator=gen), torch.randn(150, 3, generator=gen) * 1.5
    a = sliced_wasserstein(x, y, 32, generator=_gen(11))
    assert a == sliced_wasserstein(x, y, 32, generator=_gen(11))
    assert a != sliced_wasserstein(x, y, 32, generator=_gen(12))


def test_mmd_matches_bruteforce_oracle():
    gen = _gen(6)
    x, y = torch.randn(25, 3, generator=gen), torch.randn(31, 3, generator=gen) * 0.7 + 0.3
    want = _mmd_oracle(x.double().numpy(), y.double().numpy(), BANDWIDTHS)
    assert mmd_rbf(x, y, BANDWIDTHS, batch=4) == pytest.approx(want, rel=1e-10, abs=1e-13)


def test_mmd_unbiased_mean_is_zero_for_identical_distributions():
    values = []
    for seed in range(30):
        gen = _gen(100 + seed)
        x, y = torch.randn(100, 2, generator=gen), torch.randn(100, 2, generator=gen)
        values.append(mmd_rbf(x, y))
    values = np.array(values)
    assert (values < 0).any() and (values > 0).any()  # an unbiased estimator straddles 0
    assert abs(values.mean()) < 3 * values.std(ddof=1) / math.sqrt(len(values))
    assert np.abs(values).max() < 0.02


def test_mmd_matches_gaussian_closed_form():
    gen = _gen(8)
    # Sampling spread of the estimate at n = 1500 is about 8% of the value (5 seeds).
    shift = np.array([1.5, 0.0])
    x = torch.randn(1500, 2, generator=gen, dtype=torch.float64)
    y = torch.randn(1500, 2, generator=gen, dtype=torch.float64) + torch.from_numpy(shift)
    want = _mmd_population(shift, BANDWIDTHS)  # 0.109
    assert mmd_rbf(x, y, BANDWIDTHS) == pytest.approx(want, rel=0.15)


def test_mmd_increases_with_shift():
    gen = _gen(9)
    x, y = torch.randn(200, 2, generator=gen), torch.randn(200, 2, generator=gen)
    values = [mmd_rbf(x, y + torch.tensor([s, 0.0])) for s in (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)]
    assert all(a < b for a, b in zip(values[:-1], values[1:], strict=True))


def test_rejects_bad_arguments():
    x = torch.randn(10, 2)
    with pytest.raises(ValueError, match="n_projections"):
        sliced_wasserstein(x, x, 0, generator=_gen(0))
    with pytest.raises(ValueError, match="share D"):
        mmd_rbf(x, torch.randn(10, 3))
    with pytest.raises(ValueError, match="bandwidths"):
        mmd_rbf(x, x, bandwidths=(1.0, -1.0))


def _ring_sampler(n: int, generator: torch.Generator) -> torch.Tensor:
    """Eight Gaussian modes (std 0.05) on the unit circle, (n, 2)."""
    mode = torch.randint(0, 8, (n,), generator=generator)
    angle = 2 * math.pi * mode / 8
    centre = torch.stack([angle.cos(), angle.sin()], dim=1)
    return centre + 0.05 * torch.randn(n, 2, generator=generator)


def _gaussian_sampler(n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(n, 2, generator=generator) @ torch.tensor([[1.0, 0.5], [0.0, 0.5]]) + 2.0


def test_context_numbers_floor_below_gaussian_ceiling_on_a_multimodal_ring():
    # A Gaussian cannot place mass on 8 separate modes: its distance is far above the floor.
    got = context_numbers(_ring_sampler, 500, _gen(10))
    assert set(got) == {"swd_floor", "swd_gaussian", "mmd_floor", "mmd_gaussian"}
    assert got["swd_floor"] < 0.1 < 0.15 < got["swd_gaussian"]
    assert abs(got["mmd_floor"]) < 0.005 < 0.03 < got["mmd_gaussian"]
    assert got == context_numbers(_ring_sampler, 500, _gen(10))  # deterministic


def test_context_numbers_ceiling_meets_floor_when_the_truth_is_gaussian():
    got = context_numbers(_gaussian_sampler, 500, _gen(11))
    assert got["swd_gaussian"] < 0.12 and got["swd_floor"] < 0.12
    assert abs(got["mmd_gaussian"]) < 0.005 and abs(got["mmd_floor"]) < 0.005
