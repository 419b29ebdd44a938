"""The 2-D toy score / denoiser MLP: interface, null labels, gradients, determinism."""

from __future__ import annotations

import pytest
import torch

from genlab.models.score_mlp import ScoreMLP
from tests.nn.helpers import grad_report, randomize_

torch.set_num_threads(1)


def _net(**kw) -> ScoreMLP:
    torch.manual_seed(0)
    return ScoreMLP(**{"hidden": 16, "depth": 2, "emb_dim": 8, **kw})


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("dim,label_dim", [(2, 0), (2, 4), (5, 0)])
def test_shape_and_every_parameter_gets_a_gradient(dim, label_dim):
    net = _net(dim=dim, label_dim=label_dim)
    labels = torch.tensor([0, 3, -1, 1]) if label_dim else None
    out = net(_randn(4, dim), torch.tensor([0.1, 1.0, 2.0, -3.0]), labels)
    assert out.shape == (4, dim)
    out.square().sum().backward()
    assert grad_report(net) == ([], [])


def test_null_labels_equal_no_labels():
    net = randomize_(_net(label_dim=3), std=0.3)
    x, sigma = _randn(3, 2), torch.tensor([0.1, 0.5, 1.0])
    uncond = net(x, sigma)
    assert torch.equal(net(x, sigma, torch.full((3,), -1)), uncond)
    mixed = net(x, sigma, torch.tensor([-1, 2, 0]))
    assert torch.equal(mixed[0], uncond[0]) and not torch.allclose(mixed[1:], uncond[1:])


def test_deterministic_noise_dependent_and_broadcasting():
    a, b = _net(), _net()
    x = _randn(5, 2)
    assert torch.equal(a(x, torch.full((5,), 0.3)), b(x, torch.full((5,), 0.3)))
    assert torch.equal(a(x, torch.tensor(0.3)), a(x, torch.full((5,), 0.3)))
    assert not torch.allclose(a(x, torch.full((5,), 0.3)), a(x, torch.full((5,), 3.0)))
    torch.testing.assert_close(a(x[2:3], torch.full((1,), 0.3)), a(x, torch.full((5,), 0.3))[2:3])


def test_bad_arguments_rejected():
    for kw, match in [(dict(dim=0), "dim"), (dict(depth=0), "depth"), (dict(emb_dim=7), "emb_dim"),
                      (dict(label_dim=-2), "label_dim"), (dict(hidden=0), "hidden")]:
        with pytest.raises(ValueError, match=match):
            ScoreMLP(**kw)
    with pytest.raises(ValueError, match="label_dim=0"):
        _net()(_randn(2, 2), torch.zeros(2), torch.zeros(2, dtype=torch.long))
