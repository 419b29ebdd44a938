"""The generic loop: schedule, batch order, exact in-process resume, checkpoint safety."""

from __future__ import annotations

import dataclasses
import warnings

import pytest
import torch

from genlab.config import LoopConfig
from genlab.errors import TrainingError
from genlab.models.ae import MLPAutoencoder
from genlab.objectives.ae import DenoisingLoss
from genlab.training.checkpoint import CheckpointError, load_checkpoint, save_atomic
from genlab.training.loop import EpochBatches, RunSpec, lr_factor, train

CFG = LoopConfig(steps=24, batch_size=16, lr=3e-3, warmup_steps=4, ckpt_every=8, log_every=4,
                 ema_half_life=200.0)


def test_lr_factor_warmup_then_cosine():
    assert lr_factor(0, CFG) == pytest.approx(0.25)
    assert lr_factor(3, CFG) == pytest.approx(1.0)
    assert lr_factor(4, CFG) == pytest.approx(1.0)
    assert lr_factor(14, CFG) == pytest.approx(0.5)  # half-way through the cosine
    assert lr_factor(24, CFG) == pytest.approx(0.0, abs=1e-12)
    const = dataclasses.replace(CFG, decay="constant")
    assert lr_factor(20, const) == 1.0


def test_epoch_batches_cover_each_epoch_once_and_repeat_by_step():
    a, b = EpochBatches(50, 10, seed=3), EpochBatches(50, 10, seed=3)
    epoch0 = torch.cat([a(s) for s in range(5)])
    assert sorted(epoch0.tolist()) == list(range(50))
    assert not torch.equal(a(5), a(0))  # a new permutation next epoch
    assert torch.equal(b(7), a(7))  # depends only on (seed, step)
    with pytest.raises(ValueError, match="larger than the data set"):
        EpochBatches(5, 10, 0)


def _setup(tmp_path, name="ck"):
    torch.manual_seed(0)
    data = torch.randn(200, 2)
    order = EpochBatches(200, CFG.batch_size, seed=1)
    net = MLPAutoencoder(dim=2, hidden=16, depth=2, latent=1)
    run = RunSpec(seed=1, device=torch.device("cpu"), ckpt_path=tmp_path / name / "last.pt",
                  config_hash="h1", progress=False)
    return net, (lambda step: (data[order(step)], None)), run


def _flat(sd: dict) -> torch.Tensor:
    return torch.cat([v.flatten().float() for v in sd.values()])


def test_resume_reproduces_an_uninterrupted_run(tmp_path):
    net_a, batches, run_a = _setup(tmp_path, "a")
    full = train(net_a, DenoisingLoss((0.1, 0.3)), batches, CFG, run_a)

    # The same run crashes right after its step-16 checkpoint, then a fresh setup resumes it.
    net_b, batches_b, run_b = _setup(tmp_path, "b")
    assert _stop_after(net_b, batches_b, run_b, steps=16) == 16
    torch.manual_seed(123)  # global RNG must not matter: state is restored from the checkpoint
    net_c, batches_c, _ = _setup(tmp_path, "b")
    resumed = train(net_c, DenoisingLoss((0.1, 0.3)), batches_c, CFG, run_b)
    assert resumed.resumed_from == 16
    assert torch.equal(_flat(net_c.state_dict()), _flat(full.net.state_dict()))
    assert torch.equal(_flat(resumed.ema.state_dict()), _flat(full.ema.state_dict()))
    assert [r["step"] for r in resumed.history] == [r["step"] for r in full.history]


class _Stop(Exception):
    pass


def _stop_after(net, batches, run, steps):
    """Run the full config but crash right after the checkpoint at `steps`."""

    def on_checkpoint(step):
        if step == steps:
            raise _Stop

    with pytest.raises(_Stop):
        train(net, DenoisingLoss((0.1, 0.3)), batches, CFG,
              dataclasses.replace(run, on_checkpoint=on_checkpoint))
    return load_checkpoint(run.ckpt_path)["step"]


def test_checkpoint_of_other_params_is_set_aside(tmp_path):
    net, batches, run = _setup(tmp_path)
    train(net, DenoisingLoss((0.1,)), batches, dataclasses.replace(CFG, steps=8), run)
    net2, batches2, run2 = _setup(tmp_path)
    run2 = dataclasses.replace(run2, config_hash="h2")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train(net2, DenoisingLoss((0.1,)), batches2, dataclasses.replace(CFG, steps=8),
                       run2)
    assert result.resumed_from == 0
    assert any("other params" in str(w.message) for w in caught)
    assert (run.ckpt_path.parent / "last.stale-h1.pt").exists()


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "last.pt"
    save_atomic({"step": 1, "w": torch.ones(1000)}, path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match=str(path)):
        load_checkpoint(path)


def test_save_atomic_leaves_old_file_on_failure(tmp_path):
    path = tmp_path / "x.pt"
    save_atomic({"a": torch.zeros(2)}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        save_atomic({"a": Unpicklable()}, path)
    assert torch.equal(load_checkpoint(path)["a"], torch.zeros(2))
    assert [p.name for p in tmp_path.iterdir()] == ["x.pt"]  # no temp files left


def test_checkpoint_with_arbitrary_objects_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    import argparse

    torch.save({"obj": argparse.Namespace(a=1)}, path)
    with pytest.raises(CheckpointError, match="unreadable"):
        load_checkpoint(path)


def test_lr_factor_follows_the_time_budget_when_it_runs_out_first():
    timed = dataclasses.replace(CFG, steps=10_000, max_seconds=10.0)
    assert lr_factor(5, timed, time_fraction=0.5) == pytest.approx(0.5)  # cosine mid-point
    assert lr_factor(5, timed, time_fraction=1.0) == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(0, timed, time_fraction=0.9) == pytest.approx(0.25)  # warm-up still wins


def test_time_budget_stops_the_run_and_a_resume_does_not_train_on(tmp_path, monkeypatch):
    # A fake clock that advances 1 s per reading keeps the test fast and deterministic.
    import genlab.training.loop as loop

    ticks = iter(range(10**6))
    monkeypatch.setattr(loop.time, "perf_counter", lambda: float(next(ticks)))
    timed = dataclasses.replace(CFG, steps=10_000, max_seconds=20.0)
    net, batches, run = _setup(tmp_path)
    res = train(net, DenoisingLoss((0.1, 0.3)), batches, timed, run)
    assert 1 < res.steps_done < 50, res.steps_done  # stopped by time, long before 10k steps
    assert res.train_seconds >= 20.0
    assert res.warmup_seconds > 0  # the first step is timed apart
    state = load_checkpoint(run.ckpt_path)
    assert state["step"] == res.steps_done and state["train_seconds"] == res.train_seconds
    assert res.history[-1]["step"] == res.steps_done and res.history[-1]["lr"] < 1e-3

    net2, batches2, run2 = _setup(tmp_path)  # same checkpoint path: resumes, budget spent
    again = train(net2, DenoisingLoss((0.1, 0.3)), batches2, timed, run2)
    assert again.resumed_from == res.steps_done and again.steps_done == res.steps_done
    assert torch.equal(_flat(net2.state_dict()), _flat(net.state_dict()))


def test_channels_last_runs_a_conv_net_and_keeps_the_state_dict(tmp_path):
    from genlab.models.precond import EDMPrecond
    from genlab.models.unet import UNet
    from genlab.objectives.diffusion import EDMLoss

    torch.manual_seed(0)
    net = EDMPrecond(UNet(resolution=8, in_channels=1, model_channels=8, channel_mult=(1, 2),
                          num_blocks=1, attn_resolutions=(4,), num_heads=1))
    keys = set(net.state_dict())
    data = torch.rand(32, 1, 8, 8) * 2 - 1
    order = EpochBatches(32, 8, seed=0)
    cfg = LoopConfig(steps=3, batch_size=8, lr=1e-3, warmup_steps=1, ckpt_every=3, log_every=1)
    run = RunSpec(seed=0, device=torch.device("cpu"), ckpt_path=tmp_path / "u" / "last.pt",
                  config_hash="h", progress=False, channels_last=True)
    res = train(net, EDMLoss(), lambda s: (data[order(s)], None), cfg, run)
    assert res.steps_done == 3 and all(torch.isfinite(torch.tensor(r["loss"]))
                                       for r in res.history)
    assert next(p for p in net.parameters() if p.ndim == 4).is_contiguous(
        memory_format=torch.channels_last)
    assert set(load_checkpoint(run.ckpt_path)["model"]) == keys


def test_first_log_row_throughput_leaves_out_the_warm_up_step(tmp_path):
    """The first step (torch.compile, autotuning on a GPU) is timed apart: a slow first step
    shows in warmup_seconds, not in the first row's examples/s."""
    import time

    net, batches, run = _setup(tmp_path)
    calls = {"n": 0}

    def slow_first_batch(step):
        calls["n"] += 1
        if calls["n"] == 1:
            time.sleep(0.5)  # stands in for a compile
        return batches(step)

    cfg = dataclasses.replace(CFG, steps=8, log_every=4)
    res = train(net, DenoisingLoss((0.1, 0.3)), slow_first_batch, cfg, run)
    assert res.warmup_seconds >= 0.5
    first = res.history[0]
    # 3 timed steps of a tiny MLP take milliseconds: with the 0.5 s in, this would be < 128.
    assert first["examples_per_s"] > 3 * CFG.batch_size / 0.25, first
    assert first["loss"] > 0  # the loss average still covers all 4 steps


def test_a_row_of_only_the_warm_up_step_has_no_throughput(tmp_path):
    net, batches, run = _setup(tmp_path)
    res = train(net, DenoisingLoss((0.1, 0.3)), batches,
                dataclasses.replace(CFG, steps=2, log_every=1), run)
    assert res.history[0]["examples_per_s"] != res.history[0]["examples_per_s"]  # nan
    assert res.history[1]["examples_per_s"] > 0


def test_compiled_training_gets_the_inductor_options(tmp_path):
    """run.compile compiles the network in place with TRAIN_COMPILE_OPTIONS (the forward and
    the backward graph get them), and every option is a setting this torch's inductor has:
    an unknown key would only fail at the first compiled step, after the data were loaded."""
    import torch._inductor.config as inductor_config

    from genlab.training.loop import TRAIN_COMPILE_OPTIONS

    default = inductor_config.realize_reads_threshold
    assert TRAIN_COMPILE_OPTIONS["realize_reads_threshold"] > default
    with inductor_config.patch(TRAIN_COMPILE_OPTIONS):  # raises on an unknown key
        assert all(getattr(inductor_config, k) == v for k, v in TRAIN_COMPILE_OPTIONS.items())
    net, batches, run = _setup(tmp_path)
    calls = []
    net.compile = lambda **kwargs: calls.append(kwargs)  # records; the net stays eager here
    res = train(net, DenoisingLoss((0.1, 0.3)), batches, dataclasses.replace(CFG, steps=2),
                dataclasses.replace(run, compile=True))
    assert res.steps_done == 2
    assert calls == [{"options": TRAIN_COMPILE_OPTIONS}]
    assert calls[0]["options"] is not TRAIN_COMPILE_OPTIONS  # a copy: torch may not mutate it


def test_keep_freed_memory_sets_glibc_malloc_and_changes_no_value():
    import sys

    from genlab.training.device import keep_freed_memory

    x = torch.randn(64, 32, 28, 28, generator=torch.Generator().manual_seed(0))
    before = torch.nn.functional.interpolate(x, scale_factor=2.0, mode="nearest").sum()
    ok = keep_freed_memory()
    assert ok == sys.platform.startswith("linux")  # glibc: every mallopt call accepted
    after = torch.nn.functional.interpolate(x, scale_factor=2.0, mode="nearest").sum()
    assert torch.equal(before, after)


def test_param_groups_scale_the_learning_rate_and_must_cover_the_net(tmp_path):
    """Two time-scale updates: each group's lr is cfg.lr times its lr_scale, under the same
    schedule; a parameter left out of every group is an error before any step."""
    net, batches, run = _setup(tmp_path)
    enc, dec = list(net.encoder.parameters()), list(net.decoder.parameters())
    cfg = dataclasses.replace(CFG, steps=8, warmup_steps=0, decay="constant")
    seen = []

    class Spy(torch.optim.AdamW):  # records the learning rates the loop gives each group
        def step(self, closure=None):
            seen.append([g["lr"] for g in self.param_groups])
            return super().step(closure)

    from unittest import mock

    with mock.patch("torch.optim.AdamW", Spy):
        train(net, DenoisingLoss((0.1,)), batches, cfg, run,
              param_groups=[{"params": enc, "lr_scale": 4.0, "betas": (0.0, 0.99)},
                            {"params": dec}])
    assert seen and all(lrs == pytest.approx([4 * cfg.lr, cfg.lr]) for lrs in seen)
    with pytest.raises(AssertionError, match="parameters in no optimiser group"):
        train(net, DenoisingLoss((0.1,)), batches, cfg, run, param_groups=[{"params": enc}])


def test_objective_sees_every_step_once_also_after_a_resume(tmp_path):
    class Warmup(DenoisingLoss):  # a loss whose schedule depends on the step (KL warm-up)
        steps: list[int] = []

        def set_step(self, step: int) -> None:
            self.steps.append(step)

    net, batches, run = _setup(tmp_path)
    with pytest.raises(_Stop):
        train(net, Warmup((0.1,)), batches, CFG,
              dataclasses.replace(run, on_checkpoint=lambda s: (_ for _ in ()).throw(_Stop())
                                  if s == 16 else None))
    net2, batches2, _ = _setup(tmp_path)
    train(net2, Warmup((0.1,)), batches2, CFG, run)
    assert Warmup.steps == list(range(24))


def _poisoned(bad_steps: set[int]):
    """The denoising objective, but non-finite at `bad_steps` (an inf loss, a NaN gradient)."""
    base = DenoisingLoss((0.1, 0.3))

    def objective(net, x, cond, generator):
        loss = base(net, x, cond, generator)
        step = objective.calls
        objective.calls += 1
        if step in bad_steps:
            return loss * float("nan") if step % 2 else loss + float("inf")
        return loss

    objective.calls = 0
    return objective


def test_non_finite_steps_are_skipped_and_leave_the_weights_alone(tmp_path):
    net, batches, run = _setup(tmp_path, "skip")
    reference, _, run_ref = _setup(tmp_path, "ref")
    bad = {5, 6, 13}
    result = train(net, _poisoned(bad), batches, CFG, run)
    assert result.bad_steps == 3 and result.steps_done == CFG.steps
    assert all(torch.isfinite(p).all() for p in net.parameters())
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in result.history)
    # the good steps match a run whose objective skips nothing only up to the first bad step
    cfg4 = dataclasses.replace(CFG, steps=5, ckpt_every=5)
    ref = train(reference, _poisoned(set()), batches, cfg4, run_ref)
    short, _, run_short = _setup(tmp_path, "short")
    cut = train(short, _poisoned(bad), batches, dataclasses.replace(CFG, steps=7, ckpt_every=7),
                run_short)
    assert cut.bad_steps == 2
    assert torch.equal(_flat(short.state_dict()), _flat(ref.net.state_dict()))  # 5, 6 no-ops


def test_consecutive_non_finite_steps_abort_and_keep_the_last_checkpoint(tmp_path):


    net, batches, run = _setup(tmp_path, "abort")
    cfg = dataclasses.replace(CFG, max_bad_steps=3)
    with pytest.raises(TrainingError, match=r"3 consecutive steps .*steps 9\.\.11"):
        train(net, _poisoned({8, 9, 10}), batches, cfg, run)
    assert load_checkpoint(run.ckpt_path)["step"] == 8  # the checkpoint before the bad steps


def test_an_empty_checkpoint_file_is_a_clear_error(tmp_path):
    path = tmp_path / "last.pt"
    path.write_bytes(b"")
    with pytest.raises(CheckpointError, match="unreadable"):
        load_checkpoint(path)


def test_a_killed_save_leaves_temp_files_that_the_next_run_removes(tmp_path):
    net, batches, run = _setup(tmp_path, "orphans")
    run.ckpt_path.parent.mkdir(parents=True)
    orphan = run.ckpt_path.parent / f".{run.ckpt_path.name}.abc123.tmp"  # save_atomic's name
    orphan.write_bytes(b"half a checkpoint")
    other = run.ckpt_path.parent / "notes.txt"
    other.write_text("kept")
    train(net, DenoisingLoss((0.1,)), batches, dataclasses.replace(CFG, steps=2), run)
    assert not orphan.exists() and other.exists() and run.ckpt_path.is_file()


def test_a_checkpoint_whose_tensor_bytes_changed_is_refused(tmp_path):
    """Flip bytes inside a tensor record of the zip (its structure intact): torch.load alone
    would load it; the checksum refuses it."""
    import zipfile

    path = tmp_path / "last.pt"
    w = torch.arange(4096, dtype=torch.float32)
    save_atomic({"step": 3, "w": w}, path)
    assert torch.equal(load_checkpoint(path)["w"], w) and "sha256" not in load_checkpoint(path)
    with zipfile.ZipFile(path) as z:
        info = next(i for i in z.infolist() if i.filename.endswith("data/0"))
    raw = bytearray(path.read_bytes())
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    for i in range(start + 100, start + 108):
        raw[i] ^= 0x55
    path.write_bytes(bytes(raw))
    assert torch.load(path, weights_only=True)["w"].ne(w).any()  # loads, silently wrong
    with pytest.raises(CheckpointError, match="fails its checksum"):
        load_checkpoint(path)


def test_a_corrupt_last_checkpoint_falls_back_to_the_one_before(tmp_path):
    from genlab.training.loop import previous

    net, batches, run = _setup(tmp_path, "fallback")
    _stop_after(net, batches, run, 16)  # checkpoints at 8 and 16: last.pt (16), last.prev.pt (8)
    assert load_checkpoint(previous(run.ckpt_path))["step"] == 8
    run.ckpt_path.write_bytes(run.ckpt_path.read_bytes()[:300])  # truncated
    net2, _, _ = _setup(tmp_path, "fallback")
    with pytest.warns(UserWarning, match="resuming from the one before it"):
        result = train(net2, DenoisingLoss((0.1, 0.3)), batches, CFG, run)
    assert result.resumed_from == 8 and result.steps_done == CFG.steps


def test_when_both_checkpoints_are_corrupt_the_error_names_both(tmp_path):
    from genlab.training.loop import previous

    net, batches, run = _setup(tmp_path, "both")
    _stop_after(net, batches, run, 16)
    for path in (run.ckpt_path, previous(run.ckpt_path)):
        path.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"no usable checkpoint: .*last\.pt.*last\.prev\.pt"):
        train(net, DenoisingLoss((0.1, 0.3)), batches, CFG, run)


def _mse(net, x, cond, generator):
    return ((net(x) - x) ** 2).mean(1)


def test_accumulated_micro_batches_give_the_whole_batch_update(tmp_path):
    # The mean loss of 4 equal micro-batches, each backward scaled by 1/4, has the gradient
    # of the whole batch's mean loss: the weights after 12 steps agree to float rounding.
    runs = {}
    for parts in (1, 4):
        net, batches, run = _setup(tmp_path, f"acc{parts}")
        cfg = dataclasses.replace(CFG, accumulate=parts)
        runs[parts] = train(net, _mse, batches, cfg, run)
    one, four = (_flat(runs[p].net.state_dict()) for p in (1, 4))
    assert not torch.equal(one, _flat(_setup(tmp_path)[0].state_dict()))  # it trained
    torch.testing.assert_close(four, one, rtol=1e-5, atol=1e-6)
    assert [r["loss"] for r in runs[4].history] == pytest.approx(
        [r["loss"] for r in runs[1].history], rel=1e-5)


def test_a_batch_that_does_not_split_into_the_micro_batches_is_a_clear_error(tmp_path):
    net, batches, run = _setup(tmp_path)
    with pytest.raises(TrainingError, match="does not split into 3 equal micro-batches"):
        train(net, _mse, batches, dataclasses.replace(CFG, accumulate=3), run)
