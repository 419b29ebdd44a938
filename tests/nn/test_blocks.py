"""ResBlock, resampling and GroupNorm: identity at init, closed-form forward, shapes, and the
NHWC paths (nhwc_paths=True) against the plain torch path, values, gradients and layouts."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from genlab.nn.blocks import (
    Downsample,
    NHWCGroupNorm,
    ResBlock,
    Upsample,
    avg_pool2x,
    cat_channels,
    cat_skip,
    channels_last_grad,
    group_norm,
    is_channels_last,
    resample,
    upsample_nearest2x,
)
from tests.nn.helpers import randomize_

torch.set_num_threads(1)


def _x(*shape, seed=0, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize("channels,groups", [(256, 32), (128, 32), (96, 24), (16, 4),
                                             (8, 2), (12, 3), (3, 1), (1, 1)])
def test_group_norm_group_count(channels, groups):
    assert group_norm(channels).num_groups == groups


def test_group_norm_is_torchs_module_unless_nhwc_paths():
    plain, nhwc = group_norm(16), group_norm(16, nhwc_paths=True)
    assert type(plain) is torch.nn.GroupNorm and isinstance(nhwc, NHWCGroupNorm)
    assert (nhwc.num_groups, nhwc.eps) == (plain.num_groups, plain.eps) == (4, 1e-6)


@pytest.mark.parametrize("channels,groups,affine", [(12, 3, True), (8, 8, True), (6, 1, False)])
def test_nhwc_group_norm_matches_torch_and_keeps_the_layout(channels, groups, affine):
    """Oracle: F.group_norm in float64, output and gradients (input, weight, bias)."""
    norm = NHWCGroupNorm(groups, channels, eps=1e-5, affine=affine).double()
    if affine:
        randomize_(norm, std=0.5)
    x = _x(3, channels, 5, 4, dtype=torch.float64).mul(3).add(1)
    x = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    ref_x = x.detach().contiguous().requires_grad_()
    y = norm(x)
    ref = F.group_norm(ref_x, groups, norm.weight, norm.bias, norm.eps)
    assert is_channels_last(y) and y.dtype == torch.float64
    torch.testing.assert_close(y, ref, rtol=1e-10, atol=1e-10)
    g = _x(3, channels, 5, 4, seed=1, dtype=torch.float64)
    g = g.contiguous(memory_format=torch.channels_last)  # as a channels_last net's gradients
    grads = torch.autograd.grad(y, [x] + list(norm.parameters()), g)
    ref_grads = torch.autograd.grad(ref, [ref_x] + list(norm.parameters()), g)
    assert is_channels_last(grads[0])
    for a, b in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_nhwc_group_norm_of_bf16_computes_and_returns_fp32():
    """What autocast does with torch's group_norm: fp32 statistics and an fp32 output."""
    norm = randomize_(NHWCGroupNorm(4, 16), std=0.5)
    x = _x(2, 16, 6, 6).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    y = norm(x)
    assert y.dtype == torch.float32 and is_channels_last(y)
    torch.testing.assert_close(y, F.group_norm(x.float(), 4, norm.weight, norm.bias, norm.eps))


def test_nhwc_group_norm_in_fp32_is_as_accurate_as_torchs():
    """A large mean next to a unit spread (cancellation): the fp32 error against a float64
    oracle stays within 2x torch's own fp32 group_norm error."""
    norm = randomize_(NHWCGroupNorm(8, 64), std=0.5)
    x = _x(4, 64, 16, 16, dtype=torch.float64) + 100.0
    w, b = norm.weight.detach(), norm.bias.detach()
    ref = F.group_norm(x, 8, w.double(), b.double(), norm.eps)
    torch_err = (F.group_norm(x.float(), 8, w, b, norm.eps).double() - ref).abs().max()
    with torch.no_grad():
        ours = norm(x.float().contiguous(memory_format=torch.channels_last))
    assert (ours.double() - ref).abs().max() <= 2 * torch_err + 1e-7


def test_nhwc_group_norm_takes_torchs_op_for_nchw_and_loads_nn_groupnorm_weights():
    torch.manual_seed(0)
    ours = group_norm(16, nhwc_paths=True)
    theirs = randomize_(torch.nn.GroupNorm(4, 16, eps=1e-6), std=0.5)
    ours.load_state_dict(theirs.state_dict())  # same keys and shapes: old checkpoints load
    x = _x(2, 16, 3, 3)
    assert torch.equal(ours(x), theirs(x))  # NCHW: exactly torch's op
    assert isinstance(ours, torch.nn.GroupNorm) and ours.num_groups == 4


@pytest.mark.parametrize("nhwc_paths", [False, True])
@pytest.mark.parametrize("channels_last", [False, True])
def test_resample_oracles(nhwc_paths, channels_last):
    x = _x(2, 3, 4, 6)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    down = resample(x, "down", nhwc_paths)
    torch.testing.assert_close(down, x.reshape(2, 3, 2, 2, 3, 2).mean((3, 5)))
    up = x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    assert torch.equal(resample(x, "up", nhwc_paths), up)
    assert resample(x, "none", nhwc_paths) is x


def test_nhwc_upsampling_matches_interpolate_and_keeps_the_layout():
    x = _x(2, 5, 3, 4).contiguous(memory_format=torch.channels_last).requires_grad_()
    ref_x = x.detach().contiguous().requires_grad_()
    assert is_channels_last(x) and not is_channels_last(ref_x)
    up, ref = upsample_nearest2x(x), F.interpolate(ref_x, scale_factor=2.0, mode="nearest")
    assert torch.equal(up, ref) and up.is_contiguous(memory_format=torch.channels_last)
    g = _x(2, 5, 6, 8, seed=1)
    up.backward(g)
    ref.backward(g)
    torch.testing.assert_close(x.grad, ref_x.grad)  # each pixel: the sum of its 2x2 block
    assert x.grad.is_contiguous(memory_format=torch.channels_last)


def test_cat_channels_is_torch_cat_and_keeps_nhwc():
    a, b = _x(2, 3, 4, 5), _x(2, 6, 4, 5, seed=1)
    assert torch.equal(cat_channels([a, b]), torch.cat([a, b], dim=1))  # NCHW: torch.cat
    a_cl, b_cl = (t.contiguous(memory_format=torch.channels_last).requires_grad_() for t in (a, b))
    out = cat_channels([a_cl, b_cl])
    assert torch.equal(out, torch.cat([a, b], dim=1)) and is_channels_last(out)
    g = _x(2, 9, 4, 5, seed=2)
    out.backward(g)
    assert torch.equal(a_cl.grad, g[:, :3]) and torch.equal(b_cl.grad, g[:, 3:])


def test_nhwc_avg_pool_matches_avg_pool2d_and_keeps_the_layout():
    x = _x(2, 5, 6, 4).contiguous(memory_format=torch.channels_last).requires_grad_()
    ref_x = x.detach().contiguous().requires_grad_()
    down, ref = avg_pool2x(x), F.avg_pool2d(ref_x, 2)
    torch.testing.assert_close(down, ref)
    assert is_channels_last(down)
    g = _x(2, 5, 3, 2, seed=1).contiguous(memory_format=torch.channels_last)
    down.backward(g)
    ref.backward(g)
    torch.testing.assert_close(x.grad, ref_x.grad)  # each pixel: a quarter of its block's grad
    assert is_channels_last(x.grad)
    nchw = _x(2, 5, 6, 4)
    assert torch.equal(avg_pool2x(nchw), F.avg_pool2d(nchw, 2))  # NCHW: torch's op
    odd = _x(2, 5, 7, 4).contiguous(memory_format=torch.channels_last)
    assert torch.equal(avg_pool2x(odd), F.avg_pool2d(odd, 2))  # floors the odd side like it


def test_cat_skip_is_torch_cat_and_its_nhwc_path_keeps_nhwc_with_dense_gradients():
    h, skip = _x(2, 6, 3, 3), _x(2, 4, 3, 3, seed=1)
    assert torch.equal(cat_skip(h, skip), torch.cat([h, skip], dim=1))
    h_cl, skip_cl = (t.contiguous(memory_format=torch.channels_last).requires_grad_()
                     for t in (h, skip))
    out = cat_skip(h_cl, skip_cl, nhwc_paths=True)
    assert torch.equal(out, torch.cat([h, skip], dim=1)) and is_channels_last(out)
    g = _x(2, 10, 3, 3, seed=2).contiguous(memory_format=torch.channels_last)
    out.backward(g)
    assert torch.equal(h_cl.grad, g[:, :6]) and torch.equal(skip_cl.grad, g[:, 6:])
    assert h_cl.grad.is_contiguous(memory_format=torch.channels_last)  # not a channel slice


def test_channels_last_grad_is_identity_with_a_dense_nhwc_gradient():
    x = _x(2, 6, 3, 3).contiguous(memory_format=torch.channels_last).requires_grad_()
    y = channels_last_grad(x)
    assert torch.equal(y, x)
    both = torch.cat([y, _x(2, 4, 3, 3, seed=1).contiguous(memory_format=torch.channels_last)],
                     dim=1)
    g = _x(2, 10, 3, 3, seed=2).contiguous(memory_format=torch.channels_last)
    both.backward(g)
    assert torch.equal(x.grad, g[:, :6])
    assert x.grad.is_contiguous(memory_format=torch.channels_last)  # not a channel slice
    nchw = _x(2, 6, 3, 3)
    assert channels_last_grad(nchw) is nchw  # NCHW: untouched, no autograd node


def _grads(module, x, *args):
    """module(x, *args) and the gradients of <out, g> for a fixed NHWC g: w.r.t. x, then each
    parameter by name."""
    x = x.detach().clone().requires_grad_()
    out = module(x, *args)
    g = _x(*out.shape, seed=7, dtype=out.dtype).contiguous(memory_format=torch.channels_last)
    params = dict(module.named_parameters())
    grads = torch.autograd.grad(out, [x, *params.values()], g)
    return out, grads[0], dict(zip(params, grads[1:], strict=True))


@pytest.mark.parametrize("mode", ["none", "up", "down"])
def test_resblock_nhwc_paths_equal_the_plain_path_and_keep_nhwc(mode):
    """The plain block is the reference: on a channels_last float64 input the NHWC paths give
    its output and every gradient, laid out NHWC."""
    torch.manual_seed(0)
    plain = randomize_(ResBlock(8, 12, emb_dim=6, resample=mode), std=0.3).double()
    nhwc = ResBlock(8, 12, emb_dim=6, resample=mode, nhwc_paths=True).double()
    assert nhwc.state_dict().keys() == plain.state_dict().keys()
    nhwc.load_state_dict(plain.state_dict())
    x = (_x(3, 8, 6, 4, dtype=torch.float64) * 2 + 1).contiguous(
        memory_format=torch.channels_last)
    emb = _x(3, 6, seed=1, dtype=torch.float64)
    ref, ref_gx, ref_g = _grads(plain.to(memory_format=torch.channels_last), x, emb)
    out, gx, g = _grads(nhwc.to(memory_format=torch.channels_last), x, emb)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gx, ref_gx, rtol=1e-12, atol=1e-12)
    for name in ref_g:
        torch.testing.assert_close(g[name], ref_g[name], rtol=1e-12, atol=1e-12, msg=name)
    assert is_channels_last(out) and is_channels_last(gx)


def _aten_ops(module, *inputs) -> set[str]:
    """The aten ops of module's forward and backward, traced (make_fx)."""
    from torch.fx.experimental.proxy_tensor import make_fx

    def step(x, *rest):
        return torch.autograd.grad(module(x, *rest).sum(), x)

    gm = make_fx(step)(inputs[0].requires_grad_(), *inputs[1:])
    return {str(n.target).split(".")[1] for n in gm.graph.nodes if n.op == "call_function"
            and str(n.target).startswith("aten.")}


@pytest.mark.parametrize("mode,plain_op", [("up", "upsample_nearest2d"), ("down", "avg_pool2d")])
def test_resblock_plain_path_runs_torchs_ops_on_nhwc_inputs(mode, plain_op):
    """nhwc_paths=False: torch's group_norm and resampling, whatever the input's layout; the
    NHWC paths replace exactly those."""
    torch.manual_seed(0)
    x = _x(2, 8, 4, 4).contiguous(memory_format=torch.channels_last)
    emb = _x(2, 6, seed=1)
    plain = _aten_ops(ResBlock(8, 8, emb_dim=6, resample=mode), x.clone(), emb)
    nhwc = _aten_ops(ResBlock(8, 8, emb_dim=6, resample=mode, nhwc_paths=True), x.clone(), emb)
    assert {"native_group_norm", plain_op} <= plain
    assert not {"native_group_norm", plain_op} & nhwc


@pytest.mark.parametrize("mode", ["none", "up", "down"])
def test_resblock_at_init_is_exactly_the_skip(mode):
    torch.manual_seed(0)
    x, emb = _x(2, 8, 4, 4), _x(2, 16, seed=1)
    same = ResBlock(8, 8, emb_dim=16, resample=mode)
    assert torch.equal(same(x, emb), resample(x, mode))
    wider = ResBlock(8, 12, emb_dim=16, resample=mode)
    assert torch.equal(wider(x, emb), wider.skip(resample(x, mode)))


def test_resblock_forward_matches_adaptive_groupnorm_formula_in_float64():
    torch.manual_seed(0)
    block = randomize_(ResBlock(4, 8, emb_dim=6), std=0.3).double().eval()
    x, emb = _x(3, 4, 5, 5, dtype=torch.float64), _x(3, 6, seed=1, dtype=torch.float64)
    gn = lambda h, norm: F.group_norm(h, norm.num_groups, norm.weight, norm.bias, norm.eps)  # noqa: E731
    h = F.conv2d(F.silu(gn(x, block.norm1)), block.conv1.weight, block.conv1.bias, padding=1)
    params = emb @ block.affine.weight.T + block.affine.bias  # (B, 16)
    scale, shift = params[:, :8, None, None], params[:, 8:, None, None]
    h = F.silu((1 + scale) * gn(h, block.norm2) + shift)
    h = F.conv2d(h, block.conv2.weight, block.conv2.bias, padding=1)
    expected = h + F.conv2d(x, block.skip.weight, block.skip.bias)
    torch.testing.assert_close(block(x, emb), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("mode,side", [("none", 6), ("up", 12), ("down", 3)])
def test_resblock_shapes_and_embedding_dependence(mode, side):
    torch.manual_seed(0)
    block = randomize_(ResBlock(4, 6, emb_dim=5, resample=mode, dropout=0.2)).eval()
    x = _x(2, 4, 6, 6)
    out = block(x, _x(2, 5, seed=1))
    assert out.shape == (2, 6, side, side)
    assert not torch.allclose(out, block(x, _x(2, 5, seed=2)))


def test_resblock_dropout_active_only_in_training():
    torch.manual_seed(0)
    block = randomize_(ResBlock(4, 4, emb_dim=2, dropout=0.5))
    x, emb = _x(1, 4, 4, 4), _x(1, 2, seed=1)
    assert not torch.allclose(block.train()(x, emb), block.eval()(x, emb))
    assert torch.equal(block(x, emb), block(x, emb))


def test_resblock_rejects_bad_arguments():
    with pytest.raises(ValueError, match="resample"):
        ResBlock(4, 4, emb_dim=2, resample="pool")
    with pytest.raises(ValueError, match="dropout"):
        ResBlock(4, 4, emb_dim=2, dropout=1.5)


def test_downsample_and_upsample():
    x = _x(2, 4, 6, 6)
    torch.testing.assert_close(Downsample(4)(x), F.avg_pool2d(x, 2))
    assert Downsample(4, mode="conv")(x).shape == (2, 4, 3, 3)
    assert list(Downsample(4).parameters()) == []
    assert torch.equal(Upsample(4)(x), resample(x, "up"))
    assert Upsample(4, mode="conv")(x).shape == (2, 4, 12, 12)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    down, up = Downsample(4, nhwc_paths=True)(x_cl), Upsample(4, nhwc_paths=True)(x_cl)
    torch.testing.assert_close(down, F.avg_pool2d(x, 2))
    assert torch.equal(up, resample(x, "up")) and is_channels_last(down) and is_channels_last(up)
    with pytest.raises(ValueError, match="mode"):
        Downsample(4, mode="max")
    with pytest.raises(ValueError, match="mode"):
        Upsample(4, mode="bilinear")
