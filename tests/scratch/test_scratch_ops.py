"""Hand-written ops vs torch autograd (float64, hypothesis) and vs central finite differences."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from genlab.scratch import ops

F64 = torch.float64
SETTINGS = settings(max_examples=40, deadline=None)
TOL = dict(rtol=1e-10, atol=1e-10)


def _rand(gen: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=gen, dtype=F64)


def _torch_grads(fn, inputs: list[torch.Tensor], dy_gen: torch.Generator):
    """Reference output and input gradients of fn(*inputs) for a random upstream gradient dy."""
    leaves = [t.clone().requires_grad_() for t in inputs]
    y = fn(*leaves)
    dy = _rand(dy_gen, *y.shape)
    y.backward(dy)
    return y.detach(), dy, [t.grad for t in leaves]


def _assert_all_close(got, want) -> None:
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, **TOL)


@st.composite
def conv_case(draw, transposed: bool = False):
    """Random conv hyper-parameters with a valid (>= 1) output size."""
    groups = draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    d = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    p = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    spans = (d[0] * (kh - 1) + 1, d[1] * (kw - 1) + 1)
    if transposed:  # y = (n-1)s - 2p + span + op must be >= 1
        op = tuple(draw(st.integers(0, max(si, di) - 1)) for si, di in zip(s, d, strict=True))
        hw = tuple(draw(st.integers(1, 5)) for _ in range(2))
        p = tuple(
            min(pi, ((n - 1) * si + sp - 1) // 2)
            for pi, n, si, sp in zip(p, hw, s, spans, strict=True)
        )
    else:
        op = (0, 0)
        hw = tuple(
            max(1, sp - 2 * pi) + draw(st.integers(0, 4)) for sp, pi in zip(spans, p, strict=True)
        )
    return dict(
        batch=draw(st.integers(1, 3)),
        cin=groups * draw(st.integers(1, 3)),
        cout=groups * draw(st.integers(1, 3)),
        kernel=(kh, kw),
        hw=hw,
        hyper=dict(stride=s, padding=p, dilation=d, groups=groups),
        output_padding=op,
        bias=draw(st.booleans()),
        seed=draw(st.integers(0, 2**31 - 1)),
    )


# ----------------------------------------------------------------------------- conv2d


@SETTINGS
@given(conv_case())
def test_conv2d_matches_torch(case):
    gen = torch.Generator().manual_seed(case["seed"])
    g = case["hyper"]["groups"]
    x = _rand(gen, case["batch"], case["cin"], *case["hw"])
    w = _rand(gen, case["cout"], case["cin"] // g, *case["kernel"])
    b = _rand(gen, case["cout"]) if case["bias"] else None
    inputs = [x, w] + ([b] if b is not None else [])
    y_ref, dy, grads = _torch_grads(
        lambda x, w, b=None: F.conv2d(x, w, b, **case["hyper"]), inputs, gen
    )
    y, cache = ops.conv2d_forward(x, w, b, **case["hyper"])
    dx, dw, db = ops.conv2d_backward(dy, cache)
    _assert_all_close([y, dx, dw] + ([db] if b is not None else []), [y_ref, *grads])
    assert db is None or b is not None


@SETTINGS
@given(conv_case(transposed=True))
def test_conv_transpose2d_matches_torch(case):
    gen = torch.Generator().manual_seed(case["seed"])
    g = case["hyper"]["groups"]
    x = _rand(gen, case["batch"], case["cin"], *case["hw"])
    w = _rand(gen, case["cin"], case["cout"] // g, *case["kernel"])
    b = _rand(gen, case["cout"]) if case["bias"] else None
    hyper = dict(case["hyper"], output_padding=case["output_padding"])
    inputs = [x, w] + ([b] if b is not None else [])
    y_ref, dy, grads = _torch_grads(
        lambda x, w, b=None: F.conv_transpose2d(x, w, b, **hyper), inputs, gen
    )
    y, cache = ops.conv_transpose2d_forward(x, w, b, **hyper)
    dx, dw, db = ops.conv_transpose2d_backward(dy, cache)
    _assert_all_close([y, dx, dw] + ([db] if b is not None else []), [y_ref, *grads])


def _central_difference(f, t: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """d f / d t by central differences, one coordinate at a time (small tensors only)."""
    grad = torch.zeros_like(t)
    flat, gflat = t.view(-1), grad.view(-1)
    for i in range(flat.numel()):
        orig = flat[i].item()
        flat[i] = orig + eps
        up = f()
        flat[i] = orig - eps
        down = f()
        flat[i] = orig
        gflat[i] = (up - down) / (2 * eps)
    return grad


@pytest.mark.parametrize(
    "hyper",
    [
        dict(stride=1, padding=1, dilation=1, groups=1),
        dict(stride=2, padding=1, dilation=2, groups=2),
        dict(stride=(2, 1), padding=(0, 2), dilation=(1, 2), groups=1),
    ],
)
def test_conv2d_matches_finite_differences(hyper):
    gen = torch.Generator().manual_seed(1)
    x, w, b = _rand(gen, 2, 2, 6, 5), _rand(gen, 4, 2 // hyper["groups"], 3, 2), _rand(gen, 4)
    y, cache = ops.conv2d_forward(x, w, b, **hyper)
    r = _rand(gen, *y.shape)  # loss L = <r, y>, so dL/dy = r

    def loss() -> float:
        return float((ops.conv2d_forward(x, w, b, **hyper)[0] * r).sum())

    analytic = ops.conv2d_backward(r, cache)
    for t, g in zip((x, w, b), analytic, strict=True):
        torch.testing.assert_close(g, _central_difference(loss, t), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "hyper",
    [
        dict(stride=2, padding=1, output_padding=1, dilation=1, groups=1),
        dict(stride=3, padding=0, output_padding=2, dilation=1, groups=2),
        dict(stride=1, padding=1, output_padding=1, dilation=2, groups=1),
    ],
)
def test_conv_transpose2d_matches_finite_differences(hyper):
    gen = torch.Generator().manual_seed(2)
    x, w, b = _rand(gen, 2, 2, 3, 4), _rand(gen, 2, 4 // hyper["groups"], 3, 3), _rand(gen, 4)
    y, cache = ops.conv_transpose2d_forward(x, w, b, **hyper)
    r = _rand(gen, *y.shape)

    def loss() -> float:
        return float((ops.conv_transpose2d_forward(x, w, b, **hyper)[0] * r).sum())

    analytic = ops.conv_transpose2d_backward(r, cache)
    for t, g in zip((x, w, b), analytic, strict=True):
        torch.testing.assert_close(g, _central_difference(loss, t), rtol=1e-6, atol=1e-7)


# ----------------------------------------------------------------------------- im2col / col2im


@SETTINGS
@given(conv_case())
def test_im2col_and_col2im_equal_unfold_and_fold(case):
    gen = torch.Generator().manual_seed(case["seed"])
    h = case["hyper"]
    geo = ops.Geometry.make(case["kernel"], h["stride"], h["padding"], h["dilation"])
    x = _rand(gen, case["batch"], case["cin"], *case["hw"])
    unfold_kw = dict(
        kernel_size=geo.kernel, dilation=geo.dilation, padding=geo.padding, stride=geo.stride
    )
    ref = F.unfold(x, **unfold_kw)  # (B, C*kh*kw, L), rows ordered (c, i, j)
    B, K, L = ref.shape
    rows = ops.im2col(x, geo)  # (B*L, K), columns ordered (i, j, c)
    kh, kw = geo.kernel
    as_unfold = rows.view(B, L, kh, kw, -1).permute(0, 4, 2, 3, 1).reshape(B, K, L)
    torch.testing.assert_close(as_unfold, ref, rtol=0, atol=0)
    # col2im is the adjoint: it must equal F.fold of the same numbers
    cols = _rand(gen, B, K, L)
    rows_in = cols.view(B, -1, kh, kw, L).permute(0, 4, 2, 3, 1).reshape(B * L, K)
    got = ops.col2im(rows_in, B, case["hw"], geo)
    torch.testing.assert_close(got, F.fold(cols, output_size=case["hw"], **unfold_kw), **TOL)


# ----------------------------------------------------------------------------- pooling


@st.composite
def pool_case(draw):
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    p = tuple(draw(st.integers(0, ki // 2)) for ki in k)
    hw = tuple(max(1, ki - 2 * pi) + draw(st.integers(0, 4)) for ki, pi in zip(k, p, strict=True))
    return dict(
        shape=(draw(st.integers(1, 3)), draw(st.integers(1, 3)), *hw),
        hyper=dict(kernel_size=k, stride=s, padding=p),
        seed=draw(st.integers(0, 2**31 - 1)),
        integer=draw(st.booleans()),  # small integers -> many ties inside windows
    )


def _pool_input(case, gen):
    x = _rand(gen, *case["shape"])
    return x.mul(1.5).round() if case["integer"] else x


def _some_window_is_all_padding(sides, kernel, stride, padding, dilation) -> bool:
    for n, k, s, p in zip(sides, kernel, stride, padding, strict=True):
        n_out = (n + 2 * p - dilation * (k - 1) - 1) // s + 1
        for o in range(n_out):
            if not any(0 <= o * s - p + j * dilation < n for j in range(k)):
                return True
    return False


@SETTINGS
@given(pool_case(), st.integers(1, 2))
def test_max_pool2d_matches_torch_including_ties(case, dilation):
    gen = torch.Generator().manual_seed(case["seed"])
    x = _pool_input(case, gen)
    hyper = dict(case["hyper"], dilation=dilation)
    k, p = hyper["kernel_size"], hyper["padding"]
    if any(
        dilation * (ki - 1) + 1 > n + 2 * pi for ki, n, pi in zip(k, x.shape[2:], p, strict=True)
    ):
        return  # window larger than the padded input: torch and ops both reject it
    if _some_window_is_all_padding(x.shape[2:], k, hyper["stride"], p, dilation):
        # torch 2.14's CPU max_pool2d backward corrupts memory (double free, process abort)
        # when a dilated window sees only padding, e.g. k=(1, 2), d=2, p=(0, 1) on 3x1.
        return
    y_ref, dy, (dx_ref,) = _torch_grads(lambda x: F.max_pool2d(x, **hyper), [x], gen)
    y, cache = ops.max_pool2d_forward(x, **hyper)
    _assert_all_close([y, ops.max_pool2d_backward(dy, cache)], [y_ref, dx_ref])


@SETTINGS
@given(pool_case(), st.booleans())
def test_avg_pool2d_matches_torch(case, count_include_pad):
    gen = torch.Generator().manual_seed(case["seed"])
    x = _pool_input(case, gen)
    hyper = dict(case["hyper"], count_include_pad=count_include_pad)
    y_ref, dy, (dx_ref,) = _torch_grads(lambda x: F.avg_pool2d(x, **hyper), [x], gen)
    y, cache = ops.avg_pool2d_forward(x, **hyper)
    _assert_all_close([y, ops.avg_pool2d_backward(dy, cache)], [y_ref, dx_ref])


# ----------------------------------------------------------------------------- dense ops, losses


@SETTINGS
@given(st.integers(1, 5), st.integers(1, 6), st.integers(1, 6), st.booleans(), st.integers(0, 999))
def test_linear_matches_torch(batch, fin, fout, bias, seed):
    gen = torch.Generator().manual_seed(seed)
    x, w = _rand(gen, batch, fin), _rand(gen, fout, fin)
    b = _rand(gen, fout) if bias else None
    inputs = [x, w] + ([b] if bias else [])
    y_ref, dy, grads = _torch_grads(lambda x, w, b=None: F.linear(x, w, b), inputs, gen)
    y, cache = ops.linear_forward(x, w, b)
    dx, dw, db = ops.linear_backward(dy, cache)
    _assert_all_close([y, dx, dw] + ([db] if bias else []), [y_ref, *grads])


@SETTINGS
@given(st.lists(st.integers(1, 4), min_size=1, max_size=4), st.integers(0, 999))
def test_relu_and_sigmoid_match_torch(shape, seed):
    gen = torch.Generator().manual_seed(seed)
    x = _rand(gen, *shape).mul(2).round()  # includes exact zeros (relu'(0) = 0 in torch)
    for fwd, bwd, ref in [
        (ops.relu_forward, ops.relu_backward, F.relu),
        (ops.sigmoid_forward, ops.sigmoid_backward, torch.sigmoid),
    ]:
        y_ref, dy, (dx_ref,) = _torch_grads(ref, [x], gen)
        y, cache = fwd(x)
        _assert_all_close([y, bwd(dy, cache)], [y_ref, dx_ref])


@SETTINGS
@given(st.integers(1, 6), st.integers(2, 7), st.floats(0.1, 30.0), st.integers(0, 999))
def test_softmax_cross_entropy_matches_torch(batch, classes, scale, seed):
    gen = torch.Generator().manual_seed(seed)
    logits = _rand(gen, batch, classes) * scale  # large scales exercise the stable log-softmax
    target = torch.randint(0, classes, (batch,), generator=gen)
    leaf = logits.clone().requires_grad_()
    ref = F.cross_entropy(leaf, target)
    ref.backward()
    loss, cache = ops.softmax_cross_entropy_forward(logits, target)
    torch.testing.assert_close(loss, ref.detach(), **TOL)
    torch.testing.assert_close(ops.softmax_cross_entropy_backward(cache), leaf.grad, **TOL)


def test_mse_matches_torch():
    gen = torch.Generator().manual_seed(3)
    pred, target = _rand(gen, 3, 1, 4, 5), _rand(gen, 3, 1, 4, 5)
    leaf = pred.clone().requires_grad_()
    ref = F.mse_loss(leaf, target)
    ref.backward(torch.tensor(0.5, dtype=F64))
    loss, diff = ops.mse_forward(pred, target)
    torch.testing.assert_close(loss, ref.detach(), **TOL)
    torch.testing.assert_close(ops.mse_backward(diff, 0.5), leaf.grad, **TOL)


# ----------------------------------------------------------------------------- contracts


def test_ops_never_build_an_autograd_graph():
    x = torch.randn(2, 3, 6, 6, dtype=F64, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, dtype=F64, requires_grad=True)
    y, cache = ops.conv2d_forward(x, w, None, padding=1)
    dx, dw, _ = ops.conv2d_backward(torch.ones_like(y), cache)
    for t in (y, dx, dw):
        assert t.grad_fn is None and not t.requires_grad


def test_shape_mismatches_raise_value_errors_naming_the_argument():
    x, w = torch.randn(2, 3, 6, 6), torch.randn(4, 3, 3, 3)
    with pytest.raises(ValueError, match="x: expected shape"):
        ops.conv2d_forward(torch.randn(2, 5, 6, 6), w, None)
    with pytest.raises(ValueError, match="b: expected shape"):
        ops.conv2d_forward(x, w, torch.randn(3))
    y, cache = ops.conv2d_forward(x, w, None)
    with pytest.raises(ValueError, match="dy: expected shape"):
        ops.conv2d_backward(torch.randn(2, 4, 6, 6), cache)  # forward gave (2, 4, 4, 4)
    with pytest.raises(ValueError, match="groups"):
        ops.conv2d_forward(x, torch.randn(4, 1, 3, 3), None, groups=3)  # 4 % 3 != 0
    with pytest.raises(ValueError, match="output_padding"):
        ops.conv_transpose2d_forward(x, torch.randn(3, 2, 3, 3), None, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="padding"):
        ops.max_pool2d_forward(x, kernel_size=2, padding=2)
    with pytest.raises(ValueError, match="kernel_size"):
        ops.conv2d_forward(torch.randn(1, 3, 2, 2), w, None)  # 3x3 kernel on a 2x2 image
    with pytest.raises(ValueError, match="stride"):
        ops.conv2d_forward(x, w, None, stride=0)


def test_need_dx_false_skips_only_the_input_gradient():
    gen = torch.Generator().manual_seed(4)
    x, w, b = _rand(gen, 2, 3, 7, 7), _rand(gen, 4, 3, 3, 3), _rand(gen, 4)
    y, cache = ops.conv2d_forward(x, w, b, stride=2, padding=1)
    dy = _rand(gen, *y.shape)
    full = ops.conv2d_backward(dy, cache)
    skipped = ops.conv2d_backward(dy, cache, need_dx=False)
    assert skipped[0] is None
    _assert_all_close(skipped[1:], full[1:])
    yt, cache_t = ops.conv_transpose2d_forward(x, w.transpose(0, 1).contiguous(), None, stride=2)
    dyt = _rand(gen, *yt.shape)
    dx, dw, db = ops.conv_transpose2d_backward(dyt, cache_t, need_dx=False)
    assert dx is None and db is None
    _assert_all_close([dw], [ops.conv_transpose2d_backward(dyt, cache_t)[1]])
