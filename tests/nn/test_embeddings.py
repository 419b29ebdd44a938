"""Sinusoidal / Fourier / label embeddings: closed forms and invariances."""

from __future__ import annotations

import math

import pytest
import torch

from genlab.nn.embeddings import (
    FourierEmbedding,
    LabelEmbedding,
    PositionalEmbedding,
    noise_embedding,
    sinusoidal_embedding,
)

torch.set_num_threads(1)


def test_sinusoidal_of_zero_is_zeros_then_ones():
    emb = sinusoidal_embedding(torch.zeros(3), dim=8)
    assert emb.shape == (3, 8)
    assert torch.equal(emb, torch.cat([torch.zeros(3, 4), torch.ones(3, 4)], dim=1))


def test_sinusoidal_golden_numbers():
    # dim 4, max_positions 100: frequencies 100^(-0/2) = 1 and 100^(-1/2) = 0.1
    emb = sinusoidal_embedding(torch.tensor([2.0]), dim=4, max_positions=100.0)
    expected = [math.sin(2.0), math.sin(0.2), math.cos(2.0), math.cos(0.2)]
    torch.testing.assert_close(emb[0], torch.tensor(expected), rtol=1e-6, atol=1e-6)


def test_sinusoidal_inner_product_depends_only_on_difference():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, generator=gen) * 10, torch.randn(5, generator=gen) * 10
    shift = torch.full((5,), 3.7)
    dot = lambda u, v: (sinusoidal_embedding(u, 16) * sinusoidal_embedding(v, 16)).sum(1)  # noqa: E731
    dots, dots_shifted = dot(a, b), dot(a + shift, b + shift)
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(8) / 8)
    closed_form = torch.cos((a - b)[:, None] * freqs).sum(1)  # sum_i cos((a - b) w_i)
    torch.testing.assert_close(dots, closed_form, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(dots_shifted, closed_form, atol=1e-4, rtol=1e-4)


def test_positional_module_scales_its_input():
    t = torch.tensor([0.0, 0.25, 1.0])
    out = PositionalEmbedding(8, max_positions=1000.0, scale=1000.0)(t)
    torch.testing.assert_close(out, sinusoidal_embedding(1000.0 * t, 8, max_positions=1000.0))


@pytest.mark.parametrize("dim", [0, 3, -2])
def test_odd_or_nonpositive_dim_rejected(dim):
    with pytest.raises(ValueError, match="dim"):
        sinusoidal_embedding(torch.zeros(1), dim)
    with pytest.raises(ValueError, match="dim"):
        FourierEmbedding(dim)


def test_bad_max_positions_and_kind_rejected():
    with pytest.raises(ValueError, match="max_positions"):
        sinusoidal_embedding(torch.zeros(1), 4, max_positions=1.0)
    with pytest.raises(ValueError, match="embedding"):
        noise_embedding("learned", 8)


def test_fourier_matches_formula_and_is_seeded():
    emb = FourierEmbedding(6, scale=2.0, generator=torch.Generator().manual_seed(3))
    again = FourierEmbedding(6, scale=2.0, generator=torch.Generator().manual_seed(3))
    other = FourierEmbedding(6, scale=2.0, generator=torch.Generator().manual_seed(4))
    assert torch.equal(emb.freqs, again.freqs) and not torch.equal(emb.freqs, other.freqs)
    x = torch.tensor([0.0, 0.3, -1.2])
    angles = 2 * math.pi * x[:, None] * emb.freqs[None, :]
    torch.testing.assert_close(emb(x), torch.cat([angles.sin(), angles.cos()], 1))
    assert torch.equal(emb(torch.zeros(1)), torch.tensor([[0.0, 0, 0, 1, 1, 1]]))


def test_fourier_frequencies_are_a_buffer_with_the_requested_std():
    emb = FourierEmbedding(20_000, scale=16.0, generator=torch.Generator().manual_seed(0))
    assert list(emb.parameters()) == [] and "freqs" in emb.state_dict()
    # std of 10_000 N(0, 16^2) draws: relative standard error ~ 1/sqrt(2 * 10_000) = 0.7%
    assert abs(emb.freqs.std().item() / 16.0 - 1.0) < 0.03


def test_label_embedding_zeroes_null_rows():
    emb = LabelEmbedding(label_dim=4, dim=3)
    labels = torch.tensor([2, -1, 0, -1])
    out = emb(labels)
    assert torch.equal(out[1], torch.zeros(3)) and torch.equal(out[3], torch.zeros(3))
    assert torch.equal(out[0], emb.table.weight[2]) and torch.equal(out[2], emb.table.weight[0])
    with pytest.raises(ValueError, match="label_dim"):
        LabelEmbedding(label_dim=0, dim=3)
