"""MCMC on known targets: random-walk Metropolis-Hastings, Langevin (ULA, MALA), HMC, and ESS.

Metropolis et al. (1953) / Hastings (1970); ULA and MALA as in Roberts and Tweedie (1996),
ULA through a temperature ladder as annealed Langevin dynamics (Song and Ermon 2019, Alg. 1);
HMC with leapfrog as in Neal, MCMC using Hamiltonian dynamics (2011), Eq. 5.18-5.20; effective
sample size from Geyer's initial positive sequence (Geyer, Practical Markov chain Monte Carlo,
1992).
Every sampler runs C independent chains at once: states are (C, D), samples are (n, C, D).
Targets: correlated Gaussian, twisted-Gaussian "banana" (Haario et al. 1999), Gaussian mixture.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

LogProb = Callable[[torch.Tensor], torch.Tensor]  # (C, D) -> (C,)
Score = Callable[[torch.Tensor], torch.Tensor]  # (C, D) -> (C, D), grad_x log p


# -------------------------------------------------------------------------------------- targets


class CorrelatedGaussian:
    """N(mean, cov) with mean (D,), cov (D, D); float64."""

    def __init__(self, mean: torch.Tensor, cov: torch.Tensor):
        self.mean, self.cov = mean.double(), cov.double()
        self.chol = torch.linalg.cholesky(self.cov)
        self.dim = len(mean)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.linalg.solve_triangular(self.chol, (x - self.mean).T, upper=False)  # (D, C)
        log_det = 2 * self.chol.diagonal().log().sum()
        return -0.5 * ((z**2).sum(0) + log_det + self.dim * math.log(2 * math.pi))

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """grad log p(x) = -cov^-1 (x - mean), (C, D)."""
        return -torch.cholesky_solve((x - self.mean).T, self.chol).T

    def sample(self, n: int, *, generator: torch.Generator) -> torch.Tensor:
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        return self.mean + z @ self.chol.T


class Banana:
    """Twisted Gaussian: x1 ~ N(0, a^2), x2 + b (x1^2 - a^2) ~ N(0, 1) (volume-preserving map).

    Mean is 0; Var x1 = a^2, Var x2 = 1 + 2 b^2 a^4, Cov(x1, x2) = 0 (Haario et al. 1999).
    """

    def __init__(self, a: float = 1.5, b: float = 0.5):
        self.a, self.b, self.dim = a, b, 2
        self.mean = torch.zeros(2, dtype=torch.float64)
        self.cov = torch.diag(torch.tensor([a**2, 1 + 2 * b**2 * a**4], dtype=torch.float64))

    def _untwist(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = x[..., 0], x[..., 1]
        return torch.stack([x1 / self.a, x2 + self.b * (x1**2 - self.a**2)], -1)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        z = self._untwist(x)  # standard normal coordinates; Jacobian det is 1 / a
        return -0.5 * (z**2).sum(-1) - math.log(2 * math.pi * self.a)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """Chain rule through the untwist: dz1/dx1 = 1/a, dz2/dx1 = 2 b x1, dz2/dx2 = 1."""
        z = self._untwist(x)
        g1 = -(z[..., 0] / self.a + 2 * self.b * x[..., 0] * z[..., 1])
        return torch.stack([g1, -z[..., 1]], -1)

    def sample(self, n: int, *, generator: torch.Generator) -> torch.Tensor:
        z = torch.randn(n, 2, generator=generator, dtype=torch.float64)
        x1 = self.a * z[:, 0]
        return torch.stack([x1, z[:, 1] - self.b * (x1**2 - self.a**2)], -1)


class GaussianMixture:
    """sum_k w_k N(mu_k, s_k^2 I): weights (K,), means (K, D), stds (K,); float64."""

    def __init__(self, weights: torch.Tensor, means: torch.Tensor, stds: torch.Tensor):
        if not torch.allclose(weights.double().sum(), torch.tensor(1.0, dtype=torch.float64)):
            raise ValueError("weights must sum to 1")
        self.weights, self.means, self.stds = weights.double(), means.double(), stds.double()
        self.dim = means.shape[1]

    def component_log_probs(self, x: torch.Tensor) -> torch.Tensor:
        """log w_k + log N(x; mu_k, s_k^2 I) for x (N, D) -> (N, K)."""
        sq = ((x[:, None, :] - self.means) ** 2).sum(-1)  # (N, K)
        var = self.stds**2
        return self.weights.log() - 0.5 * (sq / var + self.dim * torch.log(2 * math.pi * var))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return torch.logsumexp(self.component_log_probs(x), dim=1)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """Exact grad_x log p(x) = sum_k r_k(x) (mu_k - x) / s_k^2, r = responsibilities; (N, D)."""
        logits = self.component_log_probs(x)  # (N, K)
        resp = (logits - logits.logsumexp(1, keepdim=True)).exp()  # softmax, see note below
        pulls = (self.means - x[:, None, :]) / self.stds[:, None] ** 2  # (N, K, D)
        return (resp[..., None] * pulls).sum(1)

    # Note: exp(l - logsumexp(l)) instead of torch.softmax: on a CPU shared with other jobs, the
    # threaded softmax kernel took ~10 ms per tiny call here; this form stays at ~0.05 ms.

    def sample(self, n: int, *, generator: torch.Generator) -> torch.Tensor:
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        return self.means[k] + self.stds[k, None] * z

    @property
    def mean(self) -> torch.Tensor:
        return self.weights @ self.means

    @property
    def cov(self) -> torch.Tensor:
        second = (self.weights * self.stds**2).sum() * torch.eye(self.dim, dtype=torch.float64)
        second = second + torch.einsum("k,ki,kj->ij", self.weights, self.means, self.means)
        return second - torch.outer(self.mean, self.mean)


# ------------------------------------------------------------------------------------- samplers


@dataclass
class ChainResult:
    """samples (n_steps, C, D) after each transition, and the mean acceptance rate."""

    samples: torch.Tensor
    accept_rate: float


def log_prob_and_grad(
    log_prob: LogProb, x: torch.Tensor, score: Score | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(x) (C,) and its gradient (C, D): `score(x)` when given, else autograd."""
    if score is not None:
        return log_prob(x), score(x)
    x = x.detach().requires_grad_(True)
    lp = log_prob(x)
    (grad,) = torch.autograd.grad(lp.sum(), x)
    return lp.detach(), grad


def _grad(log_prob: LogProb, x: torch.Tensor, score: Score | None) -> torch.Tensor:
    return score(x) if score is not None else log_prob_and_grad(log_prob, x)[1]


def _accept(log_alpha: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    u = torch.rand(log_alpha.shape, generator=g, dtype=log_alpha.dtype)
    return u.log() < log_alpha  # (C,) bool


def random_walk_metropolis(
    log_prob: LogProb, x0: torch.Tensor, *, n_steps: int, step_size: float,
    generator: torch.Generator,
) -> ChainResult:
    """Propose x' = x + step_size * xi, xi ~ N(0, I); accept with min(1, p(x') / p(x))."""
    x, lp = x0.double().clone(), log_prob(x0.double())
    out, n_acc = [], 0.0
    for _ in range(n_steps):
        y = x + step_size * torch.randn(x.shape, generator=generator, dtype=x.dtype)
        lp_y = log_prob(y)
        acc = _accept(lp_y - lp, generator)
        x, lp = torch.where(acc[:, None], y, x), torch.where(acc, lp_y, lp)
        out.append(x)
        n_acc += float(acc.double().mean())
    return ChainResult(torch.stack(out), n_acc / n_steps)


def ula(
    log_prob: LogProb, x0: torch.Tensor, *, n_steps: int, step_size: float,
    generator: torch.Generator, score: Score | None = None,
) -> ChainResult:
    """Unadjusted Langevin: x' = x + eps grad log p(x) + sqrt(2 eps) xi; no accept step (biased).

    `score` (C, D) -> (C, D) is grad log p; when None it is taken by autograd (same in mala/hmc).
    """
    x, out = x0.double().clone(), []
    for _ in range(n_steps):
        grad = _grad(log_prob, x, score)
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        x = x + step_size * grad + math.sqrt(2 * step_size) * noise  # Euler-Maruyama of Langevin
        out.append(x)
    return ChainResult(torch.stack(out), 1.0)


def langevin_temperatures(*, t_max: float, t_min: float, n_levels: int) -> torch.Tensor:
    """Temperature ladder T_1 = t_max > ... > T_L = t_min (L,) of `annealed_langevin`, equally
    spaced in log T: geometric, like the sigma_i of Song and Ermon (2019, Sec. 4.2)."""
    if n_levels < 1:
        raise ValueError(f"n_levels must be >= 1, got {n_levels}")
    if not 0 < t_min <= t_max:
        raise ValueError(f"need 0 < t_min <= t_max, got t_min={t_min}, t_max={t_max}")
    return torch.linspace(math.log(t_max), math.log(t_min), n_levels, dtype=torch.float64).exp()


def annealed_langevin(
    log_prob: LogProb, x0: torch.Tensor, temps: torch.Tensor, *, n_steps_each: int,
    step_size: float, generator: torch.Generator, score: Score | None = None,
) -> ChainResult:
    """ULA through temperatures temps (L,): n_steps_each steps targeting p^(1 / T_i) at level i.

    Level i runs `ula` on log p / T_i with step eps_i = step_size T_i, that is
        x' = x + step_size grad log p(x) + sqrt(2 step_size T_i) xi:
    a fixed drift and an injected noise variance proportional to T_i, as Song and Ermon's
    (2019, Algorithm 1) step alpha_i is proportional to sigma_i^2 (they anneal a Gaussian
    smoothing of p, not its temperature). One gradient per step and chain; samples are
    (L n_steps_each, C, D).
    """
    x, out = x0.double().clone(), []
    for T in temps.tolist():
        tempered = None if score is None else (lambda z, T=T: score(z) / T)
        res = ula(lambda z, T=T: log_prob(z) / T, x, n_steps=n_steps_each,
                  step_size=step_size * T, generator=generator, score=tempered)
        out.append(res.samples)
        x = res.samples[-1]
    return ChainResult(torch.cat(out), 1.0)


def _langevin_log_q(y: torch.Tensor, x: torch.Tensor, grad_x: torch.Tensor, eps: float):
    """log q(y | x) up to a constant for the Langevin proposal N(x + eps grad, 2 eps I)."""
    return -((y - x - eps * grad_x) ** 2).sum(-1) / (4 * eps)


def mala(
    log_prob: LogProb, x0: torch.Tensor, *, n_steps: int, step_size: float,
    generator: torch.Generator, score: Score | None = None,
) -> ChainResult:
    """Metropolis-adjusted Langevin: the ULA move as a proposal, corrected by an MH test."""
    x = x0.double().clone()
    lp, grad = log_prob_and_grad(log_prob, x, score)
    out, n_acc = [], 0.0
    for _ in range(n_steps):
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        y = x + step_size * grad + math.sqrt(2 * step_size) * noise
        lp_y, grad_y = log_prob_and_grad(log_prob, y, score)
        log_alpha = (lp_y + _langevin_log_q(x, y, grad_y, step_size)
                     - lp - _langevin_log_q(y, x, grad, step_size))
        acc = _accept(log_alpha, generator)
        x, lp = torch.where(acc[:, None], y, x), torch.where(acc, lp_y, lp)
        grad = torch.where(acc[:, None], grad_y, grad)
        out.append(x)
        n_acc += float(acc.double().mean())
    return ChainResult(torch.stack(out), n_acc / n_steps)


def leapfrog(
    log_prob: LogProb, x: torch.Tensor, p: torch.Tensor, *, step_size: float, n_leapfrog: int,
    score: Score | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """n_leapfrog leapfrog steps of H = -log p(x) + |p|^2 / 2 (Neal 2011, Eq. 5.18-5.20)."""
    grad = _grad(log_prob, x, score)
    p = p + 0.5 * step_size * grad  # half step in momentum
    for i in range(n_leapfrog):
        x = x + step_size * p  # full step in position
        grad = _grad(log_prob, x, score)
        p = p + (step_size if i < n_leapfrog - 1 else 0.5 * step_size) * grad
    return x, p


def hmc(
    log_prob: LogProb, x0: torch.Tensor, *, n_steps: int, step_size: float, n_leapfrog: int,
    generator: torch.Generator, score: Score | None = None,
) -> ChainResult:
    """Hamiltonian Monte Carlo with unit mass: fresh momentum, leapfrog, accept exp(H0 - H1)."""
    x = x0.double().clone()
    lp = log_prob(x)
    out, n_acc = [], 0.0
    for _ in range(n_steps):
        p = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        y, q = leapfrog(log_prob, x, p, step_size=step_size, n_leapfrog=n_leapfrog, score=score)
        lp_y = log_prob(y).detach()
        log_alpha = (lp_y - 0.5 * (q**2).sum(-1)) - (lp - 0.5 * (p**2).sum(-1))  # H0 - H1
        acc = _accept(torch.nan_to_num(log_alpha, nan=-math.inf), generator)
        x, lp = torch.where(acc[:, None], y, x), torch.where(acc, lp_y, lp)
        out.append(x)
        n_acc += float(acc.double().mean())
    return ChainResult(torch.stack(out), n_acc / n_steps)


# ----------------------------------------------------------------------------------- diagnostics


def autocorrelation(x: torch.Tensor) -> torch.Tensor:
    """Autocorrelation rho_t, t = 0..n-1, of chains x (n, C), averaged over chains, via FFT."""
    n = x.shape[0]
    xc = (x - x.mean(0)).double()
    f = torch.fft.rfft(xc, n=2 * n, dim=0)  # zero-padded: linear, not circular, correlation
    acov = torch.fft.irfft(f * f.conj(), n=2 * n, dim=0)[:n].mean(1) / n  # (n,)
    return acov / acov[0]


def effective_sample_size(x: torch.Tensor) -> float:
    """ESS = n C / tau with tau = -1 + 2 sum_k Gamma_k, Gamma_k = rho_2k + rho_2k+1 (Geyer 1992).

    x: (n,) one chain or (n, C) chains of a scalar. The sum stops before the first non-positive
    Gamma_k (initial positive sequence) and Gamma is made monotone (initial monotone sequence).
    """
    x = x[:, None] if x.ndim == 1 else x
    n, chains = x.shape
    rho = autocorrelation(x)
    gamma = rho[: 2 * (n // 2)].reshape(-1, 2).sum(1)  # (n // 2,)
    positive = gamma > 0
    stop = int(positive.logical_not().nonzero()[0]) if not bool(positive.all()) else len(gamma)
    gamma = torch.cummin(gamma[:stop], 0).values
    tau = -1 + 2 * float(gamma.sum())
    return n * chains / max(tau, 1e-12)


def ar1_ess(n: int, phi: float) -> float:
    """Closed-form ESS of n draws of a stationary AR(1) with coefficient phi: n(1-phi)/(1+phi)."""
    return n * (1 - phi) / (1 + phi)
