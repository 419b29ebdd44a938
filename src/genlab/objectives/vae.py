"""The VAE objective: the negative ELBO (Kingma & Welling 2014) with the reparameterisation
trick, a KL weight beta (Higgins et al. 2017) reached by a linear warm-up (Bowman et al. 2016),
free bits per latent dimension (Kingma et al. 2016), and the log importance weights of the
IWAE bound (Burda et al. 2016).

The net is a genlab.models.vae.VAE: encode(x) -> (mu, logvar) and log_likelihood(x, z)."""

from __future__ import annotations

import math

import torch

LOG_2PI = math.log(2 * math.pi)


def _at_least_float32(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """bf16 encoder outputs (autocast on CUDA) promoted to float32; float64 stays float64."""
    return tuple(t.to(torch.promote_types(t.dtype, torch.float32)) for t in tensors)


def reparameterise(mu: torch.Tensor, logvar: torch.Tensor,
                   generator: torch.Generator | None) -> torch.Tensor:
    """z = mu + sigma * eps, eps ~ N(0, I): a draw of q(z | x) differentiable in (mu, logvar)
    (Kingma & Welling 2014, Sec. 2.4)."""
    eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + torch.exp(0.5 * logvar) * eps


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag e^logvar) || N(0, I)) per latent dimension, (B, L) (Kingma & Welling
    2014, Appendix B): -1/2 (1 + logvar - mu^2 - e^logvar)."""
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp())


def free_bits_kl(kl: torch.Tensor, free_bits: float) -> torch.Tensor:
    """Per-example KL term (B,) whose batch mean is sum_j max(lambda, mean_b KL_bj) (Kingma et
    al. 2016, Eq. 15): a dimension whose batch-mean KL is under lambda nats counts as lambda
    and gets no gradient. kl: (B, L); free_bits = 0 gives the plain sum."""
    if free_bits <= 0:
        return kl.sum(1)
    above = (kl.mean(0) > free_bits).detach()  # (L,)
    return torch.where(above, kl, torch.full_like(kl, free_bits)).sum(1)


class ELBOLoss:
    """-ELBO = -E_q[log p(x | z)] + w KL(q(z | x) || p(z)) per example (B,), one z per example.

    The KL weight w ramps linearly from 0 at step 0 to beta at `warmup_steps` (0: beta from
    the start); the loop calls set_step(step) before each step, so a resumed run continues the
    ramp where it stopped. Free bits: see free_bits_kl."""

    def __init__(self,
                 beta: float = 1.0,         # KL weight after the warm-up
                 warmup_steps: int = 0,     # steps of the linear 0 -> beta ramp
                 free_bits: float = 0.0):   # nats per latent dimension (0: off)
        assert beta >= 0 and warmup_steps >= 0 and free_bits >= 0, (beta, warmup_steps, free_bits)
        self.beta, self.warmup_steps, self.free_bits = beta, warmup_steps, free_bits
        self.step = 0

    def set_step(self, step: int) -> None:
        self.step = step

    @property
    def kl_weight(self) -> float:
        if self.warmup_steps == 0:
            return self.beta
        return self.beta * min(1.0, self.step / self.warmup_steps)

    def __call__(self, net, x, cond=None, generator=None) -> torch.Tensor:
        mu, logvar = _at_least_float32(*net.encode(x))  # (B, L) each
        z = reparameterise(mu, logvar, generator)
        log_px_z = net.log_likelihood(x, z)  # (B,)
        kl = free_bits_kl(gaussian_kl(mu, logvar), self.free_bits)
        return -log_px_z + self.kl_weight * kl


def log_importance_weights(net, x: torch.Tensor, k: int,
                           generator: torch.Generator | None) -> torch.Tensor:
    """log w_i = log p(x, z_i) - log q(z_i | x) for k draws z_i ~ q(z | x) per example:
    (k, B) float64 (the summands of Burda et al. 2016, Eq. 8). The decoder sees all k * B
    latents in one batch; the Gaussian terms are summed in float64."""
    b = len(x)
    mu, logvar = _at_least_float32(*net.encode(x))  # (B, L) each
    eps = torch.randn((k, *mu.shape), generator=generator, device=mu.device, dtype=mu.dtype)
    z = mu + torch.exp(0.5 * logvar) * eps  # (k, B, L)
    x_rep = x.unsqueeze(0).expand(k, *x.shape).reshape(k * b, *x.shape[1:])
    log_px_z = net.log_likelihood(x_rep, z.reshape(k * b, -1)).view(k, b).double()
    z64, eps64, logvar64 = z.double(), eps.double(), logvar.double()
    log_pz = -0.5 * (z64.pow(2) + LOG_2PI).sum(-1)  # (k, B)
    log_qz = -0.5 * (eps64.pow(2) + LOG_2PI + logvar64).sum(-1)  # N(z; mu, sigma^2) via eps
    return log_px_z + log_pz - log_qz
