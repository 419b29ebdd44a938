"""Family `autoencoder` (role pretrain): the convolutional AE / denoising AE (Vincent et al.
2008) on images and the MLP AE on 2-D points, wired from their params section."""

from __future__ import annotations

from genlab.families import Built, Family, register
from genlab.families.autoencoder.config import AutoencoderConfig
from genlab.models.ae import AE_MODELS, ae_kwargs
from genlab.objectives.ae import DenoisingLoss, ReconstructionLoss

# objective.kind -> its loss, built from the objective section
OBJECTIVES = {"recon": lambda o: ReconstructionLoss(),
              "denoise": lambda o: DenoisingLoss(o.noise_levels)}


def rebuild(arch: dict, cfg: AutoencoderConfig | None = None, nhwc: bool = False):
    """The network of `arch` ({"kind": conv | mlp, **constructor kwargs})."""
    kind, kwargs = arch["kind"], {k: v for k, v in arch.items() if k != "kind"}
    return AE_MODELS[kind](**kwargs)


def build(cfg: AutoencoderConfig, shape: tuple[int, ...], nhwc: bool = False) -> Built:
    """Network for one example's shape ((C, H, W) or (D,)) and the objective cfg names."""
    arch = {"kind": cfg.model.kind, **ae_kwargs(cfg.model, shape)}
    objective = OBJECTIVES[cfg.objective.kind](cfg.objective)
    return Built(net=rebuild(arch), objective=objective, arch=arch)


FAMILY = register(Family(name="autoencoder", role="pretrain", config=AutoencoderConfig,
                         build=build, rebuild=rebuild))
