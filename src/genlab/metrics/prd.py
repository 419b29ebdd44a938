"""Improved precision and recall via k-NN manifold balls (Kynkaanniemi et al. 2019)."""

from __future__ import annotations

import torch
from numpy.typing import NDArray


def _as_float64(a: torch.Tensor | NDArray) -> torch.Tensor:
    return torch.as_tensor(a).detach().to(torch.float64)


def _check_batch(batch: int) -> None:
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")


def knn_radii(feats: torch.Tensor | NDArray, k: int = 3, batch: int = 1024) -> torch.Tensor:
    """Distance of each row of feats (N, D) to its k-th nearest neighbour, self excluded (N,)."""
    x = _as_float64(feats)
    if x.ndim != 2 or not 1 <= k < x.shape[0]:
        raise ValueError(f"k must be in [1, N-1] for feats (N, D): k={k}, shape {tuple(x.shape)}")
    _check_batch(batch)
    radii = []
    for rows in x.split(batch):
        dist = torch.cdist(rows, x)  # (b, N), self distance is the smallest entry
        radii.append(dist.topk(k + 1, dim=1, largest=False).values[:, k])
    return torch.cat(radii)


def manifold_coverage(
    ref: torch.Tensor | NDArray,
    radii: torch.Tensor,
    query: torch.Tensor | NDArray,
    batch: int = 1024,
) -> float:
    """Fraction of query (M, D) inside the union of balls B(ref_i, radii_i), ref (N, D). Eq. 1."""
    ref, query = _as_float64(ref), _as_float64(query)
    _check_batch(batch)
    inside = [
        (torch.cdist(rows, ref) <= radii[None, :]).any(dim=1)  # (b, N) -> (b,)
        for rows in query.split(batch)
    ]
    return torch.cat(inside).to(torch.float64).mean().item()


def precision_recall(
    real: torch.Tensor | NDArray,
    fake: torch.Tensor | NDArray,
    k: int = 3,
    batch: int = 1024,
) -> tuple[float, float]:
    """Improved precision (fake inside real manifold) and recall (real inside fake manifold).

    Each manifold is the union of balls around its points with radius the distance to the
    k-th nearest neighbour within the same set (Eq. 1, 2). Distances are float64 and computed
    in row batches of `batch`, so memory is O(batch * max(N, M)).
    """
    real, fake = _as_float64(real), _as_float64(fake)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"real (N, D) and fake (M, D) must share D: {real.shape}, {fake.shape}")
    precision = manifold_coverage(real, knn_radii(real, k=k, batch=batch), fake, batch=batch)
    recall = manifold_coverage(fake, knn_radii(fake, k=k, batch=batch), real, batch=batch)
    return precision, recall
