"""Mode coverage of samples from a mixture whose modes are known: how many modes hold samples
and the share of high-quality samples, those within 3 standard deviations of a mode (the
metric of the mode-collapse literature; Srivastava et al. 2017, VEEGAN, Sec. 5.1). A mode is
a point (8 Gaussians) or a ring (concentric circles); distances are Euclidean to the point,
radial to the ring."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from genlab.data.toy2d import GAUSS_STD, RING_NOISE, RING_RADII, gaussian_means


@dataclass(frozen=True)
class Modes:
    distance: Callable[[torch.Tensor], torch.Tensor]  # points (N, 2) -> distances (N, K)
    std: float  # noise std around every mode
    weights: torch.Tensor  # (K,) the true mixture weights, summing to 1


@dataclass(frozen=True)
class Coverage:
    covered: int  # modes holding at least min_fraction of their expected count
    n_modes: int
    high_quality: float  # share of samples within n_sigma std of their nearest mode
    shares: torch.Tensor  # (K,) share of all samples that are high-quality at mode k
    tv: float  # total variation between the high-quality samples' mode shares and the weights


def point_modes(centers: torch.Tensor, std: float,
                weights: torch.Tensor | None = None) -> Modes:
    """Isotropic Gaussians at centers (K, 2); equal weights unless given."""
    centers = centers.to(torch.float64)
    k = len(centers)
    w = torch.full((k,), 1.0 / k, dtype=torch.float64) if weights is None else weights
    return Modes(lambda p: torch.cdist(p.to(torch.float64), centers), std, w)


def ring_modes(radii: tuple[float, ...], std: float, weights: torch.Tensor) -> Modes:
    """Circles of the given radii around the origin blurred by N(0, std^2 I)."""
    r = torch.tensor(radii, dtype=torch.float64)
    return Modes(lambda p: (p.to(torch.float64).norm(dim=1, keepdim=True) - r).abs(), std,
                 weights)


def _ring_weights() -> torch.Tensor:
    r = torch.tensor(RING_RADII, dtype=torch.float64)
    return r / r.sum()  # toy2d.rings: weight proportional to circumference


# toy2d set -> its modes (the sets whose modes are well separated)
TOY_MODES: dict[str, Callable[[], Modes]] = {
    "eight_gaussians": lambda: point_modes(gaussian_means(), GAUSS_STD),
    "rings": lambda: ring_modes(RING_RADII, RING_NOISE, _ring_weights()),
}


def mode_coverage(points: torch.Tensor, modes: Modes, n_sigma: float = 3.0,
                  min_fraction: float = 0.1) -> Coverage:
    """Coverage of `modes` by points (N, 2). A sample is high-quality if it lies within
    n_sigma * std of its nearest mode; a mode is covered if it holds at least min_fraction of
    the N * weight high-quality samples it would hold under the true mixture (0.1: a mode
    with a few stray samples is not counted as covered)."""
    assert points.ndim == 2 and len(points) > 0, f"points must be (N, D), got {points.shape}"
    dist, nearest = modes.distance(points).min(dim=1)  # (N,), (N,)
    hq = dist <= n_sigma * modes.std
    k = len(modes.weights)
    counts = torch.bincount(nearest[hq], minlength=k).to(torch.float64)  # (K,)
    n = len(points)
    covered = int((counts >= min_fraction * n * modes.weights).sum())
    tv = 0.5 * (counts / counts.sum().clamp(min=1) - modes.weights).abs().sum()
    return Coverage(covered=covered, n_modes=k, high_quality=hq.double().mean().item(),
                    shares=counts / n, tv=tv.item())
