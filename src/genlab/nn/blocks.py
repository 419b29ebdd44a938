"""Convolutional building blocks of diffusion U-Nets: the residual block with adaptive
scale-shift conditioning (Nichol & Dhariwal 2021, "AdaGN"; Karras et al. 2022, EDM) and
nearest / average-pool / strided-conv resampling (Ho et al. 2020; Song et al. 2021).

Every block takes nhwc_paths (default False). False: plain torch ops (nn.GroupNorm,
F.interpolate, F.avg_pool2d, torch.cat), the reference. True: for channels_last (NHWC)
inputs, formulations of the same arithmetic whose outputs and gradients stay NHWC, so a
channels_last network on a GPU hands cuDNN no NCHW tensors to convert (see each helper);
NCHW inputs still take the plain ops. Both give the same values and the same state_dict.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

RESAMPLE = ("none", "up", "down")


def is_channels_last(x: torch.Tensor) -> bool:
    """x is a 4-D tensor laid out channels_last (NHWC) and not also plain contiguous (as a
    1x1 map or a single channel is). The NHWC paths take only such tensors."""
    return x.dim() == 4 and not x.is_contiguous() and \
        x.is_contiguous(memory_format=torch.channels_last)


class NHWCGroupNorm(nn.GroupNorm):
    """nn.GroupNorm (Wu & He 2018) whose output keeps an NHWC input's layout (nhwc_paths).

    On CUDA, torch's group_norm makes its input NCHW-contiguous and returns NCHW, so in a
    channels_last network every convolution after a GroupNorm got an NCHW activation with an
    NHWC weight: cuDNN then converts the activation inside the call, in the forward and again
    in the backward (aten copy kernels, outside torch.compile's fused code). For an NHWC x
    this computes the same normalisation with NHWC-friendly ops, so the output and the
    gradient stay NHWC: mean and variance per channel over H, W (a reduction along NHWC's
    strided axes, channels contiguous, as for channels_last BatchNorm), combined per group by
    the law of total variance. Statistics and output are fp32 for a bf16/fp16 x, as autocast
    runs group_norm (fp64 stays fp64); an NCHW x takes torch's op.
    Same parameters and state_dict as nn.GroupNorm.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not is_channels_last(x):
            return super().forward(x)
        b, c = x.shape[:2]
        g = self.num_groups
        dtype = torch.promote_types(x.dtype, torch.float32)  # bf16/fp16 -> fp32; fp64 kept
        var_c, mean_c = torch.var_mean(x.to(dtype), dim=(2, 3), correction=0)  # (B, C)
        mean_c, var_c = mean_c.view(b, g, c // g), var_c.view(b, g, c // g)
        mean = mean_c.mean(2)  # (B, G): equal-size channels
        var = var_c.mean(2) + (mean_c - mean[:, :, None]).square().mean(2)
        # y = (x - mean) * rstd * weight + bias = x * scale + shift, per (batch, channel)
        scale = torch.rsqrt(var + self.eps).repeat_interleave(c // g, dim=1)  # (B, C)
        shift = -mean.repeat_interleave(c // g, dim=1) * scale
        if self.affine:
            scale = scale * self.weight.to(dtype)
            shift = torch.addcmul(self.bias.to(dtype), shift, self.weight.to(dtype))
        # fp32 out for a bf16 x (type promotion), laid out as x: NHWC
        return torch.addcmul(shift[:, :, None, None], x, scale[:, :, None, None])


def group_norm(channels: int, max_groups: int = 32, min_per_group: int = 4,
               eps: float = 1e-6, nhwc_paths: bool = False) -> nn.GroupNorm:
    """GroupNorm with the most groups (<= max_groups, >= min_per_group channels each) dividing
    channels; 32 groups for the usual widths, fewer for tiny test networks. nn.GroupNorm, or
    with nhwc_paths its layout-keeping NHWCGroupNorm (same parameters)."""
    groups = max(1, min(max_groups, channels // min_per_group))
    while channels % groups:
        groups -= 1
    return (NHWCGroupNorm if nhwc_paths else nn.GroupNorm)(groups, channels, eps=eps)


def upsample_nearest2x(x: torch.Tensor) -> torch.Tensor:
    """NHWC path of F.interpolate(x, 2, 'nearest'): (B, C, H, W) -> (B, C, 2H, 2W), each pixel
    repeated 2x2. An NHWC x is repeated as (B, H, W, C) rows, so the output and the gradient
    (a sum over each 2x2 block) stay NHWC; F.interpolate's backward scatters into a fresh
    NCHW tensor, which the next cuDNN convolution backward would have to convert. An NCHW x
    takes F.interpolate."""
    if not is_channels_last(x):
        return F.interpolate(x, scale_factor=2.0, mode="nearest")
    b, c, h, w = x.shape
    y = x.permute(0, 2, 3, 1)[:, :, None, :, None, :].expand(b, h, 2, w, 2, c)
    return y.reshape(b, 2 * h, 2 * w, c).permute(0, 3, 1, 2)


def avg_pool2x(x: torch.Tensor) -> torch.Tensor:
    """NHWC path of F.avg_pool2d(x, 2): (B, C, H, W) -> (B, C, H/2, W/2), the mean of each
    2x2 block. An NHWC x is pooled as (B, H/2, 2, W/2, 2, C) blocks, so the gradient (each
    block's share, broadcast back) is NHWC too; avg_pool2d's backward fills a fresh NCHW
    tensor under torch.compile, which the next kernels then transpose. An NCHW x, and odd
    sides (which avg_pool2d floors), take avg_pool2d."""
    if not is_channels_last(x) or x.shape[2] % 2 or x.shape[3] % 2:
        return F.avg_pool2d(x, kernel_size=2)
    b, c, h, w = x.shape
    y = x.permute(0, 2, 3, 1).reshape(b, h // 2, 2, w // 2, 2, c).mean(dim=(2, 4))
    return y.permute(0, 3, 1, 2)


def resample(x: torch.Tensor, mode: str, nhwc_paths: bool = False) -> torch.Tensor:
    """(B, C, H, W) -> nearest 2x up ('up'), 2x2 average pool ('down') or unchanged ('none')."""
    if mode == "up":  # (B, C, 2H, 2W)
        return upsample_nearest2x(x) if nhwc_paths else \
            F.interpolate(x, scale_factor=2.0, mode="nearest")
    if mode == "down":  # (B, C, H/2, W/2)
        return avg_pool2x(x) if nhwc_paths else F.avg_pool2d(x, kernel_size=2)
    return x


def cat_channels(tensors: list[torch.Tensor]) -> torch.Tensor:
    """NHWC path of torch.cat(tensors, dim=1). NHWC tensors are joined as their (B, H, W, C)
    views along the last axis, so the result is NHWC for any backend: torch.compile's
    inductor gives a concatenation of freshly computed NHWC tensors an NCHW buffer (it keeps
    NHWC only when an input's layout is already fixed), and everything reading it (GroupNorm,
    the convolutions) then transposes. Same values as torch.cat; NCHW tensors take torch.cat."""
    if all(is_channels_last(t) for t in tensors):
        return torch.cat([t.permute(0, 2, 3, 1) for t in tensors], dim=3).permute(0, 3, 1, 2)
    return torch.cat(tensors, dim=1)


class _ChannelsLastGrad(torch.autograd.Function):
    """Identity forward; the backward hands the gradient on as a dense NHWC tensor."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad.contiguous(memory_format=torch.channels_last)


def channels_last_grad(x: torch.Tensor) -> torch.Tensor:
    """NHWC path: x unchanged; for an NHWC (channels_last) x, its gradient arrives dense NHWC.

    For the U-Net's skip concatenations: the gradient of torch.cat's input is a channel slice
    of the output's gradient, and a convolution backward given that strided tensor converts
    it inside cuDNN's call. Made dense here, the copy is a kernel the compiler can fuse.
    (Alone it did not speed the compiled H100 step up: the bulk of the aten copies came from
    torch's group_norm returning NCHW, see NHWCGroupNorm.) Identity (no autograd node) for
    NCHW.
    """
    return _ChannelsLastGrad.apply(x) if is_channels_last(x) else x


def cat_skip(h: torch.Tensor, skip: torch.Tensor, nhwc_paths: bool = False) -> torch.Tensor:
    """(B, C, H, W), (B, C_skip, H, W) -> (B, C + C_skip, H, W): a U-Net decoder's input.
    With nhwc_paths, NHWC in and out, and h's gradient (a channel slice of the output's)
    made dense NHWC."""
    if not nhwc_paths:
        return torch.cat([h, skip], dim=1)
    return cat_channels([channels_last_grad(h), skip])


class Downsample(nn.Module):
    """(B, C, H, W) -> (B, C, H/2, W/2) by 2x2 average pooling or a stride-2 3x3 conv."""

    def __init__(self,
                 channels: int,              # C, kept
                 mode: str = "avgpool",      # "avgpool" (no parameters) or "conv" (strided conv)
                 nhwc_paths: bool = False):  # NHWC-keeping pooling for NHWC inputs
        super().__init__()
        if mode not in ("avgpool", "conv"):
            raise ValueError(f"mode must be 'avgpool' or 'conv', got mode={mode!r}")
        self.nhwc_paths = nhwc_paths
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1) if mode == "conv" \
            else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return resample(x, "down", self.nhwc_paths) if self.conv is None else self.conv(x)


class Upsample(nn.Module):
    """(B, C, H, W) -> (B, C, 2H, 2W) by nearest neighbours, optionally followed by a 3x3 conv."""

    def __init__(self,
                 channels: int,              # C, kept
                 mode: str = "nearest",      # "nearest" (no parameters) or "conv" (nearest + conv)
                 nhwc_paths: bool = False):  # NHWC-keeping upsampling for NHWC inputs
        super().__init__()
        if mode not in ("nearest", "conv"):
            raise ValueError(f"mode must be 'nearest' or 'conv', got mode={mode!r}")
        self.nhwc_paths = nhwc_paths
        self.conv = nn.Conv2d(channels, channels, 3, padding=1) if mode == "conv" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = resample(x, "up", self.nhwc_paths)
        return x if self.conv is None else self.conv(x)


class ResBlock(nn.Module):
    """x (B, C_in, H, W), emb (B, E) -> (B, C_out, H', W'), H' = H, 2H ('up') or H/2 ('down').

    h = conv3x3(resample(SiLU(GN(x))))
    h = conv3x3(dropout(SiLU((1 + scale) * GN(h) + shift))),  (scale, shift) = Linear(emb)
    out = h + skip(resample(x)),  skip = 1x1 conv if C_in != C_out else identity.
    The last conv starts at zero, so at initialisation out == skip(resample(x)) exactly.
    """

    def __init__(self,
                 in_channels: int,           # C_in
                 out_channels: int,          # C_out
                 emb_dim: int,               # E, width of the conditioning embedding
                 dropout: float = 0.0,       # dropout before the last conv, training only
                 resample: str = "none",     # "none" | "up" (nearest 2x) | "down" (avgpool 2x)
                 nhwc_paths: bool = False):  # NHWC-keeping GroupNorm / resampling (see top)
        super().__init__()
        if resample not in RESAMPLE:
            raise ValueError(f"resample must be one of {RESAMPLE}, got resample={resample!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got dropout={dropout}")
        self.resample, self.nhwc_paths = resample, nhwc_paths
        self.norm1 = group_norm(in_channels, nhwc_paths=nhwc_paths)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.affine = nn.Linear(emb_dim, 2 * out_channels)
        self.norm2 = group_norm(out_channels, nhwc_paths=nhwc_paths)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels \
            else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.norm1(x))
        h = self.conv1(resample(h, self.resample, self.nhwc_paths))  # (B, C_out, H', W')
        scale, shift = self.affine(emb)[:, :, None, None].chunk(2, dim=1)  # (B, C_out, 1, 1)
        h = F.silu(torch.addcmul(shift, self.norm2(h), 1 + scale))  # adaptive GroupNorm
        h = self.conv2(self.dropout(h))
        return h + self.skip(resample(x, self.resample, self.nhwc_paths))
