"""Layer classes + Sequential manual backprop vs the equivalent torch.nn model (float64)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from genlab.scratch import layers as L

F64 = torch.float64


def _mixed_models(gen: torch.Generator):
    """A scratch Sequential touching every layer type, and its torch.nn twin (same weights)."""
    kw = dict(generator=gen, dtype=F64)
    ours = L.Sequential(
        L.Conv2d(2, 4, 3, padding=2, dilation=2, groups=2, **kw), L.ReLU(),  # (B, 4, 8, 8)
        L.AvgPool2d(2),  # (B, 4, 4, 4)
        L.ConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1, **kw),  # (B, 3, 8, 8)
        L.Sigmoid(),
        L.MaxPool2d(3, stride=2, padding=1),  # (B, 3, 4, 4)
        L.Flatten(), L.Linear(48, 5, **kw),
    )  # fmt: skip
    twin = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=2, dilation=2, groups=2), nn.ReLU(),
        nn.AvgPool2d(2),
        nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1),
        nn.Sigmoid(),
        nn.MaxPool2d(3, stride=2, padding=1),
        nn.Flatten(), nn.Linear(48, 5),
    ).to(F64)  # fmt: skip
    copy_weights(ours, twin)
    return ours, twin


def copy_weights(ours: L.Sequential, twin: nn.Module) -> None:
    """Load the scratch parameters into the torch twin (same order, same layouts)."""
    theirs = list(twin.parameters())
    assert len(theirs) == len(ours.parameters())
    with torch.no_grad():
        for p, q in zip(ours.parameters(), theirs, strict=True):
            q.copy_(p.value)


def test_sequential_backward_matches_torch_autograd():
    gen = torch.Generator().manual_seed(0)
    ours, twin = _mixed_models(gen)
    x = torch.randn(3, 2, 8, 8, generator=gen, dtype=F64)
    dy = torch.randn(3, 5, generator=gen, dtype=F64)
    leaf = x.clone().requires_grad_()
    y_ref = twin(leaf)
    y_ref.backward(dy)
    y = ours.forward(x)
    dx = ours.backward(dy)
    torch.testing.assert_close(y, y_ref.detach(), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(dx, leaf.grad, rtol=1e-10, atol=1e-12)
    for p, q in zip(ours.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-10, atol=1e-12)


def test_backward_overwrites_gradients_instead_of_accumulating():
    gen = torch.Generator().manual_seed(1)
    layer = L.Linear(3, 2, generator=gen, dtype=F64)
    x, dy = torch.randn(4, 3, dtype=F64), torch.randn(4, 2, dtype=F64)
    layer.forward(x)
    layer.backward(dy)
    first = layer.weight.grad.clone()
    layer.forward(x)
    layer.backward(dy)
    torch.testing.assert_close(layer.weight.grad, first)
    torch.testing.assert_close(first, dy.t() @ x)


def test_backward_without_forward_raises():
    layer = L.ReLU()
    with pytest.raises(RuntimeError, match="without a forward"):
        layer.backward(torch.ones(2))
    layer.forward(torch.ones(2))
    layer.backward(torch.ones(2))
    with pytest.raises(RuntimeError, match="without a forward"):
        layer.backward(torch.ones(2))  # the cache is consumed by the first backward


def test_flatten_checks_the_incoming_gradient_shape():
    flat = L.Flatten()
    assert flat.forward(torch.zeros(2, 3, 4, 5)).shape == (2, 60)
    with pytest.raises(ValueError, match="dy: expected shape"):
        flat.backward(torch.zeros(2, 59))


def test_he_initialisation_scale_and_seed_determinism():
    conv = L.Conv2d(64, 128, 3, generator=torch.Generator().manual_seed(5))
    fan_in = 64 * 9
    std = conv.weight.value.std().item()
    assert abs(std / (2.0 / fan_in) ** 0.5 - 1) < 0.02  # 73k samples: ~0.3% sampling error
    assert torch.count_nonzero(conv.bias.value) == 0
    again = L.Conv2d(64, 128, 3, generator=torch.Generator().manual_seed(5))
    assert torch.equal(conv.weight.value, again.weight.value)
