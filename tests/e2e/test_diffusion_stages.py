"""The image diffusion path end to end on tiny settings: a class-conditional EDM U-Net trained
by the real train stage and evaluated (FD protocol, guidance sweep, samples file) by the real
evaluate stage. Quality is not checked here, only the contract of every output."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from tests.conftest import ROOT
from tests.e2e.conftest import make_env, make_workspace, run, set_params

TINY_EDM = {
    "dataset": "fashion_mnist", "conditional": True,
    "guidance": [0.0, 2.0], "label_dropout": 0.2, "eval_samples": 60,
    "net": {"kind": "unet", "model_channels": 8, "channel_mult": [1, 2],
            "attn_resolutions": [14], "num_blocks": 1},
    "method": {"kind": "edm", "num_steps": 3},
    "steps": 6, "batch_size": 16, "warmup_steps": 2, "ckpt_every": 3, "log_every": 3,
}


# EDM in the fast suite; DDPM and NCSN (27 s each) in `make test-all` (the e2e pipeline
# test runs all three methods unconditionally).
@pytest.mark.parametrize("method", [
    {"kind": "edm", "num_steps": 3},
    pytest.param({"kind": "ddpm", "ddim_steps": 3}, marks=pytest.mark.slow),
    pytest.param({"kind": "ncsn", "num_scales": 3, "n_steps_each": 2}, marks=pytest.mark.slow)])
def test_conditional_image_diffusion_stages(tmp_path, prepared_data, method):
    ws = make_workspace(tmp_path / "ws", git=False)
    shutil.copytree(prepared_data, ws / "data")
    set_params(ws, {"tracking.enabled": False, "diffusion": {"cedm": TINY_EDM | {"method": method}},
                    "evaluate.batch_size": 30})
    env = make_env(None)
    run([sys.executable, "-m", "stages.evaluator"], ws, env)
    run([sys.executable, "-m", "stages.train", "diffusion", "cedm"], ws, env)
    run([sys.executable, "-m", "stages.evaluate", "diffusion", "cedm"], ws, env)

    metrics = json.loads((ws / "metrics/eval/cedm.json").read_text())
    for suffix in ("", "_w2"):  # the first guidance weight (0) is the headline
        for key in ("fd", "precision", "recall", "class_accuracy"):
            assert math.isfinite(metrics[f"sample_{key}{suffix}"])
    assert metrics["fd_floor_train_vs_test"] < metrics["fd_noise_ceiling"]
    sweep = pd.read_csv(ws / "metrics/sweeps/cedm.csv")
    assert list(sweep["w"]) == [0.0, 2.0]
    assert sweep["fd"][0] == metrics["sample_fd"] and sweep["fd"][1] == metrics["sample_fd_w2"]
    samples = np.load(ws / "data/samples/cedm.npz")
    assert samples["images"].shape == (60, 1, 28, 28) and samples["images"].dtype == np.uint8
    assert (samples["labels"] == np.arange(60) % 10).all()
    assert (ws / "figures/cedm/guidance.png").exists()
    assert (ws / "figures/cedm/samples_w2.png").exists()

    # The sampling benchmarks run from the repository root as documented.
    shutil.copytree(ROOT / "benchmarks", ws / "benchmarks",
                    ignore=shutil.ignore_patterns("__pycache__"))
    run([sys.executable, "benchmarks/bench_sampling.py", "cedm", "--n", "12", "--batch", "6",
         "--repeats", "1", "--json", "bench.json"], ws, env)
    bench = json.loads((ws / "bench.json").read_text())
    assert bench["n"] == 12 and bench["seconds"] > 0 and bench["device"] == "cpu"
    cmp = [sys.executable, "benchmarks/compare_samplers.py", "cedm", "--n", "20", "--json",
           "cmp.json", "--samplers"]
    if method["kind"] == "ddpm":
        # Langevin / Heun need a score: a clear error before anything is sampled.
        proc = subprocess.run([*cmp, "own", "ald:3:2:1e-4"], cwd=ws, env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode != 0 and "sampler ald needs a ncsn or edm model" in proc.stderr
        run([*cmp, "ddim:2:1", "own"], ws, env)
        want = ["ddim:2:1.0", "own"]
    else:
        run([*cmp, "ald:3:2:1e-4", "heun:2", "own", "ald:3:2:1e30", "--sigmas", "10", "0.1"],
            ws, env)
        want = ["ald:3:2:0.0001", "heun:2", "own", "ald:3:2:1e+30"]
    rows = json.loads((ws / "cmp.json").read_text())
    assert [r["sampler"] for r in rows] == want
    for r in rows:
        if r["sampler"] == "ald:3:2:1e+30":  # a diverged chain: reported, not scored
            assert r["nonfinite"] == 20 and "fd" not in r
        else:
            assert math.isfinite(r["fd"]) and 0 <= r["recall"] <= 1 and sum(r["classes"]) == 20
