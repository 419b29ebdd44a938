"""The diffusion U-Net: shape contracts, null labels, gradients, determinism, configs."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from genlab.models.unet import (
    EDM_CIFAR10,
    FASHION_MNIST_CPU,
    FASHION_MNIST_GPU,
    UNet,
    UNetConfig,
    count_parameters,
)
from genlab.nn.blocks import NHWCGroupNorm
from tests.nn.helpers import grad_report, randomize_

torch.set_num_threads(1)


def tiny(**overrides) -> UNet:
    kw = dict(in_channels=1, out_channels=1, resolution=28, model_channels=8,
              channel_mult=(1, 2, 2), num_blocks=1, attn_resolutions=(7,), dropout=0.0)
    torch.manual_seed(0)
    return UNet(**{**kw, **overrides})


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("kw", [
    dict(),
    dict(channel_mult=(1, 2), attn_resolutions=()),
    dict(channel_mult=(1, 1, 2), num_blocks=2, attn_resolutions=(14, 7), num_heads=2),
    dict(in_channels=3, out_channels=3, resolution=32, attn_resolutions=(16,), label_dim=10),
    dict(in_channels=3, out_channels=6, resolution=32, channel_mult=(1, 2, 2, 2),
         attn_resolutions=(8, 4), embedding="fourier"),
    dict(in_channels=3, out_channels=3, resolution=64, channel_mult=(1, 1, 2, 2),
         attn_resolutions=(16,), label_dim=3),
])
def test_output_shape_follows_input(kw):
    net = tiny(**kw)
    c, r = net.in_channels, net.resolution
    labels = torch.tensor([0, -1]) if net.label_dim else None
    out = net(_randn(2, c, r, r), torch.tensor([0.1, -2.0]), labels)
    assert out.shape == (2, kw.get("out_channels", 1), r, r) and out.dtype == torch.float32


@pytest.mark.parametrize("kw,match", [
    (dict(channel_mult=(1, 2, 2, 2)), "resolution"),  # 28 is not divisible by 8
    (dict(channel_mult=()), "channel_mult"),
    (dict(attn_resolutions=(16,)), "attn_resolutions"),  # 28 -> 14 -> 7 has no 16
    (dict(embedding="learned"), "embedding"),
    (dict(num_blocks=0), "num_blocks"),
    (dict(label_dim=-1), "label_dim"),
    (dict(num_heads=3), "num_heads"),  # 16 channels at 7x7
])
def test_bad_arguments_rejected(kw, match):
    with pytest.raises(ValueError, match=match):
        tiny(**kw)


def test_bad_inputs_rejected():
    with pytest.raises(ValueError, match="label_dim=0"):
        tiny()(_randn(1, 1, 28, 28), torch.zeros(1), torch.zeros(1, dtype=torch.long))
    with pytest.raises(ValueError, match="x must be"):
        tiny()(_randn(1, 1, 32, 32), torch.zeros(1))


def test_null_labels_equal_no_labels_per_row():
    net = randomize_(tiny(label_dim=5), std=0.2).eval()
    x, sigma = _randn(3, 1, 28, 28), torch.tensor([0.5, 1.0, -1.0])
    uncond = net(x, sigma)
    assert torch.equal(net(x, sigma, torch.full((3,), -1)), uncond)
    mixed = net(x, sigma, torch.tensor([2, -1, 4]))
    assert torch.equal(mixed[1], uncond[1])
    assert not torch.allclose(mixed[0], uncond[0]) and not torch.allclose(mixed[2], uncond[2])


def test_every_parameter_gets_a_gradient():
    net = randomize_(tiny(label_dim=3, channel_mult=(1, 2), attn_resolutions=(28, 14)), std=0.2)
    out = net(_randn(2, 1, 28, 28), torch.tensor([0.3, 2.0]), torch.tensor([1, 2]))
    out.square().mean().backward()
    assert grad_report(net) == ([], [])


def test_zero_init_blocks_still_give_every_parameter_a_grad_tensor():
    net = tiny(label_dim=3)
    net(_randn(2, 1, 28, 28), torch.tensor([0.3, 2.0]), torch.tensor([1, 0])).sum().backward()
    missing, _ = grad_report(net)
    assert missing == []


def test_deterministic_and_batch_independent():
    a, b = tiny().eval(), tiny().eval()
    randomize_(a, seed=1)
    randomize_(b, seed=1)
    x, sigma = _randn(4, 1, 28, 28), torch.tensor([0.1, 0.2, 0.3, 0.4])
    assert torch.equal(a(x, sigma), b(x, sigma))
    torch.testing.assert_close(a(x[1:2], sigma[1:2]), a(x, sigma)[1:2], rtol=1e-5, atol=1e-5)


def test_noise_label_matters_and_scalar_broadcasts():
    net = randomize_(tiny(), std=0.2).eval()
    x = _randn(2, 1, 28, 28)
    assert torch.equal(net(x, torch.tensor(0.7)), net(x, torch.full((2,), 0.7)))
    assert not torch.allclose(net(x, torch.full((2,), 0.7)), net(x, torch.full((2,), -0.7)))


def test_dropout_only_in_training():
    net = randomize_(tiny(dropout=0.5), std=0.2)
    x, sigma = _randn(2, 1, 28, 28), torch.zeros(2)
    torch.manual_seed(0)
    assert not torch.allclose(net.train()(x, sigma), net.eval()(x, sigma))


def test_channels_last_agrees():
    net = randomize_(tiny(), std=0.2).eval()
    x, sigma = _randn(2, 1, 28, 28), torch.tensor([0.1, 1.0])
    ref = net(x, sigma)
    out = net.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last),
                                                    sigma)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)


def test_nhwc_paths_equal_the_plain_path_in_forward_and_gradients():
    """The plain U-Net is the reference: with nhwc_paths=True (layout-keeping GroupNorm,
    token-major attention, NHWC resampling, dense cat gradients), a channels_last float64
    net gives its output and every gradient, all laid out NHWC."""
    kw = dict(channel_mult=(1, 2, 2), attn_resolutions=(14, 7), num_heads=2, label_dim=3)
    plain = randomize_(tiny(**kw), std=0.2).double().to(memory_format=torch.channels_last)
    nhwc = tiny(**kw, nhwc_paths=True).double()
    assert nhwc.state_dict().keys() == plain.state_dict().keys()
    nhwc.load_state_dict(plain.state_dict())
    nhwc = nhwc.to(memory_format=torch.channels_last)
    x = _randn(2, 1, 28, 28).double().contiguous(memory_format=torch.channels_last)
    sigma, labels = torch.tensor([0.1, 1.0], dtype=torch.float64), torch.tensor([2, -1])

    def grads(net):
        xr = x.clone().requires_grad_()
        out = net(xr, sigma, labels)
        out.square().sum().backward()
        g = {n: p.grad.clone() for n, p in net.named_parameters()}
        return out.detach(), xr.grad, g

    ref_out, ref_gx, ref_g = grads(plain)
    out, gx, g = grads(nhwc)
    torch.testing.assert_close(out, ref_out, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(gx, ref_gx, rtol=1e-10, atol=1e-10)
    for name in ref_g:
        torch.testing.assert_close(g[name], ref_g[name], rtol=1e-10, atol=1e-10, msg=name)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert gx.is_contiguous(memory_format=torch.channels_last)


def test_nhwc_paths_reach_every_group_norm_and_only_with_the_switch():
    def norms(net):
        return [m for m in net.modules() if isinstance(m, torch.nn.GroupNorm)]

    plain, nhwc = tiny(), tiny(nhwc_paths=True)
    assert len(norms(plain)) == len(norms(nhwc)) > 10
    assert all(type(m) is torch.nn.GroupNorm for m in norms(plain))
    assert all(type(m) is NHWCGroupNorm for m in norms(nhwc))
    cfg = UNetConfig(model_channels=8, num_blocks=1)
    assert not UNet.from_config(cfg).nhwc_paths  # the plain path unless asked
    assert UNet.from_config(cfg, nhwc_paths=True).nhwc_paths
    assert "nhwc_paths" not in {f.name for f in dataclasses.fields(UNetConfig)}


def test_compiled_graph_hands_convolutions_dense_nhwc_tensors():
    """Under torch.compile (inductor's decompositions, traced on CPU), every convolution and
    convolution backward of an NHWC training step with nhwc_paths gets dense NHWC activations
    and gradients.
    A strided one makes cuDNN convert it: on an H100 such copies took 18% of the compiled
    step of the CIFAR-10-size U-Net, as a slow strided copy kernel (README), and torch's
    group_norm, which makes an NHWC input NCHW on CUDA, was their source."""
    from functorch.compile import make_boxed_func
    from torch._functorch.aot_autograd import aot_module_simplified
    from torch._inductor.decomposition import select_decomp_table

    net = tiny(in_channels=3, out_channels=3, resolution=16, channel_mult=(2, 2, 2),
               num_blocks=2, attn_resolutions=(8,), dropout=0.1, nhwc_paths=True)
    net = net.to(memory_format=torch.channels_last)
    graphs = []

    def keep(graph, _inputs):
        graphs.append(graph)
        return make_boxed_func(graph.forward)

    norm_inputs = []  # layouts of what torch's group_norm gets in the traced (Python) graph

    def backend(gm, example_inputs):
        for node in gm.graph.nodes:
            if node.op == "call_function" and "group_norm" in str(node.target):
                val = node.args[0].meta["example_value"]
                norm_inputs.append(val.is_contiguous(memory_format=torch.channels_last)
                                   and not val.is_contiguous())
        return aot_module_simplified(gm, example_inputs, fw_compiler=keep, bw_compiler=keep,
                                     decompositions=select_decomp_table())

    x = _randn(4, 3, 16, 16).contiguous(memory_format=torch.channels_last)
    torch.compile(net, backend=backend)(x, torch.rand(4) + 0.1).square().mean().backward()
    assert len(graphs) == 2, "expected one forward and one backward graph"
    # On CUDA torch's group_norm returns NCHW whatever its input (on the CPU it keeps NHWC,
    # so the checks below cannot see it): the U-Net's GroupNorm must never hand it NHWC.
    assert True not in norm_inputs, norm_inputs
    seen, strided = 0, []
    for graph in graphs:
        for node in graph.graph.nodes:
            if node.op == "call_function" and "convolution" in str(node.target):
                for arg in node.args[:2]:  # (input, weight) / (grad_output, input)
                    val = arg.meta["val"]
                    seen += 1
                    if not val.is_contiguous(memory_format=torch.channels_last):
                        strided.append((str(node.target), arg.name, tuple(val.stride())))
    assert seen >= 4 * 20 and not strided, strided


def test_bf16_autocast_runs_and_stays_close():
    net = randomize_(tiny(), std=0.1).eval()
    x, sigma = _randn(2, 1, 28, 28), torch.tensor([0.1, 1.0])
    ref = net(x, sigma)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(x, sigma)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    assert (out - ref).norm() / ref.norm() < 0.05  # bf16 has ~3 significant digits


def test_traces_without_graph_breaks():
    net = tiny(label_dim=2).eval()
    compiled = torch.compile(net, backend="eager", fullgraph=True)  # fullgraph: error on a break
    x, sigma, labels = _randn(2, 1, 28, 28), torch.tensor([0.1, 1.0]), torch.tensor([1, -1])
    torch.testing.assert_close(compiled(x, sigma, labels), net(x, sigma, labels))


def test_config_round_trip_and_frozen():
    cfg = UNetConfig(model_channels=8, num_blocks=1, label_dim=2)
    torch.manual_seed(0)
    a = UNet.from_config(cfg)
    torch.manual_seed(0)
    b = UNet(**dataclasses.asdict(cfg))
    assert a.state_dict().keys() == b.state_dict().keys()
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    torch.manual_seed(0)
    c = UNet.from_config(cfg, nhwc_paths=True)  # a speed switch: the same parameters
    assert all(torch.equal(a.state_dict()[k], v) for k, v in c.state_dict().items())
    assert c.state_dict().keys() == a.state_dict().keys()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.model_channels = 16


def test_preset_parameter_counts():
    with torch.device("meta"):  # counts only: no memory, no init cost
        counts = {name: UNet.from_config(cfg).num_parameters() for name, cfg in
                  [("edm", EDM_CIFAR10), ("cpu", FASHION_MNIST_CPU), ("gpu", FASHION_MNIST_GPU)]}
    assert counts == {"edm": 59_803_395, "cpu": 1_353_185, "gpu": 7_526_017}  # golden
    assert 50e6 < counts["edm"] < 60e6  # NVlabs/edm DDPM++ CIFAR-10 is 55.7M


def test_count_parameters_skips_buffers():
    net = tiny(embedding="fourier")
    total = sum(p.numel() for p in net.parameters())
    assert count_parameters(net) == total == net.num_parameters()
    assert "noise_emb.freqs" in net.state_dict()
    net.stem.weight.requires_grad_(False)
    assert count_parameters(net) == total - net.stem.weight.numel()
    assert count_parameters(net, trainable_only=False) == total


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_compiled_bf16_channels_last_training_step():
    net = tiny(label_dim=10).cuda().to(memory_format=torch.channels_last)
    step = torch.compile(net)
    x = torch.randn(8, 1, 28, 28, device="cuda").to(memory_format=torch.channels_last)
    sigma, labels = torch.rand(8, device="cuda"), torch.randint(-1, 10, (8,), device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = step(x, sigma, labels)
    out.float().square().mean().backward()
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert grad_report(net)[0] == []
