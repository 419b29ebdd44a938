"""The CIFAR-10 and CelebA 64x64 presets (params.yaml `presets:`) on the same code path as the
Fashion-MNIST models: fixture files in the exact on-disk formats go through the real fetch and
preprocess stages, then each preset, shrunk to seconds, through the real train and evaluate
stages. The committed preset sizes are checked without training (U-Net parameter counts)."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys

import numpy as np
import pytest
import yaml

from genlab.config import load_section
from genlab.families.diffusion.config import DiffusionConfig
from genlab.models.unet import UNet
from tests.conftest import ROOT
from tests.data.conftest import write_celeba, write_cifar10
from tests.e2e.conftest import make_env, make_workspace, run, set_params

TINY = {"net": {"model_channels": 8, "channel_mult": [1, 2], "num_blocks": 1,
                "attn_resolutions": [], "num_heads": 1},
        "method": {"kind": "edm", "num_steps": 2}, "steps": 2, "batch_size": 4,
        "warmup_steps": 1, "ckpt_every": 2, "log_every": 1}


def _committed_presets() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())["presets"]["diffusion"]


@pytest.mark.parametrize("name,side,lo,hi", [("edm_cifar10", 32, 50e6, 65e6),
                                             ("edm_celeba64", 64, 20e6, 120e6)])
def test_gpu_preset_sizes(name, side, lo, hi):
    cfg = load_section(DiffusionConfig, _committed_presets()[name], f"presets.diffusion.{name}",
                       "gpu")
    net = UNet(in_channels=3, out_channels=3, resolution=side,
               label_dim=10 if cfg.conditional else 0,
               **{k: getattr(cfg.net, k) for k in ("model_channels", "channel_mult",
                                                   "num_blocks", "attn_resolutions",
                                                   "num_heads", "dropout")})
    assert lo < net.num_parameters() < hi  # edm_cifar10: NVlabs/edm's DDPM++ CIFAR-10 size


def test_cifar10_and_celeba_presets_train_and_sample(tmp_path):
    raw = tmp_path / "raw"
    write_cifar10(raw)
    write_celeba(raw)
    ws = make_workspace(tmp_path / "ws", git=False)
    presets = _committed_presets()
    set_params(ws, {
        "tracking.enabled": False,
        "data.cifar10": {"enabled": True, "source_dir": str(raw), "download": False,
                         "verify_md5": False, "limit": 0},
        "data.celeba": {"enabled": True, "source_dir": str(raw), "download": False,
                        "verify_md5": False, "size": 64, "limit": 0},
        "presets": {"diffusion": {
            "edm_cifar10": presets["edm_cifar10"] | TINY | {"eval_samples": 6},
            "edm_celeba64": presets["edm_celeba64"] | TINY | {"eval_samples": 3}}},
    })
    env = make_env(None)
    for stage in ("fetch", "preprocess"):
        run([sys.executable, "-m", f"stages.{stage}"], ws, env)
    for name, n, side in (("edm_cifar10", 4, 32), ("edm_celeba64", 3, 64)):
        run([sys.executable, "-m", "stages.train", "diffusion", name], ws, env)
        run([sys.executable, "-m", "stages.evaluate", "diffusion", name], ws, env)
        samples = np.load(ws / f"data/samples/{name}.npz")
        assert samples["images"].shape == (n, 3, side, side)
        assert samples["images"].dtype == np.uint8
        metrics = json.loads((ws / f"metrics/eval/{name}.json").read_text())
        gaps = [v for k, v in metrics.items() if k.endswith(("mean_gap", "std_gap"))
                or "_mean_gap_" in k or "_std_gap_" in k]
        # untrained: any size, but finite and present
        assert gaps and all(math.isfinite(v) and v >= 0 for v in gaps), metrics
        assert (ws / f"figures/{name}").is_dir() and any((ws / f"figures/{name}").glob("*.png"))
    labels = np.load(ws / "data/samples/edm_cifar10.npz")["labels"]
    assert (labels == np.arange(4) % 10).all()  # conditional: requested classes (4 test images)
    assert (np.load(ws / "data/samples/edm_celeba64.npz")["labels"] == -1).all()


def test_a_preset_without_its_data_is_a_clear_error(tmp_path, prepared_data):

    ws = make_workspace(tmp_path / "ws", git=False)
    shutil.copytree(prepared_data, ws / "data")
    set_params(ws, {"tracking.enabled": False, "presets": {"diffusion": _committed_presets()}})

    proc = subprocess.run([sys.executable, "-m", "stages.train", "diffusion", "edm_cifar10"],
                          cwd=ws,
                          env=make_env(None), capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "cifar10" in proc.stderr and "preprocess" in proc.stderr, proc.stderr[-2000:]
    assert not (ws / "models/edm_cifar10.pt").exists()
