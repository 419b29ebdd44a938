"""Forward diffusion SDEs (VE, VP) by Euler-Maruyama; the reverse-time SDE with an exact score.

Song et al., Score-based generative modeling through stochastic differential equations (ICLR
2021): VE SDE Eq. 9, VP SDE Eq. 11, reverse-time SDE Eq. 6 (Anderson 1982). Under
either forward process x_t | x_0 ~ N(alpha(t) x_0, v(t) I), so a Gaussian mixture stays a
Gaussian mixture with means alpha mu_k and variances alpha^2 s_k^2 + v: its score is exact.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from genlab.concepts.mcmc import GaussianMixture

ScoreFn = Callable[[torch.Tensor, float], torch.Tensor]  # (x (N, D), t) -> (N, D)


class VESDE:
    """dx = sqrt(d sigma^2(t) / dt) dW with sigma(t) = sigma_min (sigma_max / sigma_min)^t."""

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 10.0):
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        self.sigma_min, self.sigma_max = sigma_min, sigma_max

    def sigma(self, t: float) -> float:
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def drift(self, x: torch.Tensor, t: float) -> torch.Tensor:
        return torch.zeros_like(x)

    def diffusion(self, t: float) -> float:
        return self.sigma(t) * math.sqrt(2 * math.log(self.sigma_max / self.sigma_min))

    def marginal(self, t: float) -> tuple[float, float]:
        """(alpha, v): x_t | x_0 ~ N(x_0, sigma(t)^2 - sigma(0)^2) (Song 2021, Appendix B)."""
        return 1.0, self.sigma(t) ** 2 - self.sigma_min**2


class VPSDE:
    """dx = -1/2 beta(t) x dt + sqrt(beta(t)) dW, beta(t) linear: a time-changed OU process."""

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0):
        if not 0 < beta_min <= beta_max:
            raise ValueError(f"need 0 < beta_min <= beta_max, got {beta_min}, {beta_max}")
        self.beta_min, self.beta_max = beta_min, beta_max

    def beta(self, t: float) -> float:
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def drift(self, x: torch.Tensor, t: float) -> torch.Tensor:
        return -0.5 * self.beta(t) * x

    def diffusion(self, t: float) -> float:
        return math.sqrt(self.beta(t))

    def marginal(self, t: float) -> tuple[float, float]:
        """(alpha, 1 - alpha^2) with alpha = exp(-1/2 int_0^t beta) (Song 2021, Appendix B)."""
        integral = self.beta_min * t + 0.5 * t * t * (self.beta_max - self.beta_min)
        alpha = math.exp(-0.5 * integral)
        return alpha, 1.0 - alpha * alpha


SDE = VESDE | VPSDE


def make_sde(kind: str, **kwargs: float) -> SDE:
    if kind not in ("ve", "vp"):
        raise ValueError(f"kind must be 've' or 'vp', got {kind!r}")
    return VESDE(**kwargs) if kind == "ve" else VPSDE(**kwargs)


def euler_maruyama(
    sde: SDE, x0: torch.Tensor, *, t_start: float = 0.0, t_end: float = 1.0, n_steps: int = 500,
    generator: torch.Generator, keep: tuple[float, ...] = (),
) -> tuple[torch.Tensor, dict[float, torch.Tensor]]:
    """Forward x_{t+h} = x_t + f(x_t, t) h + g(t) sqrt(h) z from t_start to t_end; x0 (N, D).

    Returns the final state and snapshots at the grid times nearest to each time in `keep`.
    """
    h = (t_end - t_start) / n_steps
    grid = [t_start + i * h for i in range(n_steps + 1)]
    want = {min(range(len(grid)), key=lambda i, s=s: abs(grid[i] - s)): s for s in keep}
    x, snaps = x0.double().clone(), {}
    for i, t in enumerate(grid):
        if i in want:
            snaps[want[i]] = x.clone()
        if i == n_steps:
            break
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        x = x + sde.drift(x, t) * h + sde.diffusion(t) * math.sqrt(h) * z
    return x, snaps


def mixture_marginal(mix: GaussianMixture, sde: SDE, t: float) -> GaussianMixture:
    """p_t for p_0 = mix: sum_k w_k N(alpha mu_k, (alpha^2 s_k^2 + v) I)."""
    alpha, v = sde.marginal(t)
    return GaussianMixture(mix.weights, alpha * mix.means, torch.sqrt(alpha**2 * mix.stds**2 + v))


def mixture_score(mix: GaussianMixture, sde: SDE) -> ScoreFn:
    """Exact score grad_x log p_t(x) of the diffused mixture, as a function of (x, t)."""
    return lambda x, t: mixture_marginal(mix, sde, t).score(x)


def reverse_sde(
    sde: SDE, score: ScoreFn, x_end: torch.Tensor, *, t_end: float = 1.0, t_stop: float = 0.0,
    n_steps: int = 500, generator: torch.Generator,
) -> torch.Tensor:
    """Euler-Maruyama on dx = [f(x, t) - g(t)^2 score(x, t)] dt + g(t) dW_bar, t_end -> t_stop.

    Song 2021, Eq. 6: time runs backwards, so each step is x <- x - [f - g^2 s] h + g sqrt(h) z.
    x_end: (N, D) samples of p_{t_end}.
    """
    h = (t_end - t_stop) / n_steps
    x = x_end.double().clone()
    for i in range(n_steps):
        t = t_end - i * h
        g = sde.diffusion(t)
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        x = x - (sde.drift(x, t) - g * g * score(x, t)) * h + g * math.sqrt(h) * z
    return x


def assign_components(mix: GaussianMixture, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Hard-assign x (N, D) to the most responsible component; return weights (K,), means (K, D)."""
    k = mix.component_log_probs(x).argmax(1)
    n_k = torch.bincount(k, minlength=len(mix.weights)).double()
    sums = torch.zeros_like(mix.means).index_add_(0, k, x.double())
    return n_k / len(x), sums / n_k.clamp_min(1)[:, None]
