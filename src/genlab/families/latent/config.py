"""The `latent` family's params section: a latent diffusion model per key (which tokenizer and
which of its latents, the EDM backbone and method of the diffusion family, the budget)."""

from __future__ import annotations

from dataclasses import dataclass

from genlab.config import (
    Check,
    LoopConfig,
    datasets,
    items,
    knob,
    non_negative,
    one_of,
    unit_interval,
)
from genlab.families.diffusion.config import DiffusionNetConfig, EDMConfig

NAME = Check(lambda s: isinstance(s, str) and s.replace("_", "").isalnum(),
             "must be a model name of the vq section (letters, digits, _)")


@dataclass(frozen=True, kw_only=True)
class LatentConfig(LoopConfig):
    tokenizer: str = knob(doc="the vq model (params.yaml vq.<name>, models/<name>.pt) whose "
                          "latents this model learns and whose decoder draws its images",
                          check=NAME)
    latents: str = knob("pre", check=one_of("pre", "quantized"),
                        doc="pre: the encoder's continuous output before quantisation; "
                        "quantized: the code embeddings it snaps to")
    dataset: str = knob("fashion_mnist", doc="the image set the tokenizer encodes",
                        check=datasets(images=("fashion_mnist",), toy=False))
    net: DiffusionNetConfig = knob(factory=DiffusionNetConfig, doc="the U-Net over latents")
    method: EDMConfig = knob(factory=EDMConfig, doc="EDM objective and sampler (set "
                             "sigma_data: 1.0, the latents have unit variance)")
    conditional: bool = knob(False, doc="class-conditional, with classifier-free guidance")
    label_dropout: float = knob(0.1, doc="conditional: labels dropped for CFG training",
                                check=unit_interval)
    guidance: tuple[float, ...] = knob(factory=lambda: (0.0,), check=items(non_negative),
                                       doc="conditional: CFG weights w evaluated, the first "
                                       "is the headline")
    eval_samples: int = knob(0, doc="samples to score (0 = evaluate.n_samples)",
                             check=non_negative)

    def __post_init__(self):
        if self.net.kind != "unet":
            raise ValueError(f"net.kind must be unet for latents, got {self.net.kind!r}")
