"""Hand-written forward/backward ops: im2col convolution (Chellapilla et al. 2006), pooling, losses.

Every op comes as a pair `*_forward(x, ...) -> (y, cache)` and `*_backward(dy, cache) -> grads`
(`(dx, dw, db)` for ops with parameters, `dx` otherwise). No autograd is used: the ops run
under `torch.no_grad()` and are built from im2col / col2im data movement (the same numbers as
`F.unfold` / `F.fold`, tested equal to them) plus matmuls and elementwise maths.
Convolution: rows(y) = cols(x) W^T + b;  dW = dy^T cols(x);  dx = col2im(dy W).
The transposed convolution is the input-gradient of a convolution (the adjoint identity):
rows(y) = col2im(rows(x) W);  dx = cols(dy) W^T;  dW = rows(x)^T cols(dy).

Layout conventions (shapes are checked at every entry point; mismatches raise ValueError):
  images      x: (B, C, H, W) logical shape; outputs are channels_last views, i.e. the memory
              is (B, H, W, C), so `rows(x)` (B*H*W, C) is free. Use .reshape, not .view.
  conv        w: (O, C/g, kh, kw), b: (O,)      convT  w: (C, O/g, kh, kw), b: (O,)  (torch's)
  patch rows  cols(x): (B*Ho*Wo, C*kh*kw), one row per output pixel (b, h, w), columns ordered
              (g, kh, kw, C/g): channels innermost, so the copy runs over contiguous strips and
              the whole batch is one GEMM; group j owns the column block [j*K/g, (j+1)*K/g).
  kernel mat  W: (g, O/g, kh*kw*C/g), the weight permuted to the same column order.
This channels-last layout was measured 1.3-2x faster on CPU than the (B, C*kh*kw, L) layout of
F.unfold (longer contiguous copies, one large GEMM instead of B small ones).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

Pair = tuple[int, int]


# ----------------------------------------------------------------------------- validation


def pair(value: int | tuple[int, int], name: str, *, minimum: int = 0) -> Pair:
    """An int or 2-tuple of ints as a (h, w) pair, each >= `minimum`."""
    values = (value, value) if isinstance(value, int) else tuple(value)
    if len(values) != 2 or not all(isinstance(v, int) and v >= minimum for v in values):
        raise ValueError(f"{name}: expected an int >= {minimum} or a pair of them, got {value!r}")
    return values  # type: ignore[return-value]


def check_shape(t: Tensor, expected: tuple[int | None, ...], name: str) -> None:
    """Raise ValueError unless `t.shape` matches `expected` (None matches any size)."""
    sizes = zip(expected, t.shape, strict=False)
    ok = t.dim() == len(expected) and all(e is None or e == s for e, s in sizes)
    if not ok:
        want = "(" + ", ".join("*" if e is None else str(e) for e in expected) + ")"
        raise ValueError(f"{name}: expected shape {want}, got {tuple(t.shape)}")


def _check_bias(b: Tensor | None, channels: int) -> None:
    if b is not None:
        check_shape(b, (channels,), "b")


def _check_groups(groups: int, **channels: int) -> None:
    if not isinstance(groups, int) or groups < 1:
        raise ValueError(f"groups: expected an int >= 1, got {groups!r}")
    for name, c in channels.items():
        if c % groups:
            raise ValueError(f"groups: {name}={c} is not divisible by groups={groups}")


def conv_out_size(size: int, k: int, s: int, p: int, d: int) -> int:
    """Output length of a convolution along one axis: floor((n + 2p - d(k-1) - 1)/s) + 1."""
    out = (size + 2 * p - d * (k - 1) - 1) // s + 1
    if out < 1:
        raise ValueError(f"kernel_size: kernel {k} (dilation {d}) does not fit input {size}+2*{p}")
    return out


@dataclass(frozen=True)
class Geometry:
    """Sliding-window hyper-parameters shared by unfold and fold."""

    kernel: Pair
    stride: Pair
    padding: Pair
    dilation: Pair

    @staticmethod
    def make(kernel, stride, padding, dilation) -> Geometry:
        return Geometry(
            pair(kernel, "kernel_size", minimum=1),
            pair(stride, "stride", minimum=1),
            pair(padding, "padding"),
            pair(dilation, "dilation", minimum=1),
        )

    def out_hw(self, h: int, w: int) -> Pair:
        g = zip((h, w), self.kernel, self.stride, self.padding, self.dilation, strict=True)
        return tuple(conv_out_size(*args) for args in g)  # type: ignore[return-value]

    def area(self) -> int:
        return self.kernel[0] * self.kernel[1]


# ----------------------------------------------------------------------------- im2col / col2im


def to_rows(x: Tensor) -> Tensor:
    """(B, C, H, W) -> pixel rows (B*H*W, C); a free view when x is channels_last."""
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])


def from_rows(rows: Tensor, batch: int, hw: Pair) -> Tensor:
    """Pixel rows (B*H*W, C) -> (B, C, H, W), a channels_last view (no copy)."""
    return rows.view(batch, *hw, rows.shape[1]).permute(0, 3, 1, 2)


def _window_view(x: Tensor, geo: Geometry, pad_value: float, grid: Pair | None) -> Tensor:
    """Sliding windows of x (B, C, H, W) as a strided view (B, Ho, Wo, C, kh, kw).

    `grid` (Ho, Wo) keeps only the first windows; default: all that fit.
    """
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = geo.kernel, geo.stride, geo.padding, geo.dilation
    Ho, Wo = geo.out_hw(*x.shape[2:]) if grid is None else grid
    x = x.permute(0, 2, 3, 1)  # (B, H, W, C), contiguous when x is channels_last
    if ph or pw:
        x = F.pad(x, (0, 0, pw, pw, ph, ph), value=pad_value)
    v = x.unfold(1, dh * (kh - 1) + 1, sh).unfold(2, dw * (kw - 1) + 1, sw)
    return v[:, :Ho, :Wo, :, ::dh, ::dw]


def im2col(x: Tensor, geo: Geometry, groups: int = 1, grid: Pair | None = None) -> Tensor:
    """Patch rows of x (B, C, H, W): (B*Ho*Wo, K) with K = C*kh*kw ordered (g, kh, kw, C/g).

    Row (b, h, w), column (g, i, j, c) holds x_pad[b, g*C/g + c, h*s + i*d, w*s + j*d]; the
    same numbers as F.unfold(x), transposed to channels-last so that a whole batch is one GEMM
    and the copy runs over contiguous (kw, C) strips. One strided view + one copy.
    """
    B, C = x.shape[:2]
    v = _window_view(x, geo, 0.0, grid)  # (B, Ho, Wo, C, kh, kw)
    v = v.unflatten(3, (groups, C // groups))  # (B, Ho, Wo, g, C/g, kh, kw)
    return v.permute(0, 1, 2, 3, 5, 6, 4).reshape(-1, C * geo.area())


def window_stack(x: Tensor, geo: Geometry, pad_value: float) -> Tensor:
    """Windows of x (B, C, H, W) stacked by kernel offset: (kh*kw, B*Ho*Wo*C), for pooling."""
    v = _window_view(x, geo, pad_value, None)  # (B, Ho, Wo, C, kh, kw)
    return v.permute(4, 5, 0, 1, 2, 3).reshape(geo.area(), -1)


def _scatter_patches(patches: Tensor, out_hw: Pair, geo: Geometry) -> Tensor:
    """Sum patches (kh, kw, B, Ho, Wo, *c) into a (B, H, W, *c) canvas: one add per offset."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = geo.kernel, geo.stride, geo.padding, geo.dilation
    (H, W), (Ho, Wo) = out_hw, patches.shape[3:5]
    B, tail = patches.shape[2], patches.shape[5:]
    out = patches.new_zeros(B, H + 2 * ph, W + 2 * pw, *tail)  # padded canvas
    for i in range(kh):
        for j in range(kw):
            r = slice(i * dh, i * dh + sh * (Ho - 1) + 1, sh)
            c = slice(j * dw, j * dw + sw * (Wo - 1) + 1, sw)
            out[:, r, c] += patches[i, j]
    return out[:, ph : ph + H, pw : pw + W]


def col2im(
    rows: Tensor,
    batch: int,
    out_hw: Pair,
    geo: Geometry,
    groups: int = 1,
    grid: Pair | None = None,
) -> Tensor:
    """Adjoint of im2col: sum patch rows (B*Ho*Wo, C*kh*kw) back into (B, C, H, W).

    (Ho, Wo) = `grid`, default geo.out_hw(H, W). One strided add per kernel offset
    (kh*kw of them), each vectorised over all pixels. Returns a channels_last view.
    """
    (kh, kw), (Ho, Wo) = geo.kernel, geo.out_hw(*out_hw) if grid is None else grid
    N, K = rows.shape
    if K % (kh * kw * groups) or N != batch * Ho * Wo:
        raise ValueError(f"rows: shape {(N, K)} does not fit batch {batch}, output {out_hw}")
    patches = rows.reshape(batch, Ho, Wo, groups, kh, kw, K // (kh * kw * groups))
    out = _scatter_patches(patches.permute(4, 5, 0, 1, 2, 3, 6), out_hw, geo)
    return out.flatten(3).permute(0, 3, 1, 2)  # (B, H, W, g, C/g) -> (B, C, H, W)


def _group_matmul(rows: Tensor, mats: Tensor, bias: Tensor | None = None) -> Tensor:
    """Block-diagonal product: rows (N, g*K) @ mats (g, K, M) -> (N, g*M) [+ bias (g*M,)]."""
    g, K, M = mats.shape
    if g == 1:
        return rows @ mats[0] if bias is None else torch.addmm(bias, rows, mats[0])
    out = torch.bmm(rows.reshape(-1, g, K).transpose(0, 1), mats)  # (g, N, M)
    out = out.transpose(0, 1).reshape(-1, g * M)
    return out if bias is None else out.add_(bias)


def _group_outer(a: Tensor, b: Tensor, groups: int) -> Tensor:
    """Per-group a^T b summed over rows: a (N, g*M), b (N, g*K) -> (g, M, K)."""
    N = a.shape[0]
    if groups == 1:
        return (a.t() @ b).unsqueeze(0)
    a_g = a.reshape(N, groups, -1).permute(1, 2, 0)  # (g, M, N)
    return torch.bmm(a_g, b.reshape(N, groups, -1).transpose(0, 1))  # (g, M, K)


def _kernel_matrix(w: Tensor, groups: int) -> Tensor:
    """(Og*g, Cg, kh, kw) -> (g, Og, kh*kw*Cg), columns ordered like im2col's (kh, kw, C/g)."""
    Og = w.shape[0] // groups
    return w.reshape(groups, Og, *w.shape[1:]).permute(0, 1, 3, 4, 2).reshape(groups, Og, -1)


def _kernel_tensor(m: Tensor, shape: torch.Size) -> Tensor:
    """Inverse of _kernel_matrix: (g, Og, kh*kw*Cg) -> (Og*g, Cg, kh, kw)."""
    Ogg, Cg, kh, kw = shape
    return m.reshape(Ogg, kh, kw, Cg).permute(0, 3, 1, 2).contiguous()


# ----------------------------------------------------------------------------- conv2d


@dataclass
class ConvCache:
    cols: Tensor  # (B*Ho*Wo, C*kh*kw) patch rows of the input
    w_mat: Tensor  # (g, O/g, kh*kw*C/g)
    w_shape: torch.Size  # (O, C/g, kh, kw)
    in_shape: tuple[int, int, int, int]
    geo: Geometry
    has_bias: bool


@torch.no_grad()
def conv2d_forward(
    x: Tensor,
    w: Tensor,
    b: Tensor | None,
    *,
    stride: int | Pair = 1,
    padding: int | Pair = 0,
    dilation: int | Pair = 1,
    groups: int = 1,
) -> tuple[Tensor, ConvCache]:
    """Cross-correlation y = w * x + b as one GEMM per group: rows(y) = cols(x) W^T + b.

    x (B, C, H, W), w (O, C/g, kh, kw), b (O,) or None -> y (B, O, Ho, Wo), channels_last.
    """
    check_shape(w, (None, None, None, None), "w")
    O, Cg, kh, kw = w.shape
    check_shape(x, (None, Cg * groups, None, None), "x")
    _check_groups(groups, out_channels=O, in_channels=x.shape[1])
    _check_bias(b, O)
    geo = Geometry.make((kh, kw), stride, padding, dilation)
    B, _, H, W = x.shape
    cols = im2col(x, geo, groups)  # (B*Ho*Wo, C*kh*kw)
    w_mat = _kernel_matrix(w, groups)  # (g, O/g, kh*kw*C/g)
    y = _group_matmul(cols, w_mat.transpose(1, 2), b)  # (B*Ho*Wo, O)
    cache = ConvCache(cols, w_mat, w.shape, (B, Cg * groups, H, W), geo, b is not None)
    return from_rows(y, B, geo.out_hw(H, W)), cache


@torch.no_grad()
def conv2d_backward(
    dy: Tensor, cache: ConvCache, *, need_dx: bool = True
) -> tuple[Tensor | None, Tensor, Tensor | None]:
    """dx = col2im(dy W) (B, C, H, W), dw = dy^T cols (O, C/g, kh, kw), db = sum dy (O,)."""
    B, C, H, W = cache.in_shape
    g = cache.w_mat.shape[0]
    check_shape(dy, (B, cache.w_shape[0], *cache.geo.out_hw(H, W)), "dy")
    dy_rows = to_rows(dy)  # (B*Ho*Wo, O)
    dw = _kernel_tensor(_group_outer(dy_rows, cache.cols, g), cache.w_shape)
    db = dy_rows.sum(0) if cache.has_bias else None
    if not need_dx:
        return None, dw, db
    dcols = _group_matmul(dy_rows, cache.w_mat)  # (B*Ho*Wo, C*kh*kw)
    return col2im(dcols, B, (H, W), cache.geo, g), dw, db


# ----------------------------------------------------------------------------- conv_transpose2d


@dataclass
class ConvTCache:
    x_rows: Tensor  # (B*H*W, C) input pixel rows
    w_mat: Tensor  # (g, C/g, kh*kw*O/g)
    w_shape: torch.Size  # (C, O/g, kh, kw)
    in_shape: tuple[int, int, int, int]
    out_hw: Pair
    geo: Geometry
    has_bias: bool


def conv_transpose_out_hw(in_hw: Pair, geo: Geometry, output_padding: Pair) -> Pair:
    """Ho = (H - 1)s - 2p + d(k - 1) + output_padding + 1, per axis."""
    sizes = zip(
        in_hw, geo.kernel, geo.stride, geo.padding, geo.dilation, output_padding, strict=True
    )
    out = tuple((n - 1) * s - 2 * p + d * (k - 1) + op + 1 for n, k, s, p, d, op in sizes)
    if min(out) < 1:
        raise ValueError(f"padding: transposed convolution output size {out} is not positive")
    return out  # type: ignore[return-value]


def _check_output_padding(output_padding: Pair, geo: Geometry) -> None:
    for op, s, d in zip(output_padding, geo.stride, geo.dilation, strict=True):
        if op >= max(s, d):
            raise ValueError(
                f"output_padding: {output_padding} must be smaller than stride or dilation"
            )


@torch.no_grad()
def conv_transpose2d_forward(
    x: Tensor,
    w: Tensor,
    b: Tensor | None,
    *,
    stride: int | Pair = 1,
    padding: int | Pair = 0,
    output_padding: int | Pair = 0,
    dilation: int | Pair = 1,
    groups: int = 1,
) -> tuple[Tensor, ConvTCache]:
    """Transposed conv, the input-gradient of conv2d: y = col2im(rows(x) W) + b.

    x (B, C, H, W), w (C, O/g, kh, kw), b (O,) or None -> y (B, O, Ho, Wo), channels_last.
    """
    check_shape(w, (None, None, None, None), "w")
    C, Og, kh, kw = w.shape
    check_shape(x, (None, C, None, None), "x")
    _check_groups(groups, in_channels=C)
    _check_bias(b, Og * groups)
    geo = Geometry.make((kh, kw), stride, padding, dilation)
    op = pair(output_padding, "output_padding")
    _check_output_padding(op, geo)
    B, _, H, W = x.shape
    out_hw = conv_transpose_out_hw((H, W), geo, op)
    x_rows = to_rows(x)  # (B*H*W, C)
    w_mat = _kernel_matrix(w, groups)  # (g, C/g, kh*kw*O/g)
    y = col2im(_group_matmul(x_rows, w_mat), B, out_hw, geo, groups, (H, W))  # (B, O, Ho, Wo)
    if b is not None:
        y = y + b.view(1, -1, 1, 1)
    return y, ConvTCache(x_rows, w_mat, w.shape, (B, C, H, W), out_hw, geo, b is not None)


@torch.no_grad()
def conv_transpose2d_backward(
    dy: Tensor, cache: ConvTCache, *, need_dx: bool = True
) -> tuple[Tensor | None, Tensor, Tensor | None]:
    """dx = cols(dy) W^T (B, C, H, W), dw = x^T cols(dy) (C, O/g, kh, kw), db = sum dy (O,)."""
    B, C, H, W = cache.in_shape
    g = cache.w_mat.shape[0]
    check_shape(dy, (B, cache.w_shape[1] * g, *cache.out_hw), "dy")
    dcols = im2col(dy, cache.geo, g, (H, W))  # (B*H*W, O*kh*kw): the windows x fed
    dw = _kernel_tensor(_group_outer(cache.x_rows, dcols, g), cache.w_shape)
    db = dy.sum((0, 2, 3)) if cache.has_bias else None
    if not need_dx:
        return None, dw, db
    dx = _group_matmul(dcols, cache.w_mat.transpose(1, 2))  # (B*H*W, C)
    return from_rows(dx, B, (H, W)), dw, db


# ----------------------------------------------------------------------------- pooling


@dataclass
class PoolCache:
    saved: Tensor  # max: one-hot argmax (kh*kw, B*Ho*Wo*C); avg: divisor, () or (Ho*Wo, 1)
    in_shape: tuple[int, int, int, int]
    geo: Geometry


def _pool_geometry(kernel_size, stride, padding, dilation) -> Geometry:
    geo = Geometry.make(kernel_size, kernel_size if stride is None else stride, padding, dilation)
    if any(p > k // 2 for p, k in zip(geo.padding, geo.kernel, strict=True)):
        raise ValueError(f"padding: {geo.padding} must be at most half of kernel {geo.kernel}")
    return geo


@torch.no_grad()
def max_pool2d_forward(
    x: Tensor,
    *,
    kernel_size: int | Pair,
    stride: int | Pair | None = None,
    padding: int | Pair = 0,
    dilation: int | Pair = 1,
) -> tuple[Tensor, PoolCache]:
    """Max over each window (padding counts as -inf). x (B, C, H, W) -> y (B, C, Ho, Wo)."""
    check_shape(x, (None, None, None, None), "x")
    geo = _pool_geometry(kernel_size, stride, padding, dilation)
    B, C, H, W = x.shape
    y, hit = _first_max(window_stack(x, geo, float("-inf")))  # (B*Ho*Wo*C,), (kh*kw, ...)
    y = from_rows(y.view(-1, C), B, geo.out_hw(H, W))
    return y, PoolCache(hit, (B, C, H, W), geo)


@torch.no_grad()
def max_pool2d_backward(dy: Tensor, cache: PoolCache) -> Tensor:
    """dx (B, C, H, W): each dy routed to its window's argmax (summed where windows overlap)."""
    B, C, H, W = cache.in_shape
    Ho, Wo = cache.geo.out_hw(H, W)
    check_shape(dy, (B, C, Ho, Wo), "dy")
    dstack = cache.saved.to(dy.dtype).mul_(to_rows(dy).reshape(1, -1))  # (kh*kw, B*Ho*Wo*C)
    return _unstack(dstack, (B, C, H, W), cache.geo)


def _first_max(stack: Tensor) -> tuple[Tensor, Tensor]:
    """Max over axis 0 of (K, M) and a one-hot (K, M) bool marking its first occurrence.

    Same tie-breaking as torch's max_pool2d (lowest window offset wins); a short loop over
    the K kernel offsets of vectorised boolean ops, much faster on CPU than max(dim=0).
    """
    y = stack.amax(0)
    hit = stack == y  # (K, M): every position equal to the max
    taken = hit[0].clone()
    for k in range(1, hit.shape[0]):
        hit[k] &= ~taken  # keep only the first hit per column
        taken |= hit[k]
    return y, hit


def _unstack(dstack: Tensor, in_shape: tuple[int, int, int, int], geo: Geometry) -> Tensor:
    """Adjoint of window_stack: (kh*kw, B*Ho*Wo*C) -> (B, C, H, W), channels_last."""
    B, C, H, W = in_shape
    patches = dstack.reshape(*geo.kernel, B, *geo.out_hw(H, W), C)  # (kh, kw, B, Ho, Wo, C)
    return _scatter_patches(patches, (H, W), geo).permute(0, 3, 1, 2)


@torch.no_grad()
def avg_pool2d_forward(
    x: Tensor,
    *,
    kernel_size: int | Pair,
    stride: int | Pair | None = None,
    padding: int | Pair = 0,
    count_include_pad: bool = True,
) -> tuple[Tensor, PoolCache]:
    """Mean over each window (zero padding). x (B, C, H, W) -> y (B, C, Ho, Wo)."""
    check_shape(x, (None, None, None, None), "x")
    geo = _pool_geometry(kernel_size, stride, padding, 1)
    B, C, H, W = x.shape
    Ho, Wo = geo.out_hw(H, W)
    if count_include_pad:
        divisor = x.new_tensor(float(geo.area()))
    else:  # number of real (non-padding) pixels in each window: (Ho*Wo, 1)
        divisor = window_stack(x.new_ones(1, 1, H, W), geo, 0.0).sum(0).view(-1, 1)
    sums = window_stack(x, geo, 0.0).sum(0).view(B, Ho * Wo, C)  # (B, Ho*Wo, C)
    y = from_rows((sums / divisor).view(-1, C), B, (Ho, Wo))
    return y, PoolCache(divisor, (B, C, H, W), geo)


@torch.no_grad()
def avg_pool2d_backward(dy: Tensor, cache: PoolCache) -> Tensor:
    """dx (B, C, H, W): dy / divisor spread evenly over each window."""
    B, C, H, W = cache.in_shape
    Ho, Wo = cache.geo.out_hw(H, W)
    check_shape(dy, (B, C, Ho, Wo), "dy")
    share = to_rows(dy).reshape(B, Ho * Wo, C) / cache.saved  # (B, Ho*Wo, C)
    dstack = share.reshape(1, -1).expand(cache.geo.area(), share.numel())  # (kh*kw, B*Ho*Wo*C)
    return _unstack(dstack, (B, C, H, W), cache.geo)


# ----------------------------------------------------------------------------- dense ops


@dataclass
class LinearCache:
    x: Tensor  # (B, I)
    w: Tensor  # (O, I)
    has_bias: bool


@torch.no_grad()
def linear_forward(x: Tensor, w: Tensor, b: Tensor | None) -> tuple[Tensor, LinearCache]:
    """y = x w^T + b. x (B, I), w (O, I), b (O,) -> y (B, O)."""
    check_shape(w, (None, None), "w")
    check_shape(x, (None, w.shape[1]), "x")
    _check_bias(b, w.shape[0])
    y = x @ w.t() if b is None else torch.addmm(b, x, w.t())
    return y, LinearCache(x, w, b is not None)


@torch.no_grad()
def linear_backward(dy: Tensor, cache: LinearCache) -> tuple[Tensor, Tensor, Tensor | None]:
    """dx = dy w (B, I), dw = dy^T x (O, I), db = sum_b dy (O,)."""
    check_shape(dy, (cache.x.shape[0], cache.w.shape[0]), "dy")
    db = dy.sum(0) if cache.has_bias else None
    return dy @ cache.w, dy.t() @ cache.x, db


@torch.no_grad()
def relu_forward(x: Tensor) -> tuple[Tensor, Tensor]:
    """y = max(x, 0); the cache is y (y > 0 exactly where x > 0)."""
    y = torch.relu(x)
    return y, y


@torch.no_grad()
def relu_backward(dy: Tensor, y: Tensor) -> Tensor:
    """dx = dy * 1[x > 0] = dy * sign(y), as y = relu(x) >= 0 (one fused pass, no bool mask)."""
    check_shape(dy, tuple(y.shape), "dy")
    return dy * torch.sign(y)


@torch.no_grad()
def sigmoid_forward(x: Tensor) -> tuple[Tensor, Tensor]:
    """y = 1 / (1 + exp(-x)); the cache is y."""
    y = torch.sigmoid(x)
    return y, y


@torch.no_grad()
def sigmoid_backward(dy: Tensor, y: Tensor) -> Tensor:
    """dx = dy * y (1 - y)."""
    check_shape(dy, tuple(y.shape), "dy")
    return dy * y * (1 - y)


# ----------------------------------------------------------------------------- losses


@dataclass
class CrossEntropyCache:
    probs: Tensor  # (B, K) softmax
    target: Tensor  # (B,) int64


@torch.no_grad()
def softmax_cross_entropy_forward(
    logits: Tensor, target: Tensor
) -> tuple[Tensor, CrossEntropyCache]:
    """Mean over the batch of -log softmax(logits)[target]. logits (B, K), target (B,) -> scalar."""
    check_shape(logits, (None, None), "logits")
    check_shape(target, (logits.shape[0],), "target")
    log_probs = logits - torch.logsumexp(logits, dim=1, keepdim=True)  # stable log-softmax
    loss = -log_probs.gather(1, target.long().unsqueeze(1)).mean()
    return loss, CrossEntropyCache(log_probs.exp(), target.long())


@torch.no_grad()
def softmax_cross_entropy_backward(cache: CrossEntropyCache, dloss: float | Tensor = 1.0) -> Tensor:
    """dlogits (B, K) = (softmax - onehot(target)) / B, scaled by the upstream dloss."""
    B = cache.probs.shape[0]
    d = cache.probs.clone()
    d[torch.arange(B), cache.target] -= 1.0
    return d.mul_(dloss / B)


@torch.no_grad()
def mse_forward(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Mean squared error over all elements; the cache is pred - target."""
    check_shape(target, tuple(pred.shape), "target")
    diff = pred - target
    return diff.square().mean(), diff


@torch.no_grad()
def mse_backward(diff: Tensor, dloss: float | Tensor = 1.0) -> Tensor:
    """dpred = 2 (pred - target) / N, scaled by the upstream dloss."""
    return diff * (2.0 * dloss / diff.numel())
