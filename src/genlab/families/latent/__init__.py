"""Family `latent` (role generative): latent diffusion (Rombach et al. 2022). The diffusion
family's EDM U-Net, objective and sampler, trained on a pretrained `vq` tokenizer's latents
(before or after quantisation) scaled to unit variance; samples are decoded by the tokenizer.

Its training data is the tokenizer's encoding of the image set, made once per stage by the
`data` hook (so it follows the tokenizer's weights, a dvc.yaml dep of the stage)."""

from __future__ import annotations

import functools
from pathlib import Path

import torch
from torch import nn

from genlab.data.processed import images_to_float, load_array
from genlab.errors import DataError
from genlab.families import Built, Family, TrainData, register
from genlab.families.diffusion import backbone_kwargs
from genlab.families.latent.config import LatentConfig
from genlab.models.latent import LatentDenoiser, encode_all
from genlab.models.precond import EDMPrecond
from genlab.models.unet import UNet, UNetConfig
from genlab.objectives.diffusion import EDMLoss
from genlab.training.loop import EpochBatches

PROCESSED = Path("data/processed")
_ENCODED_ON: dict[LatentConfig, str] = {}  # cfg -> the device its data hook encoded on


def tokenizer_path(cfg: LatentConfig) -> Path:
    return Path(f"models/{cfg.tokenizer}.pt")


def load(cfg: LatentConfig, device: torch.device):
    """The trained tokenizer named by cfg.tokenizer, in eval mode on `device`."""
    from genlab.models.vqvae import load_tokenizer

    path = tokenizer_path(cfg)
    if not path.is_file():
        raise DataError(f"{path} is missing (tokenizer {cfg.tokenizer!r}): run "
                        f"dvc repro pretrain-vq@{cfg.tokenizer}")
    return load_tokenizer(path, device)


@functools.lru_cache(maxsize=2)
def encoded(cfg: LatentConfig, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor, float]:
    """(latents (N, C, h, w) of the training images, labels (N,), their std): what the data
    hook trains on and `build` stores as the scale (computed once per process)."""
    dev = torch.device(device)
    tok = load(cfg, dev)
    images = images_to_float(load_array(PROCESSED, f"{cfg.dataset}/train_x"))
    if images.ndim == 3:
        images = images.unsqueeze(1)  # (N, 1, H, W)
    quantized = cfg.latents == "quantized"
    z = encode_all(lambda x: tok.encode_latent(x.to(dev), quantized=quantized), images)
    labels = torch.as_tensor(load_array(PROCESSED, f"{cfg.dataset}/train_y")).long()
    return z, labels, float(z.std())


def data(cfg: LatentConfig, seed: int, device: torch.device) -> TrainData:
    """Batches of unit-variance latents (and labels when conditional) chosen by (seed, step)."""
    _ENCODED_ON[cfg] = str(device)
    z, labels, scale = encoded(cfg, str(device))
    z_all = (z / scale).to(device)  # (N, C, h, w)
    y_all = labels.to(device) if cfg.conditional else None
    order = EpochBatches(len(z_all), cfg.batch_size, seed)

    def batches(step: int):
        idx = order(step).to(device)
        return z_all[idx], None if y_all is None else y_all[idx]

    return TrainData(batches=batches, shape=tuple(z.shape[1:]), examples=len(z_all))


def rebuild(arch: dict, cfg: LatentConfig | None = None, nhwc: bool = False) -> nn.Module:
    """LatentDenoiser(EDM-preconditioned U-Net of arch["kwargs"], arch["scale"])."""
    sigma_data = arch["sigma_data"]
    unet = UNet.from_config(UNetConfig(**arch["kwargs"]), nhwc_paths=nhwc)
    return LatentDenoiser(EDMPrecond(unet, sigma_data=sigma_data), arch["scale"])


def build(cfg: LatentConfig, shape: tuple[int, ...], nhwc: bool = False) -> Built:
    """The U-Net over latents of `shape` (C, h, w) and the EDM loss; the scale is the training
    latents' std (the same numbers the data hook divides by)."""
    _, _, scale = encoded(cfg, _ENCODED_ON.get(cfg, "cpu"))
    arch = {"kwargs": backbone_kwargs(cfg.net, shape, cfg.conditional), "scale": scale,
            "sigma_data": cfg.method.sigma_data}
    m = cfg.method
    objective = EDMLoss(P_mean=m.P_mean, P_std=m.P_std, sigma_data=m.sigma_data,
                        label_dropout=cfg.label_dropout if cfg.conditional else 0.0)
    return Built(net=rebuild(arch, cfg, nhwc), objective=objective, arch=arch)


def backbone(model: nn.Module) -> nn.Module | None:
    return next((m for m in model.modules() if isinstance(m, UNet)), None)


FAMILY = register(Family(name="latent", role="generative", config=LatentConfig, build=build,
                         rebuild=rebuild, backbone=backbone, data=data))
