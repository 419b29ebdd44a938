"""Shape contracts of the skeleton's networks and objectives."""

from __future__ import annotations

import pytest
import torch

from genlab.models.ae import ConvAutoencoder, MLPAutoencoder
from genlab.models.classifier import EvaluatorCNN
from genlab.objectives.ae import ClassificationLoss, DenoisingLoss, ReconstructionLoss


@pytest.mark.parametrize("channels,size,widths", [(1, 28, (8, 16)), (1, 28, (8, 16, 32)),
                                                  (3, 32, (8, 16, 32)), (3, 64, (8,))])
def test_conv_autoencoder_round_trip_shape(channels, size, widths):
    net = ConvAutoencoder(in_channels=channels, size=size, widths=widths, latent=5)
    x = torch.randn(2, channels, size, size)
    assert net.encode(x).shape == (2, 5)
    assert net(x).shape == x.shape


def test_mlp_autoencoder_and_evaluator_shapes():
    assert MLPAutoencoder(dim=2, hidden=8, depth=2, latent=1)(torch.randn(4, 2)).shape == (4, 2)
    ev = EvaluatorCNN(width=4, depth=2, feature_dim=12)
    x = torch.randn(3, 1, 28, 28)
    assert ev(x).shape == (3, 10) and ev.features(x).shape == (3, 12)


def test_objectives_are_per_example_and_deterministic():
    net = MLPAutoencoder(dim=2, hidden=8, depth=1, latent=2)
    x = torch.randn(6, 2)
    assert ReconstructionLoss()(net, x).shape == (6,)
    dae = DenoisingLoss((0.1, 0.5))
    a = dae(net, x, None, torch.Generator().manual_seed(0))
    b = dae(net, x, None, torch.Generator().manual_seed(0))
    assert a.shape == (6,) and torch.equal(a, b)
    identity = torch.nn.Identity()
    assert torch.all(ReconstructionLoss()(identity, x) == 0)  # oracle: identity reconstructs
    noisy = DenoisingLoss((0.5,))(identity, torch.zeros(20000, 1), None,
                                  torch.Generator().manual_seed(1))
    assert noisy.mean().item() == pytest.approx(0.25, rel=0.03)  # E[(0.5 eps)^2] = 0.25
    logits = torch.nn.Linear(2, 3)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    ce = ClassificationLoss()(logits, x, y)
    assert torch.allclose(ce.mean(), torch.nn.functional.cross_entropy(logits(x), y))
