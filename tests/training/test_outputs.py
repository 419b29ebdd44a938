"""A stage's outputs are published together or not at all (stages/_common.Outputs)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from genlab.training.checkpoint import load_checkpoint, temp_path
from stages._common import Outputs


def _old_set(root):
    (root / "figures" / "m").mkdir(parents=True)
    (root / "figures" / "m" / "old.png").write_bytes(b"old figure")
    (root / "eval.json").write_text('{"fd": 1.0}\n')
    (root / "loss.csv").write_text("step,loss\n1,2.0\n")
    return root / "figures" / "m", root / "eval.json", root / "loss.csv"


def _leftovers(root):
    return sorted(p.name for p in root.rglob(".*tmp*"))


def test_a_complete_block_publishes_every_output_and_leaves_no_temp_file(tmp_path):
    figures, out, losses = _old_set(tmp_path)
    model, samples = tmp_path / "m.pt", tmp_path / "m.npz"
    with Outputs(figures, out, losses, model, samples) as outputs:
        folder = outputs.stage(figures, folder=True)
        (folder / "new.png").write_bytes(b"new figure")
        np.savez(outputs.stage(samples), images=np.zeros((2, 3), np.uint8))  # adds no suffix
        outputs.json(out, {"fd": 2.0})
        outputs.csv(losses, [{"step": 1, "loss": 0.5}])
        outputs.model(model, {"w": torch.ones(3)})
        assert json.loads(out.read_text()) == {"fd": 1.0}  # nothing published inside the block
    assert sorted(p.name for p in figures.iterdir()) == ["new.png"]
    assert json.loads(out.read_text()) == {"fd": 2.0}
    assert losses.read_text().splitlines() == ["step,loss", "1,0.5"]
    assert torch.equal(load_checkpoint(model)["w"], torch.ones(3))  # checksummed
    assert np.load(samples)["images"].shape == (2, 3)
    assert _leftovers(tmp_path) == []


def test_an_error_half_way_keeps_the_previous_complete_set(tmp_path):
    figures, out, losses = _old_set(tmp_path)
    before = {p: p.read_bytes() for p in (out, losses, figures / "old.png")}
    with pytest.raises(RuntimeError, match="family bug"):
        with Outputs(figures, out, losses) as outputs:
            (outputs.stage(figures, folder=True) / "new.png").write_bytes(b"new figure")
            outputs.csv(losses, [{"step": 1, "loss": 0.5}])
            raise RuntimeError("family bug")  # before the metrics were written
    assert {p: p.read_bytes() for p in before} == before
    assert sorted(p.name for p in figures.iterdir()) == ["old.png"]
    assert _leftovers(tmp_path) == []


def test_a_staged_file_never_written_is_not_published(tmp_path):
    _, out, _ = _old_set(tmp_path)
    sweep = tmp_path / "sweep.csv"
    with Outputs(out, sweep) as outputs:
        outputs.stage(sweep)  # the family had no sweep to write
        outputs.json(out, {"fd": 3.0})
    assert not sweep.exists() and json.loads(out.read_text()) == {"fd": 3.0}


def test_orphans_of_a_killed_run_are_removed_on_entry(tmp_path):
    figures, out, _ = _old_set(tmp_path)
    orphan_file = temp_path(out)
    orphan_file.write_text("half")
    orphan_dir = temp_path(figures)
    orphan_dir.unlink()
    orphan_dir.mkdir()
    (orphan_dir / "x.png").write_bytes(b"x")
    unrelated = tmp_path / ".other.json.abc.tmp"
    unrelated.write_text("not ours")
    with Outputs(figures, out):
        pass
    assert not orphan_file.exists() and not orphan_dir.exists() and unrelated.exists()
