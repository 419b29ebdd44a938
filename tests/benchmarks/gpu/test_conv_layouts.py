"""benchmarks/gpu/conv_layouts.py: the layout audit of a channels_last U-Net training step."""

from __future__ import annotations

import importlib
import sys

import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def tool():
    sys.path.insert(0, str(ROOT / "benchmarks" / "gpu"))
    return importlib.import_module("conv_layouts")


def _not_nhwc(rows, op, argument):
    return sum(n for (o, a, kind), n in rows.items()
               if o == op and a == argument and kind in ("NCHW", "strided"))


@pytest.mark.slow  # traces a whole training step
def test_every_convolution_gets_nhwc_activations_with_the_nhwc_paths(tool):
    """The GPU picture (fake tensors: torch's group_norm returns NCHW, as on CUDA). With the
    U-Net's NHWC paths (its layout-keeping GroupNorm) no convolution forward or backward is
    handed an NCHW activation; the one NCHW grad_output left is the head's (the loss gradient
    of a 1-channel output here)."""
    result = tool.main(["--preset", "fmnist_cpu"])
    rows, totals = result["rows"], result["totals"]
    assert totals["aten.convolution.default"] == totals["aten.convolution_backward.default"] > 20
    assert totals["group_norm_nhwc_inputs"] == 0
    assert _not_nhwc(rows, "convolution", "input") == 0
    assert _not_nhwc(rows, "convolution_backward", "input") == 0
    assert _not_nhwc(rows, "convolution_backward", "grad_output") <= 1


@pytest.mark.slow  # traces a whole training step
def test_the_plain_paths_hand_convolutions_nchw_activations(tool):
    """The audit sees the problem the NHWC paths fix (it fails otherwise): without them,
    torch's group_norm returns NCHW."""
    result = tool.main(["--preset", "fmnist_cpu", "--nchw-paths"])
    rows, totals = result["rows"], result["totals"]
    n_norm = totals["group_norm_nhwc_inputs"]
    assert n_norm > 20
    # every GroupNorm feeds a convolution through SiLU / scale-shift / dropout, forward and
    # backward (its saved input), except where the block's input is a single channel
    assert _not_nhwc(rows, "convolution", "input") == n_norm
    assert _not_nhwc(rows, "convolution_backward", "input") == n_norm


def test_bad_batch_is_named(tool, capsys):
    with pytest.raises(SystemExit):
        tool.main(["--batch", "0"])
    assert "--batch" in capsys.readouterr().err
