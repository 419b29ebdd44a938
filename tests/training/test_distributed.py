"""DDP (training/distributed.py, stages/launch.py): sharding, the torchrun command, and 2 gloo
processes under torchrun ending with the weights of the 1-process run of the same global batch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from genlab.config import ConfigError, RuntimeConfig
from genlab.training.device import step_generator
from genlab.training.distributed import Dist
from stages import launch
from tests.conftest import ROOT


def test_shards_partition_the_global_batch_and_one_process_is_unchanged():
    x = torch.arange(12).view(6, 2)
    parts = [Dist(rank=r, world=3).shard(x) for r in range(3)]
    assert torch.equal(torch.cat(parts), x) and all(len(p) == 2 for p in parts)
    assert Dist().shard(x) is x and Dist(rank=1, world=2).shard(None) is None
    # shard 0's draws are the single-process stream; other shards draw their own
    g0 = Dist().generator(5, 7, torch.device("cpu"))
    assert torch.equal(torch.randn(4, generator=g0),
                       torch.randn(4, generator=step_generator(5, 7)))
    g1 = Dist(rank=1, world=2).generator(5, 7, torch.device("cpu"))
    assert not torch.equal(torch.randn(4, generator=g1),
                           torch.randn(4, generator=step_generator(5, 7)))
    with pytest.raises(ValueError, match="m.batch_size: 10 does not split into 4"):
        Dist(world=4).check_batch(10, "m.batch_size")


def test_torchrun_command_from_params():
    one = RuntimeConfig()
    assert not launch.wanted(one, {}) and launch.world_size(one) == 1
    two = RuntimeConfig(processes=2)
    assert launch.wanted(two, {})
    assert not launch.wanted(two, {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "2"})
    cmd = launch.torchrun_argv(two, "stages.train", ["diffusion", "edm"], "id")
    assert cmd[1:] == ["-m", "torch.distributed.run", "--nproc-per-node", "2", "--standalone",
                       "-m", "stages.train", "diffusion", "edm"]
    multi = RuntimeConfig(processes=4, nodes=2, rdzv_endpoint="node0:29400")
    cmd = launch.torchrun_argv(multi, "stages.train", ["gpt", "g"], "genlab-x")
    assert cmd[3:] == ["--nproc-per-node", "4", "--nnodes", "2", "--rdzv-backend", "c10d",
                       "--rdzv-endpoint", "node0:29400", "--rdzv-id", "genlab-x",
                       "-m", "stages.train", "gpt", "g"]
    assert launch.run_id("m", ["a"], "p: 1") == launch.run_id("m", ["a"], "p: 1") != \
        launch.run_id("m", ["a"], "p: 2")
    launch.check(multi, 64, "gpt.g.batch_size")
    with pytest.raises(ConfigError, match="runtime.rdzv_endpoint"):
        launch.check(RuntimeConfig(nodes=2), 64, "gpt.g.batch_size")
    with pytest.raises(ConfigError, match="gpt.g.batch_size: 60 does not split into 8"):
        launch.check(multi, 60, "gpt.g.batch_size")
    with launch.process_group(torch.device("cpu"), {}) as (dist, device):
        assert dist is None and device.type == "cpu"  # no torchrun, no process group


def _train(out: Path, cases: list[str], steps: int, torchrun: bool, shards: int = 1,
           accumulate: int = 1) -> None:
    head = [sys.executable, "-m", "torch.distributed.run", "--standalone",
            "--nproc-per-node", "2"] if torchrun else [sys.executable]
    cmd = [*head, "-m", "tests.training.ddp_worker", str(out), "--steps", str(steps),
           "--shards", str(shards), "--accumulate", str(accumulate), *cases]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def _max_diff(a: dict, b: dict, params_only: set[str] | None = None) -> float:
    names = params_only if params_only is not None else a.keys()
    return max((a[n].double() - b[n].double()).abs().max().item() for n in names)


def _compare(tmp_path, cases, steps, shards):
    """(oracle, rank 0, rank 1) states of each case: one process with --shards, then 2
    DDP processes."""
    _train(tmp_path / "one", cases, steps, torchrun=False, shards=shards)
    _train(tmp_path / "ddp", cases, steps, torchrun=True)
    load = lambda p: torch.load(p, weights_only=False)  # noqa: E731
    return {c: (load(tmp_path / "one" / f"{c}.pt"), load(tmp_path / "ddp" / f"{c}.pt"),
                load(tmp_path / "ddp" / f"{c}.rank1.pt")) for c in cases}


@pytest.mark.slow
def test_two_processes_match_one_process_at_the_same_global_batch(tmp_path):
    # A deterministic objective (the autoencoder's reconstruction) against the plain
    # one-process run; a random one (EDM) against one process drawing each shard's noise.
    plain = _compare(tmp_path / "plain", ["autoencoder.ae_toy"], 4, shards=1)
    sharded = _compare(tmp_path / "sharded", ["diffusion.edm_toy"], 4, shards=2)
    for case, (one, rank0, rank1) in {**plain, **sharded}.items():
        for key in ("model", "ema"):
            assert _max_diff(one[key], rank0[key]) <= 1e-6, (case, key)
            assert _max_diff(rank0[key], rank1[key]) == 0.0, (case, key)
        assert [r["loss"] for r in one["history"]] == pytest.approx(
            [r["loss"] for r in rank0["history"]], rel=1e-5)
        assert one["history"][-1]["step"] == 4


@pytest.mark.slow
def test_accumulated_micro_batches_under_ddp_match_one_process(tmp_path):
    # 2 ranks x 2 micro-batches (no_sync on the first: one all-reduce a step) against one
    # process taking the whole global batch at once: the same update.
    _train(tmp_path / "one", ["autoencoder.ae_toy"], 4, torchrun=False)
    _train(tmp_path / "ddp", ["autoencoder.ae_toy"], 4, torchrun=True, accumulate=2)
    one, rank0, rank1 = (torch.load(p, weights_only=False) for p in (
        tmp_path / "one/autoencoder.ae_toy.pt", tmp_path / "ddp/autoencoder.ae_toy.pt",
        tmp_path / "ddp/autoencoder.ae_toy.rank1.pt"))
    assert _max_diff(one["model"], rank0["model"]) <= 1e-6
    assert _max_diff(rank0["model"], rank1["model"]) == 0.0
    assert [r["loss"] for r in one["history"]] == pytest.approx(
        [r["loss"] for r in rank0["history"]], rel=1e-5)


# Families whose forward updates state from its own batch, so that one process running the
# shards in turn is not what the ranks do: spectral norm's power iteration (a GAN's critic, a
# VQ-GAN's discriminator) runs once per forward on each rank from rank 0's vectors, and a VQ
# codebook's EMA follows rank 0's shard (DDP broadcasts buffers from rank 0 at each forward).
# ActNorm's data-dependent init (flow on images) is made on each rank's shard, then rank 0's is
# copied to all before the first update: that first step's gradients of the other ranks came
# from their own init. For them the ranks must still hold the same parameters.
FORWARD_STATE = {"gan.gan_eight_gaussians", "gan.gan_fmnist", "vq.vqgan_fmnist",
                 "flow.realnvp_fmnist"}
EXACT = ["autoencoder.ae", "autoencoder.dae_toy", "diffusion.edm_fmnist", "diffusion.ddpm_toy",
         "diffusion.ncsn_toy", "vae.vae_fmnist", "vae.vae_two_moons", "flow.realnvp_two_moons",
         "gpt.recall_rope"]


@pytest.mark.slow
def test_every_family_through_the_registry(tmp_path):
    """Every family whose data the test can make (latent needs a trained tokenizer)."""
    from genlab import families

    cases = EXACT + sorted(FORWARD_STATE)
    assert {c.split(".")[0] for c in cases} == set(families.available()) - {"latent"}
    states = _compare(tmp_path, cases, 6, shards=2)
    for case, (one, rank0, rank1) in states.items():
        params = {n for n in rank0["model"] if "running_" not in n and "num_batches" not in n
                  and not n.endswith(("._u", "._v")) and "quantizer.ema" not in n
                  and n != "quantizer.codebook"}
        assert _max_diff(rank0["model"], rank1["model"], params) == 0.0, case
        assert all(torch.isfinite(t).all() for t in rank0["model"].values()), case
        if case not in FORWARD_STATE:
            assert _max_diff(one["model"], rank0["model"]) <= 1e-5, case
            assert _max_diff(one["ema"], rank0["ema"]) <= 1e-5, case
