"""The token prior family on a small token store in the vq family's format: the data hook's
flattened grids and labels by step, the vocabulary taken from the store, clear errors naming
the stage to run when the store or the tokenizer is missing, and a tiny fixed-seed run whose
loss falls."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from genlab.config import load_section
from genlab.data.tokens import write_token_store
from genlab.errors import DataError
from genlab.families import get
from genlab.families.prior.config import PriorConfig
from genlab.families.prior.evaluate import load
from genlab.training.loop import RunSpec, train

RAW = {"tokenizer": "tok", "dataset": "fashion_mnist", "net": {"dim": 16, "layers": 1,
       "heads": 2}, "label_dropout": 0.1, "steps": 30, "batch_size": 16, "lr": 1.0e-2,
       "warmup_steps": 3, "ckpt_every": 30, "log_every": 5, "ema_half_life": 500.0}
CODES, N = 16, 320


def _store(root, n: int = N, codes: int = CODES, seed: int = 0):
    """Token grids whose codes follow the class (row r of class c is mostly code (c + r) % K)
    with 20 % noise: a prior that learns the class and position lowers its loss fast."""
    g = np.random.default_rng(seed)
    labels = np.arange(n, dtype=np.int64) % 10
    grids = (labels[:, None, None] + np.arange(7)[None, :, None]) % codes + np.zeros((1, 1, 7),
                                                                                     np.int64)
    noise = g.random(grids.shape) < 0.2
    grids = np.where(noise, g.integers(0, codes, grids.shape), grids).astype(np.int32)
    z = g.standard_normal((n, 2, 7, 7)).astype(np.float32)
    arrays = {f"{s}_{k}": v for s in ("train", "test") for k, v in
              (("tokens", grids), ("latents", z), ("quantized", z), ("y", labels))}
    write_token_store(root, arrays, {"tokenizer": "models/tok.pt", "codes": codes,
                                     "latent_shape": [2, 7, 7], "dataset": "fashion_mnist"})


@pytest.fixture
def ws(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _store(tmp_path / "data/tokens/tok")
    return tmp_path


def _cfg(**over) -> PriorConfig:
    return load_section(PriorConfig, {**RAW, **over}, "prior.m", "cpu")


def test_the_data_hook_gives_raster_grids_and_labels_by_step(ws):
    data = get("prior").data(_cfg(), 0, torch.device("cpu"))
    assert data.shape == (49,) and data.examples == N
    x, y = data.batches(3)
    x2, y2 = data.batches(3)
    assert x.shape == (16, 49) and x.dtype == torch.int64 and y.shape == (16,)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(x, data.batches(4)[0])
    assert x.min() >= 0 and x.max() < CODES and y.max() < 10


def test_the_vocabulary_comes_from_the_store_and_round_trips(ws):
    family = get("prior")
    built = family.build(_cfg(), (49,))
    assert built.arch["codes"] == CODES and built.arch["grid"] == [7, 7]
    assert built.net.vocab == CODES + 10 + 1 and built.net.gpt.arch.max_len == 50
    net = family.rebuild(built.arch, _cfg())
    net.load_state_dict(built.net.state_dict())
    decay, no_decay = built.param_groups
    assert all(p.dim() >= 2 for p in decay["params"]) and no_decay["weight_decay"] == 0.0


def test_a_missing_token_store_names_the_stage_to_run(ws):
    with pytest.raises(DataError, match=r"data/tokens/other/manifest.json is missing .*"
                                        r"evaluate-vq@other"):
        get("prior").data(_cfg(tokenizer="other"), 0, torch.device("cpu"))


def test_a_missing_tokenizer_names_the_stage_to_run(ws):
    with pytest.raises(DataError, match=r"models/tok.pt is missing .*pretrain-vq@tok"):
        load(_cfg(), torch.device("cpu"))


def test_codes_outside_the_codebook_are_refused(ws):
    root = ws / "data/tokens/tok"
    meta = json.loads((root / "manifest.json").read_text())
    meta["codes"] = 2  # the grids hold codes up to 15
    (root / "manifest.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match=r"codes outside \[0, 2\)"):
        get("prior").data(_cfg(), 0, torch.device("cpu"))


def test_a_tiny_fixed_seed_run_lowers_the_loss(ws):
    cfg = _cfg()
    family = get("prior")
    data = family.data(cfg, 0, torch.device("cpu"))
    torch.manual_seed(0)
    built = family.build(cfg, data.shape)
    run = RunSpec(seed=0, device=torch.device("cpu"), ckpt_path=ws / "ck/last.pt",
                  config_hash="t", progress=False)
    result = train(built.net, built.objective, data.batches, cfg, run, built.param_groups)
    losses = [r["loss"] for r in result.history]
    assert losses[0] > 2.5  # about ln(27) at init
    assert losses[-1] < 0.7 * losses[0], losses
