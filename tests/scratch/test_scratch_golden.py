"""Golden end-to-end check: scratch models + hand-written Adam vs torch.nn + torch.optim.Adam.

Same fixed synthetic batch, same seed, same initial weights (copied), float64: the per-step
losses and the final weights must agree to ~1e-10, which exercises every manual backward and
the optimiser together.
"""

from __future__ import annotations

import torch
from torch import nn

from genlab.scratch import ops
from genlab.scratch.cnn import build_autoencoder, build_classifier
from genlab.scratch.layers import Sequential
from genlab.scratch.optim import Adam
from genlab.scratch.train import autoencoder_step, classifier_step

from .test_scratch_layers import copy_weights

F64 = torch.float64
STEPS = 6


def _torch_classifier(width: int, hidden: int, side: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1), nn.MaxPool2d(2), nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.MaxPool2d(2), nn.ReLU(),
        nn.Flatten(), nn.Linear(2 * width * (side // 4) ** 2, hidden), nn.ReLU(),
        nn.Linear(hidden, 10),
    ).to(F64)  # fmt: skip


def test_classifier_training_steps_match_torch():
    gen = torch.Generator().manual_seed(1234)
    model = build_classifier(width=3, hidden=16, image_size=12, generator=gen, dtype=F64)
    twin = _torch_classifier(width=3, hidden=16, side=12)
    copy_weights(model, twin)
    x = torch.randn(8, 1, 12, 12, generator=gen, dtype=F64)
    y = torch.randint(0, 10, (8,), generator=gen)
    ours, theirs = Adam(model.parameters(), lr=0.01), torch.optim.Adam(twin.parameters(), lr=0.01)
    losses, ref_losses = [], []
    for _ in range(STEPS):
        losses.append(classifier_step(model, x, y))
        ours.step()
        theirs.zero_grad()
        loss = nn.functional.cross_entropy(twin(x), y)
        loss.backward()
        theirs.step()
        ref_losses.append(loss.item())
    torch.testing.assert_close(torch.tensor(losses), torch.tensor(ref_losses), rtol=1e-10, atol=0)
    assert losses[-1] < losses[0]  # it is actually learning the batch
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(p.value, q.detach(), rtol=1e-9, atol=1e-11)


def test_autoencoder_training_steps_match_torch():
    gen = torch.Generator().manual_seed(99)
    enc, dec = build_autoencoder(width=3, latent_channels=2, generator=gen, dtype=F64)
    up = dict(stride=2, padding=1, output_padding=1)
    twin = nn.Sequential(
        nn.Conv2d(1, 3, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(3, 2, 3, stride=2, padding=1),
        nn.ConvTranspose2d(2, 3, 3, **up), nn.ReLU(),
        nn.ConvTranspose2d(3, 1, 3, **up), nn.Sigmoid(),
    ).to(F64)  # fmt: skip
    copy_weights(Sequential(enc, dec), twin)
    x = torch.rand(4, 1, 8, 8, generator=gen, dtype=F64)
    params = enc.parameters() + dec.parameters()
    ours, theirs = Adam(params, lr=0.02), torch.optim.Adam(twin.parameters(), lr=0.02)
    losses, ref_losses = [], []
    for _ in range(STEPS):
        losses.append(autoencoder_step(enc, dec, x))
        ours.step()
        theirs.zero_grad()
        loss = nn.functional.mse_loss(twin(x), x)
        loss.backward()
        theirs.step()
        ref_losses.append(loss.item())
    torch.testing.assert_close(torch.tensor(losses), torch.tensor(ref_losses), rtol=1e-10, atol=0)
    assert losses[-1] < losses[0]
    recon = dec.forward(enc.forward(x))
    torch.testing.assert_close(ops.mse_forward(recon, x)[0], nn.functional.mse_loss(twin(x), x))
