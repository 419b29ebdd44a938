"""Benchmark: GPT training throughput (tokens/s) and model-FLOPs utilisation at nanoGPT's
shakespeare-char size (6 layers, width 384, 6 heads, context 256, batch 64, vocab 65) and at
GPT-2 124M size (12 layers, 768, 12 heads, context 1024, batch 16, vocab 50304).

A step is forward + backward + AdamW (the decay / no-decay groups) on random tokens, bf16
autocast on CUDA, as the training loop runs it. Warm-up steps (torch.compile, allocator) are
timed apart; timed steps sync the device. MFU = achieved FLOPs / peak, with PaLM's 6N + 12LDT
FLOPs per token (genlab.models.gpt.flops_per_token) and --peak-tflops (default: an H100 SXM's
dense bf16, 989.5; on a CPU pass the machine's own peak or read tokens/s only).

    python benchmarks/bench_gpt.py [--size shakespeare_char|gpt2|both] [--device cpu|cuda]
        [--steps 10] [--warmup 2] [--compile] [--batch N] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from genlab.models.gpt import GPT, GPTArch, decay_groups, flops_per_token
from genlab.objectives.gpt import NextTokenLoss

SIZES = {  # (arch kwargs, batch)
    "shakespeare_char": (dict(vocab=65, max_len=256, dim=384, layers=6, heads=6,
                              positions="learned"), 64),
    "gpt2": (dict(vocab=50304, max_len=1024, dim=768, layers=12, heads=12,
                  positions="learned"), 16),
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench(size: str, device: torch.device, steps: int, warmup: int, compile_: bool,
          batch: int | None, peak_tflops: float) -> dict:
    kwargs, default_batch = SIZES[size]
    batch = batch or default_batch
    torch.manual_seed(0)
    net = GPT(**kwargs).to(device).train()
    opt = torch.optim.AdamW(decay_groups(net, 0.1), lr=6e-4, betas=(0.9, 0.95),
                            fused=device.type == "cuda")
    model = torch.compile(net) if compile_ else net
    loss_fn = NextTokenLoss()
    t = kwargs["max_len"]
    x = torch.randint(0, kwargs["vocab"], (batch, t + 1), device=device)

    def step():
        with torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda"):
            loss = loss_fn(model, x).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    t0 = time.perf_counter()
    for _ in range(warmup):
        step()
    _sync(device)
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    seconds = (time.perf_counter() - t0) / steps
    tokens_per_s = batch * t / seconds
    flops = flops_per_token(GPTArch(**kwargs), t) * tokens_per_s
    return {"size": size, "device": str(device), "compile": compile_, "batch": batch,
            "context": t, "params_M": sum(p.numel() for p in net.parameters()) / 1e6,
            "steps": steps, "ms_per_step": 1000 * seconds, "tokens_per_s": tokens_per_s,
            "tflops": flops / 1e12, "mfu": flops / (peak_tflops * 1e12),
            "peak_tflops": peak_tflops, "warmup_seconds": warm}


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="both", choices=[*SIZES, "both"])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=10, help="timed steps")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model")
    ap.add_argument("--batch", type=int, default=0, help="override the size's batch")
    ap.add_argument("--peak-tflops", type=float, default=989.5, help="device peak for MFU")
    ap.add_argument("--json", default="", help="write the rows to this file")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")
    rows = []
    for size in (SIZES if args.size == "both" else [args.size]):
        row = bench(size, device, args.steps, args.warmup, args.compile, args.batch or None,
                    args.peak_tflops)
        print(json.dumps(row), flush=True)
        rows.append(row)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return rows


if __name__ == "__main__":
    main()
