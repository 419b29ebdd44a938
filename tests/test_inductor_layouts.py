"""benchmarks/inductor_layouts.py: inductor's CUDA code for the U-Net, generated without a GPU.

Run as its own process (it patches torch internals while it runs). Forward graph only, on the
small CPU preset, to stay fast.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT


def _report(tmp_path, variant: str) -> dict:
    out = tmp_path / f"{variant}.json"
    proc = subprocess.run(
        [sys.executable, "benchmarks/inductor_layouts.py", "--preset", "fmnist_cpu",
         "--batch", "16", "--graphs", "fwd", "--variant", variant, "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())["fwd"]


def test_nhwc_code_paths_cut_the_transposing_kernels_in_the_generated_cuda_code(tmp_path):
    ours, before = _report(tmp_path, "compiled"), _report(tmp_path, "compiled-nchw-paths")
    assert ours["kernels"] > 50 and before["kernels"] > 50  # a whole U-Net was generated
    # the NCHW formulation (torch's group_norm, avg_pool2d, cat, ...) transposes far more
    n_ours, n_before = ours["transposing_kernels"], before["transposing_kernels"]
    assert n_before >= 2 * n_ours and n_before - n_ours >= 10, (ours, before)
    args = ours["cudnn_args"]
    assert args.get("convolution input NCHW", 0) == 0, args
    assert args.get("convolution input NHWC", 0) > 30, args


def test_bad_arguments_are_named(tmp_path):
    for argv, key in ((["--graphs", "fwd,bw"], "--graphs"), (["--batch", "1"], "--batch"),
                      (["--variant", "eager-bf16"], "--variant")):
        proc = subprocess.run([sys.executable, "benchmarks/inductor_layouts.py", *argv],
                              cwd=ROOT, capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
        assert proc.returncode != 0 and key in proc.stderr, proc.stderr[-2000:]
