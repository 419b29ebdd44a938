"""Forward VE/VP SDE marginals vs closed forms; reverse SDE with the exact mixture score."""

import math

import pytest
import torch

from genlab.concepts import mcmc
from genlab.concepts import sde as sdes


def _mixture():
    return mcmc.GaussianMixture(torch.tensor([0.3, 0.5, 0.2]), torch.tensor([[-3.0], [0.0], [2.5]]),
                                torch.tensor([0.4, 0.5, 0.3]))


def test_marginal_closed_forms_by_hand():
    ve, vp = sdes.VESDE(sigma_min=0.01, sigma_max=10.0), sdes.VPSDE(beta_min=0.1, beta_max=20.0)
    assert ve.marginal(0.0) == (1.0, 0.0)
    assert ve.marginal(1.0)[1] == pytest.approx(100.0 - 1e-4)
    alpha, var = vp.marginal(1.0)  # int_0^1 beta = 0.1 + 19.9 / 2 = 10.05
    assert alpha == pytest.approx(math.exp(-0.5 * 10.05))
    assert var == pytest.approx(1 - math.exp(-10.05))
    # VE: d sigma^2 / dt = g^2, checked by a finite difference.
    h = 1e-6
    assert (ve.sigma(0.5 + h) ** 2 - ve.sigma(0.5 - h) ** 2) / (2 * h) == pytest.approx(
        ve.diffusion(0.5) ** 2, rel=1e-6)


@pytest.mark.parametrize("kind", ["ve", "vp"])
def test_forward_euler_maruyama_matches_marginal_mean_and_variance(kind, gen):
    """From a point mass x0 = 1.5: mean alpha x0 and variance v(t) within 4 standard errors."""
    sde, n = sdes.make_sde(kind), 20_000
    x0 = torch.full((n, 1), 1.5, dtype=torch.float64)
    _, snaps = sdes.euler_maruyama(sde, x0, n_steps=400, generator=gen, keep=(0.25, 0.5, 1.0))
    for t, x in snaps.items():
        alpha, var = sde.marginal(t)
        assert abs(float(x.mean()) - alpha * 1.5) < 4 * math.sqrt(var / n)
        assert float(x.var()) == pytest.approx(var, rel=4 * math.sqrt(2 / n) + 0.01)


@pytest.mark.parametrize("kind", ["ve", "vp"])
def test_mixture_stays_a_mixture_and_score_is_exact(kind, gen):
    mix, sde = _mixture(), sdes.make_sde(kind)
    x0 = mix.sample(20_000, generator=gen)
    _, snaps = sdes.euler_maruyama(sde, x0, n_steps=400, generator=gen, keep=(0.3,))
    exact = sdes.mixture_marginal(mix, sde, 0.3)
    x = snaps[0.3]
    sd = math.sqrt(float(exact.cov))
    assert abs(float(x.mean() - exact.mean)) < 4 * sd / math.sqrt(len(x))
    assert float(x.var()) == pytest.approx(float(exact.cov), rel=0.05)
    assert float(exact.log_prob(x).mean()) == pytest.approx(-_entropy_mc(exact, gen), abs=0.03)
    probe = torch.linspace(-4, 4, 9, dtype=torch.float64)[:, None]
    _, auto = mcmc.log_prob_and_grad(exact.log_prob, probe)
    assert torch.allclose(sdes.mixture_score(mix, sde)(probe, 0.3), auto, atol=1e-10)


def _entropy_mc(mix, gen):
    """Monte Carlo entropy of the exact marginal, from its own sampler."""
    return -float(mix.log_prob(mix.sample(50_000, generator=gen)).mean())


@pytest.mark.parametrize("kind", ["ve", "vp"])
def test_reverse_sde_with_exact_score_recovers_the_mixture(kind, gen):
    """5000 particles, 300 reverse Euler-Maruyama steps from exact p_1 samples:
    component weights within 0.03 and component means within 0.05 of the truth."""
    mix, sde = _mixture(), sdes.make_sde(kind)
    x_end = sdes.mixture_marginal(mix, sde, 1.0).sample(5000, generator=gen)
    x = sdes.reverse_sde(sde, sdes.mixture_score(mix, sde), x_end, n_steps=300, generator=gen)
    weights, means = sdes.assign_components(mix, x)
    assert float((weights - mix.weights).abs().max()) < 0.03
    assert float((means - mix.means).abs().max()) < 0.05
    assert float(x.var()) == pytest.approx(float(mix.cov), rel=0.05)


def test_reverse_without_score_does_not_recover(gen):
    """Control: with a zero score the VP reverse run just stays near N(0, 1); weights are wrong."""
    mix, sde = _mixture(), sdes.VPSDE()
    x_end = torch.randn(5000, 1, generator=gen, dtype=torch.float64)
    x = sdes.reverse_sde(sde, lambda x, t: torch.zeros_like(x), x_end, n_steps=100, generator=gen)
    weights, _ = sdes.assign_components(mix, x)
    assert float((weights - mix.weights).abs().max()) > 0.1


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="kind"):
        sdes.make_sde("subvp")
    with pytest.raises(ValueError, match="sigma_min"):
        sdes.VESDE(sigma_min=1.0, sigma_max=0.5)
