"""Preconditioning wrappers (EDM Table 1, DDPM eps, NCSNv2 score) and classifier-free guidance."""

import pytest
import torch

from genlab.models.precond import (
    ClassifierFreeGuidance,
    DDPMEpsModel,
    DenoiserFromScore,
    EDMPrecond,
    NCSNScore,
    ScoreFromDenoiser,
    edm_coefficients,
)
from genlab.objectives.diffusion import EDMLoss
from tests.diffusion.analytic import ClassGaussians, Gaussian


class Spy(torch.nn.Module):
    """Backbone returning 3 x + noise_label and recording what it was called with."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x, noise_labels, class_labels=None):
        self.calls.append((x, noise_labels, class_labels))
        return 3 * x + noise_labels.view(-1, *([1] * (x.ndim - 1)))


SIGMAS = torch.tensor([1e-3, 0.1, 0.5, 2.0, 80.0], dtype=torch.float64)


def test_edm_coefficient_limits():
    c_skip, c_out, _, _ = edm_coefficients(torch.tensor([1e-8], dtype=torch.float64))
    assert c_skip.item() == pytest.approx(1.0) and c_out.item() == pytest.approx(0.0, abs=1e-7)
    c_skip, c_out, _, _ = edm_coefficients(torch.tensor([1e8], dtype=torch.float64))
    assert c_skip.item() == pytest.approx(0.0, abs=1e-15) and c_out.item() == pytest.approx(0.5)


def test_edm_coefficient_identities():
    c_skip, c_out, c_in, c_noise = edm_coefficients(SIGMAS, sigma_data=0.5)
    torch.testing.assert_close(c_in * (SIGMAS**2 + 0.25).sqrt(), torch.ones_like(SIGMAS))
    torch.testing.assert_close(c_noise, SIGMAS.log() / 4)
    # Unit-variance training target (Appendix B.6): Var[(y - c_skip (y + n)) / c_out] = 1
    # for Var y = sigma_data^2, Var n = sigma^2.
    target_var = ((1 - c_skip) ** 2 * 0.25 + c_skip**2 * SIGMAS**2) / c_out**2
    torch.testing.assert_close(target_var, torch.ones_like(SIGMAS))
    # Table 1's loss weight makes the effective weight lambda c_out^2 = 1.
    torch.testing.assert_close(EDMLoss().weight(SIGMAS) * c_out**2, torch.ones_like(SIGMAS))


def test_edm_precond_feeds_scaled_input_and_c_noise():
    spy = Spy()
    x = torch.randn(3, 1, 2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    sigma = torch.tensor([0.1, 1.0, 10.0], dtype=torch.float64)
    labels = torch.tensor([0, -1, 2])
    out = EDMPrecond(spy, sigma_data=0.5)(x, sigma, labels)
    c_skip, c_out, c_in, c_noise = (c.view(-1, 1, 1, 1) for c in edm_coefficients(sigma))
    x_in, noise_labels, class_labels = spy.calls[0]
    torch.testing.assert_close(x_in, c_in * x)
    torch.testing.assert_close(noise_labels, sigma.log() / 4)
    assert class_labels is labels
    torch.testing.assert_close(out, c_skip * x + c_out * (3 * c_in * x + c_noise))
    # a python-float sigma is broadcast over the batch
    torch.testing.assert_close(EDMPrecond(spy)(x, 1.0), EDMPrecond(spy)(x, torch.ones(3)))


def test_ddpm_eps_model_noise_labels():
    spy = Spy()
    x = torch.zeros(2, 3)
    DDPMEpsModel(spy, noise_label_scale=0.5)(x, torch.tensor([10, 999]))
    torch.testing.assert_close(spy.calls[0][1], torch.tensor([5.0, 499.5]))
    assert spy.calls[0][1].dtype == x.dtype


def test_ncsn_score_divides_by_sigma_and_feeds_log_sigma():
    spy = Spy()
    x = torch.ones(2, 3, dtype=torch.float64)
    sigma = torch.tensor([0.5, 4.0], dtype=torch.float64)
    out = NCSNScore(spy)(x, sigma)
    torch.testing.assert_close(spy.calls[0][1], sigma.log())
    torch.testing.assert_close(out, (3 + sigma.log())[:, None] / sigma[:, None] * x)


def test_score_denoiser_round_trip_is_tweedie():
    g = Gaussian([1.0, -2.0], 0.5)
    x = torch.randn(5, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    sigma = torch.tensor([0.01, 0.3, 1.0, 3.0, 30.0], dtype=torch.float64)
    torch.testing.assert_close(DenoiserFromScore(g.score)(x, sigma), g.denoiser(x, sigma))
    torch.testing.assert_close(ScoreFromDenoiser(g.denoiser)(x, sigma), g.score(x, sigma))


# Classifier-free guidance: D_w = D_cond + w (D_cond - D_uncond).

def _cfg_case():
    model = ClassGaussians([[-2.0, 0.0], [2.0, 0.0], [0.0, 3.0]], s=0.4)
    gen = torch.Generator().manual_seed(0)
    x = 2 * torch.randn(6, 2, dtype=torch.float64, generator=gen)
    sigma = torch.tensor([0.1, 0.5, 1.0, 2.0, 5.0, 1.0], dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    return model, x, sigma, labels


def test_cfg_w0_is_the_conditional_model():
    model, x, sigma, labels = _cfg_case()
    guided = ClassifierFreeGuidance(model.denoiser, w=0.0)(x, sigma, labels)
    torch.testing.assert_close(guided, model.denoiser(x, sigma, labels), rtol=0, atol=1e-15)


def test_cfg_formula_and_single_batched_call():
    model, x, sigma, labels = _cfg_case()
    calls = []

    def counted(x_, sigma_, labels_):
        calls.append(len(x_))
        return model.denoiser(x_, sigma_, labels_)

    w = 2.5
    guided = ClassifierFreeGuidance(counted, w=w)(x, sigma, labels)
    assert calls == [12]  # both branches in one call
    d_cond = model.denoiser(x, sigma, labels)
    d_uncond = model.denoiser(x, sigma, torch.full_like(labels, -1))
    assert not torch.allclose(d_cond, d_uncond)
    torch.testing.assert_close(guided, d_cond + w * (d_cond - d_uncond))
    # w = -1 is the unconditional model; labels=None too
    torch.testing.assert_close(ClassifierFreeGuidance(model.denoiser, -1.0)(x, sigma, labels),
                               d_uncond)


def test_cfg_ignores_w_when_the_model_ignores_labels():
    g = Gaussian([0.5, -0.5], 0.7)
    _, x, sigma, labels = _cfg_case()
    outs = [ClassifierFreeGuidance(g.denoiser, w)(x, sigma, labels) for w in (0, 0.5, 1, 2, 4)]
    for out in outs[1:]:
        torch.testing.assert_close(out, outs[0])



def test_cfg_passes_integer_timesteps_through():
    ab = torch.linspace(0.99, 0.01, 10, dtype=torch.float64)
    eps = Gaussian([0.5, -0.5], 0.7).eps_model(ab)  # indexes ab[t]: needs int64 t
    _, x, _, labels = _cfg_case()
    t = torch.tensor([0, 3, 9, 2, 5, 7])
    torch.testing.assert_close(ClassifierFreeGuidance(eps, 1.5)(x, t, labels), eps(x, t))


def test_ncsn_denoiser_parametrization_is_score_from_an_edm_denoiser():
    """method.parametrization = denoiser: s = (D - x) / sigma^2 with D = EDMPrecond(backbone),
    and NCSNLoss becomes 1/2 ||(D(x~) - x) / sigma||^2 (the sigma^2-weighted DSM of Eq. 6)."""
    from genlab.families.diffusion import METHODS
    from genlab.families.diffusion.config import NCSNConfig
    from genlab.objectives.diffusion import NCSNLoss

    wrap = METHODS["ncsn"].wrap

    torch.manual_seed(0)
    backbone = Spy()
    assert isinstance(wrap(NCSNConfig(), backbone), NCSNScore)
    model = wrap(NCSNConfig(parametrization="denoiser", sigma_data=0.7), backbone)
    assert isinstance(model, ScoreFromDenoiser) and isinstance(model.denoiser, EDMPrecond)
    x = torch.randn(5, 3, 4, 4, dtype=torch.float64)
    sigma = torch.tensor([0.01, 0.3, 1.0, 7.0, 40.0], dtype=torch.float64)
    d = EDMPrecond(backbone, sigma_data=0.7)(x, sigma)
    torch.testing.assert_close(model(x, sigma), (d - x) / sigma.view(-1, 1, 1, 1) ** 2)

    ladder = torch.tensor([0.1, 1.0, 10.0], dtype=torch.float64)
    losses = NCSNLoss(ladder)(model, x, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)  # the loss's draws: sigma index, then z
    s = ladder[torch.randint(3, (5,), generator=g)].view(-1, 1, 1, 1)
    noisy = x + s * torch.randn(x.shape, generator=g, dtype=x.dtype)
    want = 0.5 * (((EDMPrecond(backbone, sigma_data=0.7)(noisy, s.flatten()) - x) / s) ** 2)
    torch.testing.assert_close(losses, want.flatten(1).mean(1))

    # weighting = unit: lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2 on
    # ||D - x||^2, Karras et al. 2022's loss weight (Table 1), on the same draws.
    unit = NCSNLoss(ladder, weighting="unit", sigma_data=0.7)(
        model, x, generator=torch.Generator().manual_seed(3))
    d_err = (EDMPrecond(backbone, sigma_data=0.7)(noisy, s.flatten()) - x) ** 2
    lam = (s**2 + 0.7**2) / (s * 0.7) ** 2
    torch.testing.assert_close(unit, 0.5 * (lam * d_err).flatten(1).mean(1))
