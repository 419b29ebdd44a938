"""The token prior's vocabulary layout and conditioning sequence, its objective, and classifier-
free guidance of its logits (w = 0 is the conditional model; the KV-cached guided sampler draws
what full recomputation draws; every draw is a code of the grid)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from genlab.families.prior.evaluate import sample_grids
from genlab.models.token_prior import GuidedPrior, TokenPrior
from genlab.objectives.token_prior import ClassPriorLoss
from genlab.samplers.autoregressive import sample_autoregressive

GPT = {"dim": 32, "layers": 2, "heads": 2}


def _prior(positions: str = "learned", seed: int = 0) -> TokenPrior:
    torch.manual_seed(seed)
    prior = TokenPrior(16, 10, (3, 4), positions=positions, **GPT).eval()
    with torch.no_grad():  # larger weights than GPT-2's init: logits far from uniform
        for p in prior.parameters():
            if p.dim() >= 2:
                p.normal_(0, 0.3)
    return prior


def test_vocabulary_layout_and_conditioning_sequence():
    prior = TokenPrior(16, 10, (3, 4), **GPT)
    assert (prior.vocab, prior.null, prior.length) == (27, 26, 12)
    assert prior.gpt.arch.vocab == 27 and prior.gpt.arch.max_len == 13
    labels = torch.tensor([0, 9, 4])
    assert prior.class_tokens(labels).tolist() == [[16], [25], [20]]
    drop = torch.tensor([False, True, False])
    assert prior.class_tokens(labels, drop).tolist() == [[16], [26], [20]]
    grid = torch.randint(0, 16, (3, 3, 4))
    seq = prior.sequence(grid, labels, drop)  # (B, 1 + h w)
    assert seq.shape == (3, 13) and seq.dtype == torch.int64
    assert seq[:, 0].tolist() == [16, 26, 20]
    for i in range(3):  # raster order: row by row
        for j in range(4):
            assert torch.equal(seq[:, 1 + 4 * i + j], grid[:, i, j])
    assert prior(seq[:, :-1]).shape == (3, 12, 27)


def test_loss_is_the_cross_entropy_of_the_codes_after_the_class_token():
    prior = _prior()
    grid, labels = torch.randint(0, 16, (5, 12)), torch.arange(5)
    loss = ClassPriorLoss(label_dropout=0.0)(prior, grid, labels)  # (B,)
    x = torch.cat([labels[:, None] + 16, grid], 1)
    logits = prior(x[:, :-1])
    ref = F.cross_entropy(logits.transpose(1, 2), grid, reduction="none").mean(1)
    assert loss.shape == (5,) and torch.allclose(loss, ref, atol=1e-6)
    # at GPT-2's init the logits are near zero: loss ~ ln(vocab)
    init = ClassPriorLoss(0.0)(TokenPrior(16, 10, (3, 4), **GPT), grid, labels).mean()
    assert abs(init.item() - math.log(27)) < 0.1


def test_label_dropout_swaps_in_the_null_class_at_its_rate():
    seen = []

    class Spy(TokenPrior):
        def forward(self, tokens, cache=None):
            seen.append(tokens[:, 0].clone())
            return super().forward(tokens, cache)

    torch.manual_seed(0)
    spy = Spy(16, 10, (3, 4), **GPT)
    grid, labels = torch.randint(0, 16, (2000, 12)), torch.arange(2000) % 10
    g = torch.Generator().manual_seed(1)
    ClassPriorLoss(label_dropout=0.25)(spy, grid, labels, g)
    first = seen[-1]
    null = first == spy.null
    assert abs(null.float().mean().item() - 0.25) < 0.04
    assert torch.equal(first[~null], labels[~null] + 16)
    ClassPriorLoss(label_dropout=0.0)(spy, grid[:8], labels[:8], g)
    assert not (seen[-1] == spy.null).any()


def test_guidance_zero_is_the_conditional_logits_on_codes_only():
    prior = _prior()
    seq = prior.sequence(torch.randint(0, 16, (4, 12)), torch.tensor([1, 2, 3, 4]))[:, :-1]
    cond = prior(seq)
    guided = GuidedPrior(prior, 0.0)(seq)
    assert torch.equal(guided[..., :16], cond[..., :16])
    assert torch.isinf(guided[..., 16:]).all() and (guided[..., 16:] < 0).all()


def test_guidance_mixes_conditional_and_null_logits():
    prior, w = _prior(), 1.5
    seq = prior.sequence(torch.randint(0, 16, (4, 12)), torch.tensor([1, 2, 3, 4]))[:, :-1]
    uncond_seq = seq.clone()
    uncond_seq[:, 0] = prior.null
    cond, uncond = prior(seq), prior(uncond_seq)
    guided = GuidedPrior(prior, w)(seq)
    assert torch.allclose(guided[..., :16], (cond + w * (cond - uncond))[..., :16], atol=1e-5)
    assert not torch.allclose(guided[..., :16], cond[..., :16], atol=1e-3)


def test_cached_guided_sampling_equals_full_recomputation():
    for positions in ("learned", "rope"):
        prior = _prior(positions)
        prompt = prior.class_tokens(torch.tensor([0, 3, 7]))
        for w, temperature in ((0.0, 0.0), (2.0, 0.0), (2.0, 1.0)):
            runs = [sample_autoregressive(GuidedPrior(prior, w), prompt, prior.length,
                                          temperature, 0, 1.0,
                                          torch.Generator().manual_seed(5), use_cache=c)
                    for c in (True, False)]
            assert torch.equal(runs[0], runs[1]), (positions, w, temperature)


def test_samples_are_codes_of_the_grid_shape():
    prior = _prior()
    labels = torch.arange(23) % 10
    g = torch.Generator().manual_seed(0)
    for w, top_k, top_p in ((0.0, 0, 1.0), (2.0, 5, 0.9)):
        grids = sample_grids(prior, labels, w, temperature=1.0, top_k=top_k, top_p=top_p,
                             generator=g, batch_size=10, device=torch.device("cpu"))
        assert grids.shape == (23, 3, 4) and grids.dtype == torch.int64
        assert grids.min() >= 0 and grids.max() < 16
