"""Benchmark: training throughput of the diffusion U-Net through genlab's own training loop.

Each variant trains the EDM-preconditioned U-Net with the EDM loss through
`genlab.training.loop.train` (fused AdamW, EMA, LR schedule, batches drawn from uint8 images
kept on the device), so the number is what a real run gets, not a bare forward/backward.
The images are random uint8 data of the preset's shape: the arithmetic does not depend on the
pixel values, and no data set has to be present.

Timing: the loop logs every --warmup steps; the first row covers the warm-up steps (the
first step, with torch.compile and cuDNN autotuning, is timed apart as warmup_s), the later
rows the timed steps. Each log row ends with a host sync, so the later rows' examples/s are
the exact throughput of the timed steps.

    python benchmarks/gpu/bench_unet.py [--preset edm_cifar10|fmnist_gpu|fmnist_cpu]
        [--batch 512] [--warmup 15] [--steps 30] [--variants compiled,eager-bf16,eager-fp32]
        [--json out.json]

Variants: compiled = bf16 autocast + channels_last + torch.compile + the U-Net's NHWC code
paths (UNet(nhwc_paths=True)), the training setting.
A/B variants, each the compiled one with one thing changed (see VARIANTS):
compiled-nchw-paths = UNet(nhwc_paths=False), the plain torch ops (torch's group_norm, which
returns NCHW on CUDA, F.interpolate, F.avg_pool2d, torch.cat, head-major attention) on the
channels_last network: the step as it was before the NHWC paths; compiled-force-layout =
inductor's layout optimisation forced on (its heuristic skips it for this U-Net: the decoder
convolutions take twice the channels they return); compiled-nodropout = the ResBlocks'
dropout set to 0 (what dropout costs: not a training setting); compiled-gn-bf16 = every
GroupNorm returns its input's dtype (bf16 under autocast, statistics still fp32) instead of
autocast's fp32; compiled-autotune = inductor benchmarks more block sizes for each Triton
kernel at compile time (max_autotune_pointwise, coordinate_descent_tuning: a longer warm-up);
compiled-bernoulli-mask = the ResBlocks' dropout masks drawn by torch's bernoulli_ behind an
opaque operator (bernoulli_dropout.py, next to this file), which the fused kernel reads,
instead of inside the fused kernel with Triton's Philox (one 10-round call per element before
torch 2.13);
compiled-inductor-default = the training step compiled without genlab's inductor options
(genlab.training.loop.TRAIN_COMPILE_OPTIONS): inductor's own store-or-recompute thresholds, so
the backward writes recomputed GroupNorm outputs and gradients to memory as fp32 and reads them
back (the step as it was before those options); compiled-reads8 = the options as first set
(only realize_reads_threshold, at 8): the GroupNorm outputs are recomputed, the gradient
through dropout and SiLU is still written and read back.
eager-bf16 = compiled without compile; eager-fp32 = fp32 (TF32 off), channels_first, no
compile, the plain paths. On a CPU the variants run in fp32 (bf16 autocast is CUDA-only in
genlab) and only smoke-test the path.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
import torch

from genlab.config import LoopConfig
from genlab.data.batches import image_batches
from genlab.models.precond import EDMPrecond
from genlab.models.unet import EDM_CIFAR10, FASHION_MNIST_CPU, FASHION_MNIST_GPU, UNet
from genlab.objectives.diffusion import EDMLoss
from genlab.training.device import pick_device
from genlab.training.loop import RunSpec, train

HERE = Path(__file__).resolve().parent  # benchmarks/gpu: this tool's siblings
PRESETS = {"edm_cifar10": EDM_CIFAR10, "fmnist_gpu": FASHION_MNIST_GPU,
           "fmnist_cpu": FASHION_MNIST_CPU}


@dataclasses.dataclass(frozen=True)
class Variant:
    bf16: bool
    channels_last: bool
    compile: bool
    tf32: bool
    nhwc_paths: bool  # the U-Net's NHWC code paths: UNet(nhwc_paths=...)
    change: str = ""  # another A/B change against "compiled", applied by variant_context


_COMPILED = dict(bf16=True, channels_last=True, compile=True, tf32=True, nhwc_paths=True)
VARIANTS = {
    "compiled": Variant(**_COMPILED),
    "compiled-nchw-paths": Variant(**_COMPILED | {"nhwc_paths": False}),
    "compiled-force-layout": Variant(**_COMPILED, change="force-layout"),
    "compiled-nodropout": Variant(**_COMPILED, change="nodropout"),
    "compiled-gn-bf16": Variant(**_COMPILED, change="gn-bf16"),
    "compiled-autotune": Variant(**_COMPILED, change="autotune"),
    "compiled-bernoulli-mask": Variant(**_COMPILED, change="bernoulli-mask"),
    "compiled-inductor-default": Variant(**_COMPILED, change="inductor-default"),
    "compiled-reads8": Variant(**_COMPILED, change="reads8"),
    "eager-bf16": Variant(**_COMPILED | {"compile": False}),
    "eager-fp32": Variant(bf16=False, channels_last=False, compile=False, tf32=False,
                          nhwc_paths=False),
}


# inductor config for the variants that change only how inductor compiles
INDUCTOR_PATCHES = {
    "force-layout": {"force_layout_optimization": True},
    "autotune": {"max_autotune_pointwise": True, "coordinate_descent_tuning": True},
}

# the training loop's inductor options (genlab.training.loop.TRAIN_COMPILE_OPTIONS) in place of
# its own, for the variants that change them
TRAIN_OPTIONS_PATCHES = {
    "inductor-default": {},
    "reads8": {"realize_reads_threshold": 8},
}


def variant_context(name: str) -> contextlib.ExitStack:
    """The code-level switch of a variant (besides its nhwc_paths, a UNet argument), held
    while it trains (torch.compile traces and compiles inside the loop, so the switch is in
    force then)."""
    change = VARIANTS[name].change
    stack = contextlib.ExitStack()
    if change == "bernoulli-mask":
        if str(HERE) not in sys.path:
            sys.path.insert(0, str(HERE))
        from bernoulli_dropout import bernoulli_dropout_forward

        stack.enter_context(mock.patch.object(torch.nn.Dropout, "forward",
                                              bernoulli_dropout_forward))
    if change in TRAIN_OPTIONS_PATCHES:
        from genlab.training import loop

        stack.enter_context(mock.patch.dict(loop.TRAIN_COMPILE_OPTIONS,
                                            TRAIN_OPTIONS_PATCHES[change], clear=True))
    if change in INDUCTOR_PATCHES:
        import torch._inductor.config as inductor_config

        stack.enter_context(inductor_config.patch(INDUCTOR_PATCHES[change]))
    return stack


def variant_preset(name: str, preset):
    """The U-Net config a variant trains: the preset, with dropout 0 for compiled-nodropout."""
    return dataclasses.replace(preset, dropout=0.0) if VARIANTS[name].change == "nodropout" \
        else preset


def _to_input_dtype(module, inputs, output):
    return output.to(inputs[0].dtype)


def group_norm_in_input_dtype(net: torch.nn.Module) -> int:
    """Every nn.GroupNorm of net returns its input's dtype from now on (a forward hook, which
    torch.compile traces): under bf16 autocast, where group_norm runs and returns fp32, the
    output goes back to bf16. Returns how many modules got the hook."""
    norms = [m for m in net.modules() if isinstance(m, torch.nn.GroupNorm)]
    for m in norms:
        m.register_forward_hook(_to_input_dtype)
    return len(norms)


def forward_flops(net: torch.nn.Module, shape: tuple[int, ...]) -> float:
    """FLOPs of one forward pass per example (torch's FLOP counter, on a batch of 2 on CPU)."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(2, *shape)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(x, torch.zeros(2))
    return counter.get_total_flops() / 2


def run_variant(name: str, preset, batch: int, warmup: int, steps: int,
                device: torch.device) -> dict:
    variant = VARIANTS[name]
    torch.backends.cuda.matmul.allow_tf32 = variant.tf32
    torch.backends.cudnn.allow_tf32 = variant.tf32
    torch.backends.cudnn.benchmark = True
    torch._dynamo.reset()
    torch.manual_seed(0)
    preset = variant_preset(name, preset)
    net = EDMPrecond(UNet.from_config(preset, nhwc_paths=variant.nhwc_paths))
    if variant.change == "gn-bf16":
        group_norm_in_input_dtype(net)
    side, c = preset.resolution, preset.in_channels
    images = np.random.default_rng(0).integers(0, 256, (max(4 * batch, 64), side, side, c),
                                               dtype=np.uint8)
    batches = image_batches(images, None, batch, seed=0, device=device)
    cfg = LoopConfig(steps=warmup + steps, batch_size=batch, lr=1e-3, warmup_steps=1,
                     decay="constant", grad_clip=0.0, ema_half_life=500_000.0,
                     ckpt_every=10**9, log_every=warmup)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory() as tmp, variant_context(name):
        t0 = time.perf_counter()
        result = train(net, EDMLoss(label_dropout=0.0), batches, cfg,
                       RunSpec(seed=0, device=device, ckpt_path=Path(tmp) / "last.pt",
                               config_hash="bench", bf16=variant.bf16, progress=False,
                               desc=f"bench {name}", compile=variant.compile,
                               channels_last=variant.channels_last))
        total = time.perf_counter() - t0
    rows = result.history  # one row per `warmup` steps; the first covers the warm-up
    seconds = sum(warmup * batch / r["examples_per_s"] for r in rows[1:])
    out = {"variant": name, "batch": batch, "timed_steps": steps,
           "img_per_s": steps * batch / seconds,
           "warmup_s": result.warmup_seconds,  # the first step: compile, autotuning
           "total_s": total, "final_loss": rows[-1]["loss"]}
    if device.type == "cuda":
        out["peak_mem_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return out


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="edm_cifar10")
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--warmup", type=int, default=15, help="untimed steps (compile, autotune)")
    ap.add_argument("--steps", type=int, default=30, help="timed steps, a multiple of --warmup")
    ap.add_argument("--variants", default="compiled,eager-bf16,eager-fp32")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = ap.parse_args(argv)
    variants = args.variants.split(",")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        ap.error(f"--variants: unknown {unknown}; choose from {list(VARIANTS)}")
    if args.batch < 1 or args.warmup < 1 or args.steps < 1:
        ap.error("--batch, --warmup and --steps must be >= 1")
    if args.steps % args.warmup:
        ap.error(f"--steps ({args.steps}) must be a multiple of --warmup ({args.warmup}): "
                 "the loop logs every --warmup steps")

    device = pick_device(args.device)
    preset = PRESETS[args.preset]
    n_params = sum(p.numel() for p in UNet.from_config(preset).parameters())
    flops = forward_flops(EDMPrecond(UNet.from_config(preset)),
                          (preset.in_channels, preset.resolution, preset.resolution))
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    print(f"# U-Net training throughput: preset {args.preset}, {n_params / 1e6:.1f} M params, "
          f"{flops / 1e9:.1f} GFLOP/img forward, batch {args.batch}, device {name}, "
          f"torch {torch.__version__}", flush=True)
    rows = []
    for v in variants:
        try:
            row = run_variant(v, preset, args.batch, args.warmup, args.steps, device)
        except Exception as e:  # one failing variant (e.g. no compiler) must not hide the rest
            row = {"variant": v, "error": f"{type(e).__name__}: {e}"[:500]}
        row |= {"preset": args.preset, "params_m": n_params / 1e6, "device": name,
                "gflop_fwd_per_img": flops / 1e9}
        if "img_per_s" in row:
            row["tflops_train"] = 3 * flops * row["img_per_s"] / 1e12  # fwd + 2x fwd for bwd
        rows.append(row)
        print(json.dumps(row), flush=True)
    print("\n| variant | img/s | train TFLOP/s | warm-up s | peak GiB |\n|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['variant']} | error: {r['error'][:80]} | | | |")
        else:
            print(f"| {r['variant']} | {r['img_per_s']:.0f} | {r['tflops_train']:.1f} | "
                  f"{r['warmup_s']:.1f} | {r.get('peak_mem_gib', float('nan')):.1f} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
