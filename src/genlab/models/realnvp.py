"""RealNVP (Dinh et al. 2017): affine coupling layers with checkerboard and channel-wise masks,
squeeze and multi-scale factor-out for images, act-norm (Kingma & Dhariwal 2018) before each
coupling, and the 2-D version (alternating-mask couplings with MLPs) for toy points.

Every layer maps x -> (y, log|det dy/dx| per example (B,)) in `forward` and y -> x in
`inverse`. A whole flow maps data to a flat latent z (B, D) meant to be standard normal; the
likelihood, dequantisation and logit transform are in genlab.objectives.flow.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _sum_per_example(v: torch.Tensor) -> torch.Tensor:
    return v.flatten(1).sum(1)  # (B, ...) -> (B,)


class ActNorm(nn.Module):
    """Per-channel affine y = x * exp(log_scale) + bias (Glow, Sec. 3.1), for (B, C) or
    (B, C, H, W). Data-dependent init: the first forward sets log_scale and bias so that that
    batch comes out with zero mean and unit variance per channel. log-det = H W sum(log_scale).
    """

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps
        # a buffer, so the state_dict (checkpoint, EMA copy) says whether init has happened
        self.register_buffer("initialized", torch.tensor(False))
        self._ready = False  # Python mirror of `initialized`: no tensor read once it is set

    def _view(self, v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return v.view(1, -1, *([1] * (x.ndim - 2)))  # (C,) -> (1, C[, 1, 1])

    @torch.no_grad()
    def _init(self, x: torch.Tensor) -> None:
        dims = [0, *range(2, x.ndim)]  # every axis but the channel's
        std, mean = torch.std_mean(x, dim=dims, correction=0)
        self.log_scale.copy_(-(std + self.eps).log())
        self.bias.copy_(-mean / (std + self.eps))
        self.initialized.fill_(True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self._ready:
            if not self.initialized:
                self._init(x)
            self._ready = True
        y = x * self._view(self.log_scale.exp(), x) + self._view(self.bias, x)
        spatial = x[0, 0].numel()  # H * W (1 for vectors)
        return y, (spatial * self.log_scale.sum()).expand(len(x))

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return (y - self._view(self.bias, y)) * self._view((-self.log_scale).exp(), y)


class AffineCoupling(nn.Module):
    """Affine coupling (Dinh et al. 2017, Eqs. 7-9): y = x * exp(s) + t, where s and t are
    functions of the part of x the mask keeps and are zero on that part, so y keeps it too;
    log|det| = sum(s) (Eq. 6). Subclasses give `params(x) -> (s, t)` shaped like x. The scale
    is bounded, s = scale * tanh(raw) with a learned per-channel `scale` (Sec. 4.1)."""

    def params(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = self.params(x)
        return x * s.exp() + t, _sum_per_example(s)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        s, t = self.params(y)  # y equals x on the kept part, so these are forward's s and t
        return (y - t) * (-s).exp()


def _zero_init(layer: nn.Module) -> nn.Module:
    """A last layer at zero: each coupling starts as the identity (Glow, Sec. 3.3)."""
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class ConvResNet(nn.Module):
    """(B, c_in, H, W) -> (B, c_out, H, W): a 3x3 conv, `blocks` residual blocks
    (ReLU, conv 3x3, ReLU, conv 3x3) and a zero-initialised 3x3 conv: the s, t network of the
    image couplings (a small version of the paper's ResNet)."""

    def __init__(self, c_in: int, c_out: int, hidden: int, blocks: int):
        super().__init__()
        self.inp = nn.Conv2d(c_in, hidden, 3, padding=1)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.ReLU(), nn.Conv2d(hidden, hidden, 3, padding=1),
                          nn.ReLU(), nn.Conv2d(hidden, hidden, 3, padding=1))
            for _ in range(blocks))
        self.out = _zero_init(nn.Conv2d(hidden, c_out, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        for block in self.blocks:
            h = h + block(h)
        return self.out(F.relu(h))


def checkerboard(h: int, w: int, parity: int, like: torch.Tensor) -> torch.Tensor:
    """The checkerboard mask b (1, 1, H, W): 1 where (i + j + parity) is even (Fig. 3, left)."""
    i = torch.arange(h, device=like.device)[:, None]
    j = torch.arange(w, device=like.device)[None, :]
    return ((i + j + parity) % 2 == 0).to(like.dtype).view(1, 1, h, w)


class CheckerboardCoupling(AffineCoupling):
    """Spatial checkerboard mask b: s, t = ResNet(b x, b) (the mask as an extra input channel,
    so the network knows which pixels it sees), both times (1 - b) (Eq. 9)."""

    def __init__(self, channels: int, hidden: int, blocks: int, parity: int):
        super().__init__()
        self.parity = parity
        self.net = ConvResNet(channels + 1, 2 * channels, hidden, blocks)
        self.scale = nn.Parameter(torch.ones(1, channels, 1, 1))

    def params(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = checkerboard(x.shape[2], x.shape[3], self.parity, x)  # (1, 1, H, W)
        h = self.net(torch.cat([x * b, b.expand(len(x), 1, -1, -1)], 1))  # (B, 2C, H, W)
        raw, t = h.chunk(2, 1)
        return self.scale * torch.tanh(raw) * (1 - b), t * (1 - b)


class ChannelCoupling(AffineCoupling):
    """Channel-wise mask: one half of the channels gives s, t for the other (Fig. 3, right);
    parity picks which half is kept. channels must be even."""

    def __init__(self, channels: int, hidden: int, blocks: int, parity: int):
        super().__init__()
        assert channels % 2 == 0, f"a channel-wise coupling needs even channels, got {channels}"
        self.parity = parity
        self.net = ConvResNet(channels // 2, channels, hidden, blocks)
        self.scale = nn.Parameter(torch.ones(1, channels // 2, 1, 1))

    def params(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        kept, _ = x.chunk(2, 1) if self.parity == 0 else x.chunk(2, 1)[::-1]
        raw, t = self.net(kept).chunk(2, 1)  # each (B, C/2, H, W)
        s, zero = self.scale * torch.tanh(raw), torch.zeros_like(kept)
        if self.parity == 0:
            return torch.cat([zero, s], 1), torch.cat([zero, t], 1)
        return torch.cat([s, zero], 1), torch.cat([t, zero], 1)


class VectorCoupling(AffineCoupling):
    """Masked coupling on vectors (B, D) with an MLP: b alternates between even and odd
    coordinates (for D = 2: (1, 0), then (0, 1)); s, t = MLP(b x) times (1 - b). ReLU: the
    piecewise-linear s, t fit the toy sets' sharp mode edges faster than SiLU did (8 Gaussians,
    15 s of training: KL 0.21 vs 0.38 nats)."""

    def __init__(self, dim: int, hidden: int, depth: int, parity: int):
        super().__init__()
        self.register_buffer("mask", (torch.arange(dim) % 2 == parity).float())
        layers, width = [], dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        self.net = nn.Sequential(*layers, _zero_init(nn.Linear(width, 2 * dim)))
        self.scale = nn.Parameter(torch.ones(dim))

    def params(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = self.mask.to(x.dtype)
        raw, t = self.net(x * b).chunk(2, 1)  # each (B, D)
        return self.scale * torch.tanh(raw) * (1 - b), t * (1 - b)


class Squeeze(nn.Module):
    """(B, C, H, W) -> (B, 4C, H/2, W/2): each 2x2 block becomes 4 channels (Sec. 3.6);
    volume preserving (log-det 0)."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, c, h, w = x.shape
        y = x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)  # (B, C, 2, 2, h, w)
        return y.reshape(b, 4 * c, h // 2, w // 2), x.new_zeros(b)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        b, c4, h, w = y.shape
        x = y.view(b, c4 // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)  # (B, C, h, 2, w, 2)
        return x.reshape(b, c4 // 4, 2 * h, 2 * w)


class FlowSequence(nn.ModuleList):
    """Layers applied in order; log-dets add up. inverse runs them backwards."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logdet = x.new_zeros(len(x))
        for layer in self:
            x, ld = layer(x)
            logdet = logdet + ld
        return x, logdet

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        for layer in reversed(self):
            y = layer.inverse(y)
        return y


def _couplings(kind: type, n: int, channels: int, hidden: int, blocks: int,
               actnorm: bool) -> list[nn.Module]:
    """n couplings of one kind with alternating parity, each after an act-norm if asked."""
    layers = []
    for i in range(n):
        layers += [ActNorm(channels)] if actnorm else []
        layers.append(kind(channels, hidden, blocks, parity=i % 2))
    return layers


class RealNVP(nn.Module):
    """The multi-scale image flow (Sec. 3.6): (B, C, H, W) real -> (z (B, C H W), log-det (B,)).

    Each of the `num_scales` scales: `checkerboard` checkerboard couplings, a squeeze,
    `channelwise` channel-wise couplings, then half the channels are factored out as latents;
    the last scale: `final` checkerboard couplings. z is the factored-out parts in order, each
    flattened, then the last scale's output. H and W must be divisible by 2 ** num_scales.
    """

    def __init__(self,
                 in_channels: int = 1,      # image channels C
                 resolution: int = 28,      # image side (square)
                 hidden: int = 64,          # channels of the coupling ResNets
                 blocks: int = 2,           # residual blocks per coupling ResNet
                 num_scales: int = 2,       # squeeze + factor-out scales before the last one
                 checkerboard: int = 3,     # checkerboard couplings per scale (paper: 3)
                 channelwise: int = 3,      # channel-wise couplings per scale (paper: 3)
                 final: int = 4,            # checkerboard couplings of the last scale (paper: 4)
                 actnorm: bool = True):     # an act-norm before each coupling
        super().__init__()
        if resolution % 2 ** num_scales:
            raise ValueError(f"resolution {resolution} is not divisible by 2 ** num_scales = "
                             f"{2 ** num_scales}")
        for name, v in (("in_channels", in_channels), ("hidden", hidden), ("final", final)):
            if v < 1:
                raise ValueError(f"{name} must be >= 1, got {v}")
        self.scales = nn.ModuleList()
        self.latent_shapes: list[tuple[int, int, int]] = []  # (C, H, W) of each z part
        c, side = in_channels, resolution
        for _ in range(num_scales):
            layers = _couplings(CheckerboardCoupling, checkerboard, c, hidden, blocks, actnorm)
            layers.append(Squeeze())
            c, side = 4 * c, side // 2
            layers += _couplings(ChannelCoupling, channelwise, c, hidden, blocks, actnorm)
            self.scales.append(FlowSequence(layers))
            c //= 2
            self.latent_shapes.append((c, side, side))  # factored out (B, C/2, H, W)
        self.final = FlowSequence(
            _couplings(CheckerboardCoupling, final, c, hidden, blocks, actnorm))
        self.latent_shapes.append((c, side, side))
        self.dim = in_channels * resolution ** 2

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        zs, logdet = [], x.new_zeros(len(x))
        for scale in self.scales:
            x, ld = scale(x)
            logdet = logdet + ld
            z, x = x.chunk(2, 1)  # factor out half the channels (Sec. 3.6)
            zs.append(z.flatten(1))
        x, ld = self.final(x)
        zs.append(x.flatten(1))
        return torch.cat(zs, 1), logdet + ld  # (B, C H W), (B,)

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        sizes = [math.prod(s) for s in self.latent_shapes]
        parts = [p.reshape(len(z), *s) for p, s in
                 zip(z.split(sizes, 1), self.latent_shapes, strict=True)]
        x = self.final.inverse(parts[-1])
        for scale, part in zip(reversed(self.scales), reversed(parts[:-1]), strict=True):
            x = scale.inverse(torch.cat([part, x], 1))
        return x  # (B, C, H, W)


class RealNVP2d(nn.Module):
    """The flow for points (B, D) -> (z (B, D), log-det (B,)): `layers` couplings with MLPs,
    masks alternating between coordinates, each after an act-norm if asked."""

    def __init__(self,
                 dim: int = 2,           # data dimension D (>= 2)
                 hidden: int = 128,      # MLP width
                 depth: int = 2,         # hidden layers per coupling MLP
                 layers: int = 8,        # couplings (even: each coordinate is moved as often)
                 actnorm: bool = True):  # an act-norm before each coupling
        super().__init__()
        if dim < 2 or hidden < 1 or depth < 1 or layers < 1:
            raise ValueError(f"need dim >= 2 and hidden, depth, layers >= 1, got dim={dim}, "
                             f"hidden={hidden}, depth={depth}, layers={layers}")
        self.flow = FlowSequence(_couplings(VectorCoupling, layers, dim, hidden, depth, actnorm))
        self.dim = dim

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.flow(x)

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        return self.flow.inverse(z)
