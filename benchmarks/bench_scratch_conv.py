"""Benchmark: from-scratch im2col conv2d forward+backward vs torch's F.conv2d + autograd (CPU).

Prints a markdown table (shape, scratch ms, torch ms, ratio). Each timing is the best of
`--repeats` runs (the least disturbed by other processes on a shared machine; `--stat median`
for the median). Scratch and torch run back to back, and `ratio` is the median of the paired
per-run ratios scratch/torch, which cancels most of the background load both runs share.

    python benchmarks/bench_scratch_conv.py [--repeats 30] [--threads N]
        [--clock wall|cpu] [--stat min|median]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from genlab.scratch import ops

# (label, batch, in_ch, out_ch, size, kernel, stride, padding, dilation)
CASES = [
    ("64x1->32 28x28 k3 p1", 64, 1, 32, 28, 3, 1, 1, 1),
    ("64x32->64 14x14 k3 p1", 64, 32, 64, 14, 3, 1, 1, 1),
    ("64x64->64 7x7 k3 p1", 64, 64, 64, 7, 3, 1, 1, 1),
    ("64x32->64 28x28 k3 s2 p1", 64, 32, 64, 28, 3, 2, 1, 1),
    ("64x32->32 14x14 k3 p2 d2", 64, 32, 32, 14, 3, 1, 2, 2),
]


def _scratch_step(x, w, b, hp):
    y, cache = ops.conv2d_forward(x, w, b, **hp)
    return ops.conv2d_backward(torch.ones_like(y), cache)


def _torch_step(x, w, b, hp):
    xr, wr, br = (t.detach().requires_grad_() for t in (x, w, b))
    y = F.conv2d(xr, wr, br, **hp)
    y.backward(torch.ones_like(y))
    return xr.grad, wr.grad, br.grad


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def _time_ms(fn, clock) -> float:
    start = clock()
    fn()
    return (clock() - start) * 1e3


STATS = {"min": min, "median": statistics.median}


def bench_case(case, repeats: int, generator: torch.Generator, clock, stat):
    """(scratch ms, torch ms, paired ratio) of conv2d forward+backward for one shape."""
    _, B, C, O, S, k, s, p, d = case
    x = torch.randn(B, C, S, S, generator=generator)
    w = torch.randn(O, C, k, k, generator=generator) / (C * k * k) ** 0.5
    b = torch.randn(O, generator=generator)
    hp = dict(stride=s, padding=p, dilation=d)
    got, want = _scratch_step(x, w, b, hp), _torch_step(x, w, b, hp)  # warm-up + sanity check
    for g, r in zip(got, want, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-3, atol=1e-3)
    scratch, ref = [], []
    for i in range(repeats):  # alternate which one runs first
        pair = [(scratch, _scratch_step), (ref, _torch_step)][:: 1 if i % 2 else -1]
        for out, step in pair:
            out.append(_time_ms(lambda step=step: step(x, w, b, hp), clock))
    ratios = [a / b for a, b in zip(scratch, ref, strict=True)]
    return stat(scratch), stat(ref), statistics.median(ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=None, help="default: torch's default")
    parser.add_argument(
        "--clock", choices=sorted(CLOCKS), default="wall", help="cpu: process CPU time"
    )
    parser.add_argument("--stat", choices=sorted(STATS), default="min")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    threads = torch.get_num_threads()
    print(
        f"torch {torch.__version__}, {threads} threads, float32, CPU, "
        f"{args.stat} of {args.repeats} runs, {args.clock} clock\n"
    )
    print("| shape | scratch ms | torch ms | ratio |")
    print("|---|---:|---:|---:|")
    for case in CASES:
        scratch, ref, ratio = bench_case(
            case, args.repeats, generator, CLOCKS[args.clock], STATS[args.stat]
        )
        print(f"| {case[0]} | {scratch:.2f} | {ref:.2f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
