"""Tokenizer objectives: the VQ-VAE loss (van den Oord et al. 2017, Eq. 3: reconstruction +
the quantiser's codebook / commitment terms) and the VQ-GAN loss (Esser et al. 2021, Eq. 4-7:
plus a patch discriminator's hinge loss, weighted by the adaptive weight
lambda = ||grad_{G_L} L_rec|| / (||grad_{G_L} L_GAN|| + delta) at the decoder's last layer G_L,
switched on after a warm-up).

The net is a genlab.models.vqvae.Tokenizer: reconstruct(x, generator) -> (x_hat, QuantOut),
decoder.last (the last layer), discriminator (VQ-GAN only).

Perceptual loss: VQ-GAN adds LPIPS (Zhang et al. 2018) to the reconstruction term ("perceptual
loss" in Esser et al. 2021, Sec. 3.1, weight 1). No pretrained perceptual network can be
downloaded here, and the FD evaluator must not be used as one (it would bias every FD), so the
family builds these losses without it. A user with LPIPS weights passes the network as
`perceptual`: any callable (x_hat, x) -> (B,) or (B, 1, 1, 1) distances on images in [-1, 1],
e.g. `lambda a, b: lpips_vgg(a, b)` of the `lpips` package, with `perceptual_weight=1.0`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from genlab.objectives.gan import frozen_call, hinge_d, hinge_g

RECON = ("mse", "l1")


def reconstruction_error(x_hat: torch.Tensor, x: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """Per-example mean squared (mse) or absolute (l1) error over pixels: (B,)."""
    diff = x_hat.float() - x.float()
    err = diff.square() if kind == "mse" else diff.abs()
    return err.flatten(1).mean(1)


class VQLoss:
    """L = L_rec(x_hat, x) [+ w_p P(x_hat, x)] + the quantiser's loss, per example (B,)."""

    def __init__(self,
                 recon: str = "mse",                      # mse | l1
                 perceptual: Callable | None = None,      # (x_hat, x) -> distances, or None
                 perceptual_weight: float = 1.0):         # its weight when given
        assert recon in RECON, f"recon must be one of {RECON}, got {recon!r}"
        self.recon, self.perceptual, self.perceptual_weight = recon, perceptual, perceptual_weight

    def rec_loss(self, x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction term L_rec per example (B,)."""
        loss = reconstruction_error(x_hat, x, self.recon)
        if self.perceptual is not None:
            loss = loss + self.perceptual_weight * self.perceptual(x_hat, x).float().reshape(-1)
        return loss

    def __call__(self, net, x, cond=None, generator=None) -> torch.Tensor:
        x_hat, q = net.reconstruct(x, generator)
        return self.rec_loss(x_hat, x) + q.loss  # (B,)


def adaptive_weight(rec: torch.Tensor, gan: torch.Tensor, last: torch.Tensor,
                    delta: float = 1e-4, max_weight: float = 1e4) -> torch.Tensor:
    """lambda = ||grad_last rec|| / (||grad_last gan|| + delta) (Esser et al. 2021, Eq. 7), for
    scalar losses rec and gan and the last layer's weight `last`; detached, clamped to
    [0, max_weight] as in the authors' code."""
    (g_rec,) = torch.autograd.grad(rec, last, retain_graph=True)
    (g_gan,) = torch.autograd.grad(gan, last, retain_graph=True)
    lam = g_rec.norm() / (g_gan.norm() + delta)
    return lam.clamp(0.0, max_weight).detach()


class VQGANLoss(VQLoss):
    """VQ-GAN's loss per example (B,), one simultaneous update of both players:

        L = L_rec + L_VQ + a * lambda * L_G(x_hat) + a * L_D(x, sg[x_hat])

    with hinge losses on patch logits (the mean over patches per example), L_G through the
    discriminator's detached parameters (objectives.gan.frozen_call) so it trains only the
    tokenizer, L_D on the detached reconstruction so it trains only the discriminator, the
    adaptive weight lambda (adaptive_weight, at the decoder's last conv) and a = `weight` from
    step `start` on, 0 before (Esser et al.'s disc_start: the autoencoder first learns to
    reconstruct; the discriminator is neither trained nor used until then). The loop calls
    set_step(step) before each step."""

    def __init__(self,
                 weight: float = 0.1,                     # a, the GAN term's factor
                 start: int = 0,                          # first step with the GAN terms
                 delta: float = 1e-4,                     # delta of the adaptive weight
                 recon: str = "mse",                      # mse | l1
                 perceptual: Callable | None = None,      # see the module docstring
                 perceptual_weight: float = 1.0):
        super().__init__(recon, perceptual, perceptual_weight)
        assert weight >= 0 and start >= 0 and delta > 0, (weight, start, delta)
        self.weight, self.start, self.delta = weight, start, delta
        self.step = 0
        self.last_lambda = torch.zeros(())  # the last step's lambda (a tensor: no host sync)

    def set_step(self, step: int) -> None:
        self.step = step

    def __call__(self, net, x, cond=None, generator=None) -> torch.Tensor:
        x_hat, q = net.reconstruct(x, generator)
        rec = self.rec_loss(x_hat, x)  # (B,)
        loss = rec + q.loss
        if self.step < self.start or self.weight == 0:
            return loss
        disc = net.discriminator
        real, fake = disc(torch.cat([x, x_hat.detach()])).float().chunk(2)  # (B, h, w) each
        d_loss = hinge_d(real, fake).flatten(1).mean(1)  # (B,)
        g_loss = hinge_g(frozen_call(disc, x_hat).float()).flatten(1).mean(1)  # (B,)
        if torch.is_grad_enabled():
            lam = adaptive_weight(rec.mean(), g_loss.mean(), net.decoder.last.weight, self.delta)
        else:  # no graph to differentiate (a no_grad evaluation of the loss): weight 1
            lam = torch.ones((), device=x.device)
        self.last_lambda = lam
        return loss + self.weight * (lam * g_loss + d_loss)
