"""Samplers driven by exact denoisers / eps / scores of known distributions.

Data y ~ N(mu, s^2 I) in 2-D (mu = (1, -2), s = 0.5), N = 10_000 samples. Tolerances are
4 standard errors (mean: 4 s / sqrt(N); pooled std: 4 s / sqrt(2 * 2N)) plus the sampler's
own discretisation error, measured once and stated per test. For the deterministic samplers the
map latents -> samples is affine per coordinate, x = A z + b, so their error is checked exactly.
"""

import math

import pytest
import torch

from genlab.models.precond import EDMPrecond, NCSNScore
from genlab.samplers.ddpm import ddim_sampler, ddim_timesteps, ddpm_ancestral_sampler
from genlab.samplers.edm import edm_heun_sampler, edm_stochastic_sampler
from genlab.samplers.ncsn import annealed_langevin_dynamics
from genlab.samplers.schedules import alphas_cumprod, linear_betas, ncsn_sigmas
from tests.diffusion.analytic import Gaussian, Mixture1D, tiny_mlp

MU, S, N = torch.tensor([1.0, -2.0], dtype=torch.float64), 0.5, 10_000
GAUSS = Gaussian(MU, S)
SE_MEAN, SE_STD = S / math.sqrt(N), S / math.sqrt(2 * 2 * N)
AB = alphas_cumprod(linear_betas())  # T = 1000, 1e-4 .. 0.02
F64 = torch.float64
SIGMAS3 = ncsn_sigmas(1.0, 0.1, 3)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _latents(n: int = N, dim: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _assert_moments(x: torch.Tensor, mu, s: float, mean_tol: float, std_tol: float) -> None:
    mean, std = x.mean(0), (x - x.mean(0)).std().item()  # per-dim means, pooled std
    assert (mean - mu).abs().max().item() < mean_tol, (mean.tolist(), mu)
    assert abs(std - s) < std_tol, (std, s)


def _affine(sampler):
    """(A, b) of a per-coordinate affine map z -> A z + b, from two probes."""
    b = sampler(torch.zeros(1, 2, dtype=F64))
    return (sampler(torch.ones(1, 2, dtype=F64)) - b)[0, 0].item(), b[0]


def _edm_flow_gain(s: float, sigma_max: float = 80.0) -> float:
    """Exact probability-flow ODE of N(mu, s^2): x - mu scales by sqrt(s^2 + sigma^2)."""
    return sigma_max * s / math.sqrt(s**2 + sigma_max**2)


def test_edm_heun_is_second_order_on_a_gaussian():
    exact = _edm_flow_gain(S)
    errors = [_affine(lambda z, n=n: edm_heun_sampler(GAUSS.denoiser, z, num_steps=n))[0] / exact
              - 1 for n in (18, 36, 72)]
    assert 0 < errors[0] < 0.06  # measured 0.0553 at 18 steps
    assert 3.5 < errors[0] / errors[1] < 4.6 and 3.5 < errors[1] / errors[2] < 4.6
    _, b = _affine(lambda z: edm_heun_sampler(GAUSS.denoiser, z, num_steps=72))
    torch.testing.assert_close(b, MU * (1 - exact / 80.0), rtol=0, atol=1e-4)


def test_edm_heun_moments_and_nfe():
    calls = []

    def counted(x, sigma, labels):
        calls.append(sigma[0].item())
        return GAUSS.denoiser(x, sigma)

    x = edm_heun_sampler(counted, _latents(), num_steps=18)
    assert len(calls) == 2 * 18 - 1 and calls[0] == pytest.approx(80.0)
    # 18 steps: +5.5% std discretisation error (previous test)
    _assert_moments(x, MU, S * 1.0553, 4 * SE_MEAN + 0.015, 4 * SE_STD + 1e-3)


def test_samplers_build_no_graph():
    edm = EDMPrecond(tiny_mlp(0))  # parameters require grad
    assert not edm_heun_sampler(edm, _latents(4), num_steps=2).requires_grad
    assert not annealed_langevin_dynamics(NCSNScore(tiny_mlp(0)), _latents(4), SIGMAS3,
                                          n_steps_each=1, generator=_gen()).requires_grad


def test_edm_stochastic_without_churn_is_heun():
    z = _latents(100)
    x = edm_stochastic_sampler(GAUSS.denoiser, z, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(x, edm_heun_sampler(GAUSS.denoiser, z), rtol=0, atol=0)


def test_edm_stochastic_moments():
    gen = torch.Generator().manual_seed(1)
    x, path = edm_stochastic_sampler(GAUSS.denoiser, _latents(), generator=gen, num_steps=72,
                                     S_churn=40, S_min=0.05, S_max=50, keep_trajectory=True)
    assert path.shape == (73, N, 2) and torch.equal(path[-1], x)
    # 72 steps, churn 40: std +1.9% (measured 0.5094 on these draws)
    _assert_moments(x, MU, S, 4 * SE_MEAN + 0.01, 4 * SE_STD + 0.012)


def test_edm_heun_keeps_mixture_weights():
    mix = Mixture1D([0.3, 0.7], [-2.0, 2.0], [0.3, 0.3])
    x = edm_heun_sampler(mix.denoiser, _latents(dim=1), num_steps=18)
    right = x[:, 0] > 0
    frac = right.double().mean().item()
    assert abs(frac - 0.7) < 4 * math.sqrt(0.21 / N)
    for mode, mean in ((right, 2.0), (~right, -2.0)):
        assert abs(x[mode].mean().item() - mean) < 0.06  # measured 0.02, 0.04
        assert abs(x[mode].std().item() - 0.3) < 0.03  # measured 0.310, 0.319


def test_ddim_timesteps_are_evenly_spaced():
    assert ddim_timesteps(1000, 4) == [999, 666, 333, 0]
    assert ddim_timesteps(10, 10) == list(range(9, -1, -1))
    with pytest.raises(ValueError, match="n_steps"):
        ddim_timesteps(10, 11)


def test_ddim_is_first_order_on_a_gaussian():
    a, b = AB[-1].sqrt().item(), (1 - AB[-1]).sqrt().item()
    exact = S / math.sqrt(a**2 * S**2 + b**2)  # d x_0 / d x_T of the exact flow

    def gain(n):
        outs = [ddim_sampler(GAUSS.eps_model(AB), (1, 2), AB, n_steps=n, dtype=F64,
                             generator=torch.Generator().manual_seed(seed)) for seed in (0, 1)]
        x_T = [torch.randn(1, 2, generator=torch.Generator().manual_seed(seed), dtype=F64)
               for seed in (0, 1)]
        return ((outs[0] - outs[1]) / (x_T[0] - x_T[1]))[0, 0].item()

    errors = [gain(n) / exact - 1 for n in (50, 100, 200)]
    assert -0.06 < errors[0] < 0  # measured -0.0562 at 50 steps
    assert 1.8 < errors[0] / errors[1] < 2.2 and 1.8 < errors[1] / errors[2] < 2.2


def test_ddim_moments():
    gen = torch.Generator().manual_seed(0)
    x = ddim_sampler(GAUSS.eps_model(AB), (N, 2), AB, n_steps=50, generator=gen, dtype=F64)
    # 50 steps, eta = 0: std -5.6% (previous test)
    _assert_moments(x, MU, S * (1 - 0.0562), 4 * SE_MEAN + 0.01, 4 * SE_STD + 1e-3)
    x, path = ddim_sampler(GAUSS.eps_model(AB), (N, 2), AB, n_steps=200, eta=1.0, dtype=F64,
                           generator=gen, keep_trajectory=True)
    assert path.shape == (201, N, 2)
    # eta = 1 with sigma_t of Eq. 16 underestimates the reverse variance on large steps:
    # measured std 0.443 at 50 steps, 0.484 at 200 steps (-> s as steps -> T).
    _assert_moments(x, MU, S, 4 * SE_MEAN + 0.01, 4 * SE_STD + 0.02)


def test_ddpm_ancestral_moments():
    n = 4000
    x = ddpm_ancestral_sampler(GAUSS.eps_model(AB), (n, 2), AB, dtype=F64,
                               generator=torch.Generator().manual_seed(0))
    se_mean, se_std = S / math.sqrt(n), S / math.sqrt(4 * n)
    # T = 1000: discretisation error < 1% in std (measured 0.502 on 10_000 draws)
    _assert_moments(x, MU, S, 4 * se_mean + 0.005, 4 * se_std + 0.005)


def test_ddpm_ancestral_calls_every_timestep_once():
    seen = []
    ab = alphas_cumprod(linear_betas(20, 1e-3, 0.2))
    x, path = ddpm_ancestral_sampler(lambda x_t, t, c: seen.append(t[0].item()) or 0 * x_t,
                                     (3, 2), ab, generator=torch.Generator().manual_seed(0),
                                     keep_trajectory=True)
    assert seen == list(range(19, -1, -1)) and path.shape == (21, 3, 2)
    # with eps = 0 each step is x / sqrt(alpha_t) + sqrt(beta_t) z; the last adds no noise
    alpha_0 = ab[0].item()
    torch.testing.assert_close(x, path[-2] / math.sqrt(alpha_0))


def _langevin_moments(x0_mean, x0_var, sigmas, n_steps, eps):
    """Exact mean/variance per coordinate: with an exact Gaussian score each Langevin step is
    x <- (1 - a / 2v) x + (a / 2v) mu + sqrt(a) z, v = s^2 + sigma_i^2."""
    m, var = x0_mean, x0_var
    for sigma in sigmas.tolist():
        a = eps * sigma**2 / sigmas[-1].item() ** 2
        k = 1 - a / (2 * (S**2 + sigma**2))
        for _ in range(n_steps):
            m, var = k * m + (1 - k) * MU, k**2 * var + a
    shrink = 1 - sigmas[-1].item() ** 2 / (S**2 + sigmas[-1].item() ** 2)  # final denoising
    return shrink * m + (1 - shrink) * MU, shrink**2 * var


def test_annealed_langevin_matches_its_exact_moments():
    sigmas, n_steps, eps = ncsn_sigmas(10.0, 0.01, 10), 100, 2e-5
    gen = torch.Generator().manual_seed(0)
    x_init = 2 * torch.rand(N, 2, generator=gen, dtype=F64) - 1  # uniform, as in NCSN
    x, path = annealed_langevin_dynamics(GAUSS.score, x_init, sigmas, n_steps_each=n_steps,
                                         eps=eps, generator=gen, keep_trajectory=True)
    assert path.shape == (11, N, 2) and torch.equal(path[0], x_init)
    m, var = _langevin_moments(torch.zeros(2, dtype=F64), 1 / 3, sigmas, n_steps, eps)
    _assert_moments(x, m, math.sqrt(var), 4 * SE_MEAN, 4 * SE_STD)
    # the recursion itself lands near the data: std +5.0% (Langevin's step-size bias and the
    # unmixed low-sigma levels; eps = 2e-5 is the paper's value)
    assert abs(math.sqrt(var) / S - 1) < 0.06
    torch.testing.assert_close(m, MU, rtol=0, atol=1e-3)


def test_ddpm_posterior_mean_form_equals_algorithm_2():
    # With a clamp that never binds, the x_0-form posterior mean (Eq. 7) is Algorithm 2's mean.
    n, eps = 500, GAUSS.eps_model(AB)
    a = ddpm_ancestral_sampler(eps, (n, 2), AB, dtype=F64, generator=_gen(3))
    b = ddpm_ancestral_sampler(eps, (n, 2), AB, dtype=F64, generator=_gen(3), clip_x0=1e12)
    torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_clamp_that_never_binds_changes_nothing(eta):
    n, eps = 500, GAUSS.eps_model(AB)
    kw = dict(n_steps=25, eta=eta, dtype=F64)
    a = ddim_sampler(eps, (n, 2), AB, generator=_gen(3), **kw)
    b = ddim_sampler(eps, (n, 2), AB, generator=_gen(3), clip_x0=1e12, **kw)
    torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_ddim_clamped_step_uses_the_eps_of_the_clamped_x0():
    # One deterministic step from t to t_prev with a constant eps that drives x_0 out of range.
    # Eq. 12 with x_0 clamped and eps re-derived from it is the interpolation
    # x_prev = sqrt(a_prev) x0c + sqrt((1 - a_prev) / (1 - a_t)) (x_t - sqrt(a_t) x0c).
    tau = ddim_timesteps(len(AB), 2)
    a_t, a_prev = AB[tau[0]].item(), AB[tau[1]].item()
    seen = []

    def eps_model(x_t, t, c):
        seen.append(x_t.clone())
        return torch.full_like(x_t, -3.0)  # x_0 = (x_t + 3 sqrt(1 - a_t)) / sqrt(a_t) >> 1

    path = ddim_sampler(eps_model, (8, 2), AB, n_steps=2, dtype=F64, generator=_gen(5),
                        clip_x0=1.0, keep_trajectory=True)[1]
    x_t = seen[0]
    x0c = ((x_t + 3.0 * (1 - a_t) ** 0.5) / a_t**0.5).clamp(-1, 1)
    assert (x0c == 1.0).all(), "the clamp must bind for this check"
    want = a_prev**0.5 * x0c + ((1 - a_prev) / (1 - a_t)) ** 0.5 * (x_t - a_t**0.5 * x0c)
    torch.testing.assert_close(path[1], want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("sampler", ["ancestral", "ddim"])
def test_ddpm_clip_x0_bounds_the_prediction(sampler):
    # A model whose eps is wildly off: unclamped x_0 predictions leave [-1, 1] by far; clamped,
    # the DDIM output (a_prev = 1 at the last step) and the ancestral output stay bounded.
    bad = lambda x_t, t, c: 50.0 * torch.ones_like(x_t)  # noqa: E731
    kw = dict(dtype=F64, generator=_gen(4))
    if sampler == "ddim":
        run = lambda clip: ddim_sampler(bad, (64, 2), AB, n_steps=20, clip_x0=clip, **kw)  # noqa: E731
        assert run(1.0).abs().max().item() <= 1.0 + 1e-12
    else:
        run = lambda clip: ddpm_ancestral_sampler(bad, (64, 2), AB, clip_x0=clip, **kw)  # noqa: E731
        assert run(1.0).abs().max().item() < 1.5  # last step: x_0 clamped + beta_1-sized noise
    assert run(None).abs().max().item() > 100.0
