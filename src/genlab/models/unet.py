"""The diffusion U-Net backbone (Ronneberger et al. 2015; Ho et al. 2020, DDPM; laid out like
the DDPM++ network of Song et al. 2021 as re-implemented in EDM, Karras et al. 2022): residual
blocks with adaptive GroupNorm, self-attention at chosen resolutions, concatenated skips.

Interface shared by every genlab backbone: net(x, noise_labels, class_labels=None) -> like x.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from genlab.nn.attention import SpatialSelfAttention
from genlab.nn.blocks import ResBlock, cat_skip, group_norm
from genlab.nn.embeddings import LabelEmbedding, noise_embedding

EMBEDDINGS = ("positional", "fourier")


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameter scalars; buffers such as Fourier frequencies excluded."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


@dataclass(frozen=True)
class UNetConfig:
    """The U-Net's architecture as one hashable, loggable value (see the presets below)."""

    # 1 for Fashion-MNIST, 3 for CIFAR-10 / CelebA: the data decide it.
    in_channels: int = 1
    # Same as in_channels: the net predicts noise / denoised image / score, all image-shaped.
    out_channels: int = 1
    # The side of the (square) training images; must be divisible by 2^(levels - 1).
    resolution: int = 28
    # Base width: the main compute/quality knob (params grow ~ quadratically in it).
    model_channels: int = 32
    # Width multiplier per level; its length sets the depth (28 -> 14 -> 7 needs 3 levels).
    channel_mult: tuple[int, ...] = (1, 2, 2)
    # ResBlocks per encoder level (the decoder has one more): depth at each scale.
    num_blocks: int = 2
    # Sides with self-attention: global context at a low, cheap resolution.
    attn_resolutions: tuple[int, ...] = (7,)
    # Attention heads; must divide the attended widths. 1 (DDPM++) is enough at these sizes.
    num_heads: int = 1
    # ResBlock dropout: small data sets (CIFAR-10, Fashion-MNIST) overfit without it.
    dropout: float = 0.1
    # Classes for conditional / classifier-free-guided models; 0 = unconditional.
    label_dim: int = 0
    # Noise-label features: "positional" for DDPM t / EDM ln(sigma)/4, "fourier" for NCSN++.
    embedding: str = "positional"


# NVlabs/edm's CIFAR-10 DDPM++ size (Karras et al. 2022, Table 7: ~56M parameters).
EDM_CIFAR10 = UNetConfig(in_channels=3, out_channels=3, resolution=32, model_channels=128,
                         channel_mult=(2, 2, 2), num_blocks=4, attn_resolutions=(16,),
                         dropout=0.13, embedding="positional")
# Fashion-MNIST on 2 CPU cores: 28 -> 14 -> 7, attention only at 7x7. 1.35M parameters,
# 0.46 GFLOP per forward; fwd+bwd of batch 16 takes ~0.5 s on one core.
FASHION_MNIST_CPU = UNetConfig(model_channels=32, channel_mult=(1, 2, 2), num_blocks=1,
                               attn_resolutions=(7,), dropout=0.1)
# Fashion-MNIST for a few minutes on one H100 (bf16 autocast, channels_last, batch 256): 7.5M
# parameters, 2.5 GFLOP per forward, so ~7.5 GFLOP per trained example.
FASHION_MNIST_GPU = UNetConfig(model_channels=64, channel_mult=(1, 2, 2), num_blocks=2,
                               attn_resolutions=(7,), num_heads=2, dropout=0.1)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _level_sides(resolution: int, channel_mult: tuple[int, ...]) -> list[int]:
    """Side length of each level, checking the halvings are exact (28 -> 14 -> 7)."""
    _check(len(channel_mult) >= 1 and all(m >= 1 for m in channel_mult),
           f"channel_mult must be a non-empty tuple of positive ints, got {channel_mult}")
    levels = len(channel_mult)
    _check(resolution >= 1 and resolution % 2 ** (levels - 1) == 0,
           f"resolution={resolution} must be divisible by 2^(levels-1)={2 ** (levels - 1)} "
           f"for channel_mult={channel_mult}")
    return [resolution >> level for level in range(levels)]


class _Stage(nn.Module):
    """One U-Net step: ResBlock, then self-attention if asked; `takes_skip` marks decoder
    steps that first concatenate an encoder activation."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, dropout: float, attention: bool,
                 num_heads: int, nhwc_paths: bool, resample: str = "none",
                 takes_skip: bool = False):
        super().__init__()
        self.takes_skip = takes_skip
        self.res = ResBlock(c_in, c_out, emb_dim, dropout=dropout, resample=resample,
                            nhwc_paths=nhwc_paths)
        self.attn = SpatialSelfAttention(c_out, num_heads, nhwc_paths=nhwc_paths) if attention \
            else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return self.attn(self.res(x, emb))


class UNet(nn.Module):
    """x (B, C_in, R, R), noise_labels (B,) float, class_labels (B,) int64 | None
    -> (B, C_out, R, R).

    Encoder: 3x3 stem, then per level (a down-sampling ResBlock from level 1 on) num_blocks
    ResBlocks; middle: ResBlock-attention-ResBlock; decoder mirrors it with num_blocks + 1
    ResBlocks per level, each fed the concatenation of the previous output and one encoder
    activation, and an up-sampling ResBlock between levels; head: GroupNorm, SiLU, 3x3 conv.
    At a side in attn_resolutions attention follows every encoder ResBlock but only the last
    decoder ResBlock of the level (the DDPM++ layout).
    The noise label's features (model_channels wide), plus the class embedding, go through a
    2-layer MLP to the 4 * model_channels embedding that every ResBlock's scale-shift reads.
    class_labels None, or -1 in a row, means "no label" (classifier-free guidance).

    nhwc_paths is a speed switch, not architecture (it is no UNetConfig field, and the
    state_dict is the same either way): False, the reference, runs plain torch ops; True
    keeps a channels_last network's activations and gradients NHWC through GroupNorm,
    resampling, attention and the skip concatenations (genlab.nn.blocks), which on a GPU
    spares cuDNN its layout conversions. Same values; for channels_last training.
    """

    def __init__(self,
                 in_channels: int = 1,                         # image channels in
                 out_channels: int = 1,                        # channels out
                 resolution: int = 28,                         # input side (square)
                 model_channels: int = 32,                     # base width
                 channel_mult: tuple[int, ...] = (1, 2, 2),    # width multiplier per level
                 num_blocks: int = 2,                          # ResBlocks per encoder level
                 attn_resolutions: tuple[int, ...] = (7,),     # sides with self-attention
                 num_heads: int = 1,                           # attention heads
                 dropout: float = 0.1,                         # ResBlock dropout
                 label_dim: int = 0,                           # classes; 0 = unconditional
                 embedding: str = "positional",                # "positional" | "fourier"
                 nhwc_paths: bool = False):                    # NHWC-keeping ops (see above)
        super().__init__()
        sides = _level_sides(resolution, tuple(channel_mult))
        _check(in_channels >= 1, f"in_channels must be >= 1, got {in_channels}")
        _check(out_channels >= 1, f"out_channels must be >= 1, got {out_channels}")
        _check(model_channels >= 1, f"model_channels must be >= 1, got {model_channels}")
        _check(num_blocks >= 1, f"num_blocks must be >= 1, got {num_blocks}")
        _check(label_dim >= 0, f"label_dim must be >= 0, got {label_dim}")
        _check(embedding in EMBEDDINGS, f"embedding must be one of {EMBEDDINGS}, got {embedding!r}")
        _check(all(r in sides for r in attn_resolutions),
               f"attn_resolutions={attn_resolutions} must be level sides {sides}")
        self.resolution, self.in_channels, self.label_dim = resolution, in_channels, label_dim
        self.nhwc_paths = nhwc_paths
        emb_dim = 4 * model_channels
        self.noise_emb = noise_embedding(embedding, model_channels)
        self.label_emb = LabelEmbedding(label_dim, model_channels) if label_dim else None
        self.emb_mlp = nn.Sequential(nn.Linear(model_channels, emb_dim), nn.SiLU(),
                                     nn.Linear(emb_dim, emb_dim), nn.SiLU())
        widths = [model_channels * m for m in channel_mult]
        stage = dict(emb_dim=emb_dim, dropout=dropout, num_heads=num_heads,
                     nhwc_paths=nhwc_paths)
        self.stem = nn.Conv2d(in_channels, model_channels, 3, padding=1)
        self.encoder, skips = self._encoder(sides, widths, num_blocks, attn_resolutions, stage)
        c = widths[-1]
        self.middle = nn.ModuleList([_Stage(c, c, attention=True, **stage),
                                     _Stage(c, c, attention=False, **stage)])
        self.decoder = self._decoder(sides, widths, num_blocks, attn_resolutions, stage, skips)
        self.head = nn.Sequential(group_norm(widths[0], nhwc_paths=nhwc_paths), nn.SiLU(),
                                  nn.Conv2d(widths[0], out_channels, 3, padding=1))

    def _encoder(self, sides, widths, num_blocks, attn_resolutions, stage):
        """Encoder stages and the channel count of every activation kept for a skip."""
        blocks, c = nn.ModuleList(), self.stem.out_channels
        skips = [c]
        for level, (side, width) in enumerate(zip(sides, widths, strict=True)):
            if level > 0:
                blocks.append(_Stage(c, c, attention=False, resample="down", **stage))
                skips.append(c)
            for _ in range(num_blocks):
                blocks.append(_Stage(c, width, attention=side in attn_resolutions, **stage))
                c = width
                skips.append(c)
        return blocks, skips

    def _decoder(self, sides, widths, num_blocks, attn_resolutions, stage, skips):
        """Decoder stages, popping the encoder's skip widths in reverse order."""
        blocks, c, skips = nn.ModuleList(), widths[-1], list(skips)
        for level in reversed(range(len(sides))):
            if level < len(sides) - 1:
                blocks.append(_Stage(c, c, attention=False, resample="up", **stage))
            for i in range(num_blocks + 1):  # attention after the level's last block only
                attention = sides[level] in attn_resolutions and i == num_blocks
                blocks.append(_Stage(c + skips.pop(), widths[level], takes_skip=True,
                                     attention=attention, **stage))
                c = widths[level]
        assert not skips, "every encoder activation must feed the decoder once"
        return blocks

    @classmethod
    def from_config(cls, config: UNetConfig, nhwc_paths: bool = False) -> UNet:
        """The U-Net of an architecture config; nhwc_paths is the speed switch above."""
        return cls(**dataclasses.asdict(config), nhwc_paths=nhwc_paths)

    def num_parameters(self) -> int:
        return count_parameters(self)

    def embed(self, noise_labels: torch.Tensor, class_labels: torch.Tensor | None,
              batch: int) -> torch.Tensor:
        """noise_labels (B,) or scalar, class_labels (B,) | None -> embedding (B, 4 * model_ch)."""
        emb = self.noise_emb(noise_labels.reshape(-1).expand(batch))  # (B, model_channels)
        if class_labels is not None:
            _check(self.label_emb is not None, "class_labels given but the net has label_dim=0")
            emb = emb + self.label_emb(class_labels)
        return self.emb_mlp(emb)

    def forward(self, x: torch.Tensor, noise_labels: torch.Tensor,
                class_labels: torch.Tensor | None = None) -> torch.Tensor:
        _check(tuple(x.shape[1:]) == (self.in_channels, self.resolution, self.resolution),
               f"x must be (B, {self.in_channels}, {self.resolution}, {self.resolution}), "
               f"got {tuple(x.shape)}")
        emb = self.embed(noise_labels, class_labels, x.shape[0])
        h = self.stem(x)  # (B, model_channels, R, R)
        skips = [h]
        for block in self.encoder:
            h = block(h, emb)
            skips.append(h)
        for block in self.middle:
            h = block(h, emb)
        for block in self.decoder:
            if block.takes_skip:
                h = cat_skip(h, skips.pop(), self.nhwc_paths)  # (B, C + C_skip, r, r)
            h = block(h, emb)
        return self.head(h).to(x.dtype)  # (B, C_out, R, R), x's dtype even under autocast
