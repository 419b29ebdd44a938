"""Benchmark: wall time to draw N samples from a trained image diffusion model.

Loads models/<name>.pt (EMA weights) with the params.yaml section diffusion.<name> under the
active profile, runs the method's sampler (EDM Heun at 35 NFE for the Fashion-MNIST presets) on N
images in batches, and reports seconds and images/s. runtime.compile / runtime.channels_last
apply as in the evaluate stage. One warm-up batch first (torch.compile, cuDNN autotuning,
allocator), timed apart as warmup_seconds; the timed runs sync the device before reading the
clock.

    python benchmarks/bench_sampling.py edm_fmnist [--n 10000] [--batch 2500] [--guidance 0]
        [--repeats 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from genlab.config import is_toy
from genlab.families.diffusion import N_CLASSES, backbone, generate, nfe

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the stages package
from stages._common import model_section, runtime, write_json  # noqa: E402
from stages.evaluate import load_model, speed_up  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name", help="a diffusion.<name> key whose models/<name>.pt exists")
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--batch", type=int, default=2500)
    ap.add_argument("--guidance", type=float, default=0.0, help="CFG weight (conditional only)")
    ap.add_argument("--repeats", type=int, default=2, help="timed runs; the median is reported")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.n < 1 or args.batch < 1 or args.repeats < 1:
        ap.error("--n, --batch and --repeats must be >= 1")
    family, name, params, cfg = model_section(["diffusion", args.name], "evaluate")
    if is_toy(cfg.dataset):
        ap.error(f"diffusion.{name} is not an image model (dataset {cfg.dataset})")
    rt, device, seed = runtime(params)
    nhwc = rt.use("channels_last", device.type)
    net = speed_up(family, load_model(family, name, cfg, device, nhwc), rt, device, nhwc)
    unet = backbone(net)
    shape = (unet.in_channels, unet.resolution, unet.resolution)
    labels = (torch.arange(args.n) % N_CLASSES) if cfg.conditional else None
    guidance = args.guidance if cfg.conditional else None

    def draw(n: int) -> torch.Tensor:
        g = torch.Generator(device=device).manual_seed(seed)
        return generate(net, cfg.method, n, shape, generator=g,
                        labels=None if labels is None else labels[:n], guidance=guidance,
                        batch_size=args.batch, device=device, bf16=rt.bf16)

    _sync(device)
    t0 = time.perf_counter()
    draw(min(args.batch, args.n))  # warm-up: compile, cuDNN autotuning
    _sync(device)
    warmup = time.perf_counter() - t0
    times = []
    for _ in range(args.repeats):
        _sync(device)
        t0 = time.perf_counter()
        out = draw(args.n)
        _sync(device)
        times.append(time.perf_counter() - t0)
    assert out.shape == (args.n, *shape) and torch.isfinite(out).all(), "bad samples"
    sec = statistics.median(times)
    row = {"model": name, "profile": params.get("profile", "cpu"), "n": args.n,
           "batch": args.batch, "nfe": nfe(cfg.method), "guidance": guidance,
           "seconds": sec, "all_seconds": times, "warmup_seconds": warmup,
           "compiled": rt.use("compile", device.type), "img_per_s": args.n / sec,
           "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
           "bf16": rt.bf16 and device.type == "cuda"}
    print(json.dumps(row))
    print(f"{name}: {args.n} samples at {row['nfe']} NFE in {sec:.2f} s "
          f"({row['img_per_s']:.0f} img/s) on {row['device']}")
    if args.json:
        write_json(args.json, row)
    return row


if __name__ == "__main__":
    main(sys.argv[1:])
