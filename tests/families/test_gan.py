"""Tests of the `gan` family: shape contracts, the spectral-norm Lipschitz bound, the losses'
closed forms, the separation of the two players' gradients in the one-loss simultaneous
update, the mode-coverage metric on exact draws, and a tiny fixed-seed 8-Gaussians run."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from genlab.config import load
from genlab.data.toy2d import gaussian_means, sample_toy
from genlab.families import get
from genlab.metrics.modes import TOY_MODES, mode_coverage
from genlab.models.gan import (
    GAN,
    DCGANDiscriminator,
    DCGANGenerator,
    MLPDiscriminator,
    MLPGenerator,
)
from genlab.objectives.gan import LOSSES, AdversarialLoss, r1_penalty
from genlab.training.loop import optimizer_groups


def _mlp_gan(spectral: bool = True) -> GAN:
    torch.manual_seed(0)
    return GAN("mlp", 4, {"dim": 2, "hidden": 16, "depth": 2},
               {"dim": 2, "hidden": 16, "depth": 2, "spectral": spectral})


# ------------------------------------------------------------------------------- shapes


def test_dcgan_shapes():
    g, d = DCGANGenerator(z_dim=16, channels=1, size=28, width=8), DCGANDiscriminator(
        channels=1, size=28, width=8)
    x = g(torch.randn(5, 16))
    assert x.shape == (5, 1, 28, 28)
    assert x.abs().max() <= 1.0  # tanh: the data's [-1, 1]
    assert d(x).shape == (5,)
    assert DCGANDiscriminator(channels=3, size=32, width=8, spectral=False)(
        torch.randn(2, 3, 32, 32)).shape == (2,)


def test_mlp_shapes_and_latents():
    net = _mlp_gan()
    z = net.latents(7, torch.Generator().manual_seed(0), temperature=0.5)
    assert z.shape == (7, 4)
    assert net(z).shape == (7, 2) and net.discriminator(net(z)).shape == (7,)
    assert MLPGenerator(z_dim=3, dim=5)(torch.randn(2, 3)).shape == (2, 5)
    assert MLPDiscriminator(dim=5)(torch.randn(2, 5)).shape == (2,)


@pytest.mark.parametrize("toy", [True, False])
def test_family_build_and_rebuild(toy):
    fam = get("gan")
    if toy:
        raw = {"dataset": "toy2d/eight_gaussians",
               "net": {"kind": "mlp", "z_dim": 4, "g_width": 8, "d_width": 8, "depth": 1}}
        shape = (2,)
    else:
        raw = {"dataset": "fashion_mnist", "net": {"kind": "dcgan", "z_dim": 8, "g_width": 4,
                                                   "d_width": 4}}
        shape = (1, 28, 28)
    cfg = load(fam.config, raw, "gan.x")
    built = fam.build(cfg, shape, False)
    again = fam.rebuild(built.arch, cfg, False)
    again.load_state_dict(built.net.state_dict())  # same architecture, same keys
    # every parameter is in exactly one optimiser group, at its own lr scale
    groups = optimizer_groups(built.net, built.param_groups, lr=1.0)
    assert [g["lr"] for g in groups] == [cfg.g_lr_scale, cfg.d_lr_scale]
    assert sum(len(g["params"]) for g in groups) == len(list(built.net.parameters()))


def test_config_rejects_mismatched_net():
    with pytest.raises(Exception, match="does not fit"):
        load(get("gan").config, {"dataset": "fashion_mnist", "net": {"kind": "mlp"}}, "gan.x")


# ------------------------------------------------------------------------ spectral norm


def _converge(d: torch.nn.Module, dim: tuple[int, ...]) -> None:
    """Run the power iteration (one step per training forward) to convergence."""
    d.train()
    with torch.no_grad():
        for _ in range(300):
            d(torch.randn(4, *dim))
    d.eval()


def test_spectral_norm_makes_mlp_discriminator_1_lipschitz():
    torch.manual_seed(0)
    d = MLPDiscriminator(dim=2, hidden=32, depth=3, spectral=True)
    with torch.no_grad():  # large raw weights: without the norm the bound fails badly
        for p in d.parameters():
            p.mul_(5.0)
    _converge(d, (2,))
    # each linear map's largest singular value is 1 (oracle: SVD of the normalised weight)
    for layer in d.body:
        if isinstance(layer, torch.nn.Linear):
            assert torch.linalg.matrix_norm(layer.weight.detach(), ord=2).item() == (
                pytest.approx(1.0, abs=1e-3))
    # so the input Jacobian's operator norm is <= 1 everywhere (LeakyReLU slopes are <= 1)
    for x in torch.randn(20, 2) * 2:
        jac = torch.autograd.functional.jacobian(lambda v: d(v[None]), x)  # (1, 2)
        assert jac.norm().item() <= 1.0 + 1e-3
    # the same network without the norm is far from 1-Lipschitz: the check above can fail
    torch.manual_seed(0)
    raw = MLPDiscriminator(dim=2, hidden=32, depth=3, spectral=False)
    with torch.no_grad():
        for p in raw.parameters():
            p.mul_(5.0)
    x = torch.randn(20, 2) * 2
    norms = [torch.autograd.functional.jacobian(lambda v: raw(v[None]), xi).norm() for xi in x]
    assert max(norms).item() > 10.0


def test_spectral_norm_bounds_dcgan_discriminator_differences():
    torch.manual_seed(0)
    d = DCGANDiscriminator(channels=1, size=8, width=4, spectral=True)
    _converge(d, (1, 8, 8))
    # a conv's operator norm is at most sqrt(overlap) * ||reshaped kernel||_2; with kernel 4,
    # stride 2 each input pixel is read by at most 2 x 2 windows, so each conv is <= 2 and D
    # is at most 4-Lipschitz
    x, y = torch.randn(64, 1, 8, 8), torch.randn(64, 1, 8, 8)
    with torch.no_grad():
        ratio = (d(x) - d(y)).abs() / (x - y).flatten(1).norm(dim=1)
    assert ratio.max().item() <= 4.0


# ------------------------------------------------------------------------------- losses


def test_losses_closed_forms():
    ns_d, ns_g = LOSSES["nonsaturating"]
    real, fake = torch.tensor([0.0, 2.0]), torch.tensor([0.0, -1.0])
    # -log sigmoid(r) - log(1 - sigmoid(f))
    want = -torch.log(torch.sigmoid(real)) - torch.log(1 - torch.sigmoid(fake))
    assert torch.allclose(ns_d(real, fake), want, atol=1e-6)
    assert ns_d(torch.zeros(1), torch.zeros(1)).item() == pytest.approx(2 * math.log(2))
    assert torch.allclose(ns_g(fake), -torch.log(torch.sigmoid(fake)), atol=1e-6)
    h_d, h_g = LOSSES["hinge"]
    assert h_d(torch.tensor([0.5, 2.0]), torch.tensor([-2.0, 0.0])).tolist() == [0.5, 1.0]
    assert h_g(torch.tensor([0.5])).tolist() == [-0.5]


def test_r1_penalty_of_a_linear_critic():
    # D(x) = w . x has grad_x D = w everywhere: R1 = ||w||^2 per example
    w = torch.tensor([3.0, -4.0])
    x = torch.randn(5, 2, requires_grad=True)
    assert torch.allclose(r1_penalty(x @ w, x), torch.full((5,), 25.0))


@pytest.mark.parametrize("loss", ["nonsaturating", "hinge"])
def test_one_loss_gives_each_player_only_its_own_gradient(loss):
    """The simultaneous update's single backward equals two separate ones: the discriminator's
    parameters get exactly grad L_D (fakes detached, R1 included) and the generator's exactly
    grad L_G through D; L_G leaves no gradient on D and L_D none on G (float64 oracle)."""
    net = _mlp_gan().double().eval()  # eval: spectral norm's vectors stay fixed across calls
    x = sample_toy("eight_gaussians", 16, torch.Generator().manual_seed(1)).double()
    obj = AdversarialLoss(loss, r1_gamma=2.0, r1_every=1)
    obj.set_step(0)
    g_params, d_params = list(net.generator.parameters()), list(net.discriminator.parameters())
    total = obj(net, x, None, torch.Generator().manual_seed(3)).sum()
    grads = torch.autograd.grad(total, g_params + d_params)

    # the oracle: the same latents, each player's loss on its own
    d_loss, g_loss = LOSSES[loss]
    z = net.latents(16, torch.Generator().manual_seed(3))
    fake = net.generator(z)
    xr = x.clone().requires_grad_(True)
    real_logits = net.discriminator(xr)
    l_d = (d_loss(real_logits, net.discriminator(fake.detach()))
           + 2.0 / 2 * r1_penalty(real_logits, xr)).sum()
    l_g = g_loss(net.discriminator(fake)).sum()
    want_d = torch.autograd.grad(l_d, d_params)
    want_g = torch.autograd.grad(l_g, g_params, retain_graph=True)
    # and the cross terms the simultaneous update must not apply
    cross = torch.autograd.grad(l_g, d_params)
    for got, want in zip(grads, want_g + want_d, strict=True):
        assert torch.allclose(got, want, rtol=1e-10, atol=1e-12)
    assert max(c.abs().max().item() for c in cross) > 1e-3  # the test would see a leak


def test_lazy_r1_applies_every_nth_step_times_n():
    net = _mlp_gan().double().eval()
    x = sample_toy("eight_gaussians", 8, torch.Generator().manual_seed(1)).double()
    plain, lazy = AdversarialLoss(r1_gamma=0.0), AdversarialLoss(r1_gamma=1.0, r1_every=4)

    def at(obj, step):
        obj.set_step(step)
        return obj(net, x, None, torch.Generator().manual_seed(0))

    assert torch.equal(at(lazy, 1), at(plain, 1))  # step 1: no penalty
    xr = x.clone().requires_grad_(True)
    r1 = r1_penalty(net.discriminator(xr), xr)
    assert torch.allclose(at(lazy, 4) - at(plain, 4), 4 * 1.0 / 2 * r1, atol=1e-6)


# ------------------------------------------------------------------------ mode coverage


def test_mode_coverage_of_exact_draws_and_of_a_collapse():
    modes = TOY_MODES["eight_gaussians"]()
    c = mode_coverage(sample_toy("eight_gaussians", 40_000, torch.Generator().manual_seed(0)),
                      modes)
    assert c.covered == 8
    # within 3 std in 2-D: the chi-square(2) mass 1 - exp(-9/2) (the modes do not overlap)
    assert c.high_quality == pytest.approx(1 - math.exp(-4.5), abs=3e-3)
    collapsed = gaussian_means()[:1].float() + 0.1 * torch.randn(1000, 2)
    c = mode_coverage(collapsed, modes)
    assert (c.covered, c.high_quality) == (1, 1.0)
    assert c.tv == pytest.approx(7 / 8)


def test_ring_coverage_of_exact_draws():
    c = mode_coverage(sample_toy("rings", 20_000, torch.Generator().manual_seed(0)),
                      TOY_MODES["rings"]())
    assert c.covered == 4 and c.high_quality > 0.98


# --------------------------------------------------------------------- a tiny real run


@pytest.mark.slow
def test_tiny_eight_gaussians_run_covers_all_modes(tmp_path):
    from genlab.data.batches import point_batches
    from genlab.families.gan import generate
    from genlab.training.loop import RunSpec, train

    fam = get("gan")
    cfg = load(fam.config, {
        "dataset": "toy2d/eight_gaussians",
        "net": {"kind": "mlp", "z_dim": 8, "g_width": 64, "d_width": 64, "depth": 3},
        "steps": 1200, "batch_size": 64, "lr": 1e-3, "warmup_steps": 50, "decay": "constant",
        "betas": [0.0, 0.99], "d_lr_scale": 2.0, "r1_gamma": 1.0, "r1_every": 4,
        "ema_half_life": 20000.0, "ckpt_every": 100000, "log_every": 100000}, "gan.x")
    data = sample_toy("eight_gaussians", 20_000, torch.Generator().manual_seed(0)).numpy()
    torch.manual_seed(0)
    built = fam.build(cfg, (2,), False)
    run = RunSpec(seed=0, device=torch.device("cpu"), ckpt_path=tmp_path / "c.pt",
                  config_hash="t", progress=False)
    res = train(built.net, built.objective,
                point_batches(data.astype(np.float32), 64, 0, torch.device("cpu")), cfg, run,
                param_groups=built.param_groups)
    s = generate(res.ema.shadow, 5000, generator=torch.Generator().manual_seed(0))
    c = mode_coverage(s, TOY_MODES["eight_gaussians"]())
    assert c.covered == 8 and c.high_quality > 0.8
