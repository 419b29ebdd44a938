"""Where a U-Net training step spends its GPU time: torch.profiler over a few steps.

One training step = EDM loss forward + backward + fused AdamW step of the EDM-preconditioned
U-Net (on a GPU: bf16 autocast, channels_last, the U-Net's NHWC code paths). Eager (the
default): the ops with the most self device time and a summary by kind (convolution,
GroupNorm, attention / matmul, everything else); the eager op names map one-to-one to layers.
--compile: the same step with torch.compile, summed by GPU kernel instead (cuDNN
convolutions, Triton kernels that inductor generated, attention, copies, optimizer), since
inductor's fused kernels have no aten op above them.

On a GPU a second table gives each kernel that an aten op launched (every kernel but
inductor's Triton ones) with the op that launched it, that op's callers and its input shapes
(recorded with record_shapes): which call makes a copy or conversion kernel, and on which
tensors.

    python benchmarks/gpu/profile_unet.py [--preset edm_cifar10] [--batch 512] [--steps 3]
        [--compile] [--json out.json]

For inductor's generated code as well (the wrapper shows every aten call it makes), run with
TORCH_LOGS=output_code and keep stderr.
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
from genlab.training.loop import compile_for_training

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_unet import PRESETS  # noqa: E402

KINDS = (  # (kind, substrings of aten op names), first match wins
    ("convolution", ("conv",)),
    ("group_norm", ("group_norm",)),
    ("attention / matmul", ("mm", "attention", "sdpa", "softmax", "linear")),
    ("optimizer", ("adam", "_foreach")),
)


KERNEL_KINDS = (  # (kind, lower-case substrings of GPU kernel names), first match wins
    # Inductor's kernels first: their names list the fused aten ops ("..._convolution_...").
    ("triton: reductions (GroupNorm statistics, bias grads)", ("triton_per", "triton_red")),
    ("triton: pointwise (GroupNorm apply, SiLU, dropout, casts)", ("triton_poi",)),
    ("attention", ("flash", "fmha", "sdpa", "attention", "softmax")),
    ("convolution (cuDNN)", ("xmma", "implicit_gemm", "fprop", "dgrad", "wgrad", "cudnn",
                             "conv", "winograd")),
    ("optimizer / EMA", ("adam", "foreach", "multi_tensor", "lerp")),
    ("aten copy / cast", ("copy", "memcpy", "memset", "cat", "elementwise_kernel")),
    ("gemm", ("gemm", "cutlass", "nvjet", "cublas", "sm90_")),
)


def classify(name: str, table: tuple, default: str) -> str:
    """The kind of the first row of table with a substring of name (lower-cased)."""
    low = name.lower()
    return next((k for k, keys in table if any(s in low for s in keys)), default)


def kernel_kind(name: str) -> str:
    return classify(name, KERNEL_KINDS, "other")


def short_kernel(name: str, width: int = 90) -> str:
    """A kernel name cut to width, with the C++ namespaces that all aten kernels share left
    out ("void at::native::elementwise_kernel<...direct_copy_kernel_cuda..." keeps the part
    that tells kernels apart)."""
    low = name.replace("void ", "").replace("at::native::", "").replace("(anonymous namespace)::",
                                                                        "")
    for key in ("direct_copy_kernel_cuda", "copy_kernel", "CatArrayBatchedCopy"):
        if key in low and key not in low[:width]:
            return f"{low[:width - len(key) - 5]} ... {key}"
    return low[:width]


def device_kernels(events, steps: int) -> list[tuple[str, float]]:
    """(kernel name, ms per step) of the entries recorded on the GPU itself. Annotation ranges
    ("## Call CompiledFxGraph ... ##", one per compiled graph call) are left out: they span
    the graph's kernels, so counting them too would count those kernels twice."""
    cuda_type = torch.autograd.DeviceType.CUDA
    return [(e.key, e.self_device_time_total / 1e3 / steps) for e in events
            if e.device_type == cuda_type and e.self_device_time_total > 0
            and not e.key.startswith("## ")]


def launchers(events, steps: int, depth: int = 4, skip_prefix: str = "triton_") -> list[dict]:
    """GPU time per (kernel, launching op chain, input shapes) over profiler events, largest
    first, in ms per step.

    events: the profiler's FunctionEvents. A CPU op's .kernels are the device kernels it
    launched itself (the innermost op on the stack at launch); its chain is the op and up to
    depth - 1 callers (.cpu_parent), innermost first. Kernels whose names start with
    skip_prefix (inductor's Triton kernels, named after what they fuse) are left out.
    """
    rows: dict[tuple, dict] = {}
    for e in events:
        kernels = [k for k in getattr(e, "kernels", None) or []
                   if not k.name.startswith(skip_prefix)]
        if not kernels:
            continue
        chain, op = [], e
        while op is not None and len(chain) < depth:
            chain.append(op.name)
            op = op.cpu_parent
        shapes = str([list(s) for s in (e.input_shapes or [])])
        dtypes = str(list(getattr(e, "input_dtypes", None) or []))
        for k in kernels:
            key = (short_kernel(k.name), " < ".join(chain), shapes, dtypes)
            row = rows.setdefault(key, {"kernel": key[0], "chain": key[1], "shapes": shapes,
                                        "dtypes": dtypes, "ms": 0.0, "calls": 0.0})
            row["ms"] += k.duration / 1e3 / steps
            row["calls"] += 1 / steps
    return sorted(rows.values(), key=lambda r: -r["ms"])


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="edm_cifar10", choices=sorted(PRESETS))
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--compile", action="store_true",
                    help="torch.compile the network; sum GPU time by kernel, not by aten op")
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
    net = EDMPrecond(UNet.from_config(preset, nhwc_paths=cuda)).to(device)  # as it trains
    if cuda:
        net = net.to(memory_format=torch.channels_last)
    if args.compile:
        compile_for_training(net)
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

    t_warm = time.perf_counter()
    for _ in range(max(args.warmup, 1 if args.compile else 0)):
        step()
    if cuda:
        torch.cuda.synchronize()
    warmup_s = time.perf_counter() - t_warm
    acts = [torch.profiler.ProfilerActivity.CPU] + (
        [torch.profiler.ProfilerActivity.CUDA] if cuda else [])
    t0 = time.perf_counter()
    with torch.profiler.profile(activities=acts, record_shapes=cuda) as prof:
        for _ in range(args.steps):
            step()
        if cuda:
            torch.cuda.synchronize()
    wall = (time.perf_counter() - t0) / args.steps
    attr = "self_device_time_total" if cuda else "self_cpu_time_total"
    events = prof.key_averages()
    if args.compile and cuda:
        ops = device_kernels(events, args.steps)
        table, default = KERNEL_KINDS, "other"
    else:
        ops = [(e.key, getattr(e, attr) / 1e3 / args.steps) for e in events
               if e.key.startswith("aten::") and getattr(e, attr) > 0]
        table, default = KINDS, "elementwise / other"
    ops.sort(key=lambda kv: -kv[1])
    total = sum(ms for _, ms in ops)
    by_kind: dict[str, float] = {}
    for op, ms in ops:
        kind = classify(op, table, default)
        by_kind[kind] = by_kind.get(kind, 0.0) + ms
    what = "GPU kernels" if args.compile and cuda else "aten ops"
    print(f"{args.preset}, batch {args.batch}, {device}, "
          f"{'compiled' if args.compile else 'eager'} (warm-up {warmup_s:.1f} s): "
          f"{wall * 1e3:.1f} ms per step (profiled), {args.batch / wall:.0f} img/s; self "
          f"{'device' if cuda else 'cpu'} time of {what} {total:.1f} ms per step\n")
    print("| kind | ms / step | share |\n|---|---|---|")
    for k, ms in sorted(by_kind.items(), key=lambda kv: -kv[1]):
        print(f"| {k} | {ms:.1f} | {ms / total:.0%} |")
    print("\n| op | ms / step | share |\n|---|---|---|")
    for op, ms in ops[:25]:
        print(f"| {op[:110]} | {ms:.2f} | {ms / total:.1%} |")
    launched = launchers(prof.events(), args.steps) if cuda else []
    if launched:
        print("\n| kernel launched by an aten op | op < callers | input shapes | calls / step "
              "| ms / step |\n|---|---|---|---|---|")
        for r in launched[:25]:
            print(f"| {r['kernel']} | {r['chain'][:120]} | {r['shapes'][:100]} | "
                  f"{r['calls']:.0f} | {r['ms']:.2f} |")
    out = {"preset": args.preset, "batch": args.batch, "device": str(
        torch.cuda.get_device_name() if cuda else "cpu"), "ms_per_step": wall * 1e3,
        "compiled": args.compile, "warmup_s": warmup_s, "unit": what,
        "by_kind_ms": by_kind, "top_ops_ms": dict(ops[:30]), "launchers": launched[:80]}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
