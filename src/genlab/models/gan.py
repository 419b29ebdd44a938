"""GAN networks: the DCGAN generator and discriminator (Radford et al. 2016) for small square
images, MLPs for 2-D points, spectral normalisation of the discriminator (Miyato et al. 2018),
and `GAN`, the one module holding both players that the training loop trains.

Images are NCHW float32 in [-1, 1] (the generator ends in tanh); points are (B, D) floats.
The discriminator returns one logit per example, (B,).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


def _sn(layer: nn.Module, on: bool) -> nn.Module:
    """The layer with its weight divided by its largest singular value (power iteration, one
    step per training forward; Miyato et al. 2018, Algorithm 1) when `on`."""
    return spectral_norm(layer) if on else layer


class DCGANGenerator(nn.Module):
    """z (B, z_dim) -> image (B, C, size, size) in [-1, 1].

    A linear projection to (2 width, size/4, size/4), then two stride-2 transposed convs
    (kernel 4, padding 1: side doubles exactly, 7 -> 14 -> 28) with BatchNorm and ReLU between
    them, tanh at the output (the DCGAN recipe, Sec. 3)."""

    def __init__(self,
                 z_dim: int = 64,        # latent size
                 channels: int = 1,      # image channels
                 size: int = 28,         # image side (a multiple of 4)
                 width: int = 64):       # channels at size/2; size/4 has 2 * width
        super().__init__()
        assert size % 4 == 0, f"size must be a multiple of 4, got {size}"
        self.side, self.width = size // 4, width
        self.project = nn.Sequential(nn.Linear(z_dim, 2 * width * self.side ** 2),
                                     nn.BatchNorm1d(2 * width * self.side ** 2), nn.ReLU())
        self.body = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1),  # (B, w, s/2, s/2)
            nn.BatchNorm2d(width), nn.ReLU(),
            nn.ConvTranspose2d(width, channels, 4, stride=2, padding=1),  # (B, C, s, s)
            nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.project(z).view(len(z), 2 * self.width, self.side, self.side)
        return self.body(h)


class DCGANDiscriminator(nn.Module):
    """image (B, C, size, size) -> logit (B,).

    Two stride-2 convs (kernel 4, padding 1: 28 -> 14 -> 7) with LeakyReLU(0.2), then a linear
    read-out. With spectral norm every layer is normalised and there is no BatchNorm (it would
    break the Lipschitz bound and couple the examples of a batch); without it the second conv
    is followed by BatchNorm as in DCGAN."""

    def __init__(self,
                 channels: int = 1,              # image channels
                 size: int = 28,                 # image side (a multiple of 4)
                 width: int = 64,                # channels at size/2; size/4 has 2 * width
                 spectral: bool = True):         # spectral norm on every layer
        super().__init__()
        assert size % 4 == 0, f"size must be a multiple of 4, got {size}"
        norm = nn.Identity() if spectral else nn.BatchNorm2d(2 * width)
        self.body = nn.Sequential(
            _sn(nn.Conv2d(channels, width, 4, stride=2, padding=1), spectral),  # (B, w, s/2, s/2)
            nn.LeakyReLU(0.2),
            _sn(nn.Conv2d(width, 2 * width, 4, stride=2, padding=1), spectral),  # (B, 2w, s/4..)
            norm, nn.LeakyReLU(0.2),
            nn.Flatten(),
            _sn(nn.Linear(2 * width * (size // 4) ** 2, 1), spectral))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).squeeze(1)  # (B,)


class MLPGenerator(nn.Module):
    """z (B, z_dim) -> point (B, dim): `depth` hidden layers of `hidden` units with ReLU."""

    def __init__(self,
                 z_dim: int = 8,        # latent size
                 dim: int = 2,          # data dimension
                 hidden: int = 128,     # hidden width
                 depth: int = 3):       # hidden layers
        super().__init__()
        layers, d = [], z_dim
        for _ in range(depth):
            layers += [nn.Linear(d, hidden), nn.ReLU()]
            d = hidden
        self.body = nn.Sequential(*layers, nn.Linear(d, dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z)


class MLPDiscriminator(nn.Module):
    """point (B, dim) -> logit (B,): `depth` hidden layers with LeakyReLU(0.2), each linear map
    spectrally normalised when `spectral` (then D is about 1-Lipschitz: every factor is)."""

    def __init__(self,
                 dim: int = 2,              # data dimension
                 hidden: int = 128,         # hidden width
                 depth: int = 3,            # hidden layers
                 spectral: bool = True):    # spectral norm on every linear map
        super().__init__()
        layers, d = [], dim
        for _ in range(depth):
            layers += [_sn(nn.Linear(d, hidden), spectral), nn.LeakyReLU(0.2)]
            d = hidden
        self.body = nn.Sequential(*layers, _sn(nn.Linear(d, 1), spectral))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).squeeze(1)  # (B,)


# kind -> (generator class, discriminator class)
NETWORKS: dict[str, tuple[type[nn.Module], type[nn.Module]]] = {
    "dcgan": (DCGANGenerator, DCGANDiscriminator),
    "mlp": (MLPGenerator, MLPDiscriminator),
}


class GAN(nn.Module):
    """Both players in one module, so that the generic loop trains them with one optimiser (two
    parameter groups), one EMA and one checkpoint. forward(z) is the generator."""

    def __init__(self,
                 kind: str,                 # a key of NETWORKS
                 z_dim: int,                # latent size
                 generator: dict,           # the generator's constructor kwargs (but z_dim)
                 discriminator: dict):      # the discriminator's constructor kwargs
        super().__init__()
        assert kind in NETWORKS, f"kind must be one of {list(NETWORKS)}, got {kind!r}"
        g_cls, d_cls = NETWORKS[kind]
        self.z_dim = z_dim
        self.generator = g_cls(z_dim=z_dim, **generator)
        self.discriminator = d_cls(**discriminator)

    def latents(self, n: int, generator: torch.Generator | None, device=None,
                temperature: float = 1.0) -> torch.Tensor:
        """z ~ N(0, temperature^2 I), (n, z_dim), drawn from `generator`, in the parameters'
        dtype."""
        param = next(self.parameters())
        device = device if device is not None else param.device
        return temperature * torch.randn(n, self.z_dim, generator=generator, device=device,
                                         dtype=param.dtype)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator(z)
