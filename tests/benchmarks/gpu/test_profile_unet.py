"""benchmarks/gpu/profile_unet.py: the kernel-name classifier of its --compile summary (names as
an H100 profile of the compiled U-Net step printed them) and an eager CPU run end to end."""

from __future__ import annotations

import importlib.util

import pytest

from tests.conftest import ROOT


def _profile_unet():
    spec = importlib.util.spec_from_file_location("profile_unet",
                                                  ROOT / "benchmarks/gpu/profile_unet.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name, kind", [
    # Inductor kernels name the aten ops they fused, convolution included: Triton wins.
    ("triton_poi_fused__to_copy_add_addcmul_clone_convolution_native_dropout_native_group_norm"
     "_silu_split_unsqueeze_15", "triton: pointwise"),
    ("triton_red_fused__to_copy_clone_native_group_norm_14", "triton: reductions"),
    ("sm90_xmma_dgrad_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nhwc_tilesize256x128x64",
     "convolution (cuDNN)"),
    ("cudnn_generated_fort_native_sdpa_sm90_flash_bprop_wgmma_f16_knob_26_64x64x256",
     "attention"),
    ("void at::native::elementwise_kernel<128, 4, at::native::gpu_kernel_impl_nocast<at::"
     "native::direct_copy_kernel_cuda(at::TensorIteratorBase&)", "aten copy / cast"),
    ("nvjet_sm90_tst_256x128_64x4_1x2_h_bz_coopA_NNT", "gemm"),
    ("void at::native::(anonymous namespace)::multi_tensor_apply_kernel<FusedAdamMathFunctor>",
     "optimizer / EMA"),
    ("some_unknown_kernel", "other"),
])
def test_kernel_kind(name, kind):
    assert _profile_unet().kernel_kind(name).startswith(kind)


def test_eager_cpu_run_sums_aten_ops(tmp_path):
    out = _profile_unet().main(["--preset", "fmnist_cpu", "--batch", "2", "--warmup", "0",
                                "--steps", "1", "--json", str(tmp_path / "p.json")])
    assert not out["compiled"] and out["unit"] == "aten ops"
    assert out["ms_per_step"] > 0 and out["by_kind_ms"]["convolution"] > 0
    assert (tmp_path / "p.json").is_file()


def _event(name, parent=None, kernels=(), shapes=()):
    from types import SimpleNamespace

    from torch.autograd.profiler_util import Kernel
    return SimpleNamespace(name=name, cpu_parent=parent, input_shapes=[list(s) for s in shapes],
                           kernels=[Kernel(k, 0, us) for k, us in kernels])


def test_launchers_sum_each_kernel_under_the_op_chain_that_launched_it():
    copy_name = ("void at::native::elementwise_kernel<128, 4, at::native::gpu_kernel_impl_nocast"
                 "<at::native::direct_copy_kernel_cuda(at::TensorIteratorBase&)")
    engine = _event("autograd::engine::evaluate_function: CompiledFunctionBackward")
    conv_bw = _event("aten::convolution_backward", engine)
    contig = _event("aten::contiguous", conv_bw)
    big = [(512, 256, 32, 32)]
    events = [
        engine, conv_bw, contig,
        # two calls, 2 steps: 1 call and 2.0 ms per step
        _event("aten::copy_", contig, [(copy_name, 1500.0)], big * 2),
        _event("aten::copy_", contig, [(copy_name, 2500.0)], big * 2),
        # same kernel, other shapes: its own row
        _event("aten::copy_", contig, [(copy_name, 600.0)], [(8, 4)] * 2),
        # an inductor kernel: left out
        _event("## Call CompiledFxGraph ##", None, [("triton_poi_fused_add_0", 9000.0)]),
        _event("aten::cudnn_convolution", None, [("sm90_xmma_fprop_implicit_gemm", 800.0)],
               big),
    ]
    rows = _profile_unet().launchers(events, steps=2, depth=3)
    assert [r["ms"] for r in rows] == [2.0, 0.4, 0.3]
    top = rows[0]
    assert top["calls"] == 1.0
    assert top["chain"] == "aten::copy_ < aten::contiguous < aten::convolution_backward"
    assert top["shapes"] == "[[512, 256, 32, 32], [512, 256, 32, 32]]"
    assert "direct_copy_kernel_cuda" in top["kernel"] and "void" not in top["kernel"]
    assert rows[1]["chain"] == "aten::cudnn_convolution"
    assert all("triton" not in r["kernel"] for r in rows)


def test_short_kernel_keeps_what_tells_kernels_apart():
    pu = _profile_unet()
    assert pu.short_kernel("sm90_xmma_dgrad") == "sm90_xmma_dgrad"
    long_copy = "void at::native::elementwise_kernel<" + "x" * 200 + "direct_copy_kernel_cuda"
    cut = pu.short_kernel(long_copy)
    assert len(cut) <= 90 and cut.endswith("direct_copy_kernel_cuda")


def test_launchers_read_real_profiler_events():
    """The attributes launchers() reads exist on torch's own events: a CPU profile of a
    contiguous() call, with a device kernel appended to its aten::copy_ by hand (a CPU run
    launches none)."""
    import torch

    x = torch.randn(2, 3, 4, 5).permute(0, 2, 3, 1)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                record_shapes=True) as prof:
        x.contiguous()
    events = prof.events()
    copy = next(e for e in events if e.name == "aten::copy_")
    copy.append_kernel("direct_copy_kernel_cuda", 0, 3000.0)
    (row,) = _profile_unet().launchers(events, steps=1)
    assert row["ms"] == 3.0 and row["calls"] == 1.0
    assert row["chain"].startswith("aten::copy_ < aten::clone < aten::contiguous")
    assert "[2, 4, 5, 3]" in row["shapes"]


def test_device_kernels_leave_out_the_compiled_graph_ranges():
    """A compiled step's GPU profile has one '## Call CompiledFxGraph ... ##' range per graph
    call, whose device time is that of the kernels inside it: summing it with them would
    count those kernels twice (as the H100 profile of 2026-11-27 did: 329 ms for 163)."""
    from types import SimpleNamespace

    import torch

    cuda, cpu = torch.autograd.DeviceType.CUDA, torch.autograd.DeviceType.CPU
    ev = lambda key, ms, dev=cuda: SimpleNamespace(  # noqa: E731
        key=key, device_type=dev, self_device_time_total=ms * 1e3)
    events = [ev("## Call CompiledFxGraph fabc ##", 8.0), ev("triton_poi_fused_0", 3.0),
              ev("sm90_xmma_fprop", 5.0), ev("aten::convolution", 5.0, cpu),
              ev("triton_red_fused_1", 0.0)]
    assert _profile_unet().device_kernels(events, steps=2) == [
        ("triton_poi_fused_0", 1.5), ("sm90_xmma_fprop", 2.5)]
