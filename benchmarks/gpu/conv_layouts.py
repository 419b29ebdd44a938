"""Layout audit: which convolutions of a channels_last U-Net training step get NCHW tensors.

A cuDNN convolution given an NCHW activation next to its NHWC weight converts the activation
inside its own call (an aten copy kernel that torch.compile cannot fuse), in the forward and
again in the backward. This traces one training step (forward and backward of the EDM-
preconditioned U-Net, channels_last) with fake tensors on the CPU, so no GPU and no real
arithmetic are needed, and counts, per convolution (forward) and convolution backward, the
tensor arguments that are not dense NHWC.

Fake tensors use torch's meta kernels for the layouts. For group_norm these return NCHW
whatever the input, which is what CUDA's group_norm does (it makes its input contiguous), and
not what the CPU's does (it keeps NHWC): so the audit shows the GPU's picture, which a real
CPU run cannot. Convolutions follow the same rule on both (NHWC out if input or weight is
NHWC).

    python benchmarks/gpu/conv_layouts.py [--preset edm_cifar10] [--nchw-paths] [--batch 2]

The U-Net is built with its NHWC code paths (UNet(nhwc_paths=True), the channels_last
training setting); --nchw-paths builds it without them (the plain torch ops: torch's
group_norm, which hands the convolutions NCHW activations on CUDA): the A/B of that switch.
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

import torch
from torch.func import functional_call
from torch.fx.experimental.proxy_tensor import make_fx

from genlab.models.precond import EDMPrecond
from genlab.models.unet import UNet

CONV_OPS = {"aten.convolution.default": ("input", "weight"),
            "aten.convolution_backward.default": ("grad_output", "input", "weight")}


def layout(t: torch.Tensor) -> str:
    """'NHWC', 'NCHW', 'either' (one channel or a 1x1 map: both at once) or 'strided'."""
    if t.shape[1] == 1 or t.shape[2] * t.shape[3] == 1:
        return "either"
    if t.is_contiguous(memory_format=torch.channels_last):
        return "NHWC"
    return "NCHW" if t.is_contiguous() else "strided"


def trace_step(net: torch.nn.Module, batch: int) -> torch.fx.GraphModule:
    """One training step (EDM loss-like squared error, backward to every parameter) of net,
    channels_last, traced with fake tensors: every node's meta['val'] holds its layout."""
    net = net.to(memory_format=torch.channels_last)
    names = [n for n, _ in net.named_parameters()]
    state = {**dict(net.named_parameters()), **dict(net.named_buffers())}
    unet = net.net if hasattr(net, "net") else net
    c, r = unet.in_channels, unet.resolution

    def step(state, x, sigma):
        out = functional_call(net, state, (x, sigma))
        loss = (out - x).square().mean()
        return torch.autograd.grad(loss, [state[n] for n in names])

    x = torch.randn(batch, c, r, r).contiguous(memory_format=torch.channels_last)
    sigma = torch.rand(batch) + 0.5
    return make_fx(step, tracing_mode="fake")(state, x, sigma)


def audit(gm: torch.fx.GraphModule) -> dict:
    """Counts over the traced step: convolution calls, their tensor arguments by layout
    (weights left out: a parameter's layout is fixed once), the arguments that are not dense
    NHWC, and the group_norm calls that were handed an NHWC tensor."""
    rows: collections.Counter = collections.Counter()
    totals = collections.Counter()
    for node in gm.graph.nodes:
        target = str(node.target)
        if node.op != "call_function":
            continue
        if "group_norm" in target and "backward" not in target:
            totals["group_norm_nhwc_inputs"] += layout(node.args[0].meta["val"]) == "NHWC"
        if target not in CONV_OPS:
            continue
        totals[target] += 1
        for name, arg in zip(CONV_OPS[target], node.args, strict=False):
            if name == "weight":
                continue
            kind = layout(arg.meta["val"])
            rows[(target.split(".")[1], name, kind)] += 1
            totals["not_nhwc"] += kind in ("NCHW", "strided")
    return {"rows": rows, "totals": totals}


def main(argv: list[str] | None = None) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_unet import PRESETS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="edm_cifar10")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--nchw-paths", action="store_true",
                    help="the U-Net without its NHWC code paths (UNet(nhwc_paths=False))")
    args = ap.parse_args(argv)
    if args.batch < 1:
        ap.error(f"--batch must be >= 1, got {args.batch}")
    torch.manual_seed(0)
    net = EDMPrecond(UNet.from_config(PRESETS[args.preset], nhwc_paths=not args.nchw_paths))
    result = audit(trace_step(net, args.batch))
    t = result["totals"]
    print(f"# {args.preset}, channels_last, nhwc_paths={not args.nchw_paths}: "
          f"{t['aten.convolution.default']} convolutions, "
          f"{t['aten.convolution_backward.default']} convolution backwards; "
          f"{t['not_nhwc']} tensor arguments not dense NHWC; "
          f"{t['group_norm_nhwc_inputs']} group_norm calls on an NHWC tensor")
    print("\n| op | argument | layout | count |\n|---|---|---|---|")
    for (op, name, kind), n in sorted(result["rows"].items()):
        print(f"| {op} | {name} | {kind} | {n} |")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
