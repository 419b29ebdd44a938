"""A class-conditional prior over a tokenizer's token grids (the transformer stage of VQGAN,
Esser et al. 2021): the project's decoder-only GPT (genlab.models.gpt) on the raster-ordered
codes of an h x w grid, after one class token; and classifier-free guidance of its logits
(Ho & Salimans 2022, Eq. 6) as a thin wrapper for sampling.

Vocabulary layout (one embedding table, tied to the head):
    0 .. codes - 1                      the tokenizer's code indices
    codes .. codes + classes - 1        class c is token codes + c
    codes + classes                     the null class (label dropout, the unguided branch)
A training sequence is [class token, t_0, ..., t_{hw-1}] (B, 1 + h w); the GPT reads all but
its last token, and every target is a code.
"""

from __future__ import annotations

import torch
from torch import nn

from genlab.models.gpt import GPT
from genlab.nn.causal_attention import KVCache


class TokenPrior(nn.Module):
    """p(t_0 .. t_{hw-1} | class) as next-token logits: sequence (B, T) -> (B, T, vocab)."""

    def __init__(self,
                 codes: int,               # tokenizer code count K
                 classes: int,             # class labels 0 .. classes - 1
                 grid: tuple[int, int],    # token grid (h, w), read in raster order
                 **gpt):                   # GPT kwargs less vocab / max_len (models.gpt.GPTArch)
        super().__init__()
        assert codes > 0 and classes > 0, "codes and classes must be positive"
        self.codes, self.classes, self.grid = int(codes), int(classes), tuple(grid)
        self.length = self.grid[0] * self.grid[1]  # tokens per image
        self.gpt = GPT(vocab=self.vocab, max_len=1 + self.length, **gpt)

    @property
    def vocab(self) -> int:
        return self.codes + self.classes + 1

    @property
    def null(self) -> int:
        """The null class token."""
        return self.codes + self.classes

    def class_tokens(self, labels: torch.Tensor, drop: torch.Tensor | None = None) -> torch.Tensor:
        """labels (B,) in [0, classes) -> class tokens (B, 1); rows where drop (B,) bool is true
        get the null token."""
        tokens = labels.long() + self.codes
        if drop is not None:
            tokens = torch.where(drop, torch.full_like(tokens, self.null), tokens)
        return tokens[:, None]

    def sequence(self, grid: torch.Tensor, labels: torch.Tensor,
                 drop: torch.Tensor | None = None) -> torch.Tensor:
        """grid (B, h, w) or (B, h w) codes + labels (B,) -> (B, 1 + h w) int64."""
        return torch.cat([self.class_tokens(labels, drop), grid.reshape(len(grid), -1).long()], 1)

    def forward(self, tokens: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        return self.gpt(tokens, cache)  # (B, T, vocab)

    def new_cache(self) -> KVCache:
        return self.gpt.new_cache()


class GuidedPrior(nn.Module):
    """Sampling logits of a TokenPrior: l_w = l_cond + w (l_cond - l_uncond) (Ho & Salimans
    2022, Eq. 6, on logits), with every non-code id (classes, null) at -inf so that a draw is
    always a code. w = 0 is the conditional model, computed by one call and no null branch.

    Called like the GPT, (tokens (B, T), cache) -> (B, T, vocab), so the autoregressive
    sampler runs it unchanged. The unguided branch is the same sequence with its first token
    (the class) replaced by the null token; with a cache the two branches are held as one
    batch of 2B rows, and only the first call (cache empty) carries the class token."""

    def __init__(self, prior: TokenPrior, w: float):
        super().__init__()
        self.prior, self.w = prior, float(w)

    def forward(self, tokens: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        if self.w == 0:
            return self._codes_only(self.prior(tokens, cache))
        uncond = tokens
        if cache is None or cache.length == 0:  # tokens[:, 0] is the class token
            uncond = tokens.clone()
            uncond[:, 0] = self.prior.null
        cond_l, uncond_l = self.prior(torch.cat([tokens, uncond]), cache).float().chunk(2)
        return self._codes_only(cond_l + self.w * (cond_l - uncond_l))  # Eq. 6

    def _codes_only(self, logits: torch.Tensor) -> torch.Tensor:
        logits = logits.float().clone()
        logits[..., self.prior.codes:] = float("-inf")
        return logits

    def new_cache(self) -> KVCache:
        return self.prior.new_cache()
