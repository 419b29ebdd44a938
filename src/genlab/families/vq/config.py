"""The `vq` family's params section: one tokenizer per key (encoder / decoder, quantiser, the
optional VQ-GAN discriminator, reconstruction loss, optimiser betas), typed and validated."""

from __future__ import annotations

from dataclasses import dataclass

from genlab.config import (
    Check,
    LoopConfig,
    at_least,
    datasets,
    items,
    knob,
    non_negative,
    one_of,
    positive,
    unit_interval,
)

betas_pair = Check(lambda b: len(b) == 2 and all(0.0 <= v < 1.0 for v in b),
                   "must be two values in [0, 1)")
power_of_two = Check(lambda f: isinstance(f, int) and f >= 1 and f & (f - 1) == 0,
                     "must be a power of 2 (1, 2, 4, ...)")


@dataclass(frozen=True)
class TokenizerModelConfig:
    downsample: int = knob(4, doc="factor f from image to token grid (28 / 4 = 7x7 tokens): "
                           "a power of 2 dividing the image side", check=power_of_two)
    widths: tuple[int, ...] = knob(
        factory=lambda: (16, 32, 64), check=items(positive),
        doc="encoder channels at each resolution, full size first: log2(downsample) + 1 "
        "entries (the decoder mirrors them)")
    blocks: int = knob(1, doc="residual blocks (nn.blocks.ResBlock) per resolution below the "
                       "full one (at full size: a 3x3 conv in and out only, for CPU speed)",
                       check=positive)

    def __post_init__(self):
        levels = self.downsample.bit_length()  # log2(f) + 1
        if len(self.widths) != levels:
            raise ValueError(f"widths has {len(self.widths)} entries; downsample "
                             f"{self.downsample} needs log2({self.downsample}) + 1 = {levels}")


@dataclass(frozen=True)
class VQQuantizerConfig:
    kind: str = knob("vq", doc="vq: nearest-code vector quantisation (van den Oord et al. "
                     "2017); fsq: finite scalar quantisation", check=one_of("vq"))
    codes: int = knob(512, doc="codebook size K", check=at_least(2))
    dim: int = knob(8, doc="code dimension D (the latent's channels)", check=positive)
    beta: float = knob(0.25, doc="commitment weight (the paper's 0.25)", check=non_negative)
    ema: bool = knob(True, doc="EMA codebook updates (Razavi et al. 2019) instead of the "
                     "codebook loss")
    decay: float = knob(0.99, doc="EMA decay gamma of the code counts and sums",
                        check=unit_interval)
    eps: float = knob(1e-5, doc="Laplace smoothing of the EMA counts", check=positive)
    restart_below: float = knob(1.0, doc="restart a code on a random encoder output of the "
                                "batch when its EMA count falls below this (0 = off)",
                                check=non_negative)
    lookup_dim: int = knob(0, doc="look codes up in a 1x1-conv projection to this many "
                           "dimensions (ViT-VQGAN's factorised codes; 0 = in D itself)",
                           check=non_negative)
    l2: bool = knob(False, doc="l2-normalise latent and codes before the lookup (ViT-VQGAN)")


@dataclass(frozen=True)
class FSQQuantizerConfig:
    kind: str = knob("fsq", doc="fsq: finite scalar quantisation (Mentzer et al. 2023)",
                     check=one_of("fsq"))
    levels: tuple[int, ...] = knob(factory=lambda: (8, 8, 8), check=items(at_least(2)),
                                   doc="values per latent channel; prod(levels) codes, "
                                   "len(levels) latent channels")


QuantizerConfig = VQQuantizerConfig | FSQQuantizerConfig  # picked by `kind`


@dataclass(frozen=True)
class AdversarialConfig:
    weight: float = knob(0.0, doc="factor of the GAN terms (0: no discriminator, a VQ-VAE / "
                         "FSQ autoencoder; > 0: VQ-GAN, Esser et al. 2021)", check=non_negative)
    start: int = knob(0, doc="first step with the discriminator (its warm-up: before it the "
                      "tokenizer only reconstructs)", check=non_negative)
    width: int = knob(32, doc="patch discriminator channels (then 2x)", check=positive)
    spectral_norm: bool = knob(True, doc="spectral norm on every discriminator conv")
    delta: float = knob(1e-4, doc="delta of the adaptive weight ||g_rec|| / (||g_GAN|| + "
                        "delta)", check=positive)
    d_lr_scale: float = knob(1.0, doc="discriminator learning rate = lr * this (TTUR)",
                             check=positive)


@dataclass(frozen=True, kw_only=True)  # dataset is required: the stages depend on it
class VQConfig(LoopConfig):
    dataset: str = knob(doc="fashion_mnist (data/processed/<dataset>/)",
                        check=datasets(images=("fashion_mnist",), toy=False))
    model: TokenizerModelConfig = knob(factory=TokenizerModelConfig, doc="encoder / decoder")
    quantizer: QuantizerConfig = knob(factory=VQQuantizerConfig, doc="the quantiser (kind)")
    gan: AdversarialConfig = knob(factory=AdversarialConfig, doc="VQ-GAN's discriminator")
    recon: str = knob("mse", doc="reconstruction loss: mse or l1", check=one_of("mse", "l1"))
    betas: tuple[float, ...] = knob(factory=lambda: (0.9, 0.999), check=betas_pair,
                                    doc="AdamW betas of all groups (VQ-GAN: 0.5, 0.9)")
    eval_samples: int = knob(0, doc="test reconstructions scored by FD (0 = evaluate."
                             "n_samples, the autoencoder family's count)", check=non_negative)
