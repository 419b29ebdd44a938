"""Latent diffusion: the data hook's unit-variance latents of a real (untrained) tokenizer, the
scale stored beside the weights, the wrapper's round trip, a clear error without the tokenizer,
and a tiny fixed-seed run whose loss falls."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genlab.config import load_section
from genlab.data.processed import save_arrays, write_manifest
from genlab.errors import DataError
from genlab.families import get
from genlab.families.latent import encoded
from genlab.families.latent.config import LatentConfig
from genlab.models.vqvae import Tokenizer
from genlab.training.checkpoint import save_atomic
from genlab.training.loop import RunSpec, train

TOKENIZER = {"in_channels": 1, "size": 28, "widths": (8, 16, 32), "blocks": 1,
             "quantizer": {"kind": "vq", "dim": 4, "codes": 16}, "discriminator": None}
RAW = {"tokenizer": "tok", "dataset": "fashion_mnist", "conditional": True,
       "net": {"kind": "unet", "model_channels": 16, "channel_mult": [1], "num_blocks": 1,
               "attn_resolutions": [7], "num_heads": 1, "dropout": 0.0},
       "method": {"kind": "edm", "sigma_data": 1.0, "num_steps": 4},
       "steps": 40, "batch_size": 32, "lr": 3.0e-3, "warmup_steps": 5, "ckpt_every": 40,
       "log_every": 5, "ema_half_life": 500.0}


@pytest.fixture
def ws(tmp_path, monkeypatch):
    """A workspace with 256 Fashion-MNIST-shaped images (smooth blobs, labelled) and a tokenizer
    checkpoint in the vq family's format."""
    monkeypatch.chdir(tmp_path)
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    centres = torch.rand(256, 2, generator=g) * 16 + 6
    blobs = torch.exp(-((yy - centres[:, :1, None]) ** 2 + (xx - centres[:, 1:, None]) ** 2) / 30)
    images = (blobs * 255).round().to(torch.uint8).numpy()  # (256, 28, 28)
    labels = np.arange(256, dtype=np.int64) % 10
    root = tmp_path / "data/processed"
    write_manifest(root, save_arrays(root, {"fashion_mnist/train_x": images,
                                            "fashion_mnist/train_y": labels}), {})
    torch.manual_seed(0)
    net = Tokenizer(**TOKENIZER)
    save_atomic({"family": "vq", "arch": TOKENIZER, "model": net.state_dict(),
                 "ema": net.state_dict()}, tmp_path / "models/tok.pt")
    encoded.cache_clear()
    yield tmp_path
    encoded.cache_clear()


def _cfg(**over) -> LatentConfig:
    return load_section(LatentConfig, {**RAW, **over}, "latent.m", "cpu")


def test_the_data_hook_gives_unit_variance_latents_by_step(ws):
    cfg = _cfg()
    family = get("latent")
    data = family.data(cfg, 0, torch.device("cpu"))
    assert data.shape == (4, 7, 7) and data.examples == 256
    x, y = data.batches(3)
    x2, y2 = data.batches(3)
    assert x.shape == (32, 4, 7, 7) and torch.equal(x, x2) and torch.equal(y, y2)
    z, labels, scale = encoded(cfg, "cpu")
    assert torch.allclose((z / scale).std(), torch.tensor(1.0), atol=1e-5)
    assert labels.tolist() == [i % 10 for i in range(256)]
    assert family.data(_cfg(conditional=False), 0, torch.device("cpu")).batches(0)[1] is None


def test_the_scale_is_stored_beside_the_weights_and_round_trips(ws):
    cfg = _cfg()
    family = get("latent")
    built = family.build(cfg, (4, 7, 7))
    _, _, scale = encoded(cfg, "cpu")
    assert built.arch["scale"] == pytest.approx(scale)
    net = family.rebuild(built.arch, cfg)
    net.load_state_dict(built.net.state_dict())
    assert float(net.scale) == pytest.approx(scale)
    z = torch.randn(2, 4, 7, 7)
    assert torch.allclose(net.to_tokenizer(z / net.scale), z, atol=1e-6)
    sigma = torch.full((2,), 0.5)
    assert net(z, sigma, torch.tensor([1, 2])).shape == z.shape


def test_quantized_latents_are_codebook_vectors(ws):
    cfg = _cfg(latents="quantized")
    z, _, _ = encoded(cfg, "cpu")
    tok = Tokenizer(**TOKENIZER)
    tok.load_state_dict(torch.load(ws / "models/tok.pt", weights_only=True)["ema"])
    rows = z.permute(0, 2, 3, 1).reshape(-1, 4)  # every latent vector is one of the 16 codes
    assert len(torch.unique(rows.round(decimals=5), dim=0)) <= 16


def test_a_missing_tokenizer_names_the_stage_to_run(ws):
    (ws / "models/tok.pt").unlink()
    with pytest.raises(DataError, match=r"models/tok.pt is missing .*pretrain-vq@tok"):
        get("latent").data(_cfg(), 0, torch.device("cpu"))


def test_a_tiny_fixed_seed_run_lowers_the_loss(ws):
    cfg = _cfg(steps=60, ckpt_every=60, log_every=10)
    family = get("latent")
    data = family.data(cfg, 0, torch.device("cpu"))
    torch.manual_seed(0)
    built = family.build(cfg, data.shape)
    run = RunSpec(seed=0, device=torch.device("cpu"), ckpt_path=ws / "ck/last.pt",
                  config_hash="t", progress=False)
    result = train(built.net, built.objective, data.batches, cfg, run)
    losses = [r["loss"] for r in result.history]
    assert losses[-1] < 0.8 * losses[0], losses
