"""The `gpt` family: causality (future tokens leave past logits bit-identical), KV-cache
decoding equal to full recomputation (with and without token shift), loss at init =
ln(vocab), RoPE scores depending on relative position only, the token shift against its
formula, weight-decay groups, the sampler's truncations, the recall tasks' answers and
distances, the sequence-length curriculum, config errors naming the key, and tiny fixed-seed
runs of the real training loop whose loss falls."""

from __future__ import annotations

import math

import pytest
import torch

from genlab import families
from genlab.config import ConfigError, load
from genlab.data.recall import RecallTask, recall_batch
from genlab.families.gpt.config import GPTConfig
from genlab.models.gpt import GPT, decay_groups
from genlab.nn.alibi import alibi_bias, alibi_slopes
from genlab.nn.causal_attention import CausalSelfAttention, KVCache
from genlab.nn.rotary import apply_rope, rope_angles
from genlab.objectives.gpt import NextTokenLoss
from genlab.samplers.autoregressive import sample_autoregressive, truncate_logits
from genlab.training.loop import RunSpec, optimizer_groups, train

POSITIONS = ("learned", "rope", "alibi", "rope+shift")  # the last: RoPE with token shift


def tiny_gpt(positions: str, vocab: int = 17, max_len: int = 48, dropout: float = 0.0) -> GPT:
    torch.manual_seed(0)
    net = GPT(vocab=vocab, max_len=max_len, dim=32, layers=2, heads=4, dropout=dropout,
              positions=positions.removesuffix("+shift"), token_shift="+shift" in positions)
    if net.arch.token_shift:  # away from the ramp init: every channel mixes, unevenly
        with torch.no_grad():
            for block in net.blocks:
                block.attn.shift_mix.uniform_(0.2, 0.9)
    return net.eval()


# ---------------------------------------------------------------------------------------------
# The network.


@pytest.mark.parametrize("positions", POSITIONS)
def test_changing_future_tokens_leaves_past_logits_bit_identical(positions):
    net = tiny_gpt(positions)
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 17, (3, 40), generator=g)
    for cut in (1, 17, 39):
        y = x.clone()
        y[:, cut:] = torch.randint(0, 17, (3, 40 - cut), generator=g)
        with torch.no_grad():
            a, b = net(x), net(y)
        assert torch.equal(a[:, :cut], b[:, :cut])
        assert not torch.equal(a[:, cut:], b[:, cut:])  # the test can fail: the future differs


@pytest.mark.parametrize("positions", POSITIONS)
def test_cached_decoding_gives_the_full_forward_logits(positions):
    """The prompt in chunks of 5, 1 and 9 tokens through the cache (the masked, unmasked and
    fresh branches of the attention) gives the logits of one full forward."""
    net = tiny_gpt(positions)
    x = torch.randint(0, 17, (2, 15), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        full = net(x)
        cache = net.new_cache()
        parts = [net(x[:, a:b], cache) for a, b in ((0, 5), (5, 6), (6, 15))]
    torch.testing.assert_close(torch.cat(parts, 1), full, rtol=1e-5, atol=1e-5)
    assert cache.length == 15


@pytest.mark.parametrize("positions", POSITIONS)
@pytest.mark.parametrize("temperature,top_k,top_p", [(0.0, 0, 1.0), (1.0, 5, 0.9)])
def test_kv_cache_sampling_equals_full_recomputation(positions, temperature, top_k, top_p):
    net = tiny_gpt(positions)
    prompt = torch.randint(0, 17, (3, 4), generator=torch.Generator().manual_seed(3))
    out = [sample_autoregressive(net, prompt, 30, temperature, top_k, top_p,
                                 torch.Generator().manual_seed(4), use_cache=c)
           for c in (True, False)]
    assert out[0].shape == (3, 34) and torch.equal(out[0][:, :4], prompt)
    assert torch.equal(out[0], out[1])


@pytest.mark.parametrize("positions", POSITIONS)
def test_loss_at_init_is_ln_vocab(positions):
    vocab = 113
    net = tiny_gpt(positions, vocab=vocab)
    x = torch.randint(0, vocab, (8, 41), generator=torch.Generator().manual_seed(5))
    loss = NextTokenLoss()(net, x).mean().item()
    assert abs(loss - math.log(vocab)) < 0.02, loss


def test_weights_are_tied_and_counted_once():
    net = tiny_gpt("rope")
    assert net.head.weight is net.tok.weight
    names = [n for n, _ in net.named_parameters()]
    assert "tok.weight" in names and "head.weight" not in names


def test_learned_positions_refuse_sequences_longer_than_the_table():
    net = tiny_gpt("learned", max_len=16)
    with pytest.raises(ValueError, match="max_len=16"):
        net(torch.zeros(1, 17, dtype=torch.long))
    tiny_gpt("rope", max_len=16)(torch.zeros(1, 40, dtype=torch.long))  # RoPE: no table
    tiny_gpt("alibi", max_len=16)(torch.zeros(1, 40, dtype=torch.long))  # nor ALiBi


def test_masked_loss_averages_only_the_masked_positions():
    net = tiny_gpt("rope")
    x = torch.randint(0, 17, (2, 11), generator=torch.Generator().manual_seed(6))
    mask = torch.zeros(2, 10, dtype=torch.bool)
    mask[0, 3], mask[1, 7:] = True, True
    logp = net(x[:, :-1]).log_softmax(-1).gather(-1, x[:, 1:, None])[..., 0]  # (B, T)
    expected = torch.stack([-logp[0, 3], -logp[1, 7:].mean()])
    torch.testing.assert_close(NextTokenLoss()(net, x, mask), expected)


# ---------------------------------------------------------------------------------------------
# RoPE.


def test_rope_scores_depend_only_on_relative_position():
    """q_m . k_n after rotation equals q_{m+s} . k_{n+s}: the same q, k at shifted positions."""
    g = torch.Generator().manual_seed(7)
    q, k = torch.randn(1, 2, 1, 16, generator=g), torch.randn(1, 2, 1, 16, generator=g)

    def score(m, n):
        qm = apply_rope(q, rope_angles(torch.tensor([m]), 16))
        kn = apply_rope(k, rope_angles(torch.tensor([n]), 16))
        return (qm * kn).sum(-1)

    for m, n, s in ((5, 2, 100), (0, 9, 37), (30, 30, 1000)):
        torch.testing.assert_close(score(m, n), score(m + s, n + s), rtol=1e-4, atol=1e-4)
    assert not torch.allclose(score(5, 2), score(5, 3), atol=1e-3)  # it does see distance
    # a rotation keeps each channel pair's norm
    x = torch.randn(2, 3, 5, 8, generator=g)
    r = apply_rope(x, rope_angles(torch.arange(5), 8))
    torch.testing.assert_close(r.unflatten(-1, (4, 2)).norm(dim=-1),
                               x.unflatten(-1, (4, 2)).norm(dim=-1))


def test_alibi_slopes_follow_the_paper():
    """8 heads: 1/2, 1/4, ..., 1/256 (Press et al. 2022, Sec. 3); 6 heads: the 4-head sequence
    then every other slope of the 8-head one."""
    torch.testing.assert_close(alibi_slopes(8), 2.0 ** -torch.arange(1.0, 9.0))
    four, eight = alibi_slopes(4), alibi_slopes(8)
    torch.testing.assert_close(alibi_slopes(6), torch.cat([four, eight[0::2][:2]]))
    assert torch.equal(alibi_slopes(1), torch.tensor([2.0 ** -8]))


def test_alibi_bias_depends_only_on_relative_position():
    """bias[h, i, j] = -m_h (i - j) for j <= i and -inf beyond; a window decoded after `start`
    cached positions sees the same biases as the same offsets at the start."""
    slopes = alibi_slopes(4)
    full = alibi_bias(slopes, 0, 9)  # (4, 9, 9)
    i, j = torch.meshgrid(torch.arange(9), torch.arange(9), indexing="ij")
    expected = (-slopes[:, None, None] * (i - j)).masked_fill(j > i, float("-inf"))
    assert torch.equal(full, expected)
    late = alibi_bias(slopes, 5, 4)  # queries 5..8 over keys 0..8
    assert torch.equal(late, full[:, 5:])
    for s in (0, 3, 100):  # translation: (i + s, j + s) has the bias of (i, j)
        shifted = alibi_bias(slopes, s, 6)[:, :, s:]
        assert torch.equal(shifted, full[:, :6, :6])


def test_attention_with_an_alibi_bias_matches_an_explicit_softmax():
    torch.manual_seed(12)
    attn = CausalSelfAttention(dim=12, heads=3).double()
    x = torch.randn(2, 6, 12, dtype=torch.float64)
    bias = alibi_bias(alibi_slopes(3), 0, 6).double()
    q, k, v = attn.qkv(x).reshape(2, 6, 3, 3, 4).permute(2, 0, 3, 1, 4)
    scores = q @ k.transpose(-1, -2) / 2.0 + bias  # sqrt(head size 4); -inf above the diagonal
    out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(2, 6, 12)
    torch.testing.assert_close(attn(x, bias=bias), attn.proj(out))


def test_causal_attention_matches_an_explicit_masked_softmax():
    torch.manual_seed(8)
    attn = CausalSelfAttention(dim=12, heads=3).double()
    x = torch.randn(2, 6, 12, dtype=torch.float64)
    q, k, v = attn.qkv(x).reshape(2, 6, 3, 3, 4).permute(2, 0, 3, 1, 4)
    scores = q @ k.transpose(-1, -2) / 2.0  # sqrt(head size 4)
    scores = scores.masked_fill(~torch.ones(6, 6, dtype=torch.bool).tril(), float("-inf"))
    out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(2, 6, 12)
    torch.testing.assert_close(attn(x), attn.proj(out))


def test_token_shift_is_attention_of_the_explicitly_mixed_input():
    """x'_t = x_t + mu * (x_{t-1} - x_t), x_{-1} = 0, then the plain attention (same weights);
    decoding through the cache one position at a time gives the same outputs."""
    torch.manual_seed(11)
    shifted = CausalSelfAttention(dim=12, heads=3, token_shift=True).double()
    plain = CausalSelfAttention(dim=12, heads=3).double()
    plain.load_state_dict({k: v for k, v in shifted.state_dict().items() if k != "shift_mix"})
    with torch.no_grad():
        shifted.shift_mix.uniform_(0.0, 1.0)
    mu = shifted.shift_mix
    x = torch.randn(2, 7, 12, dtype=torch.float64)
    prev = torch.cat([torch.zeros(2, 1, 12, dtype=torch.float64), x[:, :-1]], 1)
    expected = plain(x + mu * (prev - x))
    torch.testing.assert_close(shifted(x), expected)
    cache = KVCache(1)
    steps = [shifted(x[:, t:t + 1], cache=cache) for t in range(7)]
    torch.testing.assert_close(torch.cat(steps, 1), expected)
    assert cache.held(0) == 7
    # the ramp init: channel 0 sees only its own token, the last channel only the previous one
    init = CausalSelfAttention(dim=12, heads=3, token_shift=True).shift_mix
    assert init[0] == 0.0 and init[-1] == 1.0


# ---------------------------------------------------------------------------------------------
# Optimiser groups and sampling.


def test_weight_decay_groups_split_matrices_from_vectors():
    net = tiny_gpt("learned")
    decay, no_decay = decay_groups(net, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() == 2 for p in decay["params"])
    assert all(p.dim() == 1 for p in no_decay["params"])
    ids = {id(p) for p in decay["params"]}
    assert id(net.tok.weight) in ids and id(net.pos.weight) in ids
    assert id(net.blocks[0].ln1.weight) not in ids and id(net.blocks[0].attn.qkv.bias) not in ids
    # every parameter exactly once, as the loop's optimiser groups require
    groups = optimizer_groups(net, [decay, no_decay], 1e-3)
    assert sum(len(gr["params"]) for gr in groups) == len(list(net.parameters()))


def test_top_k_and_top_p_keep_the_right_tokens():
    logits = torch.tensor([[3.0, 1.0, 2.0, 0.0]])  # probabilities ~ .64 .09 .24 .03
    assert torch.isfinite(truncate_logits(logits, top_k=2)).tolist() == [[True, False, True,
                                                                            False]]
    kept = torch.isfinite(truncate_logits(logits, top_p=0.7)).tolist()
    assert kept == [[True, False, True, False]]  # .64 < .7: the second best is needed too
    assert torch.isfinite(truncate_logits(logits, top_p=0.5)).sum() == 1
    assert torch.isfinite(truncate_logits(logits)).all()


# ---------------------------------------------------------------------------------------------
# Recall tasks.


@pytest.mark.parametrize("kind", ["copy", "mqar"])
def test_recall_answers_repeat_the_evidence_at_their_distance(kind):
    task = RecallTask(kind, items=6, keys=10, values=10, noise=5)
    x, mask, distance = recall_batch(task, 16, 80, torch.Generator().manual_seed(9))
    assert x.shape == (16, 81) and mask.shape == distance.shape == (16, 80)
    assert mask.sum(1).eq(6).all() and int(x.max()) < task.vocab
    b, t = mask.nonzero(as_tuple=True)
    p = t + 1  # position in x of each answer
    assert torch.equal(x[b, p], x[b, p - distance[b, t]])  # the answer is found d back
    assert (distance[~mask] == -1).all() and (distance[mask] > 0).all()
    if kind == "mqar":  # and it follows the queried key, as the pair's value follows its key
        assert torch.equal(x[b, p - 1], x[b, p - distance[b, t] - 1])
    fixed = recall_batch(task, 4, 80, torch.Generator().manual_seed(9), start=0)[2]
    assert fixed[fixed > 0].max() >= 80 - 2 * 6 - 12  # evidence at the start: far back


def test_recall_batches_are_a_function_of_the_seed():
    task = RecallTask("mqar", items=4, keys=8, values=8, noise=4)
    a = recall_batch(task, 3, 40, torch.Generator().manual_seed(10))
    b = recall_batch(task, 3, 40, torch.Generator().manual_seed(10))
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))


# ---------------------------------------------------------------------------------------------
# Config and the real training loop.


def section(**over) -> dict:
    raw = {"dataset": "mqar", "context": 24, "model": {"dim": 32, "layers": 2, "heads": 2},
           "task": {"items": 2, "keys": 4, "values": 8, "noise": 4}, "steps": 120,
           "batch_size": 32, "lr": 3e-3, "warmup_steps": 10, "log_every": 20,
           "ckpt_every": 1000, "ema_half_life": 500.0}
    return raw | over


def test_curriculum_sets_the_training_length_by_step():
    cfg = load(GPTConfig, section(context=40, curriculum=[{"context": 16, "steps": 3},
                                                          {"context": 24, "steps": 2}]), "gpt.c")
    assert [cfg.context_at(s) for s in range(7)] == [16, 16, 16, 24, 24, 40, 40]
    data = families.get("gpt").data(cfg, 0, torch.device("cpu"))
    assert [data.batches(s)[0].shape[1] for s in (0, 3, 5)] == [17, 25, 41]  # T + 1
    assert data.batches(4)[1].shape == (32, 24)  # the answer mask follows


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"gpt\.m\.model.*heads \(3\) must divide dim"):
        load(GPTConfig, section(model={"dim": 32, "heads": 3}), "gpt.m")
    with pytest.raises(ConfigError, match=r"gpt\.m\.dataset must be one of"):
        load(GPTConfig, section(dataset="shakespeare"), "gpt.m")
    with pytest.raises(ConfigError, match=r"gpt\.m\.model.*max_len \(16\) must be >= context"):
        load(GPTConfig, section(model={"max_len": 16}), "gpt.m")
    with pytest.raises(ConfigError, match=r"gpt\.m\.curriculum\[1\]\.context \(48\) must be <="):
        load(GPTConfig, section(curriculum=[{"context": 8, "steps": 1},
                                            {"context": 48, "steps": 1}]), "gpt.m")
    with pytest.raises(ConfigError, match=r"gpt\.m\.curriculum\[0\]\.context \(8\) is too "
                       r"short for mqar with 3 items \(needs >= 11\)"):
        load(GPTConfig, section(curriculum=[{"context": 8, "steps": 1}],
                                task={"items": 3, "keys": 4, "values": 8, "noise": 4}), "gpt.m")
    with pytest.raises(ConfigError, match=r"gpt\.m\.curriculum steps \(120\) must leave"):
        load(GPTConfig, section(curriculum=[{"context": 16, "steps": 120}]), "gpt.m")
    with pytest.raises(ConfigError, match=r"gpt\.m\.curriculum\[0\]\.steps is required"):
        load(GPTConfig, section(curriculum=[{"context": 16}]), "gpt.m")


def tiny_run(cfg: GPTConfig, ckpt) -> list[float]:
    """The family's own data hook and build through the generic loop: logged losses."""
    family = families.get("gpt")
    data = family.data(cfg, 0, torch.device("cpu"))
    torch.manual_seed(0)
    built = family.build(cfg, data.shape, False)
    result = train(built.net, built.objective, data.batches, cfg,
                   RunSpec(seed=0, device=torch.device("cpu"), ckpt_path=ckpt,
                           config_hash="t", progress=False), param_groups=built.param_groups)
    return [row["loss"] for row in result.history]


def test_a_tiny_fixed_seed_recall_run_learns(tmp_path):
    """In 120 steps the loss on the answers falls from above ln 8 (a uniform guess among the 8
    values) to well below it (the model has learned that the answer is a value seen in the
    sequence; matching the key, down to 0, takes longer)."""
    cfg = load(GPTConfig, section(), "gpt.tiny")
    data = families.get("gpt").data(cfg, 0, torch.device("cpu"))
    assert torch.equal(data.batches(5)[0],
                       families.get("gpt").data(cfg, 0, torch.device("cpu")).batches(5)[0])
    losses = tiny_run(cfg, tmp_path / "last.pt")
    assert losses[0] > math.log(8) and losses[-1] < 0.8 * math.log(8), losses
    assert losses[-1] < losses[0] - 0.8, losses


def test_token_shift_lets_a_tiny_recall_run_match_the_keys(tmp_path):
    """With token shift the same tiny MQAR run gets past the plateau at ln 2 (knowing the
    answer is one of the 2 values seen, not which): in 400 steps the loss on the answers is
    below 0.15 nats (the plain two-layer model measured 0.36 here, still on its way down)."""
    cfg = load(GPTConfig, section(steps=400, model={"dim": 32, "layers": 2, "heads": 2,
                                                    "token_shift": True}), "gpt.tiny")
    losses = tiny_run(cfg, tmp_path / "last.pt")
    assert losses[-1] < 0.15 < math.log(2), losses
