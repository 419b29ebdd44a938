"""Diffusion objectives: shapes, determinism, and closed-form expected losses of exact models.

Gaussian data y ~ N(mu, s^2 I). Expected per-example losses of the exact predictors:
  NCSN (lambda = sigma^2, 1/2 factor): 1/2 mean_i s^2 / (s^2 + sigma_i^2)
  DDPM L_simple: mean_t Var[eps | x_t] = mean_t a_t^2 s^2 / (a_t^2 s^2 + b_t^2)
  EDM: E_sigma[lambda(sigma) s^2 sigma^2 / (s^2 + sigma^2)], ln sigma ~ N(P_mean, P_std^2)
Monte Carlo estimates must land within 4 standard errors (estimated from the sample).
"""

import math

import numpy as np
import pytest
import torch

from genlab.objectives.diffusion import DDPMLoss, EDMLoss, NCSNLoss
from genlab.samplers.schedules import alphas_cumprod, linear_betas, ncsn_sigmas
from tests.diffusion.analytic import Gaussian

MU, S = [1.0, -2.0], 0.8
AB = alphas_cumprod(linear_betas(100, 1e-4, 0.2))  # a short schedule, same shape as Ho et al.
SIGMAS = ncsn_sigmas(5.0, 0.01, 10)


def _gaussian_batch(n: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.tensor(MU, dtype=torch.float64) + S * torch.randn(n, 2, generator=gen,
                                                                   dtype=torch.float64)


def _assert_mc_mean(losses: torch.Tensor, expected: float) -> None:
    se = losses.std().item() / math.sqrt(len(losses))
    assert abs(losses.mean().item() - expected) < 4 * se, (losses.mean().item(), expected, se)


def _zero_net(x, noise, cond=None):
    return torch.zeros_like(x)


@pytest.mark.parametrize("loss", [NCSNLoss(SIGMAS), DDPMLoss(AB), EDMLoss()])
@pytest.mark.parametrize("shape", [(4, 1, 3, 3), (5, 2)])
def test_per_example_shape_and_determinism(loss, shape):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    cond = torch.arange(shape[0])
    a = loss(_zero_net, x, cond, torch.Generator().manual_seed(1))
    b = loss(_zero_net, x, cond, torch.Generator().manual_seed(1))
    c = loss(_zero_net, x, cond, torch.Generator().manual_seed(2))
    assert a.shape == (shape[0],) and torch.isfinite(a).all()
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, c)


def test_ncsn_loss_of_exact_score():
    losses = NCSNLoss(SIGMAS)(Gaussian(MU, S).score, _gaussian_batch(100_000), None,
                              torch.Generator().manual_seed(1))
    expected = 0.5 * (S**2 / (S**2 + SIGMAS**2)).mean().item()
    _assert_mc_mean(losses, expected)


def test_ddpm_loss_of_exact_eps_is_the_irreducible_error():
    eps_model = Gaussian(MU, S).eps_model(AB)
    x = _gaussian_batch(100_000)
    losses = DDPMLoss(AB)(eps_model, x, None, torch.Generator().manual_seed(1))
    expected = (AB * S**2 / (AB * S**2 + 1 - AB)).mean().item()
    _assert_mc_mean(losses, expected)
    # A constant offset delta raises the expected loss by exactly delta^2 (common noise draws).
    delta = 0.3
    shifted = DDPMLoss(AB)(lambda x_t, t, c: eps_model(x_t, t) + delta, x, None,
                           torch.Generator().manual_seed(1))
    _assert_mc_mean(shifted - losses, delta**2)


def _edm_expected(s: float, loss: EDMLoss, nodes: int = 80) -> float:
    z, w = np.polynomial.hermite_e.hermegauss(nodes)  # int f(z) exp(-z^2/2) dz
    sigma = torch.tensor(np.exp(loss.P_mean + loss.P_std * z))
    per_sigma = loss.weight(sigma) * s**2 * sigma**2 / (s**2 + sigma**2)
    return float((torch.tensor(w) * per_sigma).sum()) / math.sqrt(2 * math.pi)


def test_edm_loss_of_exact_denoiser():
    loss = EDMLoss(label_dropout=0.0)
    losses = loss(Gaussian(MU, S).denoiser, _gaussian_batch(100_000), None,
                  torch.Generator().manual_seed(1))
    _assert_mc_mean(losses, _edm_expected(S, loss))
    # With s = sigma_data the weighted error is exactly 1 at every sigma (Table 1's design).
    assert _edm_expected(0.5, loss) == pytest.approx(1.0, rel=1e-12)


def test_edm_label_dropout_rate():
    seen = []

    def spy(x, sigma, labels):
        seen.append(labels)
        return x

    n, p = 20_000, 0.1
    labels = torch.randint(0, 10, (n,), generator=torch.Generator().manual_seed(0))
    EDMLoss(label_dropout=p)(spy, torch.zeros(n, 1), labels, torch.Generator().manual_seed(1))
    dropped = seen[0] == -1
    assert abs(dropped.double().mean().item() - p) < 4 * math.sqrt(p * (1 - p) / n)
    torch.testing.assert_close(seen[0][~dropped], labels[~dropped])
    EDMLoss(label_dropout=p)(spy, torch.zeros(3, 1), None, torch.Generator().manual_seed(1))
    assert seen[1] is None  # unconditional training passes None through
    DDPMLoss(AB)(lambda x, t, c: seen.append(c) or x, torch.zeros(4, 1), labels[:4],
                 torch.Generator().manual_seed(1))
    assert torch.equal(seen[2], labels[:4])  # DDPM's default label_dropout is 0


def test_invalid_arguments():
    with pytest.raises(ValueError, match="label_dropout"):
        EDMLoss(label_dropout=1.0)
    with pytest.raises(ValueError, match="sigmas"):
        NCSNLoss([1.0, -0.5])
    with pytest.raises(ValueError, match="weighting"):
        NCSNLoss([1.0, 0.5], weighting="edm")
    with pytest.raises(ValueError, match="sigma_data"):
        NCSNLoss([1.0, 0.5], weighting="unit", sigma_data=0.0)
