"""Thin wrappers that turn a backbone into a denoiser, eps-model or score model, and add CFG.

EDM preconditioning (Karras et al. 2022, Table 1), DDPM eps-parameterisation (Ho et al. 2020,
Eq. 11), NCSNv2 noise conditioning s(x, sigma) = F(x) / sigma (Song & Ermon 2020, Technique 3),
classifier-free guidance (Ho & Salimans 2022, Eq. 6).

Backbone interface: net(x, noise_labels (B,) float, class_labels (B,) int64 or None) -> like x,
where a class label of -1 means "no label" (the unconditional branch of CFG).
"""

from __future__ import annotations

import torch
from torch import nn

NULL_LABEL = -1  # the class label of the unconditional branch (CFG dropout, guidance)


def _per_example(value, x: torch.Tensor) -> torch.Tensor:
    """A float, 0-d or (B,) noise level -> a (B,) tensor in x's dtype and device."""
    value = torch.as_tensor(value, dtype=x.dtype, device=x.device)
    return value.expand(x.shape[0]) if value.ndim == 0 else value


def _expand_like(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * (x.ndim - 1)))  # (B,) -> (B, 1, ..., 1)


def edm_coefficients(sigma: torch.Tensor, sigma_data: float = 0.5):
    """(c_skip, c_out, c_in, c_noise) of Karras et al. 2022, Table 1 (the EDM column)."""
    total = sigma**2 + sigma_data**2
    c_skip = sigma_data**2 / total
    c_out = sigma * sigma_data / total.sqrt()
    c_in = 1 / total.sqrt()
    c_noise = sigma.log() / 4
    return c_skip, c_out, c_in, c_noise


class EDMPrecond(nn.Module):
    """D(x; sigma) = c_skip x + c_out F(c_in x; c_noise) (Karras et al. 2022, Eq. 7).

    The backbone receives noise_labels = c_noise = ln(sigma) / 4.
    """

    def __init__(self, net: nn.Module, sigma_data: float = 0.5):
        super().__init__()
        if sigma_data <= 0:
            raise ValueError(f"sigma_data must be > 0, got {sigma_data}")
        self.net, self.sigma_data = net, sigma_data

    def forward(self, x: torch.Tensor, sigma, class_labels=None) -> torch.Tensor:
        """x (B, ...) noisy data, sigma float or (B,) -> denoised (B, ...)."""
        sigma = _per_example(sigma, x)
        c_skip, c_out, c_in, c_noise = edm_coefficients(sigma, self.sigma_data)  # Table 1
        F_x = self.net(_expand_like(c_in, x) * x, c_noise, class_labels)
        return _expand_like(c_skip, x) * x + _expand_like(c_out, x) * F_x  # Eq. 7


class DDPMEpsModel(nn.Module):
    """eps_theta(x_t, t) = F(x_t; t) (Ho et al. 2020, Eq. 11 parameterisation).

    t are 0-based integer timesteps (B,) in [0, T-1]; the backbone receives
    noise_labels = noise_label_scale * t as floats (scale 1: the raw index, as in Ho et al.).
    """

    def __init__(self, net: nn.Module, noise_label_scale: float = 1.0):
        super().__init__()
        if noise_label_scale <= 0:
            raise ValueError(f"noise_label_scale must be > 0, got {noise_label_scale}")
        self.net, self.noise_label_scale = net, noise_label_scale

    def forward(self, x_t: torch.Tensor, t, class_labels=None) -> torch.Tensor:
        """x_t (B, ...), t int or (B,) int64 -> predicted noise (B, ...)."""
        t = _per_example(t, x_t)  # float copy of the timesteps
        return self.net(x_t, self.noise_label_scale * t, class_labels)


class NCSNScore(nn.Module):
    """s_theta(x, sigma) = F(x; log sigma) / sigma.

    Song & Ermon 2020 (NCSNv2), Technique 3: the score norm scales like 1/sigma, so dividing
    the output by sigma lets F work at unit scale. The backbone receives noise_labels =
    log(sigma) as well (NCSNv2 drops the conditioning; keeping it costs nothing).
    NCSN's other parametrisation here is ScoreFromDenoiser(EDMPrecond(...)) (method
    `parametrization: denoiser`).
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, sigma, class_labels=None) -> torch.Tensor:
        """x (B, ...), sigma float or (B,) -> score (B, ...)."""
        sigma = _per_example(sigma, x)
        return self.net(x, sigma.log(), class_labels) / _expand_like(sigma, x)


class DenoiserFromScore(nn.Module):
    """D(x; sigma) = x + sigma^2 s(x, sigma): Tweedie's formula for x = y + sigma n."""

    def __init__(self, score: nn.Module):
        super().__init__()
        self.score = score

    def forward(self, x: torch.Tensor, sigma, class_labels=None) -> torch.Tensor:
        sigma = _per_example(sigma, x)
        return x + _expand_like(sigma, x) ** 2 * self.score(x, sigma, class_labels)


class ScoreFromDenoiser(nn.Module):
    """s(x, sigma) = (D(x; sigma) - x) / sigma^2 (Karras et al. 2022, Eq. 3)."""

    def __init__(self, denoiser: nn.Module):
        super().__init__()
        self.denoiser = denoiser

    def forward(self, x: torch.Tensor, sigma, class_labels=None) -> torch.Tensor:
        sigma = _per_example(sigma, x)
        return (self.denoiser(x, sigma, class_labels) - x) / _expand_like(sigma, x) ** 2


class ClassifierFreeGuidance(nn.Module):
    """D_w = D_cond + w (D_cond - D_uncond) (Ho & Salimans 2022, Eq. 6).

    Convention: w = 0 is the plain conditional model, guidance grows with w, and w = -1 gives
    the unconditional model (EDM-style scales are 1 + w). Works for any model called as
    model(x, noise, class_labels): denoisers, eps-models, score models. Both branches run in
    one batched call: labels and NULL_LABEL concatenated. class_labels=None -> unconditional.
    """

    def __init__(self, model: nn.Module, w: float):
        super().__init__()
        self.model, self.w = model, float(w)

    def forward(self, x: torch.Tensor, noise, class_labels=None) -> torch.Tensor:
        if class_labels is None:
            return self.model(x, noise, None)
        if self.w == 0:  # D_cond exactly: one conditional call, no unconditional branch
            return self.model(x, noise, class_labels)
        noise = torch.as_tensor(noise, device=x.device)  # keeps int timesteps int
        noise = noise.expand(x.shape[0]) if noise.ndim == 0 else noise
        null = torch.full_like(class_labels, NULL_LABEL)
        both = self.model(torch.cat([x, x]), torch.cat([noise, noise]),
                          torch.cat([class_labels, null]))  # (2B, ...)
        cond, uncond = both.chunk(2)
        return uncond.lerp(cond, 1 + self.w)  # uncond + (1 + w)(cond - uncond), Eq. 6
