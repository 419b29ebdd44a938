"""Adversarial objective: the non-saturating loss (Goodfellow et al. 2014, Sec. 3) or the hinge
loss (Lim & Ye 2017; Miyato et al. 2018, Eq. 16-17), with the R1 gradient penalty on real data
(Mescheder et al. 2018, Eq. 9), as ONE loss whose single backward pass gives both players
their gradients (a simultaneous update).

    loss = L_D(D(x), D(G(z).detach())) + L_G(D_frozen(G(z)))

G(z).detach() keeps L_D from reaching the generator; D_frozen is the discriminator evaluated
with detached parameters (torch.func.functional_call), so L_G reaches the generator through
D's exact function while giving D no gradient. The optimiser then steps both players, at
their own learning rates (two time-scale update rule, Heusel et al. 2017); n_critic is not
needed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

# ---------------------------------------------------------------------------------------------
# The two losses, per example: logits (B,) -> (B,).


def nonsaturating_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """-log sigmoid(D(x)) - log(1 - sigmoid(D(G(z)))): D's binary cross-entropy."""
    return F.softplus(-real) + F.softplus(fake)


def nonsaturating_g(fake: torch.Tensor) -> torch.Tensor:
    """-log sigmoid(D(G(z))): the generator maximises log D instead of minimising
    log(1 - D), whose gradient vanishes when D rejects the samples (Sec. 3)."""
    return F.softplus(-fake)


def hinge_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """max(0, 1 - D(x)) + max(0, 1 + D(G(z))) (Miyato et al. 2018, Eq. 16)."""
    return F.relu(1.0 - real) + F.relu(1.0 + fake)


def hinge_g(fake: torch.Tensor) -> torch.Tensor:
    """-D(G(z)) (Eq. 17)."""
    return -fake


# loss name -> (L_D(real logits, fake logits), L_G(fake logits))
LOSSES = {
    "nonsaturating": (nonsaturating_d, nonsaturating_g),
    "hinge": (hinge_d, hinge_g),
}


def _full(t: torch.Tensor) -> torch.Tensor:
    """t in at least float32 (bf16 autocast outputs are promoted; float64 stays float64)."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


def frozen_call(module: nn.Module, *args: torch.Tensor) -> torch.Tensor:
    """module(*args) with its parameters detached: gradients reach the inputs, not the
    parameters (buffers, such as spectral norm's power-iteration vectors, are its own)."""
    params = {name: p.detach() for name, p in module.named_parameters()}
    return functional_call(module, params, args)


def r1_penalty(real_logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """||grad_x D(x)||^2 per example, (B,), kept in the graph (create_graph) so the penalty
    trains D. `x` requires grad and produced `real_logits` (B,)."""
    (grad,) = torch.autograd.grad(real_logits.sum(), x, create_graph=True)
    return _full(grad).square().flatten(1).sum(1)


class AdversarialLoss:
    """(net: models.gan.GAN, x real (B, ...), cond, generator) -> per-example loss (B,).

    r1_gamma > 0 adds gamma / 2 ||grad_x D(x)||^2 on real data; with r1_every = N > 1 the
    penalty is applied every N-th step, multiplied by N (lazy regularisation, Karras et al.
    2020, Sec. 3.1): the same expected gradient at a fraction of the double-backward cost."""

    def __init__(self,
                 loss: str = "nonsaturating",   # a key of LOSSES
                 r1_gamma: float = 0.0,         # R1 weight gamma (0 = off)
                 r1_every: int = 1):            # lazy R1: every N-th step, times N
        assert loss in LOSSES, f"loss must be one of {list(LOSSES)}, got {loss!r}"
        assert r1_gamma >= 0 and r1_every >= 1, "need r1_gamma >= 0 and r1_every >= 1"
        self.d_loss, self.g_loss = LOSSES[loss]
        self.r1_gamma, self.r1_every = r1_gamma, r1_every
        self.step = 0

    def set_step(self, step: int) -> None:
        self.step = step

    def r1_now(self) -> bool:
        return self.r1_gamma > 0 and self.step % self.r1_every == 0

    def __call__(self, net, x: torch.Tensor, cond=None, generator=None) -> torch.Tensor:
        b, r1 = len(x), self.r1_now()
        z = net.latents(b, generator, x.device)  # (B, z_dim)
        fake = net.generator(z)  # like x
        x = x.detach().requires_grad_(r1)
        # One discriminator pass over real and (detached) fake examples.
        logits = _full(net.discriminator(torch.cat([x, fake.detach()])))  # (2B,)
        real_logits, fake_logits = logits[:b], logits[b:]
        loss = self.d_loss(real_logits, fake_logits)
        loss = loss + self.g_loss(_full(frozen_call(net.discriminator, fake)))
        if r1:
            loss = loss + self.r1_every * self.r1_gamma / 2 * r1_penalty(real_logits, x)
        return loss  # (B,)
