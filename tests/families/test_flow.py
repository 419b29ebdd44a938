"""The `flow` family (RealNVP): invertibility, log-determinants against autograd Jacobians
(float64), act-norm's data-dependent init, bits/dim of densities with a closed form, shape
contracts, config checks and a short maximum-likelihood fit of a Gaussian by the real loop."""

import math
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.autograd.functional import jacobian
from torch.distributions import AffineTransform, Normal, SigmoidTransform, TransformedDistribution

from genlab.config import ConfigError, load
from genlab.data.processed import images_to_float
from genlab.data.toy2d import sample_toy
from genlab.families import get
from genlab.families.flow import build, generate, rebuild
from genlab.families.flow.config import FlowConfig
from genlab.families.flow.evaluate import kl_report
from genlab.models.realnvp import (
    ActNorm,
    ChannelCoupling,
    CheckerboardCoupling,
    RealNVP,
    RealNVP2d,
    Squeeze,
    VectorCoupling,
    checkerboard,
)
from genlab.objectives.flow import (
    N_LEVELS,
    DequantizedNLL,
    FlowNLL,
    dequantize,
    gaussian_log_prob,
    image_bits_per_dim,
    inverse_logit,
    levels_to_float,
    logit_transform,
    pixel_levels,
)
from genlab.training.device import torch_threads
from genlab.training.loop import RunSpec, train


def _randomize(module: nn.Module, shape: tuple[int, ...], seed: int = 0,
               std: float = 0.1) -> nn.Module:
    """Random values for what starts at zero in the couplings (the last layer of each coupling
    network, which makes a fresh coupling the identity and would test nothing) and for their
    scales (start at one); the other weights keep their default random init. Then one batch
    of `shape` initialises the act-norms from data, as training does, which keeps every
    layer's input at unit scale."""
    g = torch.Generator().manual_seed(seed)
    actnorm = {id(p) for m in module.modules() if isinstance(m, ActNorm) for p in m.parameters()}
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = std * torch.randn(p.shape, generator=g, dtype=p.dtype)
            if id(p) in actnorm:
                continue
            if name.endswith("scale"):
                p.add_(noise)
            elif not p.any():
                p.copy_(noise)
        module(_inputs(shape, seed=seed + 100, dtype=torch.float32))
    return module


def _inputs(shape, seed=1, dtype=torch.float64) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _jacobian_logdet(layer, x1: torch.Tensor) -> float:
    """log|det J| of layer's forward map at one example x1 (1, ...), by autograd."""
    def f(v):
        return layer(v.view_as(x1))[0].flatten()
    jac = jacobian(f, x1.flatten(), vectorize=True)  # (D, D)
    return torch.linalg.slogdet(jac)[1].item()


SMALL_IMAGE = {"in_channels": 1, "resolution": 8, "hidden": 8, "blocks": 1, "num_scales": 2,
               "checkerboard": 2, "channelwise": 2, "final": 2}

LAYERS = {  # name -> (layer factory, input shape (B, ...))
    "actnorm_vector": (lambda: ActNorm(3), (2, 3)),
    "actnorm_image": (lambda: ActNorm(2), (2, 2, 4, 4)),
    "checkerboard_even": (lambda: CheckerboardCoupling(2, 8, 1, parity=0), (2, 2, 4, 4)),
    "checkerboard_odd": (lambda: CheckerboardCoupling(1, 8, 1, parity=1), (2, 1, 5, 5)),
    "channel_0": (lambda: ChannelCoupling(4, 8, 1, parity=0), (2, 4, 3, 3)),
    "channel_1": (lambda: ChannelCoupling(4, 8, 1, parity=1), (2, 4, 3, 3)),
    "vector_0": (lambda: VectorCoupling(2, 16, 2, parity=0), (2, 2)),
    "vector_1": (lambda: VectorCoupling(3, 16, 2, parity=1), (2, 3)),
    "squeeze": (lambda: Squeeze(), (2, 2, 4, 4)),
    "flow_2d": (lambda: RealNVP2d(dim=2, hidden=16, depth=2, layers=4), (2, 2)),
    "flow_image": (lambda: RealNVP(**SMALL_IMAGE), (2, 1, 8, 8)),
}


@pytest.mark.parametrize("name", list(LAYERS))
def test_logdet_matches_autograd_jacobian(name):
    factory, shape = LAYERS[name]
    layer = _randomize(factory(), shape, std=0.5).double()
    x = _inputs(shape)
    _, logdet = layer(x)
    assert logdet.shape == (shape[0],)
    for i in range(shape[0]):
        expected = _jacobian_logdet(layer, x[i:i + 1])
        assert logdet[i].item() == pytest.approx(expected, abs=1e-9), (name, i)
    if name.startswith(("checkerboard", "channel", "vector", "flow")):
        assert logdet.abs().max() > 0.01, "a non-trivial layer (else the test is vacuous)"


@pytest.mark.parametrize("name", list(LAYERS))
def test_round_trip_x_z_x(name):
    factory, shape = LAYERS[name]
    layer = _randomize(factory(), shape)  # float32: the round trip holds to 1e-5
    x = _inputs((16, *shape[1:]), dtype=torch.float32)
    with torch.no_grad():
        z, _ = layer(x)
        back = layer.inverse(z)
    assert z.shape[0] == 16 and z.numel() == x.numel()
    if name != "squeeze":  # a permutation; every other layer must move x
        assert not torch.allclose(z.reshape(x.shape), x)
    torch.testing.assert_close(back, x, rtol=0, atol=1e-5)


def test_fashion_mnist_sized_flow_round_trip_and_shapes():
    net = _randomize(RealNVP(in_channels=1, resolution=28, hidden=8, blocks=1), (8, 1, 28, 28))
    x = _inputs((3, 1, 28, 28), dtype=torch.float32)
    with torch.no_grad():
        z, logdet = net(x)
        back = net.inverse(z)
    assert z.shape == (3, 784) and logdet.shape == (3,) and net.dim == 784
    # factored out 2 x 14 x 14, then 4 x 7 x 7, then the last scale's 4 x 7 x 7
    assert net.latent_shapes == [(2, 14, 14), (4, 7, 7), (4, 7, 7)]
    torch.testing.assert_close(back, x, rtol=0, atol=1e-5)


def test_logit_transform_logdet_and_inverse():
    u = torch.rand(2, 1, 3, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y, logdet = logit_transform(u, 0.05)
    for i in range(2):
        jac = jacobian(lambda v: logit_transform(v.view(1, 1, 3, 3), 0.05)[0].flatten(),
                       u[i].flatten())
        assert logdet[i].item() == pytest.approx(torch.linalg.slogdet(jac)[1].item(), abs=1e-9)
    torch.testing.assert_close(inverse_logit(y, 0.05), u)


def test_checkerboard_mask():
    b = checkerboard(3, 4, 0, torch.zeros(1))
    assert b.shape == (1, 1, 3, 4)
    assert b[0, 0].tolist() == [[1, 0, 1, 0], [0, 1, 0, 1], [1, 0, 1, 0]]
    assert torch.equal(checkerboard(3, 4, 1, torch.zeros(1)), 1 - b)


def test_coupling_keeps_the_masked_part():
    layer = _randomize(CheckerboardCoupling(1, 8, 1, parity=0), (2, 1, 6, 6))
    x = _inputs((2, 1, 6, 6), dtype=torch.float32)
    y, _ = layer(x)
    b = checkerboard(6, 6, 0, x).bool().expand_as(x)
    assert torch.equal(y[b], x[b]) and not torch.allclose(y[~b], x[~b])
    layer = _randomize(ChannelCoupling(4, 8, 1, parity=1), (2, 4, 3, 3))
    x = _inputs((2, 4, 3, 3), dtype=torch.float32)
    y, _ = layer(x)
    assert torch.equal(y[:, 2:], x[:, 2:]) and not torch.allclose(y[:, :2], x[:, :2])


def test_fresh_couplings_are_the_identity():
    net = RealNVP2d(dim=2, hidden=8, depth=1, layers=4, actnorm=False)
    x = _inputs((5, 2), dtype=torch.float32)
    z, logdet = net(x)
    assert torch.equal(z, x) and torch.equal(logdet, torch.zeros(5))


# ---------------------------------------------------------------------------------------------
# Act-norm.


@pytest.mark.parametrize("shape", [(256, 3), (64, 2, 5, 5)])
def test_actnorm_data_dependent_init(shape):
    norm = ActNorm(shape[1])
    x = 3.0 + 2.5 * _inputs(shape, dtype=torch.float32)
    x = x * torch.arange(1, shape[1] + 1).view(1, -1, *([1] * (len(shape) - 2)))
    y, logdet = norm(x)
    dims = [0, *range(2, len(shape))]
    torch.testing.assert_close(y.mean(dims), torch.zeros(shape[1]), rtol=0, atol=1e-5)
    torch.testing.assert_close(y.std(dims, correction=0), torch.ones(shape[1]), rtol=0,
                               atol=1e-4)
    # log-det = (H W) sum(-log std) of the first batch
    spatial = math.prod(shape[2:])
    expected = -spatial * x.std(dims, correction=0).log().sum()
    torch.testing.assert_close(logdet, expected.expand(shape[0]), rtol=1e-5, atol=1e-5)
    # initialised once: a second batch is not normalised again, and a reload keeps the init
    params = [p.detach().clone() for p in norm.parameters()]
    norm(5 * x)
    assert all(torch.equal(a, b) for a, b in zip(params, norm.parameters(), strict=True))
    fresh = ActNorm(shape[1])
    fresh.load_state_dict(norm.state_dict())
    torch.testing.assert_close(fresh(x)[0], y)


def test_actnorm_init_survives_the_training_loops_ema(tmp_path: Path):
    """The EMA copy is made before the first batch; with the loop's EMA ramp-up it ends up
    with the initialised act-norm (the flag is a buffer, copied; the values are averaged)."""
    cfg = load(FlowConfig, {"dataset": "toy2d/two_moons", "net": {"kind": "realnvp2d",
               "hidden": 8, "depth": 1, "layers": 2}, "steps": 3, "batch_size": 64,
               "warmup_steps": 1, "log_every": 1, "ckpt_every": 10}, "flow.t")
    built = build(cfg, (2,))
    data = 5.0 + 3.0 * _inputs((64, 2), dtype=torch.float32)
    result = train(built.net, built.objective, lambda step: (data, None), cfg,
                   RunSpec(seed=0, device=torch.device("cpu"), ckpt_path=tmp_path / "c.pt",
                           config_hash="x", progress=False))
    shadow = result.ema.shadow
    norm = next(m for m in shadow.modules() if isinstance(m, ActNorm))
    assert bool(norm.initialized)
    z, _ = shadow(data)
    assert z.mean().abs() < 0.3 and (z.std() - 1).abs() < 0.3  # not (5, 3)-scaled data


# ---------------------------------------------------------------------------------------------
# Likelihoods with a closed form.


class Identity(nn.Module):
    """z = x, log-det 0: the model's density is the standard normal itself."""

    def forward(self, x):
        return x.flatten(1), x.new_zeros(len(x))


def test_point_nll_of_the_identity_flow_is_the_gaussian_nll():
    x = _inputs((7, 2))
    expected = -Normal(0.0, 1.0).log_prob(x).sum(1)
    torch.testing.assert_close(FlowNLL()(Identity(), x), expected)
    torch.testing.assert_close(gaussian_log_prob(x), -expected)


def test_pixel_levels_recover_every_level():
    k = torch.arange(N_LEVELS, dtype=torch.uint8).view(1, 16, 16)
    x = images_to_float(k.numpy())  # the loop's floats k / 127.5 - 1
    assert torch.equal(pixel_levels(x), k.float().view(1, 1, 16, 16))
    u = dequantize(pixel_levels(x), torch.Generator().manual_seed(0))
    assert (u >= k.float() / 256).all() and (u < (k.float() + 1) / 256).all()
    assert torch.equal(levels_to_float(u), x)  # each value's bin is its level


def test_bits_per_dim_of_identity_flow_matches_its_dequantised_density():
    """With f = identity, u in [0, 1)^D has the density of (sigmoid(y) - alpha) / (1 - 2 alpha)
    with y ~ N(0, I): torch.distributions' own transform gives log p(u), hence the bits/dim."""
    alpha = 0.05
    levels = torch.tensor([0, 1, 37, 128, 200, 254, 255, 90, 3], dtype=torch.uint8).view(1, 3, 3)
    x = images_to_float(levels.numpy()).repeat(4, 1, 1, 1)  # (4, 1, 3, 3)
    bpd = image_bits_per_dim(Identity(), x, alpha, torch.Generator().manual_seed(3))
    u = dequantize(pixel_levels(x), torch.Generator().manual_seed(3))
    model = TransformedDistribution(Normal(torch.tensor(0.0), torch.tensor(1.0)), [
        SigmoidTransform(), AffineTransform(-alpha / (1 - 2 * alpha), 1 / (1 - 2 * alpha))])
    log_p = model.log_prob(u).flatten(1).sum(1)
    expected = (9 * math.log(256) - log_p) / (9 * math.log(2))
    torch.testing.assert_close(bpd, expected, rtol=1e-5, atol=1e-5)
    loss = DequantizedNLL(alpha)(Identity(), x, None, torch.Generator().manual_seed(3))
    torch.testing.assert_close(loss, bpd)


def test_dequantised_bits_per_dim_bounds_the_exact_discrete_value():
    """The identity flow's discrete model P(k) = Phi(y((k+1)/256)) - Phi(y(k/256)) is exact:
    the dequantised bits/dim, averaged over draws, is an upper bound (Jensen) a hair above it."""
    alpha = 0.05
    k = torch.arange(0, N_LEVELS, 5, dtype=torch.float64)  # 52 levels
    x = (k / 127.5 - 1).view(1, 1, 1, -1).repeat(4000, 1, 1, 1)
    bpd = image_bits_per_dim(Identity(), x, alpha, torch.Generator().manual_seed(0)).mean()

    def edge(v):  # y at the bin edge v / 256
        p = alpha + (1 - 2 * alpha) * v / N_LEVELS
        return torch.log(p / (1 - p))
    phi = Normal(torch.tensor(0.0, dtype=torch.float64), 1.0).cdf
    exact = -(phi(edge(k + 1)) - phi(edge(k))).log().sum() / (len(k) * math.log(2))
    assert exact.item() < bpd.item() < exact.item() + 2e-3, (bpd.item(), exact.item())
    assert 6.0 < exact.item() < 9.0  # a sane absolute scale (8 = uniform over 256 levels)


def test_dequantized_nll_checks_alpha():
    with pytest.raises(ValueError, match="alpha"):
        DequantizedNLL(0.0)


# ---------------------------------------------------------------------------------------------
# The family: config, build, sampling, evaluation helpers.


def _cfg(**over) -> FlowConfig:
    raw = {"dataset": "fashion_mnist", "net": {"kind": "realnvp", "hidden": 8, "blocks": 1}}
    return load(FlowConfig, raw | over, "flow.m")


def test_family_is_registered_and_builds_both_kinds():
    assert get("flow").config is FlowConfig and get("flow").role == "generative"
    built = build(_cfg(), (1, 28, 28))
    x = images_to_float(torch.randint(0, 256, (3, 28, 28), dtype=torch.uint8).numpy())
    loss = built.objective(built.net, x, None, torch.Generator().manual_seed(0))
    assert loss.shape == (3,) and torch.isfinite(loss).all()
    again = rebuild(built.arch)
    again.load_state_dict(built.net.state_dict())  # initialised act-norms travel as buffers
    with torch.no_grad():
        torch.testing.assert_close(again(x)[0], built.net(x)[0])
    toy = build(_cfg(dataset="toy2d/rings", net={"kind": "realnvp2d", "layers": 4}), (2,))
    points = _inputs((5, 2), dtype=torch.float32)
    assert isinstance(toy.net, RealNVP2d) and toy.objective(toy.net, points).shape == (5,)


@pytest.mark.parametrize(("over", "message"), [
    ({"dataset": "toy2d/two_moons"}, "net.kind 'realnvp' does not fit"),
    ({"alpha": 0.5}, "flow.m.alpha must be in"),
    ({"temperatures": []}, "flow.m.temperatures must be a non-empty list"),
    ({"net": {"kind": "glow"}}, "flow.m.net.kind must be one of"),
])
def test_config_errors_name_the_key(over, message):
    with pytest.raises(ConfigError, match=message):
        _cfg(**over)


def test_odd_resolution_for_the_scales_is_refused():
    with pytest.raises(ValueError, match="divisible"):
        build(_cfg(net={"kind": "realnvp", "num_scales": 3}), (1, 28, 28))


def test_generate_images_lands_on_pixel_levels():
    net = _randomize(RealNVP(**SMALL_IMAGE), (4, 1, 8, 8))
    x = generate(net, 5, 0.7, generator=torch.Generator().manual_seed(0), alpha=0.05,
                 batch_size=2)
    assert x.shape == (5, 1, 8, 8) and x.min() >= -1 and x.max() <= 1
    assert torch.equal(x, pixel_levels(x) / 127.5 - 1)


def test_generate_points_scales_with_temperature():
    net = RealNVP2d(dim=2, hidden=8, depth=1, layers=2, actnorm=False)  # identity
    a = generate(net, 4000, 1.0, generator=torch.Generator().manual_seed(0))
    b = generate(net, 4000, 0.5, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(b, 0.5 * a)
    assert abs(a.std().item() - 1) < 0.05


def test_kl_report_of_the_identity_flow():
    """q = N(0, I): test NLL is the mean Gaussian NLL, KL = NLL - entropy, positive."""
    net = RealNVP2d(dim=2, hidden=8, depth=1, layers=2, actnorm=False)
    x = sample_toy("eight_gaussians", 2000, torch.Generator().manual_seed(0))
    rep = kl_report(net, "eight_gaussians", x)
    assert rep["test_nll"] == pytest.approx(-Normal(0.0, 1.0).log_prob(x.double()).sum(1)
                                            .mean().item(), rel=1e-6)
    assert rep["kl"] == pytest.approx(rep["test_nll"] - rep["true_entropy"], abs=1e-9)
    assert rep["kl"] > 1.0 and 0 < rep["kl_se"] < 0.1


def test_maximum_likelihood_recovers_a_gaussian(tmp_path: Path):
    """The loop + objective fit N(mu, Sigma) (correlated): the EMA flow's KL = test NLL - the
    closed-form entropy 1 + log(2 pi) + 1/2 log det Sigma ends near 0."""
    cfg = load(FlowConfig, {"dataset": "toy2d/two_moons", "net": {"kind": "realnvp2d",
               "hidden": 32, "depth": 1, "layers": 4}, "steps": 300, "batch_size": 256,
               "lr": 5e-3, "warmup_steps": 20, "log_every": 100, "ckpt_every": 1000},
               "flow.t")
    cov = torch.tensor([[1.0, 0.8], [0.8, 1.0]]) * 0.5
    chol = torch.linalg.cholesky(cov)
    g = torch.Generator().manual_seed(0)
    data = torch.randn(20000, 2, generator=g) @ chol.T + torch.tensor([1.0, -2.0])
    built = build(cfg, (2,))
    with torch_threads(1):  # small matmuls: one thread is fastest (and under pytest-xdist)
        result = train(built.net, built.objective,
                       lambda s: (data[s * 256 % 19744:][:256], None), cfg,
                       RunSpec(seed=0, device=torch.device("cpu"), ckpt_path=tmp_path / "c.pt",
                               config_hash="x", progress=False))
    test = torch.randn(5000, 2, generator=g) @ chol.T + torch.tensor([1.0, -2.0])
    with torch.no_grad():
        nll = FlowNLL()(result.ema.shadow, test).mean().item()
    entropy = 1 + math.log(2 * math.pi) + 0.5 * torch.logdet(cov).item()
    assert 0 <= nll - entropy + 0.02 and nll - entropy < 0.05, (nll, entropy)
