"""benchmarks/gpu/bernoulli_dropout.py (bench_unet's compiled-bernoulli-mask variant) against the
definition of dropout, eager and under torch.compile, where the backward must use the
forward's mask rather than a new draw."""

from __future__ import annotations

import math
import sys
from unittest import mock

import pytest
import torch
import torch.nn.functional as F

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks" / "gpu"))
from bernoulli_dropout import bernoulli_dropout_forward, keep_mask  # noqa: E402


@pytest.fixture
def bernoulli():
    with mock.patch.object(torch.nn.Dropout, "forward", bernoulli_dropout_forward):
        yield


def test_keep_mask_has_the_layout_and_the_keep_rate():
    x = torch.empty(64, 32, 16, 16).contiguous(memory_format=torch.channels_last)
    torch.manual_seed(0)
    m = keep_mask(x.shape, x.stride(), 0.3, x.device)
    assert m.dtype == torch.uint8 and m.stride() == x.stride()
    assert set(m.unique().tolist()) == {0, 1}
    n = m.numel()
    assert abs(int(m.sum()) - 0.7 * n) < 5 * math.sqrt(n * 0.3 * 0.7)  # Binomial(n, 0.7)


def test_eval_and_p0_are_the_identity(bernoulli):
    x = torch.randn(4, 8, 5, 5)
    assert torch.equal(torch.nn.Dropout(0.5).eval()(x), x)
    assert torch.equal(torch.nn.Dropout(0.0).train()(x), x)


def test_output_and_gradient_follow_the_mask(bernoulli):
    torch.manual_seed(0)
    x = torch.randn(16, 8, 12, 12).contiguous(memory_format=torch.channels_last)
    x = x.requires_grad_()
    y = torch.nn.Dropout(0.25).train()(x)
    assert y.is_contiguous(memory_format=torch.channels_last)
    kept = y != 0
    assert torch.allclose(y[kept], x[kept] / 0.75)
    assert abs(kept.float().mean().item() - 0.75) < 0.02
    g = torch.randn_like(y)
    (y * g).sum().backward()
    assert torch.allclose(x.grad, g * kept / 0.75)


@pytest.mark.slow  # compiles with inductor
def test_compiled_backward_uses_the_forward_mask(bernoulli):
    """torch.compile (inductor on the CPU): the gradient is the one of the mask the forward
    drew, so the partitioner saved that mask rather than calling the random op again."""
    torch.manual_seed(0)
    drop = torch.nn.Dropout(0.3).train()
    w = torch.randn(4, 8, 6, 6)
    f = torch.compile(lambda x: F.silu(drop(2 * x)) * w)
    x = torch.randn(4, 8, 6, 6, requires_grad=True)
    y = f(x)
    y.sum().backward()
    scale = (y != 0).float() / 0.7
    _, ref = torch.autograd.functional.vjp(lambda t: F.silu(2 * t * scale) * w, x.detach(),
                                           torch.ones_like(y))
    assert 0.5 < (y != 0).float().mean() < 0.9
    assert torch.allclose(x.grad, ref, atol=1e-5)
