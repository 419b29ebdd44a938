"""Ancestral sampling of an autoregressive model, x_{t+1} ~ p(. | x_{<=t}), with temperature,
top-k (Fan et al. 2018) and nucleus / top-p truncation (Holtzman et al. 2020), decoding one
token per step against a key/value cache (or recomputing the whole prefix, the reference)."""

from __future__ import annotations

import torch


def truncate_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """logits (B, V) with all but the top_k largest (0: all) and, of those, all outside the
    smallest set whose probability reaches top_p (1.0: all) set to -inf."""
    if top_k > 0:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (B, V)
        probs = sorted_logits.softmax(-1)
        # drop a token when the tokens ranked above it already hold top_p of the mass
        drop = probs.cumsum(-1) - probs >= top_p  # the top token is always kept
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return logits


def next_token(logits: torch.Tensor, temperature: float, top_k: int, top_p: float,
               generator: torch.Generator | None) -> torch.Tensor:
    """One token per row of logits (B, V): argmax when temperature == 0, else a draw of
    softmax(truncate(logits) / temperature). Returns (B, 1) int64."""
    if temperature == 0:
        return logits.argmax(-1, keepdim=True)
    probs = truncate_logits(logits.float() / temperature, top_k, top_p).softmax(-1)
    return torch.multinomial(probs, 1, generator=generator)


@torch.no_grad()
def sample_autoregressive(net, prompt: torch.Tensor, steps: int, temperature: float = 1.0,
                          top_k: int = 0, top_p: float = 1.0,
                          generator: torch.Generator | None = None,
                          use_cache: bool = True) -> torch.Tensor:
    """prompt (B, T0) int64 -> (B, T0 + steps): the prompt followed by `steps` drawn tokens.

    use_cache: feed the prompt once, then each new token alone against the model's KVCache;
    otherwise recompute the logits of the whole sequence every step (quadratic; the oracle the
    cached path is tested against)."""
    seq = prompt
    cache = net.new_cache() if use_cache else None
    logits = net(prompt, cache)[:, -1]  # (B, V)
    for i in range(steps):
        token = next_token(logits, temperature, top_k, top_p, generator)  # (B, 1)
        seq = torch.cat([seq, token], dim=1)
        if i + 1 < steps:
            logits = (net(token, cache) if use_cache else net(seq))[:, -1]
    return seq
