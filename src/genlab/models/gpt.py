"""A decoder-only transformer language model (GPT; Radford et al. 2018, 2019): token embedding,
pre-norm blocks of causal self-attention and an MLP, a final LayerNorm and a linear head tied
to the token embedding (Press & Wolf 2017). Positions: learned absolute embeddings (GPT) or
rotary (RoPE; Su et al. 2021) applied to queries and keys, or linear attention biases (ALiBi;
Press et al. 2022) added to the scores. Optionally each attention input is
mixed with the previous position's (token shift, genlab.nn.causal_attention).

Convention: tokens are int64 ids (B, T); logits (B, T, V) float. Conditioning on a class (or
any prefix) is done by the caller putting its tokens first in the sequence (as in VQGAN's
transformer, Esser et al. 2021): the vocabulary then holds those extra ids, nothing here
changes. A flattened token grid is just a sequence of length H * W (+ the prefix)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from genlab.nn.alibi import alibi_bias, alibi_slopes
from genlab.nn.causal_attention import CausalSelfAttention, KVCache
from genlab.nn.mlp import mlp
from genlab.nn.rotary import rope_angles

POSITIONS = ("learned", "rope", "alibi")


@dataclass(frozen=True)
class GPTArch:
    """Everything that fixes the network's shape (saved with its weights as arch kwargs)."""

    vocab: int  # token ids 0 .. vocab - 1 (text characters, task symbols, grid codes)
    max_len: int  # longest sequence: size of the learned position table; RoPE, ALiBi unbounded
    dim: int = 128  # model width D
    layers: int = 4  # transformer blocks
    heads: int = 4  # attention heads; must divide dim
    mlp_ratio: int = 4  # MLP hidden width = mlp_ratio * D
    dropout: float = 0.0  # on attention weights and residual branches, training only
    positions: str = "rope"  # learned: table added to the input; rope: rotary q, k; alibi:
    #                          distance penalties on the scores
    rope_base: float = 10000.0  # RoPE's base wavelength (Eq. 15's 10000)
    token_shift: bool = False  # mix each attention input with the previous position's

    def __post_init__(self):
        assert self.positions in POSITIONS, f"positions must be one of {POSITIONS}"
        assert self.dim % self.heads == 0, f"heads={self.heads} must divide dim={self.dim}"


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(LN(x)), then x + mlp(LN(x)) (GPT-2's order)."""

    def __init__(self, arch: GPTArch):
        super().__init__()
        self.ln1 = nn.LayerNorm(arch.dim)
        self.attn = CausalSelfAttention(arch.dim, arch.heads, dropout=arch.dropout,
                                        token_shift=arch.token_shift)
        self.ln2 = nn.LayerNorm(arch.dim)
        self.mlp = mlp(arch.dim, arch.mlp_ratio * arch.dim, 1, arch.dim)
        self.drop = nn.Dropout(arch.dropout)

    def forward(self, x, rope=None, cache=None, layer=0, bias=None):  # x (B, T, D)
        x = x + self.drop(self.attn(self.ln1(x), rope, cache, layer, bias))
        return x + self.drop(self.mlp(self.ln2(x)))


class GPT(nn.Module):
    """tokens (B, T) -> next-token logits (B, T, V): logits[:, t] predicts tokens[:, t + 1]."""

    def __init__(self, **kwargs):
        super().__init__()
        self.arch = arch = GPTArch(**kwargs)
        self.tok = nn.Embedding(arch.vocab, arch.dim)
        self.pos = nn.Embedding(arch.max_len, arch.dim) if arch.positions == "learned" else None
        if arch.positions == "alibi":  # derived from the head count: not saved with the weights
            self.register_buffer("slopes", alibi_slopes(arch.heads), persistent=False)
        self.drop = nn.Dropout(arch.dropout)
        self.blocks = nn.ModuleList(Block(arch) for _ in range(arch.layers))
        self.ln_f = nn.LayerNorm(arch.dim)
        self.head = nn.Linear(arch.dim, arch.vocab, bias=False)
        self.head.weight = self.tok.weight  # weight tying: one (V, D) matrix
        self._init_weights()

    def _init_weights(self) -> None:
        """GPT-2's init with the linear layers scaled to the width: embeddings N(0, 0.02),
        linear weights N(0, std) with std = 0.02 * sqrt(768 / dim) (GPT-2's 0.02 at its 768
        wide), zero biases, and the residual projections scaled by 1 / sqrt(2 * layers) so the
        residual stream's variance does not grow with depth. A fixed 0.02 at width 64 leaves
        the query-key scores ~12x narrower than at 768, so attention starts (and stays for
        hundreds of steps) uniform. The tied head keeps 0.02, so logits start near zero and
        the loss at init near ln(vocab)."""
        std = 0.02 * math.sqrt(768 / self.arch.dim)
        for m in self.modules():
            if isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, std=0.02)
            elif isinstance(m, nn.Linear) and m is not self.head:
                nn.init.normal_(m.weight, std=std)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for block in self.blocks:
            for proj in (block.attn.proj, block.mlp[-1]):
                nn.init.normal_(proj.weight, std=std / math.sqrt(2 * self.arch.layers))

    def forward(self, tokens: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        b, t = tokens.shape
        start = cache.length if cache is not None else 0
        if start + t > self.arch.max_len and self.pos is not None:
            raise ValueError(f"sequence of {start + t} tokens is longer than the learned "
                             f"position table (max_len={self.arch.max_len})")
        positions = torch.arange(start, start + t, device=tokens.device)  # (T,)
        x = self.tok(tokens)  # (B, T, D)
        rope = bias = None
        if self.pos is not None:
            x = x + self.pos(positions)  # (T, D) broadcast over B
        elif self.arch.positions == "alibi":
            bias = alibi_bias(self.slopes, start, t)  # (nh, T, start + T)
        else:
            rope = rope_angles(positions, self.arch.dim // self.arch.heads, self.arch.rope_base)
        x = self.drop(x)
        for i, block in enumerate(self.blocks):
            x = block(x, rope, cache, i, bias)  # (B, T, D)
        return self.head(self.ln_f(x))  # (B, T, V)

    def new_cache(self) -> KVCache:
        return KVCache(self.arch.layers)


def gpt_kwargs(arch: GPTArch) -> dict:
    return asdict(arch)


def decay_groups(net: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups (nanoGPT's rule): matrices (linear weights, embeddings, the tied head)
    decay; vectors (biases, LayerNorm gains and shifts) do not."""
    params = dict(net.named_parameters())  # tied weights appear once
    decay = [p for p in params.values() if p.dim() >= 2]
    no_decay = [p for p in params.values() if p.dim() < 2]
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def flops_per_token(arch: GPTArch, context: int) -> float:
    """Training FLOPs per token (forward + backward = 3x forward), PaLM's count (Chowdhery et
    al. 2022, App. B): 6 N for the weights (N without embeddings, the tied head counted once
    as a matmul) + 12 L D T for attention's scores and weighted sums."""
    d, L = arch.dim, arch.layers
    n = L * (4 * d * d + 2 * arch.mlp_ratio * d * d) + arch.vocab * d  # matmul weights
    return 6 * n + 12 * L * d * context
