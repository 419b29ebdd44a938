"""Likelihood numbers for any model family: bits per dimension with the image-scaling
convention, the ELBO and importance-weighted bound from log importance weights (Burda et al.
2016, Eq. 8), and active latent units (Burda et al. 2016, Sec. 5.2).

Bits/dim convention. Fashion-MNIST pixels take 256 levels k in 0..255; genlab feeds models
x = k / 127.5 - 1, so adjacent levels are `IMAGE_LEVEL_WIDTH` = 1 / 127.5 apart. bits/dim is
-log2 P(k) / D for the discrete image: exactly what a model with a pmf over the 256 levels
(a discretised logistic) reports, and what a continuous density reports after uniform
dequantisation on the level scale, v = k + u with u ~ U[0, 1) (Theis et al. 2016; Dinh et al.
2017): -log p_v(v) = -log p_x(x) - D log(level width), `level_nll` below. A density over
x = (k + u) / 256 in [0, 1) has level width 1 / 256 (the flows papers' "+ D log 256")."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from genlab.concepts.importance import iwae_bound

IMAGE_LEVEL_WIDTH = 1.0 / 127.5  # genlab's images: x = k / 127.5 - 1 (data.processed)


def bits_per_dim(nll_nats_per_example: float | torch.Tensor, dims: int) -> float | torch.Tensor:
    """NLL in nats of one example of `dims` dimensions, on the 256-level scale (a pmf over the
    levels, or a density of the dequantised levels: see `level_nll`) -> bits per dimension."""
    return nll_nats_per_example / (dims * math.log(2))


def level_nll(nll_nats_per_example: float | torch.Tensor, dims: int,
              level_width: float = IMAGE_LEVEL_WIDTH) -> float | torch.Tensor:
    """NLL of a continuous density over data whose adjacent levels are `level_width` apart ->
    NLL of the same density rescaled to unit level spacing (the dequantised levels v = k + u):
    -log p_v = -log p_x + dims log(1 / level_width). Then `bits_per_dim` applies."""
    return nll_nats_per_example + dims * math.log(1.0 / level_width)


@torch.no_grad()
def importance_weighted_bounds(log_weights: Callable[[torch.Tensor, int], torch.Tensor],
                               x: torch.Tensor, k: int, batch: int = 2000
                               ) -> tuple[torch.Tensor, torch.Tensor]:
    """(ELBO, IWAE bound L_k) per example, (N,) float64 each, from `log_weights(x_chunk, k_c)`
    -> (k_c, m) float64 log p(x, z) - log q(z | x) with z ~ q.

    About `batch` (example, z) pairs go through the model per call: m = batch // k examples
    with all k draws, or one example in chunks of `batch` draws when k > batch. The ELBO is
    the mean of the k log weights (an unbiased estimate of it from k draws), L_k their
    log-mean-exp in float64."""
    per_call = max(1, batch // k)
    elbo, iwae = [], []
    for xc in x.split(per_call):
        log_w = torch.cat([log_weights(xc, min(batch, k - i)) for i in range(0, k, batch)])
        log_w = log_w.double().cpu()  # (k, m)
        elbo.append(log_w.mean(0))
        iwae.append(iwae_bound(log_w))
    return torch.cat(elbo), torch.cat(iwae)


def active_units(posterior_means: torch.Tensor,
                 threshold: float = 0.01) -> tuple[int, torch.Tensor]:
    """Latent dimensions u with Cov_x(E_q(u|x)[u]) > threshold (Burda et al. 2016, Sec. 5.2),
    from the posterior means (N, L) of N examples: (count, the variances (L,))."""
    var = posterior_means.double().var(0)
    return int((var > threshold).sum()), var
