"""benchmarks/gpu/bench_unet.py: its variants, each the training setting with one thing
changed, and the switches that apply them only while a variant runs."""

from __future__ import annotations

import dataclasses
import importlib
import sys

import torch

from genlab.models.unet import FASHION_MNIST_CPU
from genlab.nn.blocks import NHWCGroupNorm
from tests.conftest import ROOT


def _bench_unet():
    sys.path.insert(0, str(ROOT / "benchmarks" / "gpu"))
    return importlib.import_module("bench_unet")  # in sys.modules, as its dataclass needs


def test_nchw_paths_variant_is_the_training_setting_without_the_nhwc_paths():
    bench = _bench_unet()
    compiled, nchw = bench.VARIANTS["compiled"], bench.VARIANTS["compiled-nchw-paths"]
    assert compiled.nhwc_paths and compiled.channels_last and compiled.compile
    assert nchw == dataclasses.replace(compiled, nhwc_paths=False)
    assert bench.VARIANTS["eager-bf16"] == dataclasses.replace(compiled, compile=False)
    assert not bench.VARIANTS["eager-fp32"].nhwc_paths  # channels_first: the plain paths


def test_run_variant_builds_the_unet_with_the_variants_nhwc_paths(monkeypatch):
    """run_variant passes the variant's nhwc_paths to the U-Net it trains (a stand-in train
    records the network and stops there)."""
    bench = _bench_unet()
    seen = []

    def fake_train(net, *args, **kwargs):
        seen.append(any(isinstance(m, NHWCGroupNorm) for m in net.modules()))
        raise RuntimeError("stop")

    monkeypatch.setattr(bench, "train", fake_train)
    for name in ("compiled", "compiled-nchw-paths"):
        try:
            bench.run_variant(name, FASHION_MNIST_CPU, 2, 1, 1, torch.device("cpu"))
        except RuntimeError:
            pass
    assert seen == [True, False]


def test_nodropout_variant_changes_only_the_dropout():
    bench = _bench_unet()
    preset = bench.PRESETS["edm_cifar10"]
    assert preset.dropout > 0
    assert bench.variant_preset("compiled-nodropout", preset) == \
        dataclasses.replace(preset, dropout=0.0)
    assert bench.variant_preset("compiled", preset) is preset
    assert "compiled-nodropout" in bench.VARIANTS


def test_gn_bf16_variant_returns_group_norm_outputs_in_the_input_dtype():
    from genlab.models.unet import UNet

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


def test_variant_contexts_patch_only_while_held():
    import torch._inductor.config as inductor_config

    bench = _bench_unet()
    before = inductor_config.force_layout_optimization
    with bench.variant_context("compiled-force-layout"):
        assert inductor_config.force_layout_optimization is True
    assert inductor_config.force_layout_optimization == before
    with bench.variant_context("compiled"):
        assert inductor_config.force_layout_optimization == before
    tuned = (inductor_config.max_autotune_pointwise, inductor_config.coordinate_descent_tuning)
    with bench.variant_context("compiled-autotune"):
        assert inductor_config.max_autotune_pointwise and inductor_config.coordinate_descent_tuning
        assert inductor_config.force_layout_optimization == before
    assert (inductor_config.max_autotune_pointwise,
            inductor_config.coordinate_descent_tuning) == tuned
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
    assert {v.change for v in bench.VARIANTS.values()} == {
        "", "force-layout", "nodropout", "gn-bf16", "autotune", "bernoulli-mask",
        "inductor-default", "reads8"}
