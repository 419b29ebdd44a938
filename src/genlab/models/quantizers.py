"""Quantisers of a tokenizer's latent grid: nearest-code vector quantisation with the
straight-through estimator and commitment loss (van den Oord et al. 2017, VQ-VAE), EMA codebook
updates with Laplace smoothing (Razavi et al. 2019; van den Oord et al. 2017, Appendix A.1),
dead-code restarts from the batch's encoder outputs (Dhariwal et al. 2020, Jukebox), an optional
l2-normalised low-dimensional code lookup (Yu et al. 2022, ViT-VQGAN), and finite scalar
quantisation (Mentzer et al. 2023, FSQ); codebook usage and perplexity.

Conventions: a quantiser maps an encoder output z (B, D, h, w) to a QuantOut whose z_q has the
same shape (the straight-through value: forward = the quantised latent, backward = identity
to z), the code indices (B, h, w) long in [0, codes), and the quantiser's own loss per example
(B,). `embed(indices)` is the decoder-side latent of indices: (B, h, w) -> (B, D, h, w).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


class QuantOut(NamedTuple):
    z_q: torch.Tensor  # (B, D, h, w): quantised latent, gradients pass straight through to z
    indices: torch.Tensor  # (B, h, w) long
    loss: torch.Tensor  # (B,): codebook + commitment terms (0 for FSQ)


def straight_through(z: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """q in the forward pass, the identity to z in the backward pass: z + sg[q - z]
    (van den Oord et al. 2017, Sec. 3.1: the decoder's gradient is copied to the encoder)."""
    return z + (q - z).detach()


def _per_example_mean(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).mean(1)  # (B,)


def _to_rows(z: torch.Tensor) -> torch.Tensor:
    """(B, D, h, w) -> (B * h * w, D): one row per grid position."""
    return z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])


def _to_grid(rows: torch.Tensor, b: int, h: int, w: int) -> torch.Tensor:
    """(B * h * w, D) -> (B, D, h, w)."""
    return rows.view(b, h, w, -1).permute(0, 3, 1, 2)


# ---------------------------------------------------------------------------------------------
# Vector quantisation.


class VectorQuantizer(nn.Module):
    """Nearest-code VQ over a codebook of `codes` vectors.

    Lookup space: the encoder's D channels, or with lookup_dim > 0 a 1x1-conv projection to
    lookup_dim channels (and back out to D after the lookup), and with l2 both the projected
    latent and the codes l2-normalised, so that the nearest code is the one of largest cosine
    (ViT-VQGAN, Yu et al. 2022, Sec. 3.2: "factorized and l2-normalized codes").

    Loss per example, means over the latent's elements:
        ema=False: ||sg[u] - e||^2 + beta ||u - sg[e]||^2      (van den Oord et al. 2017, Eq. 3)
        ema=True:  beta ||u - sg[e]||^2; the codebook follows EMAs of the assigned vectors.
    EMA update per training step (Appendix A.1, Eq. 6-8), counts n_i and sums s_i of the rows
    assigned to code i:
        N_i <- gamma N_i + (1 - gamma) n_i,   m_i <- gamma m_i + (1 - gamma) s_i,
        e_i = m_i / N~_i,   N~_i = (N_i + eps) / (N + K eps) * N   (Laplace smoothing, N = sum N_i)
    Dead-code restart (Jukebox, Dhariwal et al. 2020, Sec. 2.2): before each training lookup, a
    code whose EMA count N_i is below `restart_below` is moved onto a random row of the batch
    (its count set to that threshold, so unless the batches use it, it is restarted again).
    The EMA counts are kept in both modes. The first training batch also initialises the
    codebook on random rows of that batch (data-dependent: no code starts far from the data).
    """

    def __init__(self,
                 dim: int,                    # D, channels of the encoder output
                 codes: int = 512,            # K, codebook size
                 beta: float = 0.25,          # commitment weight (the paper's 0.25)
                 ema: bool = True,            # EMA codebook (else a parameter with its loss)
                 decay: float = 0.99,         # gamma of the EMA counts and sums
                 eps: float = 1e-5,           # Laplace smoothing of the counts
                 restart_below: float = 1.0,  # dead-code restart threshold on N_i (0: off)
                 lookup_dim: int = 0,         # 0: look up in D; else project to this many
                 l2: bool = False):           # l2-normalise latent and codes before lookup
        super().__init__()
        assert codes >= 2 and dim >= 1 and beta >= 0 and 0 <= decay < 1, (codes, dim, beta)
        assert eps > 0 and restart_below >= 0 and lookup_dim >= 0, (eps, restart_below)
        self.dim, self.codes, self.beta, self.ema = dim, codes, beta, ema
        self.decay, self.eps, self.restart_below, self.l2 = decay, eps, restart_below, l2
        d = lookup_dim or dim
        self.lookup_dim = d
        self.proj_in = nn.Conv2d(dim, d, 1) if lookup_dim else nn.Identity()
        self.proj_out = nn.Conv2d(d, dim, 1) if lookup_dim else nn.Identity()
        init = torch.randn(codes, d) / math.sqrt(d)
        if ema:
            self.register_buffer("codebook", init)
            self.register_buffer("ema_sum", init.clone())  # m_i
        else:
            self.codebook = nn.Parameter(init)
        self.register_buffer("ema_count", torch.ones(codes))  # N_i
        self.register_buffer("initialised", torch.tensor(False))

    # -- lookup -----------------------------------------------------------------------------

    def normed_codebook(self) -> torch.Tensor:
        e = self.codebook.float()
        return F.normalize(e, dim=1) if self.l2 else e  # (K, d)

    def project(self, z: torch.Tensor) -> torch.Tensor:
        """Encoder output (B, D, h, w) -> lookup-space latent u (B, d, h, w), float32."""
        u = self.proj_in(z).float()
        return F.normalize(u, dim=1) if self.l2 else u

    def nearest(self, rows: torch.Tensor) -> torch.Tensor:
        """Nearest code of each row: (N, d) -> (N,), argmin ||u||^2 - 2 u.e + ||e||^2."""
        e = self.normed_codebook()
        dist = e.square().sum(1)[None, :] - 2 * rows @ e.t()  # (N, K); ||u||^2 is constant
        return dist.argmin(1)

    def embed(self, indices: torch.Tensor) -> torch.Tensor:
        """Decoder-side latent of code indices: (B, h, w) -> (B, D, h, w)."""
        b, h, w = indices.shape
        e = self.normed_codebook()[indices.reshape(-1)]  # (B h w, d)
        return self.proj_out(_to_grid(e, b, h, w))

    def forward(self, z: torch.Tensor, generator: torch.Generator | None = None) -> QuantOut:
        b, _, h, w = z.shape
        u = self.project(z)  # (B, d, h, w)
        rows = _to_rows(u)  # (B h w, d)
        if self.training:  # codebook changes before the lookup: it sees this batch
            self._maybe_initialise(rows.detach(), generator)
            if self.restart_below > 0:
                self._restart(rows.detach(), generator)
        idx = self.nearest(rows.detach())  # (B h w,)
        e = _to_grid(self.normed_codebook()[idx], b, h, w)  # (B, d, h, w)
        loss = self.beta * _per_example_mean((u - e.detach()).square())  # commitment
        if not self.ema:
            loss = loss + _per_example_mean((u.detach() - e).square())  # codebook term
        if self.training:
            self._update(rows.detach(), idx)
        z_q = self.proj_out(straight_through(u, e).to(z.dtype))  # (B, D, h, w)
        return QuantOut(z_q, idx.view(b, h, w), loss)

    # -- codebook maintenance (training only, no gradients) ----------------------------------

    @torch.no_grad()
    def _maybe_initialise(self, rows: torch.Tensor, generator: torch.Generator | None) -> None:
        if bool(self.initialised):
            return
        pick = _random_rows(len(rows), self.codes, generator, rows.device)
        self.codebook.data.copy_(rows[pick].detach())
        if self.ema:
            self.ema_sum.copy_(self.codebook)  # m_i = e_i with N_i = 1
        self.ema_count.fill_(1.0)
        self.initialised.fill_(True)

    @torch.no_grad()
    def _update(self, rows: torch.Tensor, idx: torch.Tensor) -> None:
        """One EMA step of the counts (and, with ema, the sums and codes) after a lookup."""
        g = self.decay
        n = torch.bincount(idx, minlength=self.codes).to(rows.dtype)  # (K,) n_i
        self.ema_count.mul_(g).add_(n, alpha=1 - g)  # Eq. 6
        if self.ema:
            s = torch.zeros_like(self.ema_sum).index_add_(0, idx, rows)  # (K, d) s_i
            self.ema_sum.mul_(g).add_(s, alpha=1 - g)  # Eq. 7
            total = self.ema_count.sum()
            smoothed = (self.ema_count + self.eps) / (total + self.codes * self.eps) * total
            self.codebook.copy_(self.ema_sum / smoothed[:, None])  # Eq. 8

    @torch.no_grad()
    def _restart(self, rows: torch.Tensor, generator: torch.Generator | None) -> None:
        """Codes with N_i < restart_below moved onto random rows of this batch (before the
        lookup, so each can win the row it was moved to)."""
        dead = (self.ema_count < self.restart_below).nonzero().squeeze(1)  # (n_dead,)
        if len(dead) == 0:
            return
        pick = _random_rows(len(rows), len(dead), generator, rows.device)
        self.codebook.data[dead] = rows[pick]
        self.ema_count[dead] = self.restart_below
        if self.ema:
            self.ema_sum[dead] = rows[pick] * self.restart_below


def _random_rows(n: int, k: int, generator: torch.Generator | None, device) -> torch.Tensor:
    """k row indices in [0, n): without replacement when k <= n."""
    gen_device = generator.device if generator is not None else device
    if k <= n:
        return torch.randperm(n, generator=generator, device=gen_device)[:k].to(device)
    return torch.randint(n, (k,), generator=generator, device=gen_device).to(device)


# ---------------------------------------------------------------------------------------------
# Finite scalar quantisation.


class FSQ(nn.Module):
    """Finite scalar quantisation (Mentzer et al. 2023): each of the len(levels) channels is
    bounded and rounded to levels[c] values; the codebook is the product grid, implicit, with
    prod(levels) codes. No codebook loss, no codebook to collapse.

    Bounding (Sec. 3 and Appendix A): f(z) = tanh(z + shift) * half_l - offset, with
    half_l = (L - 1)(1 + 1e-3) / 2, offset = 1/2 for even L (else 0), shift = atanh(offset /
    half_l): round(f(z)) then takes exactly L integer values, {-L/2, ..., L/2 - 1} for even L,
    {-(L-1)/2, ..., (L-1)/2} for odd L. The rounded values are divided by L // 2, so the
    quantised latent lies in [-1, 1]. Rounding passes gradients straight through.

    Code index: the mixed-radix number of the per-channel digits k_c = zhat_c * (L_c // 2) +
    L_c // 2 in {0, ..., L_c - 1}: index = sum_c k_c prod_{c' < c} L_c', a bijection between
    the grid and [0, prod(levels)).
    """

    def __init__(self, levels: tuple[int, ...] = (8, 8, 8)):  # values per channel, each >= 2
        super().__init__()
        assert len(levels) >= 1 and all(int(v) >= 2 for v in levels), levels
        self.levels = tuple(int(v) for v in levels)
        self.dim = len(self.levels)
        self.codes = math.prod(self.levels)
        lv = torch.tensor(self.levels, dtype=torch.float64)
        basis = torch.cumprod(torch.tensor((1, *self.levels[:-1])), 0)
        self.register_buffer("_levels", lv.float(), persistent=False)
        self.register_buffer("_half_width", (lv // 2).float(), persistent=False)
        self.register_buffer("_basis", basis, persistent=False)

    def bound(self, z: torch.Tensor) -> torch.Tensor:
        """z (..., dim) -> f(z) (..., dim), rounding to exactly levels[c] integers."""
        lv = self._levels.double()
        half_l = (lv - 1) * (1 + 1e-3) / 2
        offset = torch.where(lv % 2 == 0, 0.5, 0.0)
        shift = torch.atanh(offset / half_l)
        return torch.tanh(z + shift.to(z.dtype)) * half_l.to(z.dtype) - offset.to(z.dtype)

    def quantize(self, z: torch.Tensor) -> torch.Tensor:
        """z (..., dim) -> zhat (..., dim) in [-1, 1], round with the straight-through gradient."""
        b = self.bound(z)
        return straight_through(b, b.round()) / self._half_width.to(z.dtype)

    def codes_to_indices(self, zhat: torch.Tensor) -> torch.Tensor:
        """zhat (..., dim) on the grid -> index (...,) long."""
        digits = (zhat * self._half_width + self._half_width).round().long()
        return (digits * self._basis).sum(-1)

    def indices_to_codes(self, indices: torch.Tensor) -> torch.Tensor:
        """index (...,) -> zhat (..., dim) in [-1, 1]."""
        digits = (indices.long()[..., None] // self._basis) % self._levels.long()
        return (digits.float() - self._half_width) / self._half_width

    def embed(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, h, w) -> (B, dim, h, w)."""
        return self.indices_to_codes(indices).permute(0, 3, 1, 2)

    def forward(self, z: torch.Tensor, generator: torch.Generator | None = None) -> QuantOut:
        zl = z.float().permute(0, 2, 3, 1)  # (B, h, w, dim)
        zhat = self.quantize(zl)
        idx = self.codes_to_indices(zhat.detach())  # (B, h, w)
        loss = torch.zeros(len(z), device=z.device)
        return QuantOut(zhat.permute(0, 3, 1, 2).to(z.dtype), idx, loss)


QUANTIZERS = {"vq": VectorQuantizer, "fsq": FSQ}


# ---------------------------------------------------------------------------------------------
# Codebook statistics.


def code_counts(indices: torch.Tensor, codes: int) -> torch.Tensor:
    """How often each code occurs in `indices` (any shape): (codes,) long."""
    return torch.bincount(indices.reshape(-1).long(), minlength=codes)


def code_usage(indices: torch.Tensor, codes: int) -> float:
    """Fraction of the codebook used at least once in `indices`, in [0, 1]."""
    return (code_counts(indices, codes) > 0).float().mean().item()


def perplexity(indices: torch.Tensor, codes: int) -> float:
    """exp of the entropy (nats) of the codes' empirical frequencies: the number of equally
    used codes with the same entropy (codes when all are used equally, 1 for one code)."""
    p = code_counts(indices, codes).double()
    p = p[p > 0] / p.sum()
    return math.exp(-(p * p.log()).sum().item())
