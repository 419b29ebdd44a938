"""Moving Fashion-MNIST: determinism, bouncing inside the frame, and max composition."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from genlab.data import moving_fmnist as mf
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def items() -> np.ndarray:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (20, 28, 28), dtype=np.uint8)
    images[:, :2] = 0  # some blank border rows, like Fashion-MNIST
    return images


def layout(n_videos=6, n_frames=30, n_items=2, size=64, seed=0, **speeds):
    return mf.sample_layout(
        n_images=20,
        item_shape=(28, 28),
        n_videos=n_videos,
        n_frames=n_frames,
        n_items=n_items,
        size=size,
        rng=np.random.default_rng(seed),
        **speeds,
    )


def simulate(start: float, velocity: float, travel: float, n_frames: int) -> list[float]:
    """Step-by-step elastic bouncing (valid while |velocity| < travel)."""
    out, p, v = [], start, velocity
    for _ in range(n_frames):
        out.append(p)
        p += v
        if p < 0:
            p, v = -p, -v
        elif p > travel:
            p, v = 2 * travel - p, -v
    return out


def test_shape_dtype_determinism(items):
    a = mf.make_moving_fmnist(items, n_videos=4, n_frames=5, n_items=2, seed=3)
    b = mf.make_moving_fmnist(items, n_videos=4, n_frames=5, n_items=2, seed=3)
    c = mf.make_moving_fmnist(items, n_videos=4, n_frames=5, n_items=2, seed=4)
    assert a.shape == (4, 5, 64, 64) and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_positions_stay_in_bounds_and_match_simulation():
    out = layout(n_frames=60, max_speed=6.0, min_speed=5.0)  # many bounces in 60 frames
    positions, velocities = out["positions"], out["velocities"]
    assert positions.min() >= 0 and positions.max() <= 64 - 28
    for v in range(positions.shape[0]):
        for k in range(positions.shape[2]):
            for axis in range(2):
                expected = simulate(positions[v, 0, k, axis], velocities[v, k, axis], 36.0, 60)
                np.testing.assert_allclose(positions[v, :, k, axis], expected, atol=1e-9)
    speeds = np.linalg.norm(velocities, axis=-1)
    assert ((speeds >= 5.0) & (speeds <= 6.0)).all()


def test_bounce_closed_form_points():
    travel = np.array([36.0, 0.0])
    free = np.array([[-5.0, 3.0], [40.0, 7.0], [72.0, 1.0], [110.0, 2.0]])
    np.testing.assert_allclose(mf.bounce(free, travel), [[5, 0], [32, 0], [0, 0], [34, 0]])


def test_single_item_mass_is_conserved(items):
    videos = mf.make_moving_fmnist(items, n_videos=5, n_frames=12, n_items=1, seed=1)
    out = layout(n_videos=5, n_frames=12, n_items=1, seed=1)  # same seed, same layout
    masses = videos.reshape(5, 12, -1).sum(axis=-1, dtype=np.int64)
    expected = items[out["item_indices"][:, 0]].reshape(5, -1).sum(axis=-1, dtype=np.int64)
    np.testing.assert_array_equal(masses, np.repeat(expected[:, None], 12, axis=1))


def test_item_is_pasted_at_rounded_corner(items):
    out = layout(n_videos=2, n_frames=4, n_items=1, seed=2)
    videos = mf.render_videos(items, out["item_indices"], out["positions"], size=64)
    r, c = np.rint(out["positions"][1, 3, 0]).astype(int)
    expected = np.zeros((64, 64), dtype=np.uint8)
    expected[r : r + 28, c : c + 28] = items[out["item_indices"][1, 0]]
    np.testing.assert_array_equal(videos[1, 3], expected)


def test_items_compose_by_pixelwise_max(items):
    out = layout(n_videos=8, n_frames=10, n_items=3, seed=5)
    videos = mf.render_videos(items, out["item_indices"], out["positions"], size=64)
    singles = [
        mf.render_videos(
            items, out["item_indices"][:, k : k + 1], out["positions"][:, :, k : k + 1], size=64
        )
        for k in range(3)
    ]
    np.testing.assert_array_equal(videos, np.maximum.reduce(singles))


def test_mass_adds_up_when_items_do_not_overlap(items):
    out = layout(n_videos=40, n_frames=10, n_items=2, seed=7)
    videos = mf.render_videos(items, out["item_indices"], out["positions"], size=64)
    corners = np.rint(out["positions"]).astype(int)  # (V, T, 2, 2)
    apart = (np.abs(corners[:, :, 0] - corners[:, :, 1]) >= 28).any(axis=-1)  # (V, T)
    assert apart.sum() > 20
    item_mass = items.reshape(20, -1).sum(axis=1, dtype=np.int64)[out["item_indices"]].sum(1)
    masses = videos.reshape(40, 10, -1).sum(axis=-1, dtype=np.int64)
    expected = np.broadcast_to(item_mass[:, None], (40, 10))
    np.testing.assert_array_equal(masses[apart], expected[apart])


def test_item_as_large_as_frame_stays_put(items):
    videos = mf.make_moving_fmnist(items, n_videos=2, n_frames=3, n_items=1, size=28)
    assert (videos == videos[:, :1]).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_videos": 0}, "n_videos"),
        ({"n_items": 0}, "n_items"),
        ({"size": 20}, "size"),
        ({"min_speed": 5.0, "max_speed": 1.0}, "min_speed"),
    ],
)
def test_bad_arguments(items, kwargs, message):
    args = {"n_videos": 2, "n_frames": 3, "n_items": 1, **kwargs}
    with pytest.raises(ValueError, match=message):
        mf.make_moving_fmnist(items, **args)


def test_rejects_non_uint8_images(items):
    with pytest.raises(ValueError, match="uint8"):
        mf.make_moving_fmnist(items.astype(np.float32), n_videos=1, n_frames=1, n_items=1)


def test_speed_benchmark_runs_and_names_bad_arguments(tmp_path):
    """The speed is measured by benchmarks/bench_moving_fmnist.py, not by a timed test: here
    only that it runs, reports and names a bad argument."""
    out = tmp_path / "bench.json"
    cmd = [sys.executable, "benchmarks/bench_moving_fmnist.py", "--videos", "5", "--frames",
           "3", "--repeats", "1", "--json", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["shape"] == [5, 3, 64, 64] and result["videos_per_s"] > 0
    proc = subprocess.run([*cmd[:2], "--items", "0"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env=env)
    assert proc.returncode != 0 and "--items" in proc.stderr
