"""benchmarks/profile_unet.py: the kernel-name classifier of its --compile summary (names as
an H100 profile of the compiled U-Net step printed them) and an eager CPU run end to end."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from tests.conftest import ROOT


def _profile_unet():
    sys.path.insert(0, str(ROOT / "benchmarks"))  # it imports bench_unet's presets
    spec = importlib.util.spec_from_file_location("profile_unet",
                                                  ROOT / "benchmarks/profile_unet.py")
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
