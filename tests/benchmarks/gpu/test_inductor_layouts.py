"""benchmarks/gpu/inductor_layouts.py: inductor's CUDA code for the U-Net, generated without a GPU.

Run as its own process (it patches torch internals while it runs); the tests that generate
code take minutes and are marked slow. The parsers are tested on hand-written code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

TOOLS = ROOT / "benchmarks" / "gpu"


def _report(tmp_path, variant: str) -> dict:
    out = tmp_path / f"{variant}.json"
    proc = subprocess.run(
        [sys.executable, str(TOOLS / "inductor_layouts.py"), "--preset", "fmnist_cpu",
         "--batch", "16", "--graphs", "fwd", "--variant", variant, "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())["fwd"]


@pytest.mark.slow  # generates the CUDA code of two U-Net forwards
def test_nhwc_code_paths_cut_the_transposing_kernels_in_the_generated_cuda_code(tmp_path):
    ours, before = _report(tmp_path, "compiled"), _report(tmp_path, "compiled-nchw-paths")
    assert ours["kernels"] > 50 and before["kernels"] > 50  # a whole U-Net was generated
    # the NCHW formulation (torch's group_norm, avg_pool2d, cat, ...) transposes far more
    n_ours, n_before = ours["transposing_kernels"], before["transposing_kernels"]
    assert n_before >= 2 * n_ours and n_before - n_ours >= 10, (ours, before)
    args = ours["cudnn_args"]
    assert args.get("convolution input NCHW", 0) == 0, args
    assert args.get("convolution input NHWC", 0) > 30, args


def test_bad_arguments_are_named(capsys):
    """Checked before anything is patched or traced, so in this process."""
    sys.path.insert(0, str(TOOLS))
    from inductor_layouts import main

    for argv, key in ((["--graphs", "fwd,bw"], "--graphs"), (["--batch", "1"], "--batch"),
                      (["--variant", "eager-bf16"], "--variant")):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code != 0
        assert key in capsys.readouterr().err + str(exit_.value.code), argv


def test_summarize_counts_transposes_layouts_and_bytes_per_launch():
    sys.path.insert(0, str(TOOLS))
    from inductor_layouts import summarize

    src = """
triton_poi_fused_0 = async_compile.triton('triton_poi_fused_0', '''
    inductor_meta={'kernel_name': 'triton_poi_fused_0', 'kernel_num_gb': 0.25},
def triton_poi_fused_0(in_ptr0, out_ptr0, ynumel, xnumel, YBLOCK, XBLOCK):
    ynumel = 64
    xnumel = 16
def call(args):
        triton_poi_fused_0.run(*args, stream=raw_stream0)
''', device_str='cuda')
triton_red_fused_1 = async_compile.triton('triton_red_fused_1', '''
    inductor_meta={'kernel_name': 'triton_red_fused_1', 'kernel_num_gb': 1.5},
def triton_red_fused_1(in_ptr0, out_ptr0, xnumel, r0_numel, XBLOCK, R0_BLOCK):
    xnumel = 8
''', device_str='cuda')
        assert_size_stride(x_1, (2, 4, 3, 3), (36, 1, 12, 4), 'input')
        buf0 = empty_strided_cuda((2, 4, 3, 3), (36, 9, 3, 1), torch.bfloat16)
        triton_poi_fused_0.run(x_1, buf0, 64, 16, stream=raw_stream0)
        triton_poi_fused_0.run(x_1, buf0, 64, 16, stream=raw_stream0)
        triton_red_fused_1.run(buf0, buf1, 8, 9, stream=raw_stream0)
        buf2 = extern_kernels.convolution(buf0, w_1, stride=(1, 1))
        buf3 = extern_kernels.convolution(x_1, w_1, stride=(1, 1))
        buf4 = extern_kernels.convolution(reinterpret_tensor(buf9, (2, 4, 3, 3), (36, 1, 12, 4), 0), w_1, stride=(1, 1))
        buf5 = torch.ops.aten.convolution_backward.default(reinterpret_tensor(buf9, (2, 4, 3, 3), (36, 9, 3, 1), 0), buf0, w_1, [4], (1, 1), (1, 1), (1, 1), False, (0, 0), 1, [True, True, False])
"""  # noqa: E501 (wrapper lines as inductor writes them)
    report = summarize(src)
    assert report["kernels"] == 2 and report["transposing_kernels"] == 1
    assert report["transposed_elements"] == 64 * 16
    assert report["triton_gb"] == 2 * 0.25 + 1.5  # per launch; the harness does not count
    # arguments that are views made in the call (reinterpret_tensor) count with their layout
    assert report["cudnn_args"] == {"convolution input NCHW": 1, "convolution input NHWC": 2,
                                    "convolution_backward grad NCHW": 1,
                                    "convolution_backward input NCHW": 1}


def _kernel(name: str, body: str) -> str:
    return (f"{name} = async_compile.triton('{name}', '''\n"
            f"def {name}(in_ptr0, out_ptr0, xnumel, XBLOCK):\n{body}''', device_str='cuda')\n")


def test_rng_audit_flags_repeated_and_mismatched_dropout_masks():
    """rng_draws / rng_hazards on hand-written kernels: rand4x on the kernel's own contiguous
    index is fine; rand4x on strided offsets repeats values (torch issue 198333, symptom A);
    a backward that redraws the mask with tl.rand where the forward used rand4x gets another
    mask (symptom B)."""
    sys.path.insert(0, str(TOOLS))
    from inductor_layouts import rng_draws, rng_hazards

    good = _kernel("triton_poi_fused_native_dropout_0", """\
    xindex = xoffset + tl.arange(0, XBLOCK)[:]
    x0 = xindex
    tmp0 = tl.load(in_ptr0 + load_seed_offset)
    tmp1 = (x0).to(tl.int32)
    tmp2 = triton_helpers.rand4x(tmp0, (tmp1).to(tl.uint32), XBLOCK)
""")
    strided = _kernel("triton_poi_fused_native_dropout_1", """\
    xindex = xoffset + tl.arange(0, XBLOCK)[:]
    x0 = (xindex % 64)
    x1 = xindex // 64
    x2 = x1 + 64*x0
    tmp1 = (x2).to(tl.int32)
    tmp2 = triton_helpers.rand4x(tmp0, (tmp1).to(tl.uint32), XBLOCK)
""")
    redraw = _kernel("triton_red_fused_native_dropout_backward_2", """\
    xindex = xoffset + tl.arange(0, XBLOCK)[:, None]
    x0 = xindex
    tmp1 = (x0).to(tl.int32)
    tmp2 = tl.rand(tmp0, (tmp1).to(tl.uint32))
""")
    (d,) = rng_draws(good)
    assert d == {"kernel": "triton_poi_fused_native_dropout_0", "fn": "rand4x", "one_d": True,
                 "contiguous": True}
    assert rng_hazards({"fwd-train": [d], "bwd": []}) == []
    (s,) = rng_draws(strided)
    assert not s["contiguous"]
    assert any("non-contiguous" in h for h in rng_hazards({"fwd-train": [s]}))
    (r,) = rng_draws(redraw)
    assert r["fn"] == "rand" and not r["one_d"]
    (h,) = rng_hazards({"fwd-train": [d], "bwd": [r]})
    assert "not the forward's" in h


TINY_TRAINING_AUDIT = """
import dataclasses, json, sys
sys.path.insert(0, "benchmarks/gpu")
import inductor_layouts as il
from bench_unet import variant_context
import torch
from genlab.models.unet import EDM_CIFAR10, UNet
from genlab.training.loop import TRAIN_COMPILE_OPTIONS
tiny = dataclasses.replace(EDM_CIFAR10, resolution=8, model_channels=16, channel_mult=(1,),
                           num_blocks=1, attn_resolutions=())
out = {"dropouts": sum(isinstance(m, torch.nn.Dropout) and m.p > 0
                       for m in UNet.from_config(tiny).modules())}
for variant in ("compiled", "compiled-bernoulli-mask"):
    draws, masks = {}, {}
    with variant_context(variant):
        for kind, (gm, inputs, mode) in il.trace_training(tiny, 4).items():
            src, _ = il.generate(gm, inputs, mode, backward=kind == "bwd",
                                 options=dict(TRAIN_COMPILE_OPTIONS))
            draws[kind] = il.rng_draws(src)
            masks[kind] = src.count("= torch.ops.genlab_bench.keep_mask.default(")
    out[variant] = {"draws": draws, "hazards": il.rng_hazards(draws), "keep_mask": masks}
print(json.dumps(out))
"""


@pytest.mark.slow  # generates the CUDA code of two training steps
def test_compiled_dropout_masks_are_drawn_once_and_contiguously():
    """The code inductor (the pinned torch) generates for the GPU training step of a small
    U-Net with the CIFAR-10 preset's dropout: the forward draws each ResBlock's mask in a 1-D
    kernel over contiguous offsets and saves it, and the backward draws nothing, so it uses
    the forward's masks. With bench_unet's compiled-bernoulli-mask, the forward calls keep_mask
    once per ResBlock and no Triton kernel draws; the backward does neither. No CPU
    run can see this: CPU code has its own RNG path."""
    proc = subprocess.run([sys.executable, "-c", TINY_TRAINING_AUDIT], cwd=ROOT,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    fused = out["compiled"]
    fwd = fused["draws"]["fwd-train"]
    assert len(fwd) >= 2, out  # one per ResBlock with dropout (some kernels draw for two)
    assert all(d["fn"] == "rand4x" and d["one_d"] and d["contiguous"] for d in fwd), out
    assert fused["draws"]["bwd"] == [] and fused["hazards"] == [], out
    assert fused["keep_mask"] == {"fwd-train": 0, "bwd": 0}, out
    bern = out["compiled-bernoulli-mask"]
    assert bern["draws"] == {"fwd-train": [], "bwd": []}, out
    assert out["dropouts"] >= 2
    assert bern["keep_mask"] == {"fwd-train": out["dropouts"], "bwd": 0}, out


RESBLOCK_BACKWARD_AUDIT = """
import json, re, sys, types
sys.path.insert(0, "benchmarks/gpu")
import inductor_layouts as il
import torch
from torch import nn
from genlab.nn.blocks import ResBlock
from genlab.training.loop import TRAIN_COMPILE_OPTIONS
B, C, R = 4, 32, 8

class Net(nn.Module):  # one ResBlock with its embedding and dropout, as in the U-Net
    def __init__(self):
        super().__init__()
        self.emb = nn.Linear(1, 16)
        self.block = ResBlock(C, C, 16, dropout=0.1, nhwc_paths=True)

    def forward(self, x, sigma):
        return self.block(x, self.emb(sigma[:, None]))

net = Net().to(memory_format=torch.channels_last).train()
shape = types.SimpleNamespace(in_channels=C, resolution=R)
gm, inputs, mode = il.trace_training(shape, B, net=net)["bwd"]
out = {}
for name, options in (("training", dict(TRAIN_COMPILE_OPTIONS)), ("inductor-default", {})):
    src, _ = il.generate(gm, inputs, mode, backward=True, with_bytes=True, options=options)
    wrapper = il.wrapper_code(src)
    full = rf"empty_strided_cuda\\(\\({B}, {C}, {R}, {R}\\), [^)]*\\), torch\\.float32\\)"
    out[name] = {"fp32_activations": len(re.findall(full, wrapper)),
                 "convs": wrapper.count("aten.convolution_backward.default("),
                 "bias_grads_outside_triton": len(re.findall(
                     r"aten\\.convolution_backward\\.default\\(.*True\\]\\)$", wrapper, re.M)),
                 "gb": il.summarize(src)["triton_gb"]}
print(json.dumps(out))
"""


@pytest.mark.slow  # generates the CUDA code of a ResBlock's backward, twice
def test_training_options_recompute_instead_of_storing_fp32_activations():
    """The backward inductor (the pinned torch) generates for the GPU from one U-Net ResBlock:
    with the training loop's inductor options (genlab.training.loop.TRAIN_COMPILE_OPTIONS) no
    kernel writes a full-size fp32 activation for another to read back (the GroupNorm output
    and the gradient through dropout and SiLU are recomputed where they are read), and the
    Triton kernels' estimated bytes drop; at inductor's defaults at least one is written."""
    proc = subprocess.run([sys.executable, "-c", RESBLOCK_BACKWARD_AUDIT], cwd=ROOT,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["training"]["fp32_activations"] == 0, out
    assert out["inductor-default"]["fp32_activations"] >= 1, out
    assert out["training"]["gb"] < out["inductor-default"]["gb"], out
    # traced as on the GPU: each convolution's bias gradient is a sum inductor generates (the
    # GPU's decomposition), not requested from the convolution backward as on the CPU
    assert out["training"]["convs"] == 2 and out["training"]["bias_grads_outside_triton"] == 0
