"""Hand-written SGD / Adam vs torch.optim on identical gradient sequences (float64)."""

from __future__ import annotations

import pytest
import torch

from genlab.scratch.layers import Parameter
from genlab.scratch.optim import SGD, Adam

F64 = torch.float64
STEPS = 8


def _run_both(make_ours, make_torch, seed: int = 0):
    """Apply the same random gradients for STEPS steps to both optimisers; return final params."""
    gen = torch.Generator().manual_seed(seed)
    shapes = [(3, 4), (5,), (2, 1, 3)]
    init = [torch.randn(s, generator=gen, dtype=F64) for s in shapes]
    ours = [Parameter(t.clone()) for t in init]
    theirs = [torch.nn.Parameter(t.clone()) for t in init]
    opt_ours, opt_torch = make_ours(ours), make_torch(theirs)
    for _ in range(STEPS):
        for p, q in zip(ours, theirs, strict=True):
            g = torch.randn(p.value.shape, generator=gen, dtype=F64)
            p.grad, q.grad = g.clone(), g.clone()
        opt_ours.step()
        opt_torch.step()
    return [p.value for p in ours], [q.detach() for q in theirs], init


@pytest.mark.parametrize(
    "kw",
    [
        dict(lr=0.1),
        dict(lr=0.05, momentum=0.9),
        dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.01),
        dict(lr=0.02, momentum=0.9, nesterov=True, weight_decay=0.1),
    ],
)
def test_sgd_matches_torch(kw):
    ours, theirs, init = _run_both(lambda p: SGD(p, **kw), lambda p: torch.optim.SGD(p, **kw))
    for a, b, c in zip(ours, theirs, init, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
        assert not torch.equal(a, c)  # the parameters did move


@pytest.mark.parametrize(
    "kw",
    [
        dict(lr=1e-3),
        dict(lr=0.1, betas=(0.8, 0.99), eps=1e-6),
        dict(lr=0.01, weight_decay=0.05),
    ],
)
def test_adam_matches_torch(kw):
    ours, theirs, init = _run_both(lambda p: Adam(p, **kw), lambda p: torch.optim.Adam(p, **kw))
    for a, b, c in zip(ours, theirs, init, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
        assert not torch.equal(a, c)


def test_adam_first_step_is_lr_times_sign_of_gradient():
    # bias correction makes the first update exactly lr * g / (|g| + eps') ~ lr * sign(g)
    p = Parameter(torch.zeros(4, dtype=F64), grad=torch.tensor([2.0, -3.0, 0.5, -1e-3], dtype=F64))
    Adam([p], lr=0.1, eps=1e-12).step()
    torch.testing.assert_close(p.value, torch.tensor([-0.1, 0.1, -0.1, 0.1], dtype=F64))


def test_optimisers_validate_arguments():
    p = [Parameter(torch.zeros(2))]
    with pytest.raises(ValueError, match="lr"):
        SGD(p, lr=-1.0)
    with pytest.raises(ValueError, match="momentum"):
        SGD(p, lr=0.1, momentum=1.5)
    with pytest.raises(ValueError, match="nesterov"):
        SGD(p, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="betas"):
        Adam(p, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="params"):
        Adam([], lr=0.1)
    with pytest.raises(RuntimeError, match="backward"):
        Adam(p).step()  # no gradient yet
