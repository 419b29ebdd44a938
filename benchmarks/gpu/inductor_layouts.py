"""Layout audit of the code torch.compile generates for the GPU, on a machine without one.

inductor (torch.compile's backend) is run up to code generation for an H100-like CUDA device:
the U-Net's channels_last forward (dropout on) is traced with fake CUDA tensors under bf16
autocast ("fwd", at --batch); the training step's forward and backward ("fwd-train", "bwd")
are traced on the CPU (the autograd engine needs a real device) through inductor's own
partition function, as torch.compile splits them, and lowered for CUDA. Nothing is compiled
or run. From the generated code it counts the Triton kernels and those that transpose
(inductor tiles a pointwise kernel in 2-D, ynumel x xnumel, when its loads and stores disagree
on the memory order: an NCHW <-> NHWC conversion, fused or alone), with the elements they
touch, and the layouts handed to cuDNN (convolution inputs, convolution backward gradients
and inputs). --bytes adds inductor's estimate of the bytes the Triton kernels move.

It also audits the random draws of dropout (rng_draws, rng_hazards): a mask that the backward
redraws with another Philox path than the forward's, or that a rand4x kernel draws at
non-contiguous offsets, is silently wrong (torch 2.13+); such a hazard is printed and listed
under "rng_hazards" in the JSON.

    python benchmarks/gpu/inductor_layouts.py [--preset edm_cifar10] [--batch 512]
        [--graphs fwd,fwd-train,bwd] [--bwd-batch 8] [--variant compiled] [--bytes]
        [--save-code DIR] [--json out.json]

--variant takes bench_unet.py's code-level switches: compiled (the training code, with the
U-Net's NHWC code paths), compiled-nchw-paths (UNet(nhwc_paths=False)), compiled-force-layout,
compiled-inductor-default, ... The training graphs (fwd-train, bwd) are lowered with the
training loop's inductor options (genlab.training.loop.TRAIN_COMPILE_OPTIONS), as
torch.compile gives them in a run; "fwd" without, as sampling compiles it.

Faithfulness: torch's fake tensors give ops their CUDA output layouts (group_norm: NCHW, as
CUDA runs it), except the convolution, whose layout rule needs cuDNN and is emulated (NHWC out
if input or weight suggests NHWC, cuDNN's rule). The backward is traced on the CPU, where
torch's own group_norm keeps NHWC: with --variant compiled-nchw-paths the backward count is
not the GPU's. inductor's decompositions that branch on the device take the GPU's branch there
(the convolution backward's bias gradient becomes a sum in Triton, as on the GPU; traced with
the CPU's branch it stayed in the convolution call, and the byte estimate lacked its reads).
Device properties are an H100's (132 SMs, sm_90). This patches torch internals for the length
of the run (torch 2.14), so run it as its own process, as the test does.
"""

from __future__ import annotations

import argparse
import ast
import collections
import contextlib
import json
import re
import sys
from pathlib import Path
from unittest import mock

import torch

# a view made in a kernel call; a kernel argument is a buffer's name or such a view
VIEW = r"reinterpret_tensor\(\w+, \([^)]*\), \([^)]*\), \w+\)"
ARG = rf"(\w+|{VIEW})"
CONV_FWD = re.compile(rf"extern_kernels\.convolution\({ARG}, {ARG},")
CONV_BWD = re.compile(rf"torch\.ops\.aten\.convolution_backward\.default\({ARG}, {ARG}, {ARG},")
TILED = re.compile(r"def (triton_\w+)\(.*?\n    ynumel = (\d+)\n    xnumel = (\d+)")
KERNEL = re.compile(r"^(triton_\w+) = async_compile\.triton", re.M)
SHAPE_STRIDE = r"\(([^)]*)\), \(([^)]*)\)"


class _H100:
    name = "NVIDIA H100 80GB HBM3 (emulated)"
    major, minor = 9, 0
    multi_processor_count = 132
    total_memory = 80 * 2**30
    warp_size = 32
    max_threads_per_multi_processor = 2048
    max_threads_per_block = 1024
    regs_per_multiprocessor = 65536
    shared_memory_per_block_optin = 232448
    L2_cache_size = 50 * 2**20


def _suggests_nhwc(t: torch.Tensor) -> bool:
    """c10's suggest_memory_format() == ChannelsLast for a 4-D tensor: its strides grow
    along C, W, H, N (size-1 dims do not widen the bound), with NCHW for the ambiguous N111."""
    if t.dim() != 4 or t.stride(1) == 0:
        return False
    bound = 0
    for d in (1, 3, 2, 0):
        if t.shape[d] == 0 or t.stride(d) < bound or (d == 0 and bound == t.stride(1)):
            return False
        bound = t.stride(d) * (t.shape[d] if t.shape[d] > 1 else 1)
    return True


def _cudnn_layout(inp, weight, backend):
    """cuDNN's output layout rule (cudnn_conv_suggest_memory_format): NHWC if the input or
    the weight suggests NHWC."""
    if inp.dim() == 4 and (_suggests_nhwc(inp) or _suggests_nhwc(weight)):
        return torch.channels_last
    return torch.contiguous_format


def _clear_device_caches():
    import torch._inductor.utils as inductor_utils
    import torch.utils._triton as triton_utils

    for module in (triton_utils, inductor_utils):
        for name in dir(module):
            fn = getattr(module, name)
            if callable(fn) and hasattr(fn, "cache_clear") and \
                    any(k in name.lower() for k in ("triton", "gpu", "device")):
                fn.cache_clear()


def _patch_all(patches) -> contextlib.ExitStack:
    """mock.patch.object for each (object, attribute, value), undone together."""
    stack = contextlib.ExitStack()
    for obj, name, value in patches:
        stack.enter_context(mock.patch.object(obj, name, value))
    return stack


def fake_cuda_tracing() -> contextlib.ExitStack:
    """Autocast and cuDNN's layout rule for fake CUDA tensors (tracing only)."""
    import torch.cuda.amp.common as amp_common

    return _patch_all([(torch._C, "_conv_determine_backend_memory_format", _cudnn_layout),
                       (amp_common, "amp_definitely_not_available", lambda: False),
                       (torch.cuda, "is_bf16_supported", lambda *a, **k: True)])


@contextlib.contextmanager
def fake_cuda_device():
    """An H100 as far as inductor's lowering and code generation ask (nothing compiles)."""
    import torch.utils._triton as triton_utils
    from torch._dynamo.device_interface import get_interface_for_device

    iface = get_interface_for_device("cuda")  # a class: its replacements are staticmethods
    answers = {"get_device_properties": lambda *a, **k: _H100(), "is_available": lambda: True,
               "device_count": lambda: 1, "current_device": lambda: 0}
    patches = [(iface, n, staticmethod(f)) for n, f in answers.items()]
    patches += [(torch.cuda, n, f) for n, f in answers.items()]
    patches += [(iface, "get_compute_capability", staticmethod(lambda *a, **k: 90)),
                (torch.cuda, "get_device_capability", lambda *a, **k: (9, 0)),
                (triton_utils, "triton_hash_with_backend", lambda: "emulated")]
    with _patch_all(patches) as stack:
        stack.callback(_clear_device_caches)
        _clear_device_caches()
        yield


def _variant(variant: str):
    """bench_unet.py's Variant of that name (a compiled one) and its context."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_unet import VARIANTS, variant_context

    if variant not in VARIANTS or not VARIANTS[variant].compile:
        raise SystemExit(f"error: --variant {variant!r}: pick a compiled variant of "
                         f"bench_unet.py ({', '.join(v for v in VARIANTS if 'compiled' in v)})")
    return VARIANTS[variant], variant_context(variant)


def _net(preset, nhwc_paths: bool = True):
    from genlab.models.precond import EDMPrecond
    from genlab.models.unet import UNet

    torch.manual_seed(0)
    net = EDMPrecond(UNet.from_config(preset, nhwc_paths=nhwc_paths))
    return net.to(memory_format=torch.channels_last).train()


def trace_forward(preset, batch: int,
                  nhwc_paths: bool = True) -> tuple[torch.fx.GraphModule, list]:
    """The training forward (dropout on) under bf16 autocast, fake CUDA tensors."""
    from torch._inductor.decomposition import select_decomp_table
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.func import functional_call
    from torch.fx.experimental.proxy_tensor import make_fx

    net = _net(preset, nhwc_paths)
    names = [n for n, _ in net.named_parameters()] + [n for n, _ in net.named_buffers()]
    tensors = list(net.parameters()) + list(net.buffers())
    mode = FakeTensorMode()
    c, r = preset.in_channels, preset.resolution
    with mode:
        state = [torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device="cuda")
                 for t in tensors]
        x = torch.empty((batch, r, r, c), device="cuda").permute(0, 3, 1, 2)  # NHWC
        sigma = torch.empty(batch, device="cuda")

    def forward(x, sigma, *state):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            return functional_call(net, dict(zip(names, state, strict=True)), (x, sigma))

    with fake_cuda_tracing(), mode:
        gm = make_fx(forward, decomposition_table=select_decomp_table())(x, sigma, *state)
    return gm, [x, sigma, *state], mode


def _on_fake_cuda(gm: torch.fx.GraphModule) -> tuple[torch.fx.GraphModule, list, object]:
    """A graph traced on the CPU, moved to CUDA: device arguments rewritten, fake CUDA inputs
    with the traced shapes, strides and dtypes."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    cuda = torch.device("cuda", 0)
    for node in gm.graph.nodes:
        if node.kwargs.get("device") is not None:
            node.kwargs = {**node.kwargs, "device": cuda}
        if any(isinstance(a, torch.device) for a in node.args):  # e.g. inductor_seeds(n, dev)
            node.args = tuple(cuda if isinstance(a, torch.device) else a for a in node.args)
    gm.recompile()
    mode = FakeTensorMode(allow_non_fake_inputs=True)
    inputs = []
    with fake_cuda_tracing(), mode:
        for node in gm.graph.nodes:
            if node.op != "placeholder":
                continue
            v = node.meta["val"]
            inputs.append(torch.empty_strided(v.shape, v.stride(), dtype=v.dtype, device="cuda")
                          if isinstance(v, torch.Tensor) else v)
    return gm, inputs, mode


def trace_training(preset, batch: int, net: torch.nn.Module | None = None,
                   nhwc_paths: bool = True) -> dict[str, tuple]:
    """The training step's forward ("fwd-train": the outputs include what it saves for the
    backward) and backward ("bwd") graphs as inductor gets them: aot_autograd's joint graph
    through inductor's own partition function (its joint-graph passes, among them the one
    that turns dropout's random draws into inductor's RNG, then the min-cut partitioner).
    Traced on the CPU (the autograd engine needs a real device) under bf16 autocast, moved
    to CUDA. Nothing is computed: the compiled graphs stand in by returning uninitialised
    tensors of their outputs' shapes (never touched, so a batch of 512 costs no memory).
    net: any module called as net(x, sigma) with x of the preset's channels and resolution
    (channels_last, train mode); by default the preset's EDM-preconditioned U-Net, with
    nhwc_paths."""
    from functorch.compile import make_boxed_func
    from torch._functorch.aot_autograd import aot_module_simplified
    from torch._guards import detect_fake_mode
    from torch._inductor import decomposition as inductor_decomp
    from torch._inductor.compile_fx import partition_fn
    from torch._inductor.virtualized import V

    graphs = {}

    def keep(kind):
        def compiler(gm, _inputs):
            graphs[kind] = gm
            (outs,) = [n.args[0] for n in gm.graph.nodes if n.op == "output"]
            vals = [o.meta["val"] if isinstance(o, torch.fx.Node) else o for o in outs]

            def shapes_only(*_args):  # uninitialised outputs of the traced shapes: the step
                return [torch.empty_strided(v.shape, v.stride(), dtype=v.dtype)  # is never
                        if isinstance(v, torch.Tensor) else v for v in vals]  # computed
            return make_boxed_func(shapes_only)
        return compiler

    def partition(gm, joint_inputs, **kwargs):
        with V.set_fake_mode(detect_fake_mode(joint_inputs)):
            return partition_fn(gm, joint_inputs, **kwargs)

    def backend(gm, inputs):
        return aot_module_simplified(gm, inputs, fw_compiler=keep("fwd-train"),
                                     bw_compiler=keep("bwd"), partition_fn=partition,
                                     decompositions=inductor_decomp.select_decomp_table())

    net = _net(preset, nhwc_paths) if net is None else net
    c, r = preset.in_channels, preset.resolution
    x = torch.randn(batch, c, r, r).contiguous(memory_format=torch.channels_last)
    # inductor's decompositions that branch on the device take the GPU's branch (the
    # convolution backward's bias gradient: a sum inductor generates, not cuDNN's)
    with _patch_all([(inductor_decomp, "is_gpu", lambda _device: True)]), \
            torch.autocast("cpu", dtype=torch.bfloat16):
        out = torch.compile(net, backend=backend, fullgraph=True)(x, torch.rand(batch) + 0.5)
    (out.float() - x).square().mean().backward()
    torch._dynamo.reset()
    return {kind: _on_fake_cuda(gm) for kind, gm in graphs.items()}


def generate(gm, inputs, mode, backward: bool, with_bytes: bool = False,
             options: dict | None = None) -> tuple[str, bool]:
    """inductor's generated wrapper + Triton source for gm, and its layout_opt decision.
    with_bytes: inductor's benchmark-kernel mode, which writes each kernel's estimated bytes
    (kernel_num_gb) into its metadata (it also changes a few fusion choices). options:
    inductor config for this graph, as torch.compile(options=...) gives it (the training
    step's: genlab.training.loop.TRAIN_COMPILE_OPTIONS)."""
    from torch._inductor import config
    from torch._inductor.debug import DebugContext
    from torch._inductor.fx_passes.replace_random import replace_random_passes
    from torch._inductor.graph import GraphLowering
    from torch._inductor.virtualized import V

    with fake_cuda_tracing(), fake_cuda_device(), mode, V.set_fake_mode(mode), \
            config.patch({**(options or {}), "compile_threads": 1,
                          "benchmark_kernel": with_bytes}), DebugContext():
        replace_random_passes(gm)
        gm.recompile()
        graph = GraphLowering(gm, example_inputs=inputs, shape_env=None, is_inference=False,
                              is_backward=backward)
        with V.set_graph_handler(graph):
            graph.run(*inputs)
            code = graph.codegen()[0]
    return getattr(code, "value", code), bool(graph.layout_opt)


def _layouts_by_name(src: str) -> dict[str, tuple[list[int], list[int]]]:
    seen: dict[str, tuple[str, str]] = {}
    for pattern in (rf"(\w+) = empty_strided_cuda\({SHAPE_STRIDE}",
                    rf"assert_size_stride\((\w+), {SHAPE_STRIDE}",
                    rf"assert_tensor_metadata\((\w+), {SHAPE_STRIDE}"):
        for m in re.finditer(pattern, src):
            seen[m.group(1)] = (m.group(2), m.group(3))
    for m in re.finditer(r"assert_size_stride_grouped\(\(([^)]*)\), (.*), '\w+'\)", src):
        names = [n.strip() for n in m.group(1).split(",") if n.strip()]
        shapes, strides = ast.literal_eval(f"({m.group(2)})")
        for name, shape, stride in zip(names, shapes, strides, strict=True):
            seen.setdefault(name, (",".join(map(str, shape)), ",".join(map(str, stride))))
    for m in re.finditer(rf"(?:(\w+) = )?({VIEW})", src):
        # a view assigned to a name, or written in a call (its text then stands for its name)
        shape, stride, _offset = ast.literal_eval(m.group(2).split(", ", 1)[1][:-1])
        seen[m.group(1) or m.group(2)] = (",".join(map(str, shape)), ",".join(map(str, stride)))
    for m in re.finditer(r"(\w+) = (\w+); del \2  # reuse", src):
        if m.group(2) in seen:
            seen.setdefault(m.group(1), seen[m.group(2)])
    ints = lambda s: [int(v) for v in s.split(",") if v.strip()]  # noqa: E731
    return {k: (ints(a), ints(b)) for k, (a, b) in seen.items()}


def _layout(table, name: str) -> str:
    """conv_layouts.layout of the buffer `name` (or of a reinterpret_tensor view written in
    the call), from its size and stride in the wrapper."""
    from conv_layouts import layout

    if name not in table:
        return "unresolved"
    shape, stride = table[name]
    if len(shape) != 4:
        return "not 4-D"
    return layout(torch.empty_strided(shape, stride, device="meta"))


RNG_CALL = re.compile(r"(triton_helpers\.rand4x|triton_helpers\.randn4x|tl\.randn?|"
                      r"triton_helpers\.rand_eager_kernel)\(\w+, \((\w+)\)")


def rng_draws(src: str) -> list[dict]:
    """Each random draw in the generated Triton kernels: the function, whether the kernel is
    1-D, and whether its offsets are the kernel's own contiguous element index.

    Why it matters (torch 2.13+): a 1-D kernel draws with rand4x, four values per Philox call
    for four consecutive offsets, which is only right for contiguous offsets; any other
    kernel draws with tl.rand, which gives other values for the same offsets. So a dropout
    mask drawn by rand4x in the forward and drawn again (recomputed from the seed) by tl.rand
    in a 2-D backward kernel is a different mask: silently wrong gradients."""
    draws = []
    for m in re.finditer(r"def (triton_\w+)\(.*?\n(.*?)''', device_str", src, re.S):
        name, body = m.group(1), m.group(2)
        one_d = "[:, None]" not in body and "[None, :]" not in body
        for call in RNG_CALL.finditer(body):
            fn, var = call.group(1).split(".")[-1], call.group(2)
            # the offset variable, back through casts, to an index variable and its definition
            for _ in range(4):
                cast = re.search(rf"\n\s+{var} = \((\w+)\)\.to\(tl\.\w+\)", body)
                if not cast:
                    break
                var = cast.group(1)
            index = re.search(rf"\n\s+{var} = (.+)", body)
            draws.append({"kernel": name, "fn": fn, "one_d": one_d,
                          "contiguous": bool(index) and index.group(1).strip() == "xindex"})
    return draws


def rng_hazards(graphs: dict[str, list[dict]]) -> list[str]:
    """What in the draws of a training step's graphs ({"fwd-train": draws, "bwd": draws})
    would give wrong dropout masks (see rng_draws)."""
    out = [f"{kind}: {d['kernel']} draws rand4x at non-contiguous offsets (masks repeat)"
           for kind, draws in graphs.items() for d in draws
           if d["fn"].endswith("4x") and not d["contiguous"]]
    fns = {kind: {d["fn"] for d in draws} for kind, draws in graphs.items()}
    if fns.get("bwd") and fns.get("fwd-train") and fns["bwd"] != fns["fwd-train"]:
        out.append(f"the backward redraws with {sorted(fns['bwd'])}, the forward drew with "
                   f"{sorted(fns['fwd-train'])}: the backward's masks are not the forward's")
    return out


def wrapper_code(src: str) -> str:
    """Generated code without the Triton kernel sources (in triple quotes): the wrapper that
    allocates buffers and launches kernels. In benchmark-kernel mode each kernel source holds
    a harness that allocates and launches once more, which would otherwise count too."""
    return re.sub(r"'''.*?'''", "''", src, flags=re.S)


def summarize(src: str, draws: list[dict] | None = None) -> dict:
    """Kernel counts, transposing kernels, cuDNN argument layouts and random draws (draws:
    rng_draws(src), if the caller has it already) of generated code."""
    table = _layouts_by_name(src)
    tiled = TILED.findall(src)
    convs = collections.Counter()
    for a, _w in CONV_FWD.findall(src):
        convs[f"convolution input {_layout(table, a)}"] += 1
    for g, a, _w in CONV_BWD.findall(src):
        convs[f"convolution_backward grad {_layout(table, g)}"] += 1
        convs[f"convolution_backward input {_layout(table, a)}"] += 1
    draws = rng_draws(src) if draws is None else draws
    report = {"kernels": len(KERNEL.findall(src)), "transposing_kernels": len(tiled),
              "rng_draws": dict(collections.Counter(
                  f"{d['fn']} {'1-D' if d['one_d'] else '2-D'}" for d in draws)),
              "transposed_elements": sum(int(y) * int(x) for _, y, x in tiled),
              "cudnn_args": dict(sorted(convs.items()))}
    gb = dict(re.findall(r"'kernel_name': '(triton_\w+)'.*?'kernel_num_gb': ([0-9.e-]+)", src))
    if gb:  # bytes each launch moves (inductor's estimate) x launches in the wrapper
        wrapper = wrapper_code(src)
        launches = collections.Counter(re.findall(r"^\s+(triton_\w+)\.run\(", wrapper, re.M))
        report["triton_gb"] = sum(float(gb[k]) * n for k, n in launches.items() if k in gb)
    return report


def main(argv: list[str] | None = None) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_unet import PRESETS

    from genlab.training import loop

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="edm_cifar10")
    ap.add_argument("--batch", type=int, default=512, help="forward batch (element counts)")
    ap.add_argument("--bwd-batch", type=int, default=8,
                    help="batch of the training-step graphs (fwd-train, bwd)")
    ap.add_argument("--graphs", default="fwd,bwd",
                    help="any of fwd (the forward at --batch, as traced for inference but "
                    "with dropout on), fwd-train (the training forward, saving for the "
                    "backward, at --bwd-batch), bwd")
    ap.add_argument("--variant", default="compiled")
    ap.add_argument("--save-code", type=Path, default=None, help="write the generated code here")
    ap.add_argument("--bytes", action="store_true",
                    help="also sum inductor's per-kernel byte estimates (benchmark-kernel mode)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    graphs = [g for g in args.graphs.split(",") if g]
    if not graphs or set(graphs) - {"fwd", "fwd-train", "bwd"}:
        ap.error(f"--graphs {args.graphs!r}: pick from fwd,fwd-train,bwd")
    if args.batch < 2 or args.bwd_batch < 2:
        ap.error("--batch and --bwd-batch must be >= 2 (a batch of 1 has ambiguous layouts)")
    preset = PRESETS[args.preset]
    report = {"preset": args.preset, "variant": args.variant, "torch": torch.__version__}
    draws = {}
    variant, context = _variant(args.variant)
    with context:
        training = trace_training(preset, args.bwd_batch, nhwc_paths=variant.nhwc_paths) \
            if {"fwd-train", "bwd"} & set(graphs) else {}
        for kind in graphs:
            gm, inputs, mode = trace_forward(preset, args.batch, variant.nhwc_paths) \
                if kind == "fwd" else training[kind]
            # the training graphs get the training loop's compile options (read now, so a
            # variant that patches them counts); "fwd" compiles as sampling does, without
            src, layout_opt = generate(gm, inputs, mode, backward=kind == "bwd",
                                       with_bytes=args.bytes,
                                       options=None if kind == "fwd" else
                                       dict(loop.TRAIN_COMPILE_OPTIONS))
            kind_draws = rng_draws(src)
            report[kind] = {"batch": args.batch if kind == "fwd" else args.bwd_batch,
                            "inductor_layout_opt": layout_opt, **summarize(src, kind_draws)}
            if kind != "fwd":
                draws[kind] = kind_draws
            if args.save_code:
                args.save_code.mkdir(parents=True, exist_ok=True)
                (args.save_code / f"{args.preset}_{args.variant}_{kind}.py").write_text(src)
            r = report[kind]
            print(f"{kind} ({args.preset}, {args.variant}, batch {r['batch']}): "
                  f"{r['kernels']} Triton kernels, {r['transposing_kernels']} transposing "
                  f"({r['transposed_elements'] / 1e6:.0f} M elements)"
                  + (f", {r['triton_gb']:.2f} GB moved" if "triton_gb" in r else "")
                  + "; inductor layout_opt "
                  f"{layout_opt}; cuDNN args {r['cudnn_args']}; RNG draws {r['rng_draws']}",
                  flush=True)
    report["rng_hazards"] = rng_hazards(draws)
    for h in report["rng_hazards"]:
        print(f"RNG hazard: {h}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
