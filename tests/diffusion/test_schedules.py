"""Noise schedules against their defining formulas."""

import math

import pytest
import torch

from genlab.samplers.schedules import (
    alphas_cumprod,
    cosine_betas,
    ddpm_betas,
    edm_sigma_steps,
    linear_betas,
    ncsn_sigmas,
)


def test_linear_betas_endpoints_and_spacing():
    betas = linear_betas()
    assert betas.shape == (1000,) and betas.dtype == torch.float64
    assert betas[0].item() == pytest.approx(1e-4) and betas[-1].item() == pytest.approx(0.02)
    steps = betas.diff()
    torch.testing.assert_close(steps, torch.full_like(steps, (0.02 - 1e-4) / 999))


def test_alphas_cumprod_is_the_running_product():
    betas = torch.tensor([0.1, 0.2, 0.5], dtype=torch.float64)
    torch.testing.assert_close(alphas_cumprod(betas),
                               torch.tensor([0.9, 0.9 * 0.8, 0.9 * 0.8 * 0.5], dtype=torch.float64))


def test_cosine_schedule_follows_eq_17_and_clips():
    T, s = 1000, 0.008
    betas = cosine_betas(T)
    assert betas.max().item() == pytest.approx(0.999)  # the last step hits the clip
    assert (betas <= 0.999).all() and (betas > 0).all()
    a_bar = alphas_cumprod(betas)
    assert (a_bar.diff() < 0).all()
    assert a_bar[0].item() == pytest.approx(1.0, abs=1e-4)  # alpha_bar(1) ~ 1 - 4e-5
    f = lambda t: math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    for t in (1, 250, 500, 900):  # away from the clipped tail the product is exact
        assert a_bar[t - 1].item() == pytest.approx(f(t) / f(0), rel=1e-10)


def test_ddpm_betas_rejects_unknown_schedule():
    assert ddpm_betas("cosine", 10).shape == (10,)
    with pytest.raises(ValueError, match="schedule"):
        ddpm_betas("quadratic")


def test_ncsn_sigmas_are_geometric():
    sigmas = ncsn_sigmas(50.0, 0.01, 232)
    assert sigmas[0].item() == pytest.approx(50.0) and sigmas[-1].item() == pytest.approx(0.01)
    ratios = sigmas[1:] / sigmas[:-1]
    torch.testing.assert_close(ratios, torch.full_like(ratios, (0.01 / 50.0) ** (1 / 231)))
    with pytest.raises(ValueError, match="sigma_min"):
        ncsn_sigmas(0.01, 50.0, 10)


def test_edm_steps_follow_eq_5():
    N, lo, hi, rho = 18, 0.002, 80.0, 7.0
    t = edm_sigma_steps(N, lo, hi, rho)
    assert t.shape == (N + 1,) and t[-1].item() == 0.0
    assert t[0].item() == pytest.approx(hi) and t[-2].item() == pytest.approx(lo)
    assert (t.diff() < 0).all()
    for i in (5, 9, 13):
        expected = (hi ** (1 / rho) + i / (N - 1) * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho
        assert t[i].item() == pytest.approx(expected, rel=1e-12)
    # rho = 1 is linear spacing in sigma
    torch.testing.assert_close(edm_sigma_steps(5, 1.0, 5.0, 1.0)[:-1],
                               torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="num_steps"):
        edm_sigma_steps(1)
