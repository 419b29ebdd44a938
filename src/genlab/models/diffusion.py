"""Assembly of a score-based / diffusion model from its config: backbone (U-Net or MLP), the
method's wrapper (EDM preconditioning, DDPM eps-model, NCSN score) and its training objective.
The same code path serves NCSN, DDPM and EDM on toy points and on images."""

from __future__ import annotations

from torch import nn

from genlab.models.precond import DDPMEpsModel, EDMPrecond, NCSNScore, ScoreFromDenoiser
from genlab.models.score_mlp import ScoreMLP
from genlab.models.unet import UNet, UNetConfig
from genlab.objectives.diffusion import DDPMLoss, EDMLoss, NCSNLoss
from genlab.samplers.schedules import alphas_cumprod, ddpm_betas, ncsn_sigmas

N_CLASSES = 10  # Fashion-MNIST / CIFAR-10 labels


def backbone_kwargs(net_cfg, data_shape: tuple[int, ...], conditional: bool) -> dict:
    """Constructor kwargs of the backbone for one example's shape ((C, H, W) or (D,))."""
    label_dim = N_CLASSES if conditional else 0
    if net_cfg.kind == "mlp":
        return {"dim": data_shape[0], "hidden": net_cfg.hidden, "depth": net_cfg.depth,
                "emb_dim": net_cfg.emb_dim, "label_dim": label_dim}
    c, h, _ = data_shape
    return {"in_channels": c, "out_channels": c, "resolution": h,
            "model_channels": net_cfg.model_channels, "channel_mult": tuple(net_cfg.channel_mult),
            "num_blocks": net_cfg.num_blocks, "attn_resolutions": tuple(net_cfg.attn_resolutions),
            "num_heads": net_cfg.num_heads, "dropout": net_cfg.dropout, "label_dim": label_dim,
            "embedding": net_cfg.embedding}


def make_backbone(kind: str, kwargs: dict) -> nn.Module:
    return ScoreMLP(**kwargs) if kind == "mlp" else UNet.from_config(UNetConfig(**kwargs))


def wrap(method, backbone: nn.Module) -> nn.Module:
    """The method's thin wrapper around the backbone (STYLE rule 7)."""
    if method.kind == "edm":
        return EDMPrecond(backbone, sigma_data=method.sigma_data)
    if method.kind == "ddpm":
        return DDPMEpsModel(backbone, noise_label_scale=method.noise_label_scale)
    if method.parametrization == "denoiser":
        return ScoreFromDenoiser(EDMPrecond(backbone, sigma_data=method.sigma_data))
    return NCSNScore(backbone)


def objective(method, label_dropout: float):
    """The training loss of the method: a callable (model, x, cond, generator) -> (B,)."""
    if method.kind == "edm":
        return EDMLoss(P_mean=method.P_mean, P_std=method.P_std, sigma_data=method.sigma_data,
                       label_dropout=label_dropout)
    if method.kind == "ddpm":
        return DDPMLoss(ddpm_alphas(method), label_dropout=label_dropout)
    return NCSNLoss(ncsn_ladder(method), weighting=method.weighting, sigma_data=method.sigma_data)


def ddpm_alphas(method):
    return alphas_cumprod(ddpm_betas(method.schedule, method.num_timesteps))


def ncsn_ladder(method):
    return ncsn_sigmas(method.sigma_max, method.sigma_min, method.num_scales)


def build(cfg, data_shape: tuple[int, ...]) -> tuple[nn.Module, object, dict]:
    """(wrapped model, objective, backbone kwargs) of a DiffusionTrainConfig."""
    kwargs = backbone_kwargs(cfg.net, data_shape, cfg.conditional)
    model = wrap(cfg.method, make_backbone(cfg.net.kind, kwargs))
    return model, objective(cfg.method, cfg.label_dropout if cfg.conditional else 0.0), kwargs
