"""The `vq` family: the quantisers' straight-through gradient, an EMA codebook step against a
hand computation, dead-code restarts, FSQ's rounding and its code-index bijection, codebook
usage and perplexity, the tokenizer's encode -> decode shape contract and interface, the token
store's latent statistics, VQ-GAN's adaptive weight on a two-layer toy against the closed-form
gradients, config errors, and tiny fixed-seed runs of the real training loop whose loss falls."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from genlab import families
from genlab.config import ConfigError, load
from genlab.data.tokens import latent_stats, read_token_meta, read_token_split, write_token_store
from genlab.families.vq.config import VQConfig
from genlab.models.quantizers import FSQ, VectorQuantizer, code_usage, perplexity
from genlab.models.vqvae import Tokenizer, load_tokenizer
from genlab.objectives.vq import VQGANLoss, adaptive_weight
from genlab.training.checkpoint import save_atomic
from genlab.training.loop import RunSpec, train


def _grid(rows: torch.Tensor, h: int = 1) -> torch.Tensor:
    """(N, d) rows -> (1, d, h, N / h): one image whose grid positions are the rows."""
    n, d = rows.shape
    return rows.t().reshape(1, d, h, n // h)


def _vq(codebook: torch.Tensor, **kw) -> VectorQuantizer:
    k, d = codebook.shape
    q = VectorQuantizer(dim=d, codes=k, **kw)
    q.codebook.data.copy_(codebook)
    if q.ema:
        q.ema_sum.copy_(codebook)
    q.initialised.fill_(True)
    return q


# ---------------------------------------------------------------------------------------------
# Vector quantisation.


def test_nearest_code_and_straight_through_gradient():
    torch.manual_seed(0)
    codebook = torch.randn(6, 3)
    q = _vq(codebook, ema=False).eval()
    z = torch.randn(2, 3, 4, 5, requires_grad=True)
    out = q(z)
    # oracle: brute-force nearest code of every grid position
    rows = z.detach().permute(0, 2, 3, 1).reshape(-1, 3)
    nearest = torch.cdist(rows, codebook).argmin(1)
    assert torch.equal(out.indices.reshape(-1), nearest)
    assert torch.allclose(out.z_q.detach().permute(0, 2, 3, 1).reshape(-1, 3), codebook[nearest])
    # straight through: d z_q / d z is the identity
    w = torch.randn_like(z)
    (out.z_q * w).sum().backward()
    assert torch.allclose(z.grad, w)
    # loss (B,): codebook term + beta * commitment, both the mean squared distance
    dist = (z.detach() - out.z_q.detach()).square().flatten(1).mean(1)
    assert torch.allclose(out.loss, (1 + q.beta) * dist, rtol=1e-5)


def test_ema_codebook_update_matches_a_hand_computed_step():
    codebook = torch.tensor([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]], dtype=torch.float64)
    q = _vq(codebook.float(), ema=True, decay=0.9, eps=0.1, restart_below=0.0)
    q.ema_count.copy_(torch.tensor([2.0, 3.0, 1.0]))
    q.ema_sum.copy_(torch.tensor([[0.2, 0.0], [3.0, 3.3], [5.0, 5.0]]))
    q.train()
    rows = torch.tensor([[0.1, -0.1], [0.2, 0.1], [0.9, 1.2], [1.1, 0.8]], dtype=torch.float64)
    q(_grid(rows.float()))
    # by hand: rows 0, 1 -> code 0; rows 2, 3 -> code 1; code 2 unused
    n = torch.tensor([2.0, 2.0, 0.0], dtype=torch.float64)
    s = torch.tensor([[0.3, 0.0], [2.0, 2.0], [0.0, 0.0]], dtype=torch.float64)
    count = 0.9 * torch.tensor([2.0, 3.0, 1.0], dtype=torch.float64) + 0.1 * n  # Eq. 6
    total = count.sum()  # 2.0 + 2.9 + 0.9
    assert math.isclose(total.item(), 5.8)
    m = 0.9 * torch.tensor([[0.2, 0.0], [3.0, 3.3], [5.0, 5.0]], dtype=torch.float64) + 0.1 * s
    smoothed = (count + 0.1) / (total + 3 * 0.1) * total  # Laplace smoothing
    expected = m / smoothed[:, None]  # Eq. 8
    assert torch.allclose(q.ema_count.double(), count, atol=1e-6)
    assert torch.allclose(q.codebook.double(), expected, atol=1e-6)
    # e.g. code 0: m = 0.9 (0.2, 0) + 0.1 (0.3, 0) = (0.21, 0), N~ = 2.1 / 6.1 * 5.8
    assert torch.allclose(q.codebook[0], torch.tensor([0.21 / (2.1 / 6.1 * 5.8), 0.0]))


def test_dead_code_restart_moves_unused_codes_onto_batch_rows():
    codebook = torch.tensor([[0.0, 0.0], [1.0, 1.0], [50.0, 50.0], [-50.0, 50.0]])
    counts = torch.tensor([10.0, 10.0, 0.5, 10.0])  # code 2 is dead, 3 alive
    q = _vq(codebook, ema=True, decay=0.99, restart_below=1.0)
    q.ema_count.copy_(counts)
    q.ema_sum.copy_(codebook * counts[:, None])
    q.train()
    rows = torch.tensor([[0.1, 0.0], [0.9, 1.0], [0.2, 0.1], [1.1, 0.9]])
    out = q(_grid(rows), generator=torch.Generator().manual_seed(0))
    # code 2 was moved onto a row of the batch (then one EMA step towards the rows it won);
    # the live code 3 is not restarted (only the Laplace smoothing moves it, by < 1e-3)
    assert torch.cdist(q.codebook[2][None], rows).min() < 0.05
    assert torch.allclose(q.codebook[3], codebook[3], atol=1e-3)
    assert (q.codebook[2] - codebook[2]).norm() > 40
    # restarted before the lookup: it may win the row it was moved to
    assert out.indices.numel() == 4
    # with restarts off the dead code stays where it was (only the smoothing moves it)
    off = _vq(codebook, ema=True, restart_below=0.0)
    off.ema_count.copy_(counts)
    off.ema_sum.copy_(codebook * counts[:, None])
    off.train()(_grid(rows))
    assert (off.codebook[2] - codebook[2]).norm() < 1.0


def test_first_training_batch_initialises_the_codebook_from_its_rows():
    q = VectorQuantizer(dim=2, codes=3, ema=True).train()
    rows = torch.randn(8, 2)
    q(_grid(rows), generator=torch.Generator().manual_seed(1))
    assert bool(q.initialised)
    # each code is one of the rows (moved by one EMA step towards the rows it won)
    assert q.codebook.shape == (3, 2)


def test_l2_low_dimensional_lookup_uses_cosine_and_keeps_the_latent_shape():
    torch.manual_seed(0)
    q = VectorQuantizer(dim=6, codes=10, ema=False, lookup_dim=2, l2=True).eval()
    z = torch.randn(3, 6, 2, 2)
    out = q(z)
    assert out.z_q.shape == z.shape and out.indices.shape == (3, 2, 2)
    u = F.normalize(q.proj_in(z), dim=1).permute(0, 2, 3, 1).reshape(-1, 2)
    e = F.normalize(q.codebook, dim=1)
    assert torch.equal(out.indices.reshape(-1), (u @ e.t()).argmax(1))  # largest cosine
    assert torch.allclose(q.embed(out.indices), out.z_q, atol=1e-6)


def test_usage_and_perplexity():
    idx = torch.tensor([0, 1, 2, 3] * 5)
    assert code_usage(idx, 8) == 0.5
    assert math.isclose(perplexity(idx, 8), 4.0, rel_tol=1e-9)
    assert math.isclose(perplexity(torch.zeros(10, dtype=torch.long), 8), 1.0)
    p = torch.tensor([0.5, 0.25, 0.25])
    idx = torch.tensor([0, 0, 1, 2])
    assert math.isclose(perplexity(idx, 3), math.exp(-(p * p.log()).sum().item()), rel_tol=1e-6)


# ---------------------------------------------------------------------------------------------
# FSQ.


@pytest.mark.parametrize("levels", [(8, 8, 8), (8, 5, 5, 5), (3, 4), (2,)])
def test_fsq_rounds_each_channel_to_exactly_its_levels(levels):
    fsq = FSQ(levels)
    z = torch.linspace(-20, 20, 4001)[:, None].expand(-1, len(levels))
    zhat = fsq.quantize(z)
    for c, L in enumerate(levels):
        values = torch.unique(zhat[:, c])
        assert len(values) == L, (c, values)
        assert values.min() >= -1 and values.max() <= 1
        half = L // 2
        grid = (torch.arange(L) - half).float() / half  # {-1, ..} for even, symmetric for odd
        assert torch.allclose(values, grid)


def test_fsq_code_index_bijection_and_straight_through():
    fsq = FSQ((8, 5, 3))
    assert fsq.codes == 120 and fsq.dim == 3
    idx = torch.arange(fsq.codes)
    codes = fsq.indices_to_codes(idx)  # (120, 3)
    assert torch.unique(codes, dim=0).shape[0] == fsq.codes  # distinct
    assert torch.equal(fsq.codes_to_indices(codes), idx)  # inverse
    z = torch.randn(2, 3, 4, 4, requires_grad=True)
    out = fsq(z)
    assert torch.equal(fsq.codes_to_indices(out.z_q.detach().permute(0, 2, 3, 1)), out.indices)
    assert torch.allclose(fsq.embed(out.indices), out.z_q.detach())
    out.z_q.sum().backward()
    # round passes the gradient of the bound straight through: d bound / dz / (L // 2)
    zl = z.detach().permute(0, 2, 3, 1).clone().requires_grad_(True)
    (fsq.bound(zl) / fsq._half_width).sum().backward()
    assert torch.allclose(z.grad, zl.grad.permute(0, 3, 1, 2), atol=1e-6)
    assert torch.equal(out.loss, torch.zeros(2))


# ---------------------------------------------------------------------------------------------
# The tokenizer and its interface.


@pytest.mark.parametrize("quantizer, widths, side", [
    ({"kind": "vq", "dim": 4, "codes": 16}, (8, 8, 16), 7),
    ({"kind": "vq", "dim": 4, "codes": 16}, (8, 16), 14),
    ({"kind": "fsq", "levels": (4, 4)}, (8, 8, 16), 7),
])
def test_encode_decode_shapes(quantizer, widths, side):
    torch.manual_seed(0)
    net = Tokenizer(in_channels=1, size=28, widths=widths, quantizer=quantizer).eval()
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    d = 4 if quantizer["kind"] == "vq" else 2
    assert net.latent_shape == (d, side, side) and net.codes == 16
    z, zq, idx = net.encode_latent(x), net.encode_latent(x, quantized=True), net.tokens(x)
    assert z.shape == zq.shape == (3, d, side, side)
    assert idx.shape == (3, side, side) and idx.dtype == torch.long
    assert 0 <= idx.min() and idx.max() < 16
    y = net.decode_tokens(idx)
    assert y.shape == x.shape and y.abs().max() <= 1
    assert torch.allclose(y, net.decode_latent(zq), atol=1e-5)
    assert torch.allclose(net(x), y, atol=1e-5)


def test_load_tokenizer_returns_the_ema_weights_in_eval_mode(tmp_path):
    fam = families.get("vq")
    cfg = load(VQConfig, {"dataset": "fashion_mnist", "model": {"widths": [4, 8, 8]},
                          "quantizer": {"kind": "vq", "codes": 8, "dim": 2}}, "vq.t")
    torch.manual_seed(0)
    built = fam.build(cfg, (1, 28, 28))
    ema = fam.rebuild(built.arch)
    path = tmp_path / "tok.pt"
    save_atomic({"family": "vq", "arch": built.arch, "model": built.net.state_dict(),
                 "ema": ema.state_dict()}, path)
    net = load_tokenizer(path)
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    for a, b in zip(net.state_dict().values(), ema.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert net.tokens(torch.zeros(1, 1, 28, 28)).shape == (1, 7, 7)


def test_token_store_round_trip_and_latent_scale(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 300), ("test", 50)):
        arrays |= {f"{split}_tokens": rng.integers(0, 16, (n, 7, 7)).astype(np.int32),
                   f"{split}_latents": (3.0 + 2.5 * rng.standard_normal((n, 4, 7, 7))
                                        ).astype(np.float32),
                   f"{split}_quantized": (0.5 * rng.standard_normal((n, 4, 7, 7))
                                          ).astype(np.float32),
                   f"{split}_y": rng.integers(0, 10, n).astype(np.uint8)}
    stats = write_token_store(tmp_path / "tok", arrays, {"codes": 16, "latent_shape": [4, 7, 7]})
    z = arrays["train_latents"].astype(np.float64)
    assert math.isclose(stats["latents"]["std"], z.std(), rel_tol=1e-9)
    assert math.isclose(stats["latents"]["mean"], z.mean(), rel_tol=1e-9)
    assert abs(stats["latents"]["std"] - 2.5) < 0.05  # the generating std
    # the chunked float64 sums equal numpy's one pass
    small = latent_stats(arrays["train_quantized"], chunk=7)
    assert math.isclose(small["std"], arrays["train_quantized"].astype(np.float64).std(),
                        rel_tol=1e-9)
    meta = read_token_meta(tmp_path / "tok")
    assert meta["codes"] == 16 and meta["stats"] == json_round(stats)
    test = read_token_split(tmp_path / "tok", "test")
    assert np.array_equal(test.tokens, arrays["test_tokens"])
    assert (z / stats["latents"]["std"]).std() == pytest.approx(1.0)  # the scaled latents


def json_round(d: dict) -> dict:
    import json

    return json.loads(json.dumps(d))


# ---------------------------------------------------------------------------------------------
# VQ-GAN.


def test_adaptive_weight_on_a_two_layer_toy_matches_closed_form_gradients():
    torch.manual_seed(0)
    x, t = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    first = nn.Linear(3, 4).double()
    last = nn.Linear(4, 2).double()
    h = torch.tanh(first(x))  # (5, 4)
    y = last(h)  # (5, 2)
    rec = (y - t).square().mean()
    gan = -(y * torch.tensor([1.0, -2.0], dtype=torch.float64)).mean()
    lam = adaptive_weight(rec, gan, last.weight, delta=1e-4)
    # by hand: dL/dW = (dL/dy)^T h for y = W h + b
    hd = h.detach()
    g_rec = (2 * (y.detach() - t) / y.numel()).t() @ hd  # (2, 4)
    g_gan = (-torch.tensor([1.0, -2.0], dtype=torch.float64).expand(5, 2) / y.numel()).t() @ hd
    expected = g_rec.norm() / (g_gan.norm() + 1e-4)
    assert torch.allclose(lam, expected, rtol=1e-10)
    assert not lam.requires_grad
    # the graph survives for the backward pass of the total loss
    (rec + lam * gan).backward()
    assert first.weight.grad is not None


def test_vqgan_discriminator_is_off_before_its_start_then_trains():
    torch.manual_seed(0)
    net = Tokenizer(widths=(4, 8, 8), quantizer={"kind": "vq", "dim": 2, "codes": 8},
                    discriminator={"width": 4}).train()
    loss = VQGANLoss(weight=0.5, start=3)
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    loss.set_step(2)
    loss(net, x).mean().backward()
    assert all(p.grad is None for p in net.discriminator.parameters())
    net.zero_grad(set_to_none=True)
    loss.set_step(3)
    loss(net, x).mean().backward()
    assert all(p.grad is not None for p in net.discriminator.parameters())
    assert float(loss.last_lambda) > 0


# ---------------------------------------------------------------------------------------------
# Config and the real training loop.


@pytest.mark.parametrize("raw, key", [
    ({"model": {"downsample": 4, "widths": [8, 16]}}, "vq.m.model"),
    ({"model": {"downsample": 3, "widths": [8, 16]}}, "vq.m.model.downsample"),
    ({"quantizer": {"kind": "fsq", "levels": [8, 1]}}, "vq.m.quantizer.levels"),
    ({"quantizer": {"kind": "pq"}}, "vq.m.quantizer.kind"),
    ({"quantizer": {"kind": "vq", "decay": 1.0}}, "vq.m.quantizer.decay"),
    ({"dataset": "toy2d/two_moons"}, "vq.m.dataset"),
])
def test_config_errors_name_the_key(raw, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load(VQConfig, {"dataset": "fashion_mnist", **raw}, "vq.m")


def _blobs(n: int = 64, seed: int = 0) -> torch.Tensor:
    """n 28x28 images in [-1, 1] of a bright random rectangle on a dark ground."""
    g = torch.Generator().manual_seed(seed)
    x = -torch.ones(n, 1, 28, 28)
    for i in range(n):
        r, c = torch.randint(0, 16, (2,), generator=g).tolist()
        h, w = torch.randint(6, 12, (2,), generator=g).tolist()
        x[i, :, r:r + h, c:c + w] = 0.8
    return x


@pytest.mark.parametrize("raw", [
    {"quantizer": {"kind": "vq", "codes": 16, "dim": 4}},
    {"quantizer": {"kind": "fsq", "levels": [4, 4]}},
    {"quantizer": {"kind": "vq", "codes": 16, "dim": 4}, "gan": {"weight": 0.1, "start": 30,
                                                                "width": 4},
     "betas": [0.5, 0.9], "grad_clip": 0.0},
], ids=["vqvae", "fsq", "vqgan"])
def test_tiny_fixed_seed_run_loss_falls(raw, tmp_path):
    """40 steps of the real loop on rectangles: the loss falls (VQ-GAN: over its first 30
    steps, before the discriminator's terms join it) and the reconstruction error of the
    trained tokenizer is under half the untrained one's."""
    fam = families.get("vq")
    cfg = load(VQConfig, {"dataset": "fashion_mnist", "model": {"widths": [4, 8, 8]},
                          "steps": 40, "batch_size": 16, "lr": 3e-3, "warmup_steps": 5,
                          "log_every": 10, "ckpt_every": 40, **raw}, "vq.tiny")
    data = _blobs()
    torch.manual_seed(0)
    built = fam.build(cfg, (1, 28, 28))
    untrained = copy.deepcopy(built.net).eval()
    batches = lambda step: (data[(step * 16) % 64:(step * 16) % 64 + 16], None)  # noqa: E731
    result = train(built.net, built.objective, batches, cfg,
                   RunSpec(seed=0, device=torch.device("cpu"), ckpt_path=Path(tmp_path / "c.pt"),
                           config_hash="t", bf16=False, progress=False),
                   param_groups=built.param_groups)
    losses = [r["loss"] for r in result.history]  # rows at steps 10, 20, 30, 40
    assert all(math.isfinite(v) for v in losses)
    assert losses[2] < 0.7 * losses[0], losses
    with torch.no_grad():
        before = (untrained(data) - data).square().mean()
        after = (result.net.eval()(data) - data).square().mean()
    assert after < 0.5 * before, (before, after)
