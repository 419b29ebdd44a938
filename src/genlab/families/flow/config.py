"""The `flow` family's params section: one RealNVP per key (architecture, dequantisation,
sampling temperatures, evaluation sizes), typed and validated."""

from __future__ import annotations

from dataclasses import dataclass

from genlab.config import (
    Check,
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
class FlowNetConfig:
    kind: str = knob("realnvp", doc="realnvp: images (multi-scale, conv couplings); realnvp2d: "
                     "2-D points (alternating-mask couplings with MLPs)",
                     check=one_of("realnvp", "realnvp2d"))
    hidden: int = knob(64, doc="width of each coupling network (conv channels or MLP units)",
                       check=positive)
    blocks: int = knob(2, doc="realnvp: residual blocks per coupling ResNet", check=positive)
    num_scales: int = knob(2, doc="realnvp: scales that squeeze and factor out half the "
                           "channels (the side must be divisible by 2 ** num_scales)",
                           check=positive)
    checkerboard: int = knob(3, doc="realnvp: checkerboard couplings per scale (paper: 3)",
                             check=non_negative)
    channelwise: int = knob(3, doc="realnvp: channel-wise couplings per scale (paper: 3)",
                            check=non_negative)
    final: int = knob(4, doc="realnvp: checkerboard couplings at the last scale (paper: 4)",
                      check=positive)
    layers: int = knob(8, doc="realnvp2d: couplings, masks alternating", check=positive)
    depth: int = knob(2, doc="realnvp2d: hidden layers of each coupling MLP", check=positive)
    actnorm: bool = knob(True, doc="an act-norm (data-dependent init) before each coupling")


@dataclass(frozen=True, kw_only=True)  # dataset is required: the stages depend on it
class FlowConfig(LoopConfig):
    dataset: str = knob(doc="an image set or toy2d/<name> (data/processed/<dataset>/)",
                        check=datasets())
    net: FlowNetConfig = knob(factory=FlowNetConfig, doc="the flow")
    alpha: float = knob(0.05, doc="images: the logit transform's alpha, y = logit(alpha + "
                        "(1 - 2 alpha) u) (Dinh et al. 2017, Sec. 4.1)",
                        check=Check(lambda a: 0 < a < 0.5, "must be in (0, 0.5)"))
    temperatures: tuple[float, ...] = knob(
        factory=lambda: (1.0, 0.7), check=items(positive),
        doc="sampling temperatures T (z ~ N(0, T^2 I)); the first gives the headline sample "
        "metrics and data/samples/<name>.npz")
    eval_samples: int = knob(0, doc="samples to score (0 = evaluate.n_samples / toy_n)",
                             check=non_negative)
    eval_test: int = knob(0, doc="images: test images whose bits/dim is reported (0 = the "
                          "whole test split)", check=non_negative)

    def __post_init__(self):
        if is_toy(self.dataset) != (self.net.kind == "realnvp2d"):
            raise ValueError(f"net.kind {self.net.kind!r} does not fit dataset "
                             f"{self.dataset!r} (toy2d needs realnvp2d, images need realnvp)")
