"""Family `flow` (role generative): RealNVP (Dinh et al. 2017), the multi-scale image flow on
dequantised, logit-transformed pixels and its 2-D version on toy points, trained by exact
maximum likelihood.

This module only wires the pieces: the flow of `net.kind`, its objective (bits/dim for images,
nats for points) and sampling by the inverse at a temperature.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from genlab.families import Built, Family, register
from genlab.families.flow.config import FlowConfig, FlowNetConfig
from genlab.models.realnvp import RealNVP, RealNVP2d
from genlab.objectives.flow import DequantizedNLL, FlowNLL, inverse_logit, levels_to_float


def flow_kwargs(net: FlowNetConfig, shape: tuple[int, ...]) -> dict:
    """Constructor kwargs of the flow for one example's shape ((C, H, W) or (D,))."""
    if net.kind == "realnvp2d":
        return {"dim": shape[0], "hidden": net.hidden, "depth": net.depth,
                "layers": net.layers, "actnorm": net.actnorm}
    c, h, w = shape
    if h != w:
        raise ValueError(f"RealNVP here takes square images, got {h}x{w}")
    return {"in_channels": c, "resolution": h, "hidden": net.hidden, "blocks": net.blocks,
            "num_scales": net.num_scales, "checkerboard": net.checkerboard,
            "channelwise": net.channelwise, "final": net.final, "actnorm": net.actnorm}


# net.kind -> (flow class, cfg -> the training objective)
FLOWS: dict[str, tuple[type[nn.Module], Callable]] = {
    "realnvp": (RealNVP, lambda cfg: DequantizedNLL(cfg.alpha)),  # bits/dim
    "realnvp2d": (RealNVP2d, lambda cfg: FlowNLL()),  # nats
}


def rebuild(arch: dict, cfg: FlowConfig | None = None, nhwc: bool = False) -> nn.Module:
    """The flow of `arch` ({"kind", "kwargs"}), untrained (act-norms not yet initialised)."""
    return FLOWS[arch["kind"]][0](**arch["kwargs"])


def build(cfg: FlowConfig, shape: tuple[int, ...], nhwc: bool = False) -> Built:
    arch = {"kind": cfg.net.kind, "kwargs": flow_kwargs(cfg.net, shape)}
    return Built(net=rebuild(arch), objective=FLOWS[cfg.net.kind][1](cfg), arch=arch)


@torch.no_grad()
def generate(net: nn.Module, n: int, temperature: float, *, generator: torch.Generator,
             alpha: float | None = None, batch_size: int = 500) -> torch.Tensor:
    """n samples x = f^-1(z), z ~ N(0, T^2 I), on the CPU. Images (alpha given): the inverse
    logit transform and the pixel level each value falls in, as floats (n, C, H, W) in
    [-1, 1]; points: (n, D). The generator's device is where z is drawn and the flow runs."""
    net = net.eval()
    out = []
    for i in range(0, n, batch_size):
        m = min(batch_size, n - i)
        z = temperature * torch.randn(m, net.dim, generator=generator, device=generator.device)
        x = net.inverse(z).float()
        out.append((x if alpha is None else levels_to_float(inverse_logit(x, alpha))).cpu())
    return torch.cat(out)


FAMILY = register(Family(name="flow", role="generative", config=FlowConfig, build=build,
                         rebuild=rebuild))
