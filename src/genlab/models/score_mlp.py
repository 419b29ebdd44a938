"""A residual MLP noise-conditional score / denoiser network for 2-D toy data (the MLP analogue
of the NCSN / DDPM U-Net, Song & Ermon 2019; Ho et al. 2020): x (B, D), noise label (B,) -> (B, D).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from genlab.nn.embeddings import LabelEmbedding, sinusoidal_embedding


class _ResidualLayer(nn.Module):
    """h (B, H), emb (B, E) -> h + W2 SiLU(W1 SiLU(h) + A emb)."""

    def __init__(self, hidden: int, emb_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(hidden, hidden)
        self.emb = nn.Linear(emb_dim, hidden)
        self.fc2 = nn.Linear(hidden, hidden)

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return h + self.fc2(F.silu(self.fc1(F.silu(h)) + self.emb(emb)))


class ScoreMLP(nn.Module):
    """x (B, D), noise_labels (B,) float, class_labels (B,) int64 | None -> (B, D).

    noise_labels get sinusoidal features (emb_dim) and a 2-layer SiLU MLP; class labels (-1 or
    None = no label) are embedded and added before that MLP, as in the U-Net.
    """

    def __init__(self,
                 dim: int = 2,          # data dimension D
                 hidden: int = 256,     # width of the residual layers
                 depth: int = 4,        # residual layers
                 emb_dim: int = 64,     # noise / label embedding width (even)
                 label_dim: int = 0):   # classes; 0 = unconditional
        super().__init__()
        for name, value in (("dim", dim), ("hidden", hidden), ("depth", depth)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {name}={value}")
        if emb_dim < 2 or emb_dim % 2:
            raise ValueError(f"emb_dim must be a positive even integer, got emb_dim={emb_dim}")
        if label_dim < 0:
            raise ValueError(f"label_dim must be >= 0, got label_dim={label_dim}")
        self.emb_dim = emb_dim
        self.label_emb = LabelEmbedding(label_dim, emb_dim) if label_dim else None
        self.emb_mlp = nn.Sequential(nn.Linear(emb_dim, emb_dim), nn.SiLU(),
                                     nn.Linear(emb_dim, emb_dim), nn.SiLU())
        self.inp = nn.Linear(dim, hidden)
        self.layers = nn.ModuleList(_ResidualLayer(hidden, emb_dim) for _ in range(depth))
        self.out = nn.Sequential(nn.SiLU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, noise_labels: torch.Tensor,
                class_labels: torch.Tensor | None = None) -> torch.Tensor:
        emb = sinusoidal_embedding(noise_labels.reshape(-1).expand(x.shape[0]), self.emb_dim)
        if class_labels is not None:
            if self.label_emb is None:
                raise ValueError("class_labels given but the net has label_dim=0")
            emb = emb + self.label_emb(class_labels)
        emb = self.emb_mlp(emb)  # (B, emb_dim)
        h = self.inp(x)  # (B, hidden)
        for layer in self.layers:
            h = layer(h, emb)
        return self.out(h).to(x.dtype)  # (B, D)
