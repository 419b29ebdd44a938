"""Diffusion objectives: NCSN denoising score matching, DDPM L_simple, the EDM loss.

Song & Ermon 2019 (Eqs. 5-6), Ho et al. 2020 (Eq. 14), Karras et al. 2022 (Table 1, Eq. 8).
Each is a small callable `(net, x, cond, generator) -> per-example loss (B,)`, the mean over
the non-batch dimensions; the loop reduces. `net` is the wrapped model of genlab.models.precond
(score model, eps-model or denoiser), called as net(x_noisy, noise, cond).
"""

from __future__ import annotations

import torch

from genlab.models.precond import NULL_LABEL


def _per_example_mean(sq: torch.Tensor) -> torch.Tensor:
    sq = sq.to(torch.promote_types(sq.dtype, torch.float32))  # fp16/bf16 -> fp32, fp64 stays
    return sq.flatten(1).mean(1)  # (B, ...) -> (B,)


def _expand_like(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * (x.ndim - 1)))  # (B,) -> (B, 1, ..., 1)


def _noise_like(x: torch.Tensor, generator) -> torch.Tensor:
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def drop_labels(cond, p: float, generator) -> torch.Tensor | None:
    """Replace each class label by NULL_LABEL with probability p (CFG training); None stays."""
    if cond is None or p == 0:
        return cond
    drop = torch.rand(cond.shape, generator=generator, device=cond.device) < p
    return cond.masked_fill(drop, NULL_LABEL)


def _check_probability(name: str, p: float) -> None:
    if not 0 <= p < 1:
        raise ValueError(f"{name} must be in [0, 1), got {p}")


class NCSNLoss:
    """1/2 lambda(sigma) || s(x + sigma z, sigma) + z / sigma ||^2, sigma uniform over the ladder.

    Song & Ermon 2019: Eq. 5 (denoising score matching at one sigma, target -(x~ - x)/sigma^2)
    weighted by lambda(sigma) = sigma^2 as in Eq. 6 (`weighting="paper"`); one sigma index per
    example. `weighting="unit"` multiplies that by (sigma^2 + sigma_data^2) / sigma_data^2 =
    sigma^2 / c_out^2: for a score read off an EDM-preconditioned denoiser this gives every
    level unit weight on the network output F, as the EDM loss does (Karras et al. 2022, Eq. 8
    with Table 1's lambda). With the paper's weighting that F sees sigma_data^2 / (sigma^2 +
    sigma_data^2) of it: 1% at sigma = 5, where the garments' layout is decided.
    """

    def __init__(self, sigmas: torch.Tensor, weighting: str = "paper", sigma_data: float = 0.5):
        sigmas = torch.as_tensor(sigmas, dtype=torch.float64)
        if sigmas.ndim != 1 or len(sigmas) == 0 or (sigmas <= 0).any():
            raise ValueError("sigmas must be a non-empty 1-D sequence of positive floats")
        if weighting not in ("paper", "unit"):
            raise ValueError(f"weighting must be 'paper' or 'unit', got {weighting!r}")
        if sigma_data <= 0:
            raise ValueError(f"sigma_data must be > 0, got {sigma_data}")
        self.sigmas, self.weighting, self.sigma_data = sigmas, weighting, sigma_data

    def __call__(self, net, x, cond=None, generator=None) -> torch.Tensor:
        idx = torch.randint(len(self.sigmas), (len(x),), generator=generator, device=x.device)
        sigma = self.sigmas.to(x.device, x.dtype)[idx]  # (B,)
        z = _noise_like(x, generator)
        score = net(x + _expand_like(sigma, x) * z, sigma, cond)
        loss = 0.5 * _per_example_mean((_expand_like(sigma, x) * score + z) ** 2)  # Eqs. 5-6
        if self.weighting == "unit":
            loss = loss * (sigma**2 + self.sigma_data**2) / self.sigma_data**2  # sigma^2 / c_out^2
        return loss


class DDPMLoss:
    """L_simple = || eps - eps_theta(sqrt(a_bar_t) x + sqrt(1 - a_bar_t) eps, t) ||^2.

    Ho et al. 2020, Eq. 14 with t uniform on the 0-based indices 0..T-1. label_dropout > 0
    replaces labels by NULL_LABEL for classifier-free guidance training (Ho & Salimans 2022).
    """

    def __init__(self, alphas_cumprod: torch.Tensor, label_dropout: float = 0.0):
        _check_probability("label_dropout", label_dropout)
        self.alphas_cumprod = torch.as_tensor(alphas_cumprod, dtype=torch.float64)
        self.label_dropout = label_dropout

    def __call__(self, net, x, cond=None, generator=None) -> torch.Tensor:
        T = len(self.alphas_cumprod)
        t = torch.randint(T, (len(x),), generator=generator, device=x.device)
        a_bar = _expand_like(self.alphas_cumprod.to(x.device, x.dtype)[t], x)
        eps = _noise_like(x, generator)
        x_t = a_bar.sqrt() * x + (1 - a_bar).sqrt() * eps  # Eq. 4 reparameterised
        cond = drop_labels(cond, self.label_dropout, generator)
        return _per_example_mean((eps - net(x_t, t, cond)) ** 2)  # Eq. 14


class EDMLoss:
    """lambda(sigma) || D(x + n; sigma) - x ||^2 with ln sigma ~ N(P_mean, P_std^2).

    Karras et al. 2022, Table 1 / Eq. 8: lambda(sigma) = (sigma^2 + sigma_data^2) /
    (sigma sigma_data)^2, n ~ N(0, sigma^2 I). Labels are replaced by NULL_LABEL with
    probability label_dropout, which trains the unconditional branch of CFG.
    """

    def __init__(self, P_mean: float = -1.2, P_std: float = 1.2, sigma_data: float = 0.5,
                 label_dropout: float = 0.1):
        if P_std <= 0 or sigma_data <= 0:
            raise ValueError(f"P_std and sigma_data must be > 0, got {P_std}, {sigma_data}")
        _check_probability("label_dropout", label_dropout)
        self.P_mean, self.P_std, self.sigma_data = P_mean, P_std, sigma_data
        self.label_dropout = label_dropout

    def weight(self, sigma: torch.Tensor) -> torch.Tensor:
        """lambda(sigma) of Table 1; equals 1 / c_out(sigma)^2."""
        return (sigma**2 + self.sigma_data**2) / (sigma * self.sigma_data) ** 2

    def __call__(self, net, x, cond=None, generator=None) -> torch.Tensor:
        rnd_normal = torch.randn(len(x), generator=generator, device=x.device, dtype=x.dtype)
        sigma = (self.P_mean + self.P_std * rnd_normal).exp()  # (B,), Table 1 p_train
        n = _expand_like(sigma, x) * _noise_like(x, generator)
        cond = drop_labels(cond, self.label_dropout, generator)
        D_x = net(x + n, sigma, cond)
        return self.weight(sigma) * _per_example_mean((D_x - x) ** 2)  # Eq. 8

