"""Causal multi-head self-attention for decoder-only transformers (Vaswani et al. 2017, Eq. 1;
GPT, Radford et al. 2018): genlab.nn.attention.SelfAttention's weights and head split, plus
rotary positions (Su et al. 2021), an optional token shift of the input, and a key/value cache
for incremental decoding.

Token shift (RWKV's, Peng et al. 2023; a one-step form of Olsson et al. 2022's smeared keys and
of the short convolutions of H3 / Based): the attention's input at position t is mixed
channel-wise with the input at t - 1, x'_t = x_t + mu * (x_{t-1} - x_t), mu (D,) learned. A key
then carries its own token and the one before it, so "find the earlier k and read what followed
it" (an induction head, the mechanism of copy and associative recall) needs one attention
layer instead of two that must co-adapt; trained from scratch the plain two-layer form sits on
a long plateau first (docs/results.md, section 1d). Long-range retrieval is still attention's.

It subclasses SelfAttention (same qkv / proj layout, same checks) rather than duplicating it;
only forward differs, because the shared forward has no place to rotate q and k between the
head split and the attention, nor to append to cached keys and values."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from genlab.nn.attention import SelfAttention
from genlab.nn.rotary import apply_rope


class KVCache:
    """Keys and values of the positions decoded so far, one (k, v) pair per layer, each
    (B, nh, T_past, hs). `length` is the number of positions held."""

    def __init__(self, layers: int):
        self.k: list[torch.Tensor | None] = [None] * layers
        self.v: list[torch.Tensor | None] = [None] * layers
        self.last: list[torch.Tensor | None] = [None] * layers  # token shift: input at t - 1

    @property
    def length(self) -> int:
        """Positions held (read before a forward pass: each layer extends its own entry)."""
        return self.held(0)

    def held(self, layer: int) -> int:
        return 0 if self.k[layer] is None else self.k[layer].shape[2]

    def extend(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        """Append this step's k, v (B, nh, T_new, hs); return all keys and values so far."""
        if self.k[layer] is not None:
            k = torch.cat([self.k[layer], k], dim=2)  # (B, nh, T_past + T_new, hs)
            v = torch.cat([self.v[layer], v], dim=2)
        self.k[layer], self.v[layer] = k, v
        return k, v


class CausalSelfAttention(SelfAttention):
    """x (B, T, D) -> proj(MHA(x)) (B, T, D), position t attending to positions <= t.

    rope: (T, hs/2) rotation angles of these T positions (None: no rotation, e.g. learned
    absolute positions added to the input); cache + layer: decode against earlier positions;
    bias: an additive score mask (nh, T, past + T) that already holds the causal -inf (ALiBi),
    used instead of the built-in triangle."""

    def __init__(self,
                 dim: int,                    # model width D
                 heads: int = 1,              # attention heads; must divide dim
                 dropout: float = 0.0,        # dropout on attention weights, training only
                 token_shift: bool = False):  # mix each input with the one before it
        super().__init__(dim, heads, causal=True, dropout=dropout)
        # mu starts as a ramp over the channels (RWKV's init): from all "this token" to all
        # "the previous token", so q, k and v see both from the first step.
        self.shift_mix = nn.Parameter(torch.linspace(0.0, 1.0, dim)) if token_shift else None

    def shift(self, x: torch.Tensor, cache: KVCache | None, layer: int) -> torch.Tensor:
        """x (B, T, D) -> x + mu * (x shifted one position later - x); position 0 of a fresh
        sequence mixes with zeros, a cached decode with the last input it saw."""
        before = cache.last[layer] if cache is not None else None
        if before is None:
            before = x.new_zeros(x.shape[0], 1, x.shape[2])  # (B, 1, D)
        if cache is not None:
            cache.last[layer] = x[:, -1:]
        prev = torch.cat([before, x[:, :-1]], dim=1)  # (B, T, D): x_{t-1}
        return x + self.shift_mix * (prev - x)

    def forward(self, x: torch.Tensor, rope: torch.Tensor | None = None,
                cache: KVCache | None = None, layer: int = 0,
                bias: torch.Tensor | None = None) -> torch.Tensor:
        b, t, d = x.shape
        if self.shift_mix is not None:
            x = self.shift(x, cache, layer)
        qkv = self.qkv(x).reshape(b, t, 3, self.heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, nh, T, hs)
        if rope is not None:
            q, k = apply_rope(q, rope), apply_rope(k, rope)
        past = 0
        if cache is not None:
            past = cache.held(layer)
            k, v = cache.extend(layer, k, v)  # (B, nh, past + T, hs)
        p = self.dropout if self.training else 0.0
        if bias is not None:  # an additive mask that is causal itself (ALiBi): (nh, T, past + T)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype),
                                                 dropout_p=p)
        elif past == 0:  # queries and keys are the same positions: the usual triangle
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        elif t == 1:  # one new position sees every cached one: no mask
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        else:  # T new positions after `past` cached ones: query i sees keys <= past + i
            mask = torch.ones(t, past + t, dtype=torch.bool, device=x.device).tril(past)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        return self.proj(out.transpose(1, 2).reshape(b, t, d))  # (B, T, D)
