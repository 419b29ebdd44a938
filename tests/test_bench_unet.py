"""benchmarks/bench_unet.py's A/B switch for the U-Net's NHWC code paths."""

from __future__ import annotations

import dataclasses
import importlib
import sys

import torch

import genlab.nn.attention as attention
import genlab.nn.blocks as blocks
from tests.conftest import ROOT


def _bench_unet():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    return importlib.import_module("bench_unet")  # in sys.modules, as its dataclass needs


def test_nchw_code_paths_switch_off_the_nhwc_paths_and_restore_them():
    bench = _bench_unet()
    x = torch.randn(2, 4, 3, 3).contiguous(memory_format=torch.channels_last)
    assert blocks.is_channels_last(x) and attention.is_channels_last(x)
    assert blocks.channels_last_grad(x) is not x  # an autograd node that densifies the grad
    with bench.nchw_code_paths(True):
        assert not blocks.is_channels_last(x) and not attention.is_channels_last(x)
        assert blocks.channels_last_grad(x) is x
    assert blocks.is_channels_last(x) and attention.is_channels_last(x)
    with bench.nchw_code_paths(False):
        assert blocks.is_channels_last(x)
    assert "compiled-nchw-paths" in bench.VARIANTS


def test_nodropout_variant_changes_only_the_dropout():
    bench = _bench_unet()
    preset = bench.PRESETS["edm_cifar10"]
    assert preset.dropout > 0
    assert bench.variant_preset("compiled-nodropout", preset) == \
        dataclasses.replace(preset, dropout=0.0)
    assert bench.variant_preset("compiled", preset) is preset
    assert "compiled-nodropout" in bench.VARIANTS


def test_gn_bf16_variant_returns_group_norm_outputs_in_the_input_dtype():
    from genlab.models.unet import FASHION_MNIST_CPU, UNet

    bench = _bench_unet()
    torch.manual_seed(0)
    net = UNet.from_config(FASHION_MNIST_CPU)
    x, t = torch.randn(2, 1, 28, 28), torch.zeros(2)
    ref = net(x, t)
    n = bench.group_norm_in_input_dtype(net)
    assert n == sum(len(m._forward_hooks) for m in net.modules()
                    if isinstance(m, torch.nn.GroupNorm)) > 0
    assert torch.equal(net(x, t), ref)  # fp32 in, fp32 out: the hook changes nothing
    # What the hook does on a GPU, where bf16 autocast runs group_norm in fp32 (CPU autocast
    # keeps bf16, so it shows nothing here): an fp32 output goes back to the input's bf16.
    out = bench._to_input_dtype(None, (torch.zeros(3, dtype=torch.bfloat16),),
                                torch.tensor([1.0, 2.5, -3.0]))
    assert out.dtype == torch.bfloat16 and out.tolist() == [1.0, 2.5, -3.0]
    assert "compiled-gn-bf16" in bench.VARIANTS


def test_torch_gn_variant_swaps_only_the_group_norm_and_restores_it():
    bench = _bench_unet()
    norm = blocks.group_norm(8)
    x = torch.randn(2, 8, 3, 3).contiguous(memory_format=torch.channels_last)
    assert blocks.is_channels_last(norm(x))  # the layout-keeping path
    with bench.variant_context("compiled-torch-gn"):
        assert not blocks.is_channels_last(norm(torch.randn(2, 8, 3, 3)))
        assert blocks.GroupNorm.forward is torch.nn.GroupNorm.forward
        assert blocks.is_channels_last(x) and attention.is_channels_last(x)  # others stay on
    assert blocks.GroupNorm.forward is not torch.nn.GroupNorm.forward
    assert blocks.is_channels_last(norm(x))


def test_force_layout_variant_patches_inductor_only_while_held():
    import torch._inductor.config as inductor_config

    bench = _bench_unet()
    before = inductor_config.force_layout_optimization
    with bench.variant_context("compiled-force-layout"):
        assert inductor_config.force_layout_optimization is True
    assert inductor_config.force_layout_optimization == before
    with bench.variant_context("compiled"):
        assert inductor_config.force_layout_optimization == before
        assert blocks.GroupNorm.forward is not torch.nn.GroupNorm.forward
    tuned = (inductor_config.max_autotune_pointwise, inductor_config.coordinate_descent_tuning)
    with bench.variant_context("compiled-autotune"):
        assert inductor_config.max_autotune_pointwise and inductor_config.coordinate_descent_tuning
        assert inductor_config.force_layout_optimization == before
    assert (inductor_config.max_autotune_pointwise,
            inductor_config.coordinate_descent_tuning) == tuned
    with bench.variant_context("compiled-gn-group-stats"):
        assert blocks.GroupNorm.nhwc_stats == "group"
    assert blocks.GroupNorm.nhwc_stats == "channel"
    forward = torch.nn.Dropout.forward
    with bench.variant_context("compiled-bernoulli-mask"):
        assert torch.nn.Dropout.forward.__name__ == "bernoulli_dropout_forward"
    assert torch.nn.Dropout.forward is forward
    from genlab.training import loop

    options = dict(loop.TRAIN_COMPILE_OPTIONS)
    assert options  # the training setting; the variant is the step without it
    with bench.variant_context("compiled-inductor-default"):
        assert loop.TRAIN_COMPILE_OPTIONS == {}
    assert loop.TRAIN_COMPILE_OPTIONS == options
    with bench.variant_context("compiled-reads8"):
        assert loop.TRAIN_COMPILE_OPTIONS == {"realize_reads_threshold": 8} != options
    assert loop.TRAIN_COMPILE_OPTIONS == options
    assert {v.change for v in bench.VARIANTS.values()} >= {"", "nchw-paths", "torch-gn",
                                                             "gn-group-stats",
                                                             "force-layout", "nodropout",
                                                             "gn-bf16", "autotune",
                                                             "bernoulli-mask",
                                                             "inductor-default", "reads8"}
