"""The evaluator: a small VGG-style CNN classifier for 28x28 Fashion-MNIST whose penultimate
features define genlab's FD and precision/recall (not comparable to Inception FID)."""

from __future__ import annotations

import torch
from torch import nn


def _block(c_in: int, c_out: int, depth: int) -> nn.Sequential:
    """`depth` x (3x3 conv + BN + ReLU), then 2x2 max-pool: halves the side."""
    layers = []
    for i in range(depth):
        layers += [nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, padding=1, bias=False),
                   nn.BatchNorm2d(c_out), nn.ReLU()]
    return nn.Sequential(*layers, nn.MaxPool2d(2))


class EvaluatorCNN(nn.Module):
    """(B, 1, 28, 28) in [-1, 1] -> logits (B, n_classes); `features` gives (B, feature_dim)."""

    def __init__(self,
                 in_channels: int = 1,      # image channels
                 width: int = 32,           # channels of the first block (x2 in the second)
                 depth: int = 1,            # 3x3 convs per block
                 feature_dim: int = 128,    # penultimate width: the FD / PR feature space
                 n_classes: int = 10,       # classes
                 dropout: float = 0.3):     # dropout before the classifier layer
        super().__init__()
        assert 0.0 <= dropout < 1.0, f"dropout must be in [0, 1), got {dropout}"
        self.body = nn.Sequential(_block(in_channels, width, depth),
                                  _block(width, 2 * width, depth), nn.Flatten())  # (B, 2w*7*7)
        self.head = nn.Sequential(nn.Linear(2 * width * 49, feature_dim),
                                  nn.BatchNorm1d(feature_dim), nn.ReLU())
        self.classify = nn.Sequential(nn.Dropout(dropout), nn.Linear(feature_dim, n_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))  # (B, feature_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(x))
