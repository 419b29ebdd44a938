"""The `autoencoder` family's params section: one model per key, typed and validated."""

from __future__ import annotations

from dataclasses import dataclass

from genlab.config import (
    LoopConfig,
    datasets,
    is_toy,
    items,
    knob,
    non_negative,
    one_of,
    positive,
)


@dataclass(frozen=True)
class AEModelConfig:
    kind: str = knob("conv", doc="conv: images with a transposed-conv decoder; mlp: 2-D points",
                     check=one_of("conv", "mlp"))
    widths: tuple[int, ...] = knob(factory=lambda: (32, 64), doc="conv channels per stride-2 "
                                   "level", check=items(positive))
    hidden: int = knob(128, doc="MLP hidden width", check=positive)
    depth: int = knob(3, doc="MLP hidden layers per side", check=positive)
    latent: int = knob(32, doc="bottleneck size", check=positive)

@dataclass(frozen=True)
class AEObjectiveConfig:
    kind: str = knob("recon", doc="recon: plain AE; denoise: DAE (corrupt, reconstruct clean)",
                     check=one_of("recon", "denoise"))
    noise_levels: tuple[float, ...] = knob(
        factory=lambda: (0.1, 0.3, 0.5), check=items(non_negative),
        doc="Gaussian noise stds: the DAE trains on each (uniform pick per example) and every "
        "AE is evaluated at each")

@dataclass(frozen=True, kw_only=True)  # dataset is required: the stages depend on it
class AutoencoderConfig(LoopConfig):
    dataset: str = knob(doc="fashion_mnist or toy2d/<name> (data/processed/<dataset>/)",
                        check=datasets(images=("fashion_mnist",)))
    model: AEModelConfig = knob(factory=AEModelConfig, doc="architecture")
    objective: AEObjectiveConfig = knob(factory=AEObjectiveConfig, doc="training objective")

    def __post_init__(self):
        if is_toy(self.dataset) != (self.model.kind == "mlp"):
            raise ValueError(f"model.kind {self.model.kind!r} does not fit dataset "
                             f"{self.dataset!r} (toy2d needs mlp, images need conv)")
