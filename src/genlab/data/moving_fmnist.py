"""Moving Fashion-MNIST: items bouncing in a frame, after Moving MNIST (Srivastava et al. 2015).

Each item's top-left corner moves with constant velocity and reflects elastically off the walls;
frames compose the items by pixel-wise max. Positions are sampled first (a "layout"), then
rendered, so the per-video item indices and trajectories can be kept alongside the videos.
"""

from __future__ import annotations

import numpy as np

DEFAULT_MAX_SPEED = 4.0  # pixels per frame (Moving MNIST moves about 3.6 px/frame on 64x64)
DEFAULT_MIN_SPEED = 2.0
_CHUNK = 128  # videos rendered at a time (bounds the index arrays to ~20 MB)


def make_moving_fmnist(
    images: np.ndarray,
    n_videos: int,
    n_frames: int,
    n_items: int,
    size: int = 64,
    seed: int = 0,
    max_speed: float = DEFAULT_MAX_SPEED,
    min_speed: float = DEFAULT_MIN_SPEED,
) -> np.ndarray:
    """Videos uint8 (n_videos, n_frames, size, size) of `n_items` items of `images` (N, h, w).

    Deterministic given `seed`; see sample_layout and render_videos for the two steps.
    """
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (N, h, w), got {images.dtype} {images.shape}")
    layout = sample_layout(
        n_images=len(images), item_shape=images.shape[1:], n_videos=n_videos,
        n_frames=n_frames, n_items=n_items, size=size, rng=np.random.default_rng(seed),
        max_speed=max_speed, min_speed=min_speed,
    )  # fmt: skip
    return render_videos(images, layout["item_indices"], layout["positions"], size=size)


def sample_layout(
    n_images: int,
    item_shape: tuple[int, int],
    n_videos: int,
    n_frames: int,
    n_items: int,
    size: int,
    rng: np.random.Generator,
    max_speed: float = DEFAULT_MAX_SPEED,
    min_speed: float = DEFAULT_MIN_SPEED,
) -> dict[str, np.ndarray]:
    """Random items and bouncing trajectories.

    Returns item_indices int64 (V, K), positions float64 (V, T, K, 2) of each item's top-left
    corner as (row, col) in [0, size - item], and velocities float64 (V, K, 2) in px/frame.
    """
    _check_layout_args(
        n_images, item_shape, n_videos, n_frames, n_items, size, max_speed, min_speed
    )
    travel = size - np.asarray(item_shape[:2], dtype=np.float64)  # (2,) free room per axis
    item_indices = rng.integers(0, n_images, size=(n_videos, n_items))
    start = rng.uniform(0.0, 1.0, size=(n_videos, n_items, 2)) * travel  # (V, K, 2)
    angle = rng.uniform(0.0, 2 * np.pi, size=(n_videos, n_items))
    speed = rng.uniform(min_speed, max_speed, size=(n_videos, n_items))
    velocity = speed[..., None] * np.stack([np.sin(angle), np.cos(angle)], axis=-1)  # (V, K, 2)
    t = np.arange(n_frames, dtype=np.float64)[None, :, None, None]
    free_path = start[:, None] + t * velocity[:, None]  # (V, T, K, 2) without walls
    positions = bounce(free_path, travel)
    return {"item_indices": item_indices, "positions": positions, "velocities": velocity}


def bounce(free_path: np.ndarray, travel: np.ndarray) -> np.ndarray:
    """Fold unconstrained positions into [0, travel]: elastic reflection is a triangle wave.

    A point moving freely from x reaches x mod 2L on the unfolded line; folding [L, 2L] back
    onto [0, L] gives the bounced position L - |(x mod 2L) - L|.
    """
    period = np.where(travel > 0, 2 * travel, 1.0)
    folded = travel - np.abs(np.mod(free_path, period) - travel)
    return np.where(travel > 0, folded, 0.0)


def render_videos(
    images: np.ndarray, item_indices: np.ndarray, positions: np.ndarray, size: int
) -> np.ndarray:
    """Paste items at their rounded corners, max-composited: uint8 (V, T, size, size)."""
    n_videos, n_frames, n_items, _ = positions.shape
    corners = np.rint(positions).astype(np.int64)  # (V, T, K, 2)
    h, w = images.shape[1:3]
    patch_offsets = (np.arange(h)[:, None] * size + np.arange(w)[None, :]).reshape(-1)  # (h*w,)
    videos = np.zeros((n_videos, n_frames, size * size), dtype=np.uint8)  # flat frames
    for lo in range(0, n_videos, _CHUNK):
        hi = min(lo + _CHUNK, n_videos)
        frames = videos[lo:hi].reshape(-1, size * size)  # (v*T, S*S) view
        for k in range(n_items):
            patches = images[item_indices[lo:hi, k]].reshape(hi - lo, 1, h * w)  # (v, 1, h*w)
            patches = np.broadcast_to(patches, (hi - lo, n_frames, h * w)).reshape(-1, h * w)
            base = corners[lo:hi, :, k, 0] * size + corners[lo:hi, :, k, 1]  # (v, T)
            index = base.reshape(-1, 1) + patch_offsets  # (v*T, h*w)
            current = np.take_along_axis(frames, index, axis=1)
            np.put_along_axis(frames, index, np.maximum(current, patches), axis=1)
    return videos.reshape(n_videos, n_frames, size, size)


def _check_layout_args(
    n_images, item_shape, n_videos, n_frames, n_items, size, max_speed, min_speed
) -> None:
    for name, value in (
        ("n_images", n_images),
        ("n_videos", n_videos),
        ("n_frames", n_frames),
        ("n_items", n_items),
    ):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if size < max(item_shape[:2]):
        raise ValueError(f"size must be >= the item size {tuple(item_shape[:2])}, got {size}")
    if not 0 <= min_speed <= max_speed:
        raise ValueError(f"need 0 <= min_speed <= max_speed, got {min_speed}, {max_speed}")
