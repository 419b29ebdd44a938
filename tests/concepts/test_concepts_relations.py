"""The measured relations: PSO vs heavy ball on the same draws, SA vs annealed Langevin, ladders."""

import math

import numpy as np
import pytest
import torch

from genlab.concepts import mcmc
from genlab.concepts import metaheuristics as mh
from genlab.concepts import relations as rel

# ------------------------------------------------------------------------------------ ladders


@pytest.mark.parametrize("t_max,t_min,n", [(10.0, 0.01, 4), (1.0, 0.01, 20), (2.0, 2.0, 3)])
def test_annealing_ladders_match_the_geometric_closed_form(t_max, t_min, n):
    """SA's and annealed Langevin's ladders, each from its own function, are both
    T_k = t_max r^k with r = (t_min / t_max)^(1 / (n - 1)): n values from t_max to t_min."""
    r = (t_min / t_max) ** (1 / (n - 1))
    closed = [t_max * r**k for k in range(n)]
    for ladder in (mh.temperature_schedule("geometric", t0=t_max, t_min=t_min, n_steps=n),
                   mcmc.langevin_temperatures(t_max=t_max, t_min=t_min, n_levels=n)):
        assert len(ladder) == n
        assert ladder.tolist() == pytest.approx(closed, rel=1e-12)
        assert (ladder[1:] / ladder[:-1]).tolist() == pytest.approx([r] * (n - 1), rel=1e-12)
    if n == 4:
        assert closed == pytest.approx([10.0, 1.0, 0.1, 0.01])


def test_annealing_ladder_levels_are_temperatures(gen):
    """What the shared ladder means: at level k both samplers target exp(-E / T_k). On
    E = a x^2 / 2 the Metropolis chain's variance is T_k / a; ULA's, x' = (1 - eps a) x +
    sqrt(2 eps T_k) xi, is T_k / (a (1 - eps a / 2)), the known step bias."""
    a, eps, n_each, chains = 2.0, 0.05, 100, 4000
    temps = mcmc.langevin_temperatures(t_max=1.0, t_min=0.01, n_levels=3)
    x0 = torch.zeros(chains, 1, dtype=torch.float64)
    ld = mcmc.annealed_langevin(lambda x: -0.5 * a * (x**2).sum(-1), x0, temps, n_steps_each=n_each,
                                step_size=eps, generator=gen, score=lambda x: -a * x)
    sa_temps = mh.temperature_schedule("geometric", t0=1.0, t_min=0.01, n_steps=3)
    sa_temps = sa_temps.repeat_interleave(n_each)  # (3 n_each,)
    sa, _ = mh.metropolis_annealing(lambda x: 0.5 * a * (x**2).sum(-1), x0, sa_temps,
                                    proposal_std=(2 * eps * sa_temps).sqrt(), low=-50.0,
                                    high=50.0, generator=gen)
    for k, T in enumerate(temps.tolist()):
        end = (k + 1) * n_each - 1  # last step of level k
        assert float(ld.samples[end].var()) == pytest.approx(T / (a * (1 - eps * a / 2)), rel=0.07)
        assert float(sa[end].var()) == pytest.approx(T / a, rel=0.07)


def test_langevin_temperatures_reject_bad_ladders():
    with pytest.raises(ValueError, match="t_min"):
        mcmc.langevin_temperatures(t_max=1.0, t_min=2.0, n_levels=3)
    with pytest.raises(ValueError, match="n_levels"):
        mcmc.langevin_temperatures(t_max=1.0, t_min=0.5, n_levels=0)


# ------------------------------------------------------------------------ PSO <-> heavy ball


def test_pso_paths_agree_with_heavy_ball_exactly_when_the_pulls_are_a_gradient(gen):
    """One particle without social term = heavy ball (beta = w, alpha = c1 / 2) on the draws'
    noisy gradient, to rounding; with one particle the social term is a second cognitive pull
    (the matched twin agrees again) and in a swarm the best particle agrees; the twins that do
    not model the swarm's pulls part by O(1)."""
    cases = rel.pso_momentum_cases(n_particles=6, n_iters=40, generator=gen)
    scale = float(cases["reduced"][0].abs().max())
    assert 0.1 < scale < rel.BOX / 10  # the particle moves, and PSO's box clamp never acts
    for name in ("reduced", "social_on_matched", "swarm_best"):
        pso, hb = cases[name]
        assert pso.shape == hb.shape == (41, 2)
        assert float((pso - hb).abs().max()) < 1e-13 * max(scale, 1.0), name
    for name in ("social_on", "swarm_other"):
        pso, hb = cases[name]
        assert float((pso - hb).abs().max()) > 0.05, name


def test_reduced_pso_first_move_is_pure_inertia(gen):
    """At its start the particle is its own best: x_1 = x_0 + w v_0, as heavy ball from rest
    at the minimiser with velocity v_0."""
    x0, v0 = torch.zeros(1, 3, dtype=torch.float64), torch.randn(1, 3, generator=gen).double()
    pso, hb = rel.pso_vs_heavy_ball(x0, v0, inertia=0.6, cognitive=1.2, social=0.0, hb_social=0.0,
                                    particle=0, n_iters=5, generator=gen)
    assert torch.allclose(pso[1], 0.6 * v0[0], rtol=0, atol=1e-15)
    assert torch.allclose(pso, hb, rtol=0, atol=1e-14)


@pytest.mark.parametrize("social", [0.0, 1.5])
def test_pso_coefficient_quadratic_is_an_unbiased_gradient(social, gen):
    """E f_t(x) = |x - c|^2 / 2 and E grad f_t(x) = x - c (k has mean 1/2 for any c1, c2)."""
    center = torch.tensor([0.5, -1.0], dtype=torch.float64)
    f_t = rel.pso_coefficient_quadratic(center, cognitive=1.5, social=social, n_particles=3,
                                        particle=2, generator=gen)
    x = torch.tensor([[2.0, 1.0]], dtype=torch.float64, requires_grad=True)
    values, grads = [], []
    for _ in range(4000):
        fx = f_t(x)[0]
        values.append(float(fx.detach()))
        grads.append(torch.autograd.grad(fx, x)[0][0])
    offset = (x - center).detach()[0]  # (2,)
    assert np.mean(values) == pytest.approx(0.5 * float((offset**2).sum()), rel=0.03)
    assert torch.allclose(torch.stack(grads).mean(0), offset, atol=0.05)


def test_swarm_rejects_start_of_the_wrong_shape():
    with pytest.raises(ValueError, match="x0"):
        mh.particle_swarm(mh.rastrigin, dim=2, low=-1, high=1, n_particles=3,
                          x0=torch.zeros(2, 2), generator=torch.Generator())


def test_momentum_velocity0_is_the_previous_step():
    """x_1 = x_0 + mu v_0 - lr grad f(x_0) on f = x^2 / 2, then the two-step recursion."""
    lr, mu, x = 0.1, 0.5, [1.0]
    x.append(x[0] + mu * 0.3 - lr * x[0])
    for _ in range(3):
        x.append(x[-1] + mu * (x[-1] - x[-2]) - lr * x[-1])
    path = []

    def f(z):  # (1, 1) -> (1,), recording where heavy ball evaluates it
        path.append(float(z.detach()[0, 0]))
        return 0.5 * (z**2).sum(-1)

    mh.gradient_descent_momentum(f, torch.tensor([1.0], dtype=torch.float64), lr=lr, momentum=mu,
                                 n_steps=5, velocity0=torch.tensor([0.3], dtype=torch.float64))
    assert path == pytest.approx(x, abs=1e-14)


# -------------------------------------------------------------- SA <-> annealed Langevin

WELL = rel.DoubleWell(tilt=0.3)


def test_double_well_critical_points():
    roots = WELL.critical_points()
    assert roots == pytest.approx(sorted(np.roots([4.0, 0.0, -4.0, 0.3]).real), abs=1e-12)
    x = torch.tensor([[r] for r in roots], dtype=torch.float64)
    assert WELL.score(x).abs().max() < 1e-12
    e_global, e_barrier, e_local = WELL.energy(x).tolist()
    assert e_global < e_local < e_barrier


def test_boltzmann_helpers_on_a_gaussian(gen):
    """exp(-x^2 / 2) binned = normal CDF differences; TV of exact draws is small, of shifted
    draws large, and mass outside the range counts in full."""
    probs = rel.boltzmann_bins(lambda x: 0.5 * (x**2).sum(-1), temperature=1.0, low=-3.0,
                               high=3.0, n_bins=12)
    edges = torch.linspace(-3, 3, 13, dtype=torch.float64)
    cdf = 0.5 * (1 + torch.erf(edges / math.sqrt(2)))
    exact = (cdf[1:] - cdf[:-1]) / (cdf[-1] - cdf[0])
    assert torch.allclose(probs, exact, rtol=0, atol=1e-5)  # trapezoid, h = 0.01: ~1e-6
    z = torch.randn(20000, generator=gen, dtype=torch.float64)
    assert rel.histogram_tv(z, probs, low=-3.0, high=3.0) < 0.02
    assert rel.histogram_tv(z + 1.0, probs, low=-3.0, high=3.0) > 0.3
    assert rel.histogram_tv(torch.full((10,), 5.0), probs, low=-3.0, high=3.0) == pytest.approx(1.0)
    cold = [rel.boltzmann_basin_prob(WELL, temperature=t) for t in (1.0, 0.3, 0.01)]
    assert 0.5 < cold[0] < cold[1] < cold[2] and cold[2] == pytest.approx(1.0)


def test_metropolis_is_exact_and_langevin_step_biased_at_fixed_temperature(gen):
    """Held at T = 0.5, both chains' histograms are within 0.06 TV of exp(-E / T) at eps = 0.02;
    at eps = 0.1 Metropolis stays within 0.04 while unadjusted Langevin is off by over 0.15."""
    x0 = -2 + 4 * torch.rand(200, 1, generator=gen, dtype=torch.float64)
    probs = rel.boltzmann_bins(WELL.energy, temperature=0.5, low=-2.0, high=2.0, n_bins=40)
    tv = {}
    for eps in (0.02, 0.1):
        runs = rel.sample_at_temperature(WELL, x0, temperature=0.5, n_steps=1200, step_size=eps,
                                         generator=gen)
        tv |= {(alg, eps): rel.histogram_tv(s[400:], probs, low=-2.0, high=2.0)
               for alg, s in runs.items()}
    assert tv["sa", 0.02] < 0.06 and tv["langevin", 0.02] < 0.06
    assert tv["sa", 0.1] < 0.04 < 0.15 < tv["langevin", 0.1]


def test_both_annealers_leave_the_local_well_more_often_with_more_budget(gen):
    """From the local minimum, down the same ladder (T 1 -> 0.01 in 20 levels), both end in the
    global basin in over 45% of 300 chains with 50 steps a level, and in under 35% with 10."""
    x0 = torch.full((300, 1), WELL.critical_points()[2], dtype=torch.float64)
    barrier, frac = WELL.critical_points()[1], {}
    for n_each in (10, 50):
        runs = rel.anneal_both(WELL, x0, t_max=1.0, t_min=0.01, n_levels=20, n_steps_each=n_each,
                               step_size=0.02, generator=gen)
        for alg, states in runs.items():
            assert states.shape == (20 * n_each, 300, 1)
            frac[alg, n_each] = float((states[-1, :, 0] < barrier).double().mean())
    for alg in ("sa", "langevin"):
        assert frac[alg, 10] < 0.35 < 0.45 < frac[alg, 50]
