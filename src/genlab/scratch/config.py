"""The `scratch` section of params.yaml: the from-scratch CNN and conv autoencoder runs."""

from __future__ import annotations

from dataclasses import dataclass

from genlab.config import knob, non_negative, one_of, positive


@dataclass(frozen=True)
class ScratchNetConfig:
    epochs: int = knob(3, doc="passes over the training set", check=positive)
    batch_size: int = knob(64, doc="examples per step", check=positive)
    lr: float = knob(2e-3, doc="peak learning rate of the hand-written Adam", check=positive)
    width: int = knob(32, doc="channels of the first conv layer", check=positive)
    schedule: str = knob("cosine", doc="learning-rate schedule",
                         check=one_of("cosine", "constant"))
    latent_channels: int = knob(4, doc="autoencoder only: channels of the 7x7 code",
                                check=positive)
    limit_train: int = knob(0, doc="train on the first N images (0 = all)", check=non_negative)
    num_threads: int = knob(1, doc="torch threads while training (small matmuls: 1 is fastest "
                            "on a shared 2-core machine)", check=positive)


@dataclass(frozen=True)
class ScratchConfig:
    cnn: ScratchNetConfig = knob(factory=ScratchNetConfig, doc="from-scratch CNN classifier")
    ae: ScratchNetConfig = knob(factory=ScratchNetConfig,
                                doc="from-scratch conv autoencoder (scratch transposed conv)")
