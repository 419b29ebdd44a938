"""Figures every stage writes: image grids, loss curves and 2-D scatter plots (PNG, Agg)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402


def save_grid(images: np.ndarray, path: Path, nrow: int = 8, pad: int = 2) -> None:
    """uint8 images (N, C, H, W) with C in {1, 3} -> one PNG grid, nrow images per row."""
    n, c, h, w = images.shape
    assert images.dtype == np.uint8 and c in (1, 3), (
        f"expected uint8 (N, 1|3, H, W), got {images.shape} {images.dtype}")
    rows = math.ceil(n / nrow)
    canvas = np.full((rows * (h + pad) + pad, nrow * (w + pad) + pad, c), 255, np.uint8)
    for i, img in enumerate(images):
        r, q = divmod(i, nrow)
        y, x = pad + r * (h + pad), pad + q * (w + pad)
        canvas[y:y + h, x:x + w] = img.transpose(1, 2, 0)  # (H, W, C)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(canvas[..., 0] if c == 1 else canvas).save(path)


def save_loss_curve(history: list[dict], path: Path, title: str) -> None:
    """Loss (log scale) against step from the training loop's history rows."""
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=110)
    steps = [r["step"] for r in history]
    ax.plot(steps, [r["loss"] for r in history], lw=1.2)
    ax.set(xlabel="step", ylabel="loss", title=title)
    if history and min(r["loss"] for r in history) > 0:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    _save(fig, path)


def save_scatter(points: dict[str, np.ndarray], path: Path, title: str,
                 density: tuple[np.ndarray, float] | None = None) -> None:
    """Scatter each named (N, 2) point set, optionally over a density image (grid, half-width)."""
    fig, ax = plt.subplots(figsize=(4.2, 4.2), dpi=110)
    if density is not None:
        grid, lim = density
        ax.imshow(grid, extent=(-lim, lim, -lim, lim), origin="lower", cmap="Greys", alpha=0.6)
    for (name, p), color in zip(points.items(), ["tab:blue", "tab:orange", "tab:green"],
                                strict=False):
        ax.scatter(p[:, 0], p[:, 1], s=1.5, alpha=0.5, color=color, label=name)
    ax.set(title=title, aspect="equal")
    ax.legend(markerscale=6, loc="upper right", fontsize=7)
    _save(fig, path)


def save_bars(values: dict[str, float], path: Path, title: str, ylabel: str) -> None:
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=110)
    ax.bar(list(values), list(values.values()))
    ax.set(title=title, ylabel=ylabel)
    ax.tick_params(axis="x", rotation=45)
    _save(fig, path)


def _save(fig, path: Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def save_panels(panels: dict[str, np.ndarray], path: Path, title: str,
                density: tuple[np.ndarray, float] | None = None) -> None:
    """One scatter panel per named (N, 2) point set, side by side (e.g. a sampler's path)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4), dpi=110)
    for ax, (name, p) in zip(np.atleast_1d(axes), panels.items(), strict=True):
        if density is not None:
            grid, lim = density
            ax.imshow(grid, extent=(-lim, lim, -lim, lim), origin="lower", cmap="Greys",
                      alpha=0.6)
            ax.set(xlim=(-lim, lim), ylim=(-lim, lim))
        ax.scatter(p[:, 0], p[:, 1], s=1.5, alpha=0.5)
        ax.set_title(name, fontsize=8)
        ax.set_aspect("equal")
    fig.suptitle(title)
    _save(fig, path)


def save_guidance_sweep(rows: list[dict], path: Path, title: str) -> None:
    """FD and class accuracy against the classifier-free guidance weight w."""
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=110)
    ws = [r["w"] for r in rows]
    ax.plot(ws, [r["fd"] for r in rows], "o-", color="tab:blue")
    ax.set(xlabel="guidance w", ylabel="FD", title=f"{title}: guidance sweep")
    ax2 = ax.twinx()
    ax2.plot(ws, [r.get("class_accuracy", np.nan) for r in rows], "s--", color="tab:orange")
    ax2.set_ylabel("class accuracy", color="tab:orange")
    _save(fig, path)
