"""Toy-data sample metrics: sliced Wasserstein-1 (Rabin et al. 2011) and RBF-kernel MMD^2
(Gretton et al. 2012), plus the true-vs-true floor and Gaussian-fit ceiling that frame them."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch


def _check_pair(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"x (N, D) and y (M, D) must share D: {tuple(x.shape)}, {tuple(y.shape)}")
    if x.shape[0] < 2 or y.shape[0] < 2:
        raise ValueError(f"x and y need at least 2 samples each, got {x.shape[0]} and {y.shape[0]}")


def wasserstein1_1d(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Exact W1 between empirical 1-D distributions, batched: u (P, N), v (P, M) -> (P,).

    W1 = integral |F_u(t) - F_v(t)| dt = integral_0^1 |F_u^-1(q) - F_v^-1(q)| dq, which handles
    N != M exactly: sort the pooled samples and integrate the CDF gap between neighbours.
    """
    n, m = u.shape[1], v.shape[1]
    pooled = torch.cat([u, v], dim=1)  # (P, N + M)
    values, order = pooled.sort(dim=1)
    up, down = (torch.tensor(w, dtype=values.dtype, device=values.device) for w in (1 / n, -1 / m))
    steps = torch.where(order < n, up, down)  # (P, N + M): dF_u - dF_v at each sorted value
    cdf_gap = steps.cumsum(dim=1)[:, :-1]  # F_u - F_v on each interval between sorted values
    return (cdf_gap.abs() * values.diff(dim=1)).sum(dim=1)


def random_directions(
    n: int, dim: int, generator: torch.Generator, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """n directions uniform on the unit sphere S^(dim-1) (n, dim), from normalised Gaussians."""
    dev = generator.device
    z = torch.randn(n, dim, generator=generator, dtype=dtype, device=dev)
    return z / z.norm(dim=1, keepdim=True)


def sliced_wasserstein(
    x: torch.Tensor, y: torch.Tensor, n_projections: int = 256, *, generator: torch.Generator
) -> float:
    """Sliced Wasserstein-1: mean over random unit directions theta of W1(theta.x, theta.y).

    x (N, D), y (M, D); float64; N != M is handled exactly (see wasserstein1_1d). Same units as
    the data; for D = 1 it is the exact 1-D W1. Directions come from `generator` (its device).
    """
    _check_pair(x, y)
    if n_projections < 1:
        raise ValueError(f"n_projections must be >= 1, got {n_projections}")
    theta = random_directions(n_projections, x.shape[1], generator)  # (P, D)
    x, y = x.to(theta), y.to(theta)
    return wasserstein1_1d(theta @ x.T, theta @ y.T).mean().item()  # (P, N), (P, M)


def _sq_dists(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances (A, B), clamped at 0 against round-off."""
    d2 = a.square().sum(1)[:, None] + b.square().sum(1)[None, :] - 2.0 * a @ b.T
    return d2.clamp_min(0.0)


def _kernel_sum(a: torch.Tensor, b: torch.Tensor, inv_two_s2: list[float], batch: int) -> float:
    """Sum over all pairs of the mean-over-bandwidths Gaussian kernel, in row batches of a."""
    total = 0.0
    for rows in a.split(batch):
        d2 = _sq_dists(rows, b)  # (b, B)
        total += sum(torch.exp(-d2 * c).sum().item() for c in inv_two_s2) / len(inv_two_s2)
    return total


def mmd_rbf(
    x: torch.Tensor,
    y: torch.Tensor,
    bandwidths: Sequence[float] = (0.1, 0.2, 0.5, 1.0, 2.0),
    *,
    batch: int = 1024,
) -> float:
    """Unbiased MMD^2 (Gretton et al. 2012, Eq. 3) between x (N, D) and y (M, D), float64.

    Kernel: k(a, b) = mean over sigma in bandwidths of exp(-|a - b|^2 / (2 sigma^2)), so k(a, a) = 1
    and the sigmas are Gaussian standard deviations in data units. Diagonal terms are excluded
    from the within-set sums, so the estimate can be slightly negative; its mean is 0 when x and
    y come from the same distribution.
    """
    _check_pair(x, y)
    if len(bandwidths) == 0 or min(bandwidths) <= 0:
        raise ValueError(f"bandwidths must be non-empty and all positive, got {bandwidths}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    x, y = x.to(torch.float64), y.to(device=x.device, dtype=torch.float64)
    inv = [1.0 / (2.0 * float(s) ** 2) for s in bandwidths]
    n, m = x.shape[0], y.shape[0]
    kxx = (_kernel_sum(x, x, inv, batch) - n) / (n * (n - 1))  # k(a, a) = 1 removed
    kyy = (_kernel_sum(y, y, inv, batch) - m) / (m * (m - 1))
    kxy = _kernel_sum(x, y, inv, batch) / (n * m)
    return kxx + kyy - 2.0 * kxy


def fit_gaussian_sampler(
    data: torch.Tensor,
) -> Callable[[int, torch.Generator], torch.Tensor]:
    """Sampler of N(mean, cov) fitted to data (N, D); cov square root via eigh, so PSD-safe."""
    x = data.to(torch.float64)
    mean = x.mean(dim=0)
    lam, vec = torch.linalg.eigh(torch.cov(x.T).reshape(x.shape[1], x.shape[1]))
    root = vec * lam.clamp_min(0.0).sqrt()  # (D, D), root @ root.T = cov

    def sample(n: int, generator: torch.Generator) -> torch.Tensor:
        z = torch.randn(n, x.shape[1], generator=generator, dtype=torch.float64, device=x.device)
        return mean + z @ root.T  # (n, D)

    return sample


def context_numbers(
    true_sampler: Callable[[int, torch.Generator], torch.Tensor],
    n: int,
    generator: torch.Generator,
    *,
    n_projections: int = 256,
    bandwidths: Sequence[float] = (0.1, 0.2, 0.5, 1.0, 2.0),
) -> dict[str, float]:
    """Reference points for a toy metric report, each computed with n samples per side.

    floor: true vs an independent true sample (the metric's finite-sample noise level).
    gaussian: N(mean, cov) fitted to one true sample vs an independent true sample (what
    matching only the first two moments achieves). A model worth reporting sits between them.
    """
    if n < 2:
        raise ValueError(f"n must be >= 2, got {n}")
    ref, other = true_sampler(n, generator), true_sampler(n, generator)
    gauss = fit_gaussian_sampler(ref)(n, generator)

    def swd(a: torch.Tensor, b: torch.Tensor) -> float:
        return sliced_wasserstein(a, b, n_projections, generator=generator)

    return {
        "swd_floor": swd(ref, other),
        "swd_gaussian": swd(gauss, other),
        "mmd_floor": mmd_rbf(ref, other, bandwidths),
        "mmd_gaussian": mmd_rbf(gauss, other, bandwidths),
    }
