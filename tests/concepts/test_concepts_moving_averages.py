"""Tests of the shared EMA implementation (genlab.training.ema) via its concepts re-export."""

import numpy as np
import pytest
import torch
from torch import nn

from genlab.concepts import moving_averages as ma
from genlab.training import ema as training_ema


def test_reexports_are_the_training_implementation():
    assert ma.ExponentialMovingAverage is training_ema.ExponentialMovingAverage
    assert ma.ModelEMA is training_ema.ModelEMA
    assert ma.simple_moving_average is training_ema.simple_moving_average


@pytest.mark.parametrize("window", [1, 5, 17])
def test_sma_matches_numpy_convolve(window, gen):
    x = torch.randn(60, generator=gen, dtype=torch.float64)
    expected = np.convolve(x.numpy(), np.ones(window) / window, mode="valid")
    assert np.allclose(ma.simple_moving_average(x, window).numpy(), expected)


def test_bias_corrected_ema_is_the_exact_weighted_mean(gen):
    beta, xs = 0.9, torch.randn(25, generator=gen, dtype=torch.float64).tolist()
    ema = ma.ExponentialMovingAverage(beta)
    for t, x in enumerate(xs, start=1):
        value = ema.update(x)
        weights = np.array([beta ** (t - i) for i in range(1, t + 1)])  # x_i weighs beta^(t - i)
        assert value == pytest.approx(float(np.dot(weights, xs[:t]) / weights.sum()))
    assert ema.raw == pytest.approx(float(ema.value) * (1 - beta**len(xs)))  # raw is biased low


def test_ema_weights_and_half_life():
    beta = ma.beta_from_half_life(7.0)
    w = ma.ema_weights(beta, 30)
    assert float(w.sum()) == pytest.approx(1.0)
    assert float(w[-1 - 7] / w[-1]) == pytest.approx(0.5)  # a sample 7 updates old weighs half
    assert ma.beta_from_half_life(1000.0, step_size=100.0) == pytest.approx(0.5 ** 0.1)
    raw = ma.ema_weights(beta, 30, bias_corrected=False)
    assert float(raw.sum()) == pytest.approx(1 - beta**30)


def test_ema_of_constant_and_rejects_bad_beta():
    ema = ma.ExponentialMovingAverage(0.99)
    for _ in range(3):
        value = ema.update(5.0)
    assert value == pytest.approx(5.0)  # corrected from the first step (raw would be ~0.15)
    with pytest.raises((AssertionError, ValueError)):  # ema.py checks with assert today
        ma.ExponentialMovingAverage(1.0)


def test_model_ema_update_is_a_lerp_and_copies_buffers(gen):
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    shadow = ma.ModelEMA(model, half_life=10.0, batch_size=5)
    assert shadow.beta == pytest.approx(0.5 ** 0.5)
    old = [p.clone() for p in shadow.shadow.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen))
        model[1].running_mean.fill_(3.0)
    shadow.update(model)
    for p_ema, p0, p in zip(shadow.shadow.parameters(), old, model.parameters(), strict=True):
        assert torch.allclose(p_ema, shadow.beta * p0 + (1 - shadow.beta) * p)
        assert not p_ema.requires_grad
    assert torch.equal(shadow.shadow[1].running_mean, torch.full((2,), 3.0))


def test_moving_average_demo_shapes(gen):
    d = ma.moving_average_demo(100, window=10, half_life=5.0, generator=gen)
    assert all(v.shape == (100,) for v in d.values())
    assert bool(d["sma"][:9].isnan().all()) and not bool(d["sma"][9:].isnan().any())
    # The raw EMA starts near 0; the corrected one starts at the first sample.
    assert float(d["ema_corrected"][0]) == pytest.approx(float(d["x"][0]))
    assert abs(float(d["ema_raw"][0])) < abs(float(d["x"][0]))


def test_model_ema_rampup_is_edms_capped_half_life():
    """With a ramp-up r the half-life after n images is min(h, r n) (EDM's training loop), so
    the random start's weight in the average vanishes within the first few hundred updates
    instead of keeping 0.5 ** (n / h): checked against a recursion of the stated rule."""
    model = nn.Linear(1, 1, bias=False)
    shadow = ma.ModelEMA(model, half_life=1000.0, batch_size=10, rampup=0.05)
    assert shadow.beta_at(10) == pytest.approx(0.5 ** (10 / 0.5))  # half-life 0.05 * 10
    assert shadow.beta_at(100_000) == pytest.approx(0.5 ** (10 / 1000.0))  # capped at h
    plain = ma.ModelEMA(model, half_life=1000.0, batch_size=10)
    assert plain.beta_at(10) == plain.beta == pytest.approx(0.5 ** 0.01)

    # the weight left on the initial value after 300 updates of 10 images
    keep_ramp = keep_plain = 1.0
    for step in range(300):
        keep_ramp *= 0.5 ** (10 / min(1000.0, 0.05 * 10 * (step + 1)))
        keep_plain *= 0.5 ** (10 / 1000.0)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = ma.ModelEMA(model, half_life=1000.0, batch_size=10, rampup=0.05)
    with torch.no_grad():
        model.weight.fill_(1.0)  # trained weight 1 from the first step on; the start was 0
    for step in range(300):
        ema.update(model, beta=ema.beta_at((step + 1) * 10))
    assert ema.shadow.weight.item() == pytest.approx(1.0 - keep_ramp, abs=1e-6)
    assert keep_plain == pytest.approx(0.5 ** 3) and keep_ramp < 1e-6
