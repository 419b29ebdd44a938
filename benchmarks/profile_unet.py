"""Where a U-Net training step spends its GPU time: torch.profiler over a few eager steps.

One training step = EDM loss forward + backward + fused AdamW step of the EDM-preconditioned
U-Net (bf16 autocast, channels_last, no compile: the eager op names map one-to-one to layers).
Prints the ops with the most self device time and a summary by kind (convolution, GroupNorm,
attention / matmul, everything else), which says what torch.compile can and cannot fuse away:
it fuses the elementwise and normalisation ops, while the convolutions stay cuDNN kernels.

    python benchmarks/profile_unet.py [--preset edm_cifar10] [--batch 512] [--steps 3]
        [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from genlab.models.precond import EDMPrecond
from genlab.models.unet import UNet
from genlab.objectives.diffusion import EDMLoss

sys.path.insert(0, str(Path(__file__).parent))
from bench_unet import PRESETS  # noqa: E402

KINDS = (  # (kind, substrings of aten op names), first match wins
    ("convolution", ("conv",)),
    ("group_norm", ("group_norm",)),
    ("attention / matmul", ("mm", "attention", "sdpa", "softmax", "linear")),
    ("optimizer", ("adam", "_foreach")),
)


def kind_of(op: str) -> str:
    return next((k for k, keys in KINDS if any(s in op for s in keys)), "elementwise / other")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="edm_cifar10", choices=sorted(PRESETS))
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    if args.batch <= 0 or args.steps <= 0 or args.warmup < 0:
        ap.error("--batch and --steps must be > 0, --warmup >= 0")
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    preset = PRESETS[args.preset]
    torch.manual_seed(0)
    net = EDMPrecond(UNet.from_config(preset)).to(device)
    if cuda:
        net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4, fused=cuda)
    loss_fn = EDMLoss(label_dropout=0.0)
    x = torch.rand(args.batch, preset.in_channels, preset.resolution, preset.resolution,
                   device=device) * 2 - 1
    if cuda:
        x = x.contiguous(memory_format=torch.channels_last)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            loss = loss_fn(net, x).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(args.warmup):
        step()
    if cuda:
        torch.cuda.synchronize()
    acts = [torch.profiler.ProfilerActivity.CPU] + (
        [torch.profiler.ProfilerActivity.CUDA] if cuda else [])
    t0 = time.perf_counter()
    with torch.profiler.profile(activities=acts) as prof:
        for _ in range(args.steps):
            step()
        if cuda:
            torch.cuda.synchronize()
    wall = (time.perf_counter() - t0) / args.steps
    attr = "self_device_time_total" if cuda else "self_cpu_time_total"
    ops = [(e.key, getattr(e, attr) / 1e3 / args.steps) for e in prof.key_averages()
           if e.key.startswith("aten::") and getattr(e, attr) > 0]
    ops.sort(key=lambda kv: -kv[1])
    total = sum(ms for _, ms in ops)
    by_kind: dict[str, float] = {}
    for op, ms in ops:
        by_kind[kind_of(op)] = by_kind.get(kind_of(op), 0.0) + ms
    print(f"{args.preset}, batch {args.batch}, {device}: {wall * 1e3:.1f} ms per step "
          f"(profiled), {args.batch / wall:.0f} img/s; self {'device' if cuda else 'cpu'} "
          f"time of aten ops {total:.1f} ms per step\n")
    print("| kind | ms / step | share |\n|---|---|---|")
    for k, ms in sorted(by_kind.items(), key=lambda kv: -kv[1]):
        print(f"| {k} | {ms:.1f} | {ms / total:.0%} |")
    print("\n| op | ms / step | share |\n|---|---|---|")
    for op, ms in ops[:20]:
        print(f"| {op} | {ms:.2f} | {ms / total:.1%} |")
    out = {"preset": args.preset, "batch": args.batch, "device": str(
        torch.cuda.get_device_name() if cuda else "cpu"), "ms_per_step": wall * 1e3,
        "by_kind_ms": by_kind, "top_ops_ms": dict(ops[:30])}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
