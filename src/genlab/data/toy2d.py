"""2-D toy distributions (swiss roll, two moons, 8 Gaussians, checkerboard, rings) with densities.

Every sampler maps (n, torch.Generator) to float32 (n, 2), zero mean in expectation, with per-axis
std between about 0.5 and 1.5 (stated per sampler). Each distribution is a curve or a set of
points blurred by isotropic Gaussian noise, or a uniform density, so its density has a closed
form or a one-dimensional integral that `log_density` evaluates by quadrature.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

Sampler = Callable[[int, torch.Generator], torch.Tensor]

# Swiss roll: t ~ U[1.5 pi, 4.5 pi], point (t cos t, t sin t), centered on its exact mean
# (2, 2 / (3 pi)), divided by 6 (per-axis std ~ 1.1), plus N(0, 0.08^2) noise.
SWISS_T = (1.5 * math.pi, 4.5 * math.pi)
SWISS_CENTER = (2.0, 2.0 / (3.0 * math.pi))
SWISS_SCALE = 6.0
SWISS_NOISE = 0.08
# Two moons: unit half circles (cos a, sin a) and (1 - cos a, 1/2 - sin a), a ~ U[0, pi],
# centered on their exact mean (1/2, 1/4); x in [-1.5, 1.5], y in [-0.75, 0.75]; noise 0.08.
MOON_CENTER = (0.5, 0.25)
MOON_NOISE = 0.08
# Eight Gaussians: equal mixture, means at radius 2 on angles k pi / 4, std 0.2 (axis std ~1.43).
GAUSS_RADIUS = 2.0
GAUSS_STD = 0.2
# Checkerboard: uniform on the 8 unit squares (i, j) of [-2, 2]^2 with i + j even, where
# i = floor(x + 2), j = floor(y + 2); density 1/8 there (per-axis std 2 / sqrt(3) ~ 1.15).
BOARD_HALF = 2
# Rings: circles of radius 0.5, 1, 1.5, 2 weighted by circumference (even ink along the rings),
# plus N(0, 0.05^2) noise (per-axis std ~1.1).
RING_RADII = (0.5, 1.0, 1.5, 2.0)
RING_NOISE = 0.05
# Simpson's-rule intervals for the swiss roll / moon densities: node spacing along the curve stays
# under 0.6 noise std; log densities at sampled points are then within 1e-3 of a 16x finer rule.
SWISS_NODES = 512
MOON_NODES = 128  # per moon


def swiss_roll(n: int, generator: torch.Generator) -> torch.Tensor:
    """Swiss roll, float32 (n, 2)."""
    lo, hi = SWISS_T
    t = lo + (hi - lo) * torch.rand(n, generator=generator, dtype=torch.float64)
    return _blur(_swiss_curve(t), SWISS_NOISE, generator)


def two_moons(n: int, generator: torch.Generator) -> torch.Tensor:
    """Two interleaved half circles, float32 (n, 2)."""
    a = math.pi * torch.rand(n, generator=generator, dtype=torch.float64)
    lower = torch.rand(n, generator=generator) < 0.5
    points = torch.where(lower[:, None], _moon_curve(a, lower=True), _moon_curve(a, lower=False))
    return _blur(points, MOON_NOISE, generator)


def eight_gaussians(n: int, generator: torch.Generator) -> torch.Tensor:
    """Equal mixture of 8 Gaussians on a circle, float32 (n, 2)."""
    k = torch.randint(0, 8, (n,), generator=generator)
    return _blur(gaussian_means()[k], GAUSS_STD, generator)


def checkerboard(n: int, generator: torch.Generator) -> torch.Tensor:
    """Uniform on the dark squares of a 4x4 board on [-2, 2]^2, float32 (n, 2)."""
    side = 2 * BOARD_HALF
    i = torch.randint(0, side, (n,), generator=generator)
    j = 2 * torch.randint(0, side // 2, (n,), generator=generator) + i % 2  # i + j even
    cell = torch.stack([i, j], dim=1).to(torch.float64)  # (n, 2)
    offset = torch.rand(n, 2, generator=generator, dtype=torch.float64)
    return (cell + offset - BOARD_HALF).to(torch.float32)


def rings(n: int, generator: torch.Generator) -> torch.Tensor:
    """Concentric rings, float32 (n, 2)."""
    radii = torch.tensor(RING_RADII, dtype=torch.float64)
    cdf = (radii / radii.sum()).cumsum(0)
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    ring = torch.searchsorted(cdf, u, right=True).clamp(max=len(radii) - 1)  # inverse CDF
    phi = 2 * math.pi * torch.rand(n, generator=generator, dtype=torch.float64)
    points = radii[ring, None] * torch.stack([phi.cos(), phi.sin()], dim=1)
    return _blur(points, RING_NOISE, generator)


SAMPLERS: dict[str, Sampler] = {
    "swiss_roll": swiss_roll,
    "two_moons": two_moons,
    "eight_gaussians": eight_gaussians,
    "checkerboard": checkerboard,
    "rings": rings,
}


def sample_toy(name: str, n: int, generator: torch.Generator) -> torch.Tensor:
    """n samples float32 (n, 2) of the toy distribution `name` (a key of SAMPLERS)."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return SAMPLERS[_check_name(name)](n, generator)


def log_density(name: str, xy: torch.Tensor) -> torch.Tensor:
    """Log density (M,) of the toy distribution `name` at points xy (M, 2); -inf off support."""
    xy64 = xy.to(torch.float64)
    return _LOG_DENSITIES[_check_name(name)](xy64).to(xy.dtype)


def density_grid(
    name: str, lim: float = 3.0, res: int = 200
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Density on a res x res grid over [-lim, lim]^2: (xs (res,), ys (res,), p (res, res)).

    p[i, j] is the density at (xs[j], ys[i]), the layout of matplotlib's imshow/contourf.
    """
    if lim <= 0 or res < 2:
        raise ValueError(f"need lim > 0 and res >= 2, got lim={lim}, res={res}")
    axis = torch.linspace(-lim, lim, res, dtype=torch.float64)
    grid_y, grid_x = torch.meshgrid(axis, axis, indexing="ij")
    points = torch.stack([grid_x.reshape(-1), grid_y.reshape(-1)], dim=1)  # (res*res, 2)
    p = log_density(name, points).exp().reshape(res, res)
    return axis.float(), axis.float(), p.float()


def gaussian_means() -> torch.Tensor:
    """Means (8, 2) of the eight-Gaussians mixture."""
    angle = torch.arange(8, dtype=torch.float64) * math.pi / 4
    return GAUSS_RADIUS * torch.stack([angle.cos(), angle.sin()], dim=1)


def _check_name(name: str) -> str:
    if name not in SAMPLERS:
        raise ValueError(f"name must be one of {sorted(SAMPLERS)}, got {name!r}")
    return name


def _blur(points: torch.Tensor, std: float, generator: torch.Generator) -> torch.Tensor:
    noise = torch.randn(points.shape, generator=generator, dtype=torch.float64)
    return (points + std * noise).to(torch.float32)


def _swiss_curve(t: torch.Tensor) -> torch.Tensor:
    x = (t * t.cos() - SWISS_CENTER[0]) / SWISS_SCALE
    y = (t * t.sin() - SWISS_CENTER[1]) / SWISS_SCALE
    return torch.stack([x, y], dim=1)  # (n, 2)


def _moon_curve(a: torch.Tensor, lower: bool) -> torch.Tensor:
    if lower:
        x, y = 1.0 - a.cos(), 0.5 - a.sin()
    else:
        x, y = a.cos(), a.sin()
    return torch.stack([x - MOON_CENTER[0], y - MOON_CENTER[1]], dim=1)  # (n, 2)


def _log_normal_2d(sq_dist: torch.Tensor, std: float) -> torch.Tensor:
    """log N(x; mu, std^2 I) in 2-D given |x - mu|^2."""
    return -sq_dist / (2 * std**2) - math.log(2 * math.pi * std**2)


def _log_blurred_points(
    xy: torch.Tensor, centers: torch.Tensor, std: float, log_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """log sum_c w_c N(xy; center_c, std^2 I) at xy (M, 2); equal weights unless given (C,)."""
    if log_weights is None:
        log_weights = torch.full((len(centers),), -math.log(len(centers)), dtype=torch.float64)
    out = torch.empty(len(xy), dtype=torch.float64)
    for lo in range(0, len(xy), 4096):  # chunks keep the (m, C) distance matrix small
        sq = torch.cdist(xy[lo : lo + 4096], centers).square()
        out[lo : lo + 4096] = (_log_normal_2d(sq, std) + log_weights).logsumexp(dim=1)
    return out


def _simpson(lo: float, hi: float, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes (2n+1,) and log weights of Simpson's rule for the mean over U[lo, hi]."""
    nodes = torch.linspace(lo, hi, 2 * n + 1, dtype=torch.float64)
    weights = torch.ones(2 * n + 1, dtype=torch.float64)
    weights[1:-1:2], weights[2:-1:2] = 4.0, 2.0
    return nodes, (weights / weights.sum()).log()


def _log_swiss_roll(xy: torch.Tensor) -> torch.Tensor:
    # p(x) = E_t N(x; curve(t), s^2 I) with t uniform, by Simpson's rule in t.
    t, log_w = _simpson(*SWISS_T, SWISS_NODES // 2)
    return _log_blurred_points(xy, _swiss_curve(t), SWISS_NOISE, log_w)


def _log_two_moons(xy: torch.Tensor) -> torch.Tensor:
    a, log_w = _simpson(0.0, math.pi, MOON_NODES // 2)
    nodes = torch.cat([_moon_curve(a, lower=False), _moon_curve(a, lower=True)])
    return _log_blurred_points(xy, nodes, MOON_NOISE, torch.cat([log_w, log_w]) - math.log(2))


def _log_eight_gaussians(xy: torch.Tensor) -> torch.Tensor:
    return _log_blurred_points(xy, gaussian_means(), GAUSS_STD)


def _log_checkerboard(xy: torch.Tensor) -> torch.Tensor:
    cell = torch.floor(xy + BOARD_HALF)  # (M, 2) square indices (i, j)
    on_board = ((cell >= 0) & (cell < 2 * BOARD_HALF)).all(dim=1)
    dark = (cell.sum(dim=1) % 2) == 0
    area = 2 * BOARD_HALF**2  # 8 unit squares
    inside = torch.full((len(xy),), -math.log(area), dtype=torch.float64)
    return torch.where(on_board & dark, inside, torch.full_like(inside, -math.inf))


def _log_rings(xy: torch.Tensor) -> torch.Tensor:
    # A circle of radius r blurred by N(0, s^2 I), averaged over the angle, has density
    # exp(-(rho^2 + r^2) / (2 s^2)) I0(rho r / s^2) / (2 pi s^2), with rho = |x|.
    # With the scaled Bessel i0e(z) = exp(-z) I0(z) the exponent becomes -(rho - r)^2 / (2 s^2).
    radii = torch.tensor(RING_RADII, dtype=torch.float64)
    rho = xy.norm(dim=1, keepdim=True)  # (M, 1)
    s2 = RING_NOISE**2
    log_bessel = torch.special.i0e(rho * radii / s2).log()
    log_ring = _log_normal_2d((rho - radii).square(), RING_NOISE) + log_bessel  # (M, R)
    return (log_ring + (radii / radii.sum()).log()).logsumexp(dim=1)


_LOG_DENSITIES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "swiss_roll": _log_swiss_roll,
    "two_moons": _log_two_moons,
    "eight_gaussians": _log_eight_gaussians,
    "checkerboard": _log_checkerboard,
    "rings": _log_rings,
}
