"""Self-attention against explicit softmax(QK^T / sqrt(d)) V and torch.nn.MultiheadAttention."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from genlab.nn.attention import SelfAttention, SpatialSelfAttention
from tests.nn.helpers import randomize_

torch.set_num_threads(1)


def explicit_mha(tokens, w_qkv, b_qkv, w_out, b_out, heads, causal=False):
    """tokens (B, T, D) -> (B, T, D): textbook multi-head attention, written out."""
    b, t, d = tokens.shape
    q, k, v = (tokens @ w_qkv.T + b_qkv).split(d, dim=-1)  # each (B, T, D)
    split = lambda z: z.reshape(b, t, heads, d // heads).transpose(1, 2)  # noqa: E731
    q, k, v = split(q), split(k), split(v)  # (B, heads, T, d_h)
    scores = q @ k.transpose(-1, -2) / (d // heads) ** 0.5  # (B, heads, T, T)
    if causal:
        future = torch.ones(t, t, dtype=torch.bool).triu(1)
        scores = scores.masked_fill(future, float("-inf"))
    out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, d)
    return out @ w_out.T + b_out


def _mha_copy(qkv_w, qkv_b, proj_w, proj_b, dim, heads):
    mha = nn.MultiheadAttention(dim, heads, batch_first=True)
    with torch.no_grad():
        mha.in_proj_weight.copy_(qkv_w)
        mha.in_proj_bias.copy_(qkv_b)
        mha.out_proj.weight.copy_(proj_w)
        mha.out_proj.bias.copy_(proj_b)
    return mha


def _spatial(channels=8, heads=2, dtype=torch.float32):
    torch.manual_seed(0)
    attn = randomize_(SpatialSelfAttention(channels, num_heads=heads), std=0.3).to(dtype)
    with torch.no_grad():  # GroupNorm affine near the identity, as after training
        attn.norm.weight.add_(1.0)
    return attn


def test_spatial_attention_matches_explicit_softmax_in_float64():
    attn = _spatial(dtype=torch.float64)
    x = torch.randn(2, 8, 3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    tokens = attn.norm(x).flatten(2).transpose(1, 2)  # (B, HW, C)
    out = explicit_mha(tokens, attn.qkv.weight[:, :, 0, 0], attn.qkv.bias,
                       attn.proj.weight[:, :, 0, 0], attn.proj.bias, heads=2)
    expected = x + out.transpose(1, 2).reshape(x.shape)
    torch.testing.assert_close(attn(x), expected, rtol=1e-10, atol=1e-10)


def test_spatial_attention_matches_torch_multihead_attention():
    attn = _spatial(channels=12, heads=3)
    x = torch.randn(2, 12, 4, 4, generator=torch.Generator().manual_seed(2))
    mha = _mha_copy(attn.qkv.weight[:, :, 0, 0], attn.qkv.bias, attn.proj.weight[:, :, 0, 0],
                    attn.proj.bias, 12, 3)
    tokens = attn.norm(x).flatten(2).transpose(1, 2)
    ref, _ = mha(tokens, tokens, tokens, need_weights=False)
    torch.testing.assert_close(attn(x), x + ref.transpose(1, 2).reshape(x.shape),
                               rtol=1e-5, atol=1e-5)


def test_spatial_attention_is_identity_at_init_and_checks_heads():
    attn = SpatialSelfAttention(8, num_heads=2)
    x = torch.randn(1, 8, 4, 4)
    assert torch.equal(attn(x), x)
    with pytest.raises(ValueError, match="num_heads"):
        SpatialSelfAttention(8, num_heads=3)


def test_spatial_attention_channels_last_agrees():
    attn = _spatial()
    x = torch.randn(2, 8, 4, 4, generator=torch.Generator().manual_seed(3))
    ref = attn(x)
    attn_cl = attn.to(memory_format=torch.channels_last)
    out = attn_cl(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_spatial_attention_nhwc_paths_equal_the_plain_path_and_keep_nhwc():
    """The plain block is the reference: on a channels_last float64 input the NHWC paths
    (layout-keeping GroupNorm, token-major head split) give its output and every gradient,
    and the input's gradient stays NHWC."""
    plain = _spatial(dtype=torch.float64).to(memory_format=torch.channels_last)
    nhwc = SpatialSelfAttention(8, num_heads=2, nhwc_paths=True).double()
    assert nhwc.state_dict().keys() == plain.state_dict().keys()
    nhwc.load_state_dict(plain.state_dict())
    nhwc = nhwc.to(memory_format=torch.channels_last)
    x = torch.randn(2, 8, 3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    x = x.contiguous(memory_format=torch.channels_last)
    g = torch.randn(2, 8, 3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    g = g.contiguous(memory_format=torch.channels_last)

    def grads(attn):
        xr = x.clone().requires_grad_()
        out = attn(xr)
        params = dict(attn.named_parameters())
        return out, torch.autograd.grad(out, [xr, *params.values()], g), list(params)

    ref, ref_grads, names = grads(plain)
    out, out_grads, _ = grads(nhwc)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    for name, a, b in zip(["x", *names], out_grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12, msg=name)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert out_grads[0].is_contiguous(memory_format=torch.channels_last)
    assert type(plain.norm) is nn.GroupNorm and type(nhwc.norm) is not nn.GroupNorm


@pytest.mark.parametrize("causal", [False, True])
def test_sequence_attention_matches_explicit_and_torch(causal):
    torch.manual_seed(0)
    attn = randomize_(SelfAttention(8, heads=2, causal=causal), std=0.3).double()
    x = torch.randn(3, 5, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    args = (attn.qkv.weight, attn.qkv.bias, attn.proj.weight, attn.proj.bias)
    torch.testing.assert_close(attn(x), explicit_mha(x, *args, heads=2, causal=causal),
                               rtol=1e-10, atol=1e-10)
    mha = _mha_copy(*args, 8, 2).double()
    mask = torch.ones(5, 5, dtype=torch.bool).triu(1) if causal else None
    ref, _ = mha(x, x, x, attn_mask=mask, need_weights=False)
    torch.testing.assert_close(attn(x), ref, rtol=1e-10, atol=1e-10)


def test_causal_output_ignores_future_inputs():
    torch.manual_seed(0)
    causal, full = SelfAttention(8, heads=2, causal=True), SelfAttention(8, heads=2)
    full.load_state_dict(causal.state_dict())
    x = torch.randn(2, 6, 8, generator=torch.Generator().manual_seed(5))
    for t in range(6):
        x2 = x.clone()
        x2[:, t + 1:] += torch.randn(2, 5 - t, 8, generator=torch.Generator().manual_seed(t))
        assert torch.equal(causal(x)[:, : t + 1], causal(x2)[:, : t + 1])
        if t < 5:  # the oracle can fail: without the mask the past does see the future
            assert not torch.allclose(full(x)[:, : t + 1], full(x2)[:, : t + 1])


def test_sequence_attention_dropout_only_in_training_and_checks_args():
    attn = SelfAttention(8, heads=2, dropout=0.5).eval()
    x = torch.randn(1, 4, 8)
    assert torch.equal(attn(x), attn(x))
    torch.manual_seed(0)
    assert not torch.allclose(attn.train()(x), attn.eval()(x))
    with pytest.raises(ValueError, match="dropout"):
        SelfAttention(8, dropout=1.0)
    with pytest.raises(ValueError, match="heads=3"):
        SelfAttention(8, heads=3)


def test_sdpa_default_scale_is_one_over_sqrt_head_dim():
    # guards the assumption both modules rely on: F.sdpa scales by 1/sqrt(d)
    q, k, v = (torch.randn(1, 1, 3, 4, dtype=torch.float64) for _ in range(3))
    ref = (q @ k.transpose(-1, -2) / 2.0).softmax(-1) @ v
    torch.testing.assert_close(F.scaled_dot_product_attention(q, k, v), ref)
