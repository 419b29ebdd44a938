"""Image tokenizers: a conv encoder / decoder of nn/ residual blocks around a quantiser
(VQ-VAE, van den Oord et al. 2017; FSQ, Mentzer et al. 2023) and, for VQ-GAN (Esser et al.
2021), a patch discriminator (Isola et al. 2017, PatchGAN) held in the same module.

Conventions: images are NCHW float in [-1, 1]; the latent grid is (B, D, h, w) with
h = H / f, w = W / f for the downsampling factor f; tokens are (B, h, w) long in [0, codes).

Interface for later stages (latent diffusion, the GPT token prior): `load_tokenizer(path,
device)` returns the trained Tokenizer (EMA weights) in eval mode with
    encode_latent(x, quantized)  (B, C, H, W) -> (B, D, h, w): the encoder output before
                                 quantisation (quantized=False) or the quantised embedding
    decode_latent(z)             (B, D, h, w) -> (B, C, H, W) in [-1, 1]
    tokens(x)                    (B, C, H, W) -> (B, h, w) long
    decode_tokens(idx)           (B, h, w) -> (B, C, H, W) in [-1, 1]
    codes                        number of codes K
    latent_shape                 (D, h, w)
The token grids and latents of every split are written once by the tokenizer's evaluate
stage (genlab.data.tokens); a later stage reads those and decodes its samples with this.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from genlab.errors import CheckpointError
from genlab.models.quantizers import QUANTIZERS, QuantOut
from genlab.nn.blocks import Downsample, ResBlock, Upsample, group_norm
from genlab.training.checkpoint import load_checkpoint, load_weights


class Residual(nn.Module):
    """nn.blocks.ResBlock without conditioning: its embedding is a constant zero vector (width
    1), so the adaptive GroupNorm's scale-shift is its bias alone, a learned per-channel
    affine. (B, C_in, H, W) -> (B, C_out, H, W)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.block = ResBlock(in_channels, out_channels, emb_dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x, x.new_zeros(len(x), 1))


def _level_blocks(level: int, levels: int, blocks: int) -> int:
    """Residual blocks at a resolution level: none at full resolution when there are lower
    ones (there a 3x3 conv in and out only: on a CPU a block at 28x28 costs as much as all the
    others together), `blocks` elsewhere."""
    return 0 if level == 0 and levels > 1 else blocks


class Encoder(nn.Module):
    """(B, C, H, W) -> (B, D, H / 2^(L-1), W / 2^(L-1)) for L = len(widths) levels.

    conv3x3 to widths[0]; per level i: a stride-2 conv into it (i > 0), then `blocks` residual
    blocks, the first going to widths[i] channels (none at full resolution, _level_blocks);
    then GroupNorm, SiLU and a 1x1 conv to the D latent channels."""

    def __init__(self,
                 in_channels: int = 1,                  # C
                 widths: tuple[int, ...] = (16, 32, 64),  # channels per resolution level
                 blocks: int = 1,                       # residual blocks per lower level
                 out_channels: int = 8):                # D
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], 3, padding=1)]
        prev = widths[0]
        for i, w in enumerate(widths):
            if i > 0:
                layers.append(Downsample(prev, mode="conv"))  # (B, prev, H/2, W/2)
            for _ in range(_level_blocks(i, len(widths), blocks)):
                layers.append(Residual(prev, w))
                prev = w
            if prev != w:  # a level without blocks still changes the width
                layers.append(nn.Conv2d(prev, w, 1))
                prev = w
        layers += [group_norm(prev), nn.SiLU(), nn.Conv2d(prev, out_channels, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Decoder(nn.Module):
    """(B, D, h, w) -> (B, C, h 2^(L-1), w 2^(L-1)), the encoder mirrored: conv3x3 to
    widths[-1]; per level, deepest first, its residual blocks, then nearest 2x upsampling and
    a 3x3 conv to the next level's width; GroupNorm, SiLU and `last`, the 3x3 conv to C
    channels (the layer VQ-GAN's adaptive weight is taken at). The output is not squashed;
    decode_latent clamps it to [-1, 1]."""

    def __init__(self,
                 out_channels: int = 1,                 # C
                 widths: tuple[int, ...] = (16, 32, 64),  # the encoder's, same order
                 blocks: int = 1,                       # residual blocks per lower level
                 in_channels: int = 8):                 # D
        super().__init__()
        prev = widths[-1]
        layers: list[nn.Module] = [nn.Conv2d(in_channels, prev, 3, padding=1)]
        for i in range(len(widths) - 1, -1, -1):
            for _ in range(_level_blocks(i, len(widths), blocks)):
                layers.append(Residual(prev, widths[i]))
                prev = widths[i]
            if i > 0:  # (B, prev, h, w) -> (B, widths[i - 1], 2h, 2w)
                layers += [Upsample(prev, mode="nearest"),
                           nn.Conv2d(prev, widths[i - 1], 3, padding=1)]
                prev = widths[i - 1]
        layers += [group_norm(prev), nn.SiLU()]
        self.body = nn.Sequential(*layers)
        self.last = nn.Conv2d(prev, out_channels, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.last(self.body(z))


class PatchDiscriminator(nn.Module):
    """(B, C, H, W) -> patch logits (B, H / 4, W / 4): two stride-2 4x4 convs with LeakyReLU
    (0.2) and a 3x3 conv to one logit per patch (PatchGAN, Isola et al. 2017, as in VQ-GAN);
    spectral norm on every conv (Miyato et al. 2018) in place of VQ-GAN's BatchNorm, which
    would couple the real and fake halves of the batch the loss passes together."""

    def __init__(self,
                 in_channels: int = 1,    # C
                 width: int = 32,         # channels after the first conv (then 2x)
                 spectral: bool = True):  # spectral norm on every conv
        super().__init__()
        sn = spectral_norm if spectral else (lambda m: m)
        self.net = nn.Sequential(
            sn(nn.Conv2d(in_channels, width, 4, stride=2, padding=1)), nn.LeakyReLU(0.2),
            sn(nn.Conv2d(width, 2 * width, 4, stride=2, padding=1)), nn.LeakyReLU(0.2),
            sn(nn.Conv2d(2 * width, 1, 3, padding=1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)  # (B, H/4, W/4)


class Tokenizer(nn.Module):
    """Encoder -> quantiser -> decoder (+ an optional discriminator, trained by VQ-GAN's loss
    and unused by the interface). See the module docstring for the interface."""

    def __init__(self,
                 in_channels: int = 1,                    # image channels C
                 size: int = 28,                          # image side (square)
                 widths: tuple[int, ...] = (16, 32, 64),  # channels per level; factor 2^(L-1)
                 blocks: int = 1,                         # residual blocks per level
                 quantizer: dict | None = None,           # {"kind": vq | fsq, **kwargs}
                 discriminator: dict | None = None):      # PatchDiscriminator kwargs, or None
        super().__init__()
        quantizer = dict(quantizer or {"kind": "vq", "dim": 8})
        kind = quantizer.pop("kind")
        assert kind in QUANTIZERS, f"quantizer kind must be one of {list(QUANTIZERS)}"
        factor = 2 ** (len(widths) - 1)
        assert size % factor == 0, f"image side {size} is not divisible by the factor {factor}"
        self.quantizer = QUANTIZERS[kind](**quantizer)
        d = self.quantizer.dim
        self.encoder = Encoder(in_channels, tuple(widths), blocks, d)
        self.decoder = Decoder(in_channels, tuple(widths), blocks, d)
        self.discriminator = (PatchDiscriminator(in_channels, **discriminator)
                              if discriminator is not None else None)
        self.codes = self.quantizer.codes
        self.latent_shape = (d, size // factor, size // factor)

    def reconstruct(self, x: torch.Tensor,
                    generator: torch.Generator | None = None) -> tuple[torch.Tensor, QuantOut]:
        """(B, C, H, W) -> (decoder output (B, C, H, W), unclamped; the quantiser's QuantOut)."""
        q = self.quantizer(self.encoder(x), generator)
        return self.decoder(q.z_q), q

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction in [-1, 1]."""
        return self.reconstruct(x)[0].clamp(-1, 1)

    def encode_latent(self, x: torch.Tensor, quantized: bool = False) -> torch.Tensor:
        """(B, C, H, W) -> (B, D, h, w): pre-quantisation latent, or the quantised one."""
        z = self.encoder(x)
        return self.quantizer(z).z_q if quantized else z

    def decode_latent(self, z: torch.Tensor) -> torch.Tensor:
        """(B, D, h, w) -> (B, C, H, W) in [-1, 1]."""
        return self.decoder(z).clamp(-1, 1)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, h, w) long."""
        return self.quantizer(self.encoder(x)).indices

    def decode_tokens(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, h, w) long -> (B, C, H, W) in [-1, 1]."""
        return self.decode_latent(self.quantizer.embed(indices))


def tokenizer_kwargs(cfg, shape: tuple[int, ...]) -> dict:
    """Tokenizer constructor kwargs from a vq family config for one example's shape (C, H, W)."""
    c, h, w = shape
    assert h == w, f"square images only, got {shape}"
    q = cfg.quantizer
    if q.kind == "vq":
        quantizer = {"kind": "vq", "dim": q.dim, "codes": q.codes, "beta": q.beta,
                     "ema": q.ema, "decay": q.decay, "eps": q.eps,
                     "restart_below": q.restart_below, "lookup_dim": q.lookup_dim, "l2": q.l2}
    else:
        quantizer = {"kind": "fsq", "levels": tuple(q.levels)}
    disc = None
    if cfg.gan.weight > 0:
        disc = {"width": cfg.gan.width, "spectral": cfg.gan.spectral_norm}
    return {"in_channels": c, "size": h, "widths": tuple(cfg.model.widths),
            "blocks": cfg.model.blocks, "quantizer": quantizer, "discriminator": disc}


def load_tokenizer(path: Path | str, device: torch.device | str = "cpu") -> Tokenizer:
    """The trained tokenizer of models/<name>.pt (written by the train stage of family vq):
    its EMA weights, on `device`, in eval mode, no gradients."""
    state = load_checkpoint(Path(path), map_location=device)
    if state.get("family") != "vq" or "arch" not in state:
        raise CheckpointError(f"{path} holds family {state.get('family')!r}, not a vq "
                              "tokenizer; rerun: dvc repro pretrain-vq")
    net = Tokenizer(**state["arch"])
    load_weights(net, state["ema"], Path(path))
    return net.to(device).eval().requires_grad_(False)
