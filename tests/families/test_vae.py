"""The `vae` family: the likelihood heads against closed forms, the reparameterised draw's
moments and pathwise gradient, the KL and free bits, the ELBO / IWAE bounds on a linear-Gaussian
VAE whose log p(x) is closed form, the KL warm-up across a resumed run of the real training
loop, bits/dim conventions, shape contracts, and the toy evaluation end to end."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from genlab import families
from genlab.config import ConfigError, EvaluateConfig, LoopConfig, load
from genlab.data.toy2d import sample_toy
from genlab.families.vae.config import VAEConfig
from genlab.metrics.likelihood import (
    IMAGE_LEVEL_WIDTH,
    active_units,
    bits_per_dim,
    importance_weighted_bounds,
    level_nll,
)
from genlab.models.vae import (
    MLPVAE,
    BernoulliHead,
    ConvVAE,
    DiscretisedLogisticHead,
    GaussianHead,
)
from genlab.objectives.vae import (
    ELBOLoss,
    free_bits_kl,
    gaussian_kl,
    log_importance_weights,
    reparameterise,
)
from genlab.training.loop import RunSpec, train

LEVELS = torch.arange(256, dtype=torch.float64) / 127.5 - 1  # the 256 pixel values in [-1, 1]


# ---------------------------------------------------------------------------------------------
# Likelihood heads.


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 2e-5)])
@pytest.mark.parametrize("mu, log_s", [(0.0, -2.0), (0.37, -7.0), (-0.999, -4.0), (1.4, 0.5),
                                       (-3.0, -1.0), (0.2, 3.0)])
def test_discretised_logistic_sums_to_one_over_the_256_levels(mu, log_s, dtype, tol):
    head = DiscretisedLogisticHead("per_pixel")
    x = LEVELS.to(dtype).view(256, 1, 1, 1)
    out = torch.tensor([mu, log_s], dtype=dtype).view(1, 2, 1, 1).expand(256, 2, 1, 1)
    p = head.log_prob(out, x).double().exp()
    assert abs(p.sum().item() - 1.0) < tol
    # each inner bin against the logistic CDF (a sigmoid) evaluated directly, in float64
    s = math.exp(max(log_s, head.MIN_LOG_SCALE))
    cdf = lambda v: torch.sigmoid((v - mu) / s)  # noqa: E731
    h = 1 / 255
    direct = torch.cat([cdf(LEVELS[:1] + h), cdf(LEVELS[1:-1] + h) - cdf(LEVELS[1:-1] - h),
                        1 - cdf(LEVELS[-1:] - h)])
    assert torch.allclose(p, direct, atol=tol, rtol=1e-4 if dtype == torch.float32 else 1e-9)


def test_discretised_logistic_is_finite_in_the_far_tail_and_shared_scale_sums_to_one():
    head = DiscretisedLogisticHead("per_pixel")
    x = torch.tensor([1.0, -1.0, 0.0]).view(3, 1, 1, 1)
    out = torch.tensor([[-1.0, -7.0], [1.0, -7.0], [0.9, -7.0]]).view(3, 2, 1, 1)
    out.requires_grad_(True)
    ll = head.log_prob(out, x)
    ll.sum().backward()
    assert torch.isfinite(ll).all() and torch.isfinite(out.grad).all()
    assert ll[2] < -100  # 0.9 is 115 scale units (e^-7) away from the bin at 0
    shared = DiscretisedLogisticHead("shared", init_log_scale=-1.5)
    assert shared.channels == 1
    mu = torch.full((256, 1, 1, 1), 0.1)
    p = shared.log_prob(mu, LEVELS.float().view(256, 1, 1, 1)).double().exp()
    assert abs(p.sum().item() - 1.0) < 2e-5
    assert sum(t.numel() for t in shared.parameters()) == 1  # the one learned log-scale


def test_log_sigmoid_matches_torch_over_a_wide_range():
    from genlab.models.vae import _log_sigmoid

    y = torch.linspace(-200, 200, 40001, dtype=torch.float64)
    # absolute: for y > 37, log(1 + e^-y) rounds to 0 where the truth is -e^-y ~ -1e-16
    assert torch.allclose(_log_sigmoid(y), F.logsigmoid(y), rtol=1e-12, atol=1e-14)
    y32 = y.float()  # float32: within a few ulps of the float64 value
    assert torch.allclose(_log_sigmoid(y32).double(), F.logsigmoid(y), rtol=1e-6, atol=1e-6)


def test_discretised_logistic_draws_are_levels_with_the_right_mean():
    head = DiscretisedLogisticHead("per_pixel")
    out = torch.tensor([0.2, math.log(0.05)]).view(1, 2, 1, 1).expand(20000, 2, 1, 1)
    x = head.sample(out, torch.Generator().manual_seed(0))
    k = (x + 1) * 127.5
    assert torch.allclose(k, k.round(), atol=1e-4) and x.min() >= -1 and x.max() <= 1
    # logistic std = s pi / sqrt(3) = 0.0907: mean within 5 standard errors
    assert abs(x.mean().item() - 0.2) < 5 * 0.0907 / math.sqrt(20000)


def test_bernoulli_head_is_binary_cross_entropy_on_intensities():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (4, 1, 5, 5), generator=g).double() / 127.5 - 1
    logits = torch.randn(4, 1, 5, 5, generator=g, dtype=torch.float64)
    p = torch.sigmoid(logits)
    expected = -F.binary_cross_entropy(p, (x + 1) / 2, reduction="none").flatten(1).sum(1)
    assert torch.allclose(BernoulliHead().log_prob(logits, x), expected, atol=1e-10)
    assert torch.allclose(BernoulliHead().mean(logits), 2 * p - 1)


@pytest.mark.parametrize("variance", ["learned", "shared", "fixed"])
def test_gaussian_head_against_torch_normal(variance):
    head = GaussianHead(dim=2, variance=variance, sigma=0.3, sigma_min=0.01).double()
    g = torch.Generator().manual_seed(1)
    out = torch.randn(6, 2 * head.channels, generator=g, dtype=torch.float64)
    x = torch.randn(6, 2, generator=g, dtype=torch.float64)
    mu = out[:, :2]
    sigma = {"learned": 0.01 + F.softplus(out[:, 2:]), "shared": torch.full((6, 2), 0.3),
             "fixed": torch.full((6, 2), 0.3)}[variance].double()
    expected = torch.distributions.Normal(mu, sigma).log_prob(x).sum(1)
    assert torch.allclose(head.log_prob(out, x), expected, atol=1e-10)


# ---------------------------------------------------------------------------------------------
# Reparameterisation, KL, free bits.


def test_reparameterised_draw_has_the_posterior_moments_and_pathwise_gradient():
    n = 200_000
    mu = torch.tensor([0.5, -2.0], dtype=torch.float64).repeat(n, 1).requires_grad_(True)
    var = torch.tensor([0.25, 4.0], dtype=torch.float64)
    logvar = var.log().repeat(n, 1).requires_grad_(True)
    z = reparameterise(mu, logvar, torch.Generator().manual_seed(0))
    se_mean = (var / n).sqrt()
    assert ((z.mean(0) - mu[0]).abs() < 4 * se_mean).all()
    assert ((z.var(0) / var - 1).abs() < 4 * math.sqrt(2 / n)).all()
    # d/dlogvar E[z^2] = d/dlogvar (mu^2 + e^logvar) = e^logvar; d/dmu = 2 mu
    z.pow(2).mean(0).sum().backward()
    grad_logvar, grad_mu = logvar.grad.sum(0), mu.grad.sum(0)
    assert ((grad_logvar / var - 1).abs() < 0.02).all()
    assert torch.allclose(grad_mu, 2 * mu[0].detach(), atol=0.02)


def test_gaussian_kl_against_the_closed_form_of_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mu = 2 * torch.randn(64, 5, generator=g, dtype=torch.float64)
    logvar = 2 * torch.randn(64, 5, generator=g, dtype=torch.float64)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    assert torch.allclose(gaussian_kl(mu, logvar), torch.distributions.kl_divergence(q, p),
                          atol=1e-12)
    assert gaussian_kl(torch.zeros(1, 3), torch.zeros(1, 3)).abs().max() == 0


def test_free_bits_floor_each_dimension_and_stop_its_gradient():
    kl = torch.tensor([[0.1, 2.0, 0.4], [0.3, 4.0, 0.8]], requires_grad=True)  # means .2, 3, .6
    out = free_bits_kl(kl, 0.5)
    assert out.shape == (2,)
    assert torch.isclose(out.mean(), torch.tensor(0.5 + 3.0 + 0.6))  # sum_j max(0.5, mean KL_j)
    out.mean().backward()
    assert torch.equal(kl.grad, torch.tensor([[0.0, 0.5, 0.5], [0.0, 0.5, 0.5]]))
    assert torch.equal(free_bits_kl(kl, 0.0), kl.sum(1))


# ---------------------------------------------------------------------------------------------
# The tractable case: a linear-Gaussian VAE, p(z) = N(0, I), p(x | z) = N(W z + b, s^2 I), so
# p(x) = N(b, W W^T + s^2 I). The encoder is the exact posterior mean with the exact marginal
# posterior variances but no correlations: a diagonal q, so the ELBO is strictly below log p.


def linear_gaussian_vae(dim: int = 3, latent: int = 2, s: float = 0.5):
    assert (dim, latent) == (3, 2)
    g = torch.Generator().manual_seed(3)
    # correlated columns: a strongly correlated posterior, which the diagonal q cannot match
    W = torch.tensor([[1.0, 0.8], [0.6, 1.0], [0.9, 0.7]], dtype=torch.float64)
    b = torch.randn(dim, generator=g, dtype=torch.float64)
    net = MLPVAE(dim=dim, depth=0, latent=latent, variance="fixed", sigma=s, sigma_min=0.0)
    net = net.double()
    post_cov = torch.linalg.inv(torch.eye(latent, dtype=torch.float64) + W.T @ W / s**2)
    A = post_cov @ W.T / s**2  # posterior mean = A (x - b)
    enc, dec = net.encoder[0], net.decoder[0]
    with torch.no_grad():
        enc.weight.zero_()
        enc.weight[:latent] = A
        enc.bias[:latent] = -A @ b
        enc.bias[latent:] = post_cov.diagonal().log()
        dec.weight.copy_(W)
        dec.bias.copy_(b)
    marginal = torch.distributions.MultivariateNormal(b, W @ W.T + s**2 * torch.eye(dim))
    return net, marginal, (W, b, s)


def closed_form_elbo(net, x, W, b, s):
    """E_q[log p(x | z)] - KL(q || p) for the linear decoder, in closed form."""
    mu, logvar = net.encode(x)
    var = logvar.exp()
    resid = x - mu @ W.T - b
    trace = (var[:, None, :] * W.pow(2)[None]).sum((1, 2))  # tr(W diag(var) W^T)
    d = x.shape[1]
    recon = -0.5 * d * math.log(2 * math.pi * s**2) - (resid.pow(2).sum(1) + trace) / (2 * s**2)
    return recon - gaussian_kl(mu, logvar).sum(1)


def test_linear_gaussian_vae_elbo_below_iwae_below_log_px_and_iwae_converges():
    net, marginal, (W, b, s) = linear_gaussian_vae()
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)  # MultivariateNormal.sample takes no generator
    x = marginal.sample((4,))
    log_px = marginal.log_prob(x)  # (4,)
    with torch.no_grad():
        elbo_exact = closed_form_elbo(net, x, W, b, s)
    assert (elbo_exact < log_px - 1e-3).all()  # the diagonal q is not the posterior
    reps = 200
    x_rep = x.repeat(reps, 1)  # (reps * 4, 3): independent bound estimates per example
    means, ses = [], []
    for k in (1, 10, 100, 1000):
        elbo, iwae = importance_weighted_bounds(
            lambda xc, kc: log_importance_weights(net, xc, kc, g), x_rep, k, batch=4000)
        means.append(iwae.view(reps, 4).mean(0))
        ses.append(iwae.view(reps, 4).std(0) / math.sqrt(reps))
    # the mean log weight of k = 1000 draws estimates the ELBO
    elbo = elbo.view(reps, 4)
    assert ((elbo.mean(0) - elbo_exact).abs() < 4 * elbo.std(0) / math.sqrt(reps) + 1e-9).all()
    assert (means[0] - elbo_exact).abs().max() < 4 * ses[0].max()  # L_1 is the ELBO
    for lo, hi, se_lo, se_hi in zip(means[:-1], means[1:], ses[:-1], ses[1:], strict=True):
        assert (hi > lo - 3 * (se_lo + se_hi)).all()  # E[L_k] increases with k ...
    assert (means[-1] < log_px + 4 * ses[-1]).all()  # ... stays below log p(x) ...
    gap_1, gap_1000 = log_px - elbo_exact, log_px - means[-1]
    assert (gap_1 > 1.0).all()  # (the diagonal q's KL to the posterior: 1.9 nats)
    assert (gap_1000.abs() < 0.01 * gap_1 + 4 * ses[-1]).all()  # ... and reaches it


def test_importance_weighted_bounds_assemble_chunks_of_draws_and_examples():
    x = torch.tensor([[0.0], [1.0], [-2.0], [5.0], [3.0]], dtype=torch.float64)

    def log_weights(xc, kc):  # draw i of a chunk gets x + (i mod 2); chunk sizes are even
        return xc[:, 0] + (torch.arange(kc, dtype=torch.float64) % 2)[:, None]  # (kc, m)

    expected_elbo = x[:, 0] + 0.5
    expected_iwae = x[:, 0] + math.log((1 + math.e) / 2)
    for k, batch in ((100, 30), (10, 25), (4, 1000)):  # chunks of draws; 2 examples; all
        elbo, iwae = importance_weighted_bounds(log_weights, x, k, batch)
        assert elbo.dtype == iwae.dtype == torch.float64
        assert torch.allclose(elbo, expected_elbo) and torch.allclose(iwae, expected_iwae)


# ---------------------------------------------------------------------------------------------
# Likelihood conventions.


def test_bits_per_dim_of_known_densities():
    d = 784
    assert bits_per_dim(d * math.log(256), d) == pytest.approx(8.0)  # uniform pmf: 8 bits
    # the uniform density over [-1 - 1/255, 1 + 1/255]^d, genlab's 256 bins of width 1/127.5
    nll_x = d * math.log(256 * IMAGE_LEVEL_WIDTH)
    assert bits_per_dim(level_nll(nll_x, d), d) == pytest.approx(8.0)
    # [0, 1) data, level width 1/256: the flows papers' + D log 256
    assert level_nll(0.0, d, 1 / 256) == pytest.approx(d * math.log(256))
    # a Gaussian density of std t on genlab's image scale: its bits/dim on the level scale is
    # that of a Gaussian of std t * 127.5, (1/2) log2(2 pi e (127.5 t)^2) per dimension
    t = 0.1
    nll_x = d * 0.5 * math.log(2 * math.pi * math.e * t**2)  # its entropy, in nats
    expected = 0.5 * math.log2(2 * math.pi * math.e * (127.5 * t) ** 2)
    assert bits_per_dim(level_nll(nll_x, d), d) == pytest.approx(expected)


def test_active_units_count_dimensions_whose_posterior_mean_varies():
    g = torch.Generator().manual_seed(0)
    stds = torch.tensor([1.0, 0.2, 0.05, 0.0])  # variances 1, 0.04, 0.0025, 0
    means = torch.randn(20000, 4, generator=g) * stds
    count, var = active_units(means)
    assert count == 2 and torch.allclose(var.float(), stds**2, atol=3e-3)


# ---------------------------------------------------------------------------------------------
# Shape contracts and the family's wiring.


@pytest.mark.parametrize("likelihood, scale, channels",
                         [("bernoulli", "per_pixel", 1), ("logistic", "per_pixel", 2),
                          ("logistic", "shared", 1)])
@pytest.mark.parametrize("widths", [(8, 16), (8, 8, 16)])  # 28 -> 7, and 28 -> 4 (odd sides)
def test_conv_vae_shapes(likelihood, scale, channels, widths):
    net = ConvVAE(in_channels=1, size=28, widths=widths, latent=5, likelihood=likelihood,
                  logistic_scale=scale)
    x = torch.randint(0, 256, (3, 1, 28, 28)).float() / 127.5 - 1
    mu, logvar = net.encode(x)
    assert mu.shape == logvar.shape == (3, 5)
    out = net.decode(mu)
    assert out.shape == (3, channels, 28, 28)
    assert net.log_likelihood(x, mu).shape == (3,)
    recon = net(x)
    assert recon.shape == x.shape and recon.min() >= -1 and recon.max() <= 1
    assert net.head.sample(out, torch.Generator().manual_seed(0)).shape == x.shape
    loss = ELBOLoss(beta=1.0)(net, x, None, torch.Generator().manual_seed(0))
    assert loss.shape == (3,) and torch.isfinite(loss).all()
    loss.mean().backward()
    assert all(p.grad is not None for p in net.parameters())
    assert log_importance_weights(net, x, 4, None).shape == (4, 3)


def test_mlp_vae_shapes():
    net = MLPVAE(dim=2, hidden=16, depth=2, latent=3)
    x = torch.randn(7, 2)
    mu, logvar = net.encode(x)
    assert mu.shape == logvar.shape == (7, 3)
    assert net.decode(mu).shape == (7, 4)  # (mu, raw sigma) per dimension
    assert net(x).shape == (7, 2) and net.log_likelihood(x, mu).shape == (7,)
    assert ELBOLoss()(net, x, None, None).shape == (7,)


def vae_config(**over) -> VAEConfig:
    raw = {"dataset": "toy2d/two_moons",
           "model": {"kind": "mlp", "hidden": 16, "depth": 2, "latent": 2,
                     "likelihood": "gaussian"}} | over
    return load(VAEConfig, raw, "vae.m")


def test_family_builds_and_rebuilds_the_same_network():
    fam = families.get("vae")
    built = fam.build(vae_config(objective={"beta": 0.5, "warmup_steps": 7, "free_bits": 0.1}),
                      (2,))
    assert isinstance(built.objective, ELBOLoss) and built.objective.warmup_steps == 7
    again = fam.rebuild(built.arch, None)
    assert again.state_dict().keys() == built.net.state_dict().keys()
    conv = load(VAEConfig, {"dataset": "fashion_mnist",
                            "model": {"kind": "conv", "likelihood": "logistic"}}, "vae.f")
    assert isinstance(fam.build(conv, (1, 28, 28)).net, ConvVAE)


@pytest.mark.parametrize("raw, words", [
    ({"dataset": "toy2d/rings", "model": {"kind": "mlp", "likelihood": "logistic"}},
     "does not fit kind"),
    ({"dataset": "toy2d/rings", "model": {"kind": "conv", "likelihood": "logistic"}},
     "toy2d needs mlp"),
    ({"dataset": "fashion_mnist", "model": {"kind": "conv", "likelihood": "gaussian"}},
     "does not fit kind"),
])
def test_config_rejects_mismatched_choices(raw, words):
    with pytest.raises(ConfigError, match=words):
        load(VAEConfig, raw, "vae.m")


# ---------------------------------------------------------------------------------------------
# The KL warm-up across a resume, through the real training loop.


class RecordingELBO(ELBOLoss):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.weights: list[float] = []

    def __call__(self, net, x, cond=None, generator=None):
        self.weights.append(self.kl_weight)
        return super().__call__(net, x, cond, generator)


def run_loop(steps: int, ckpt: Path) -> tuple[RecordingELBO, list[dict]]:
    torch.manual_seed(0)
    net = MLPVAE(dim=2, hidden=8, depth=1, latent=2)
    objective = RecordingELBO(beta=0.5, warmup_steps=10)
    data = sample_toy("two_moons", 64, torch.Generator().manual_seed(0))
    cfg = LoopConfig(steps=steps, batch_size=16, warmup_steps=0, decay="constant", ckpt_every=5,
                     log_every=1)
    res = train(net, objective, lambda s: (data[(s % 4) * 16:(s % 4 + 1) * 16], None), cfg,
                RunSpec(seed=0, device=torch.device("cpu"), ckpt_path=ckpt, config_hash="h",
                        progress=False))
    return objective, res.history


def test_kl_warmup_follows_the_step_across_a_resume(tmp_path):
    whole, history = run_loop(8, tmp_path / "a" / "last.pt")
    assert whole.weights == pytest.approx([0.5 * s / 10 for s in range(8)])
    first, _ = run_loop(5, tmp_path / "b" / "last.pt")  # stops at step 5 with a checkpoint
    resumed, history_b = run_loop(8, tmp_path / "b" / "last.pt")  # a fresh objective at step 0
    assert first.weights == whole.weights[:5]
    assert resumed.weights == whole.weights[5:]  # 0.25, not 0: the ramp continues
    assert [r["loss"] for r in history_b] == pytest.approx([r["loss"] for r in history])


# ---------------------------------------------------------------------------------------------
# The toy evaluation end to end on a small untrained model.


def test_evaluate_points_writes_its_outputs(tmp_path):
    from genlab.families.vae.evaluate import evaluate

    cfg = vae_config(iwae_k=8, iwae_n=40, eval_samples=300, temperatures=[1.0, 0.5])
    torch.manual_seed(0)
    net = families.get("vae").build(cfg, (2,)).net.eval()
    test_x = sample_toy("two_moons", 500, torch.Generator().manual_seed(1)).numpy()
    ctx = families.EvalContext(
        name="m", cfg=cfg, net=net, settings=EvaluateConfig(toy_n=300, swd_projections=32),
        seed=0, device=torch.device("cpu"), bf16=False, arrays=lambda key: test_x,
        evaluator=tmp_path / "none.pt", figures=tmp_path / "fig", samples=tmp_path / "s.npz",
        sweep=tmp_path / "sweep.csv")
    metrics = evaluate(ctx)
    for key in ("nll_elbo", "nll_iwae", "sample_swd", "swd_over_floor", "active_units",
                "kl_iwae_bound", "true_nll"):
        assert math.isfinite(metrics[key]), key
    assert metrics["nll_iwae"] <= metrics["nll_elbo"]  # L_k >= the mean log weight, always
    assert np.load(ctx.samples)["points"].shape == (300, 2)
    assert (tmp_path / "fig" / "scatter.png").is_file()
    assert len((tmp_path / "sweep.csv").read_text().splitlines()) == 1 + 4  # 2 T x draw/mean
