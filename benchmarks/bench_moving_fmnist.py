"""Benchmark: how fast genlab.data.moving_fmnist renders videos (CPU, NumPy).

Times make_moving_fmnist (layout sampling + rendering) for --videos videos of --frames frames
with --items bouncing items, on random uint8 28x28 "items" (the speed does not depend on the
pixel values), and prints the best of --repeats runs and the videos per second.

    python benchmarks/bench_moving_fmnist.py [--videos 2000] [--frames 20] [--items 2]
        [--size 64] [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from genlab.data import moving_fmnist as mf


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=2000)
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--items", type=int, default=2)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = ap.parse_args(argv)
    for key in ("videos", "frames", "items", "repeats"):
        if getattr(args, key) < 1:
            ap.error(f"--{key} must be >= 1, got {getattr(args, key)}")
    images = np.random.default_rng(0).integers(0, 256, (1000, 28, 28), dtype=np.uint8)
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        videos = mf.make_moving_fmnist(images, n_videos=args.videos, n_frames=args.frames,
                                       n_items=args.items, size=args.size)
        times.append(time.perf_counter() - t0)
    best = min(times)
    out = {"videos": args.videos, "frames": args.frames, "items": args.items,
           "size": args.size, "shape": list(videos.shape), "best_s": best,
           "videos_per_s": args.videos / best, "repeats": args.repeats}
    print(f"{args.videos} videos x {args.frames} frames ({args.size}x{args.size}, "
          f"{args.items} items): best {best:.2f} s of {args.repeats}, "
          f"{out['videos_per_s']:.0f} videos/s")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
