"""The one generic training loop: AdamW, warm-up + cosine LR, grad clipping, EMA, bf16 on CUDA,
periodic atomic checkpoints and exact resume (model, EMA, optimiser, schedule, RNG, step)."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from genlab.config import LoopConfig
from genlab.errors import TrainingError
from genlab.training.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_weights,
    remove_orphans,
    save_atomic,
)
from genlab.training.device import autocast, step_generator
from genlab.training.distributed import Dist, no_sync, wrap
from genlab.training.ema import ModelEMA

# inductor settings for the compiled training step (torch.compile's options; the forward and
# the backward graph both get them): inductor's store-or-recompute rules. A pointwise value
# (say, a GroupNorm output, or the gradient after dropout and SiLU) that several kernels read
# is written to memory once it reads more than realize_reads_threshold tensors (inductor's
# default: 4); one that feeds a single kernel is written once it has accumulated more than
# realize_acc_reads_threshold reads (default 8) or more than realize_opcount_threshold
# operations (default 30). In the U-Net's backward each GroupNorm's gradient needs the
# GroupNorm output (recomputed from x, mean, rstd, weight, bias and the block's scale and
# shift) and the gradient through dropout and SiLU: past those defaults inductor wrote them as
# full-size fp32 activations and read them back (up to 8 bytes per element each), where
# recomputing them needs only the x, mask and incoming gradient those kernels load anyway. All
# three raised, the CIFAR-10 U-Net's Triton kernels move 115 GB per batch-512 step instead of
# 152 GB (inductor_layouts.py --bytes, traced for an H100 on the CPU; docs/unet-throughput.md).
TRAIN_COMPILE_OPTIONS = {"realize_reads_threshold": 16, "realize_acc_reads_threshold": 16,
                         "realize_opcount_threshold": 100}


def compile_for_training(net: nn.Module) -> None:
    """torch.compile net in place (state_dict keys unchanged) as the training step compiles:
    with a copy of TRAIN_COMPILE_OPTIONS (read now, so a benchmark variant's patch counts)."""
    net.compile(options=dict(TRAIN_COMPILE_OPTIONS))

# A batch source maps a global step to (x, cond) already on the training device.
BatchFn = Callable[[int], tuple[torch.Tensor, torch.Tensor | None]]
# An objective maps (net, x, cond, generator) to an unreduced per-example loss (B,). One that
# depends on the step (a KL warm-up) defines set_step(step): the loop calls it before each
# step, so a resumed run follows the same schedule.
Objective = Callable[..., torch.Tensor]
# Optimiser groups: [{"params": [...], "lr_scale": 1.0, "betas": (0.9, 0.999), ...}]; lr_scale
# multiplies cfg.lr (two time-scale updates, TTUR); other keys are AdamW's own group options.
ParamGroups = list[dict]


def optimizer_groups(net: nn.Module, groups: ParamGroups | None, lr: float) -> list[dict]:
    """AdamW parameter groups: all of net's parameters at lr, or `groups` with their lr_scale
    applied; every trainable parameter of net must be in exactly one group."""
    if groups is None:
        return [{"params": list(net.parameters())}]
    out, seen = [], set()
    for group in groups:
        group = dict(group)
        params = list(group.pop("params"))
        assert not seen & {id(p) for p in params}, "a parameter is in two optimiser groups"
        seen |= {id(p) for p in params}
        out.append({"params": params, "lr": lr * group.pop("lr_scale", 1.0), **group})
    missing = [n for n, p in net.named_parameters() if p.requires_grad and id(p) not in seen]
    assert not missing, f"parameters in no optimiser group: {missing[:3]}"
    return out


class EpochBatches:
    """Shuffled mini-batch indices that depend only on (seed, step), so a resumed run sees the
    same batches as an uninterrupted one. Each epoch is a fresh permutation (last partial batch
    dropped)."""

    def __init__(self, n: int, batch_size: int, seed: int):
        if n < batch_size:
            raise ValueError(f"batch_size {batch_size} is larger than the data set ({n} examples)")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.steps_per_epoch = n // batch_size
        self._epoch, self._perm = -1, None

    def __call__(self, step: int) -> torch.Tensor:
        epoch, i = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 7_777_777 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=g)
        return self._perm[i * self.batch_size : (i + 1) * self.batch_size]


def lr_factor(step: int, cfg: LoopConfig, time_fraction: float = 0.0) -> float:
    """Linear warm-up to the peak, then constant or cosine decay to 0 at cfg.steps, or at
    cfg.max_seconds of training when that budget runs out first (time_fraction = elapsed /
    max_seconds)."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.decay == "constant":
        return 1.0
    progress = (step - cfg.warmup_steps) / max(cfg.steps - cfg.warmup_steps, 1)
    progress = max(progress, time_fraction)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


@dataclass
class TrainResult:
    net: nn.Module
    ema: ModelEMA
    history: list[dict] = field(default_factory=list)  # one row per log_every steps
    resumed_from: int = 0  # step the run restarted from (0 = fresh start)
    seconds: float = 0.0  # wall time of this process's part of the run
    steps_done: int = 0  # optimiser steps taken in all (< cfg.steps if max_seconds ran out)
    train_seconds: float = 0.0  # training wall time over all resumed parts (max_seconds's clock)
    warmup_seconds: float = 0.0  # this process's first step (compile, autotuning): off the clock
    bad_steps: int = 0  # steps skipped for a non-finite loss or gradient (this process)


@dataclass(frozen=True)
class RunSpec:
    """What the loop needs beyond the hyper-parameters."""

    seed: int
    device: torch.device
    ckpt_path: Path  # resumable state, e.g. checkpoints/ae/last.pt
    config_hash: str  # a checkpoint from another config is set aside, not resumed
    bf16: bool = True
    progress: bool = True
    desc: str = "train"
    on_log: Callable[[dict], None] | None = None  # called with each history row
    on_checkpoint: Callable[[int], None] | None = None  # called after each checkpoint write
    compile: bool = False  # torch.compile the network (in place: state_dict keys unchanged)
    channels_last: bool = False  # NHWC layout for the network and 4-D batches
    # DDP: this process's rank; None = one process, no process group (training/distributed.py)
    dist: Dist | None = None


def train(
    net: nn.Module, objective: Objective, batches: BatchFn, cfg: LoopConfig, run: RunSpec,
    param_groups: ParamGroups | None = None,
) -> TrainResult:
    # 1. Optimiser, schedule, EMA; layout and compilation (after the EMA copy, which stays
    #    an eager module).
    net.to(run.device).train()
    if run.channels_last:
        net.to(memory_format=torch.channels_last)
    fused = run.device.type == "cuda"
    opt = torch.optim.AdamW(optimizer_groups(net, param_groups, cfg.lr), lr=cfg.lr,
                            weight_decay=cfg.weight_decay, fused=fused)
    clock = {"before": 0.0, "t0": time.perf_counter()}  # training seconds of earlier parts

    def elapsed() -> float:
        if "agreed" in clock:  # DDP: the clock all ranks agreed on this step
            return clock["agreed"]
        return clock["before"] + time.perf_counter() - clock["t0"]

    def time_fraction() -> float:
        return elapsed() / cfg.max_seconds if cfg.max_seconds > 0 else 0.0

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, cfg, time_fraction()))
    ema = ModelEMA(net, half_life=cfg.ema_half_life, batch_size=cfg.batch_size,
                   rampup=cfg.ema_rampup)
    result = TrainResult(net=net, ema=ema)
    if run.compile:
        compile_for_training(net)
    dist = run.dist
    model = wrap(net, objective, dist) if dist else None  # DDP: net + objective, all ranks
    main = dist is None or dist.is_main

    # 2. Resume from the last checkpoint of the same config, if any: rank 0 first (it alone
    #    tidies orphans and sets a stale checkpoint aside), then the others read the same file.
    start = _resume_all(run, net, ema, opt, sched, result)
    result.resumed_from = start
    clock["before"] = result.train_seconds

    # 3. The loop.
    t0, loss_sum, seen = time.perf_counter(), torch.zeros((), device=run.device), 0
    clock["t0"] = t0
    spent = cfg.max_seconds > 0 and clock["before"] >= cfg.max_seconds  # resumed, budget gone
    if spent:
        print(f"[{run.desc}] time budget of {cfg.max_seconds:g} s already spent", flush=True)
    bar = tqdm(
        range(start, start if spent else cfg.steps),
        desc=run.desc,
        disable=not run.progress,
        initial=start,
        total=cfg.steps,
        dynamic_ncols=True,
    )
    t_log, done, timed = time.perf_counter(), start, 0  # timed: steps since t_log, warm-up not
    bad_run = 0  # consecutive skipped (non-finite) steps
    for step in bar:
        x, cond = batches(step)
        if dist:  # every rank draws the global batch, keeps its shard (own dropout masks)
            x, cond = dist.shard(x), dist.shard(cond)
            dist.seed_step(run.seed, step)
        if run.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        if hasattr(objective, "set_step"):
            objective.set_step(step)
        opt.zero_grad(set_to_none=True)
        loss = _accumulate(net, model, objective, x, cond, cfg.accumulate, run, step)
        # A non-finite loss or gradient skips the step (one host sync a step): optimiser,
        # schedule and EMA stay as they were; max_bad_steps in a row end the run. Under DDP the
        # gradients (so the norm) are the same on every rank; the loss is agreed on too.
        norm = nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip or float("inf"))
        finite = torch.isfinite(loss.detach()) & torch.isfinite(norm)
        if dist:
            clock.pop("agreed", None)
            ok, clock["agreed"] = dist.agree(finite, elapsed())
        else:
            ok = bool(finite)
        if ok:
            bad_run = 0
            if dist and step == start:  # a data-dependent init saw only each rank's shard
                dist.broadcast_state(net)
            opt.step()
            sched.step()
            ema.update(net, beta=ema.beta_at((step + 1) * cfg.batch_size))
            loss_sum += loss.detach().float()
            seen += 1
            timed += 1
        else:
            opt.zero_grad(set_to_none=True)
            result.bad_steps += 1
            bad_run += 1
            if bad_run >= cfg.max_bad_steps:
                raise TrainingError(
                    f"[{run.desc}] {bad_run} consecutive steps with a non-finite loss or "
                    f"gradient (steps {step + 2 - bad_run}..{step + 1}); lower the lr or check "
                    f"the data. The last good checkpoint {run.ckpt_path} is kept, nothing "
                    "is published")
        if step == start:
            # The first step of a process pays for torch.compile and cuDNN autotuning: it is
            # timed apart; max_seconds's clock and the examples/s of the first log row start
            # after it.
            if run.device.type == "cuda":
                torch.cuda.synchronize(run.device)
            result.warmup_seconds = time.perf_counter() - t0
            clock["t0"] = t_log = time.perf_counter()
            timed = 0
            if dist:
                clock["agreed"] = clock["before"]

        # 4. Log every log_every steps (one host sync per row), checkpoint every ckpt_every;
        #    a spent time budget ends the run like the last step does.
        done = step + 1
        now = elapsed()
        out_of_time = cfg.max_seconds > 0 and now >= cfg.max_seconds
        last = done == cfg.steps or out_of_time
        if done % cfg.log_every == 0 or last:
            dt = time.perf_counter() - t_log
            if dist:  # the loss over the global batch (ranks skip the same steps)
                loss_sum = dist.mean(loss_sum)
            row = {
                "step": done,
                "loss": float(loss_sum) / seen if seen else float("nan"),  # nan: all skipped
                "lr": opt.param_groups[0]["lr"],
                # nan when the row holds only the warm-up step
                "examples_per_s": (timed * len(x) * (dist.world if dist else 1) / dt
                                   if timed else float("nan")),
                "seconds": round(now, 2),
            }
            result.history.append(row)
            bar.set_postfix(loss=f"{row['loss']:.4g}", ex_s=f"{row['examples_per_s']:.0f}")
            if run.on_log and main:
                run.on_log(row)
            loss_sum.zero_()
            seen = timed = 0
            t_log = time.perf_counter()
        if done % cfg.ckpt_every == 0 or last:
            result.train_seconds = now
            if main:  # rank 0 writes; the others hold the same state
                _save(run, net, ema, opt, sched, result, done)
                if run.on_checkpoint:
                    run.on_checkpoint(done)
        if out_of_time:
            print(f"[{run.desc}] time budget of {cfg.max_seconds:g} s reached at step {done}",
                  flush=True)
            break
    bar.close()
    result.seconds = time.perf_counter() - t0
    result.steps_done = done  # train_seconds: as in the last checkpoint (every run ends on one)
    net.eval()
    return result


def _accumulate(net, model, objective, x, cond, parts: int, run: RunSpec,
                step: int) -> torch.Tensor:
    """Forward and backward of one step's batch in `parts` equal micro-batches, each loss
    scaled by 1 / parts so the summed gradients are those of the whole batch's mean loss.
    Under DDP (model set) only the last micro-batch's backward all-reduces. Returns the
    batch's mean loss (detached)."""
    if len(x) % parts:
        raise TrainingError(f"[{run.desc}] a batch of {len(x)} does not split into "
                            f"{parts} equal micro-batches (accumulate)")
    xs = x.chunk(parts)
    conds = cond.chunk(parts) if cond is not None else [None] * parts
    dist = run.dist
    # One generator for the step, its draws shared out over the micro-batches in order.
    gen = (dist.generator(run.seed, step, run.device) if dist
           else step_generator(run.seed, step, run.device))
    total = torch.zeros((), device=run.device)
    for i, (xi, ci) in enumerate(zip(xs, conds, strict=True)):
        with autocast(run.device, run.bf16):
            if dist:  # DDP's forward runs the objective; backward averages the gradients
                loss = model(xi, ci, gen).mean() / parts
            else:
                loss = objective(net, xi, ci, gen).mean() / parts
        with no_sync(model, sync=i == parts - 1):
            loss.backward()
        total += loss.detach().float()
    return total


def _state(net, ema, opt, sched, result, step, run) -> dict:
    rng = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return {
        "step": step,
        "config_hash": run.config_hash,
        "model": net.state_dict(),
        "ema": ema.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "rng": rng,
        "history": result.history,
        "train_seconds": result.train_seconds,
    }


def previous(ckpt_path: Path) -> Path:
    """Where the checkpoint before `ckpt_path`'s is kept (last.pt -> last.prev.pt)."""
    return ckpt_path.with_name(f"{ckpt_path.stem}.prev{ckpt_path.suffix}")


def _save(run, net, ema, opt, sched, result, step) -> None:
    """Keep the last two checkpoints: the current one becomes .prev, then the new is written."""
    if run.ckpt_path.exists():
        run.ckpt_path.replace(previous(run.ckpt_path))
    save_atomic(_state(net, ema, opt, sched, result, step, run), run.ckpt_path)


def _load_newest_good(run) -> tuple[dict, Path] | None:
    """The last checkpoint, or the one before it when the last is missing or corrupt (a kill
    between the two writes of _save, flipped bytes); None when there is neither."""
    paths = [p for p in (run.ckpt_path, previous(run.ckpt_path)) if p.exists()]
    errors = []
    for path in paths:
        try:
            state = load_checkpoint(path, map_location=run.device)
        except CheckpointError as e:
            errors.append(str(e))
            continue
        if errors:
            warnings.warn(f"{errors[0]}; resuming from the one before it, {path}", stacklevel=3)
        return state, path
    if errors:
        raise CheckpointError(f"no usable checkpoint: {' / '.join(errors)}")
    return None


def _resume_all(run, net, ema, opt, sched, result) -> int:
    """_resume on one process; under DDP rank 0 first, then the others, checked to agree."""
    dist = run.dist
    if dist is None:
        return _resume(run, net, ema, opt, sched, result)
    start = _resume(run, net, ema, opt, sched, result) if dist.is_main else 0
    dist.barrier()
    if not dist.is_main:
        start = _resume(run, net, ema, opt, sched, result, tidy=False)
    return dist.same_on_all(start)


def _resume(run, net, ema, opt, sched, result, tidy: bool = True) -> int:
    if tidy:
        remove_orphans(run.ckpt_path)  # temp files of a save that was killed
    found = _load_newest_good(run)
    if found is None:
        return 0
    state, path = found
    if state.get("config_hash") != run.config_hash:
        previous(run.ckpt_path).unlink(missing_ok=True)
        if not run.ckpt_path.exists():  # only a .prev of the other config was there
            return 0
        stale = run.ckpt_path.with_name(
            f"{run.ckpt_path.stem}.stale-{str(state.get('config_hash'))[:8]}.pt"
        )
        run.ckpt_path.replace(stale)
        warnings.warn(
            f"{run.ckpt_path} was written with other params or code (config hash "
            f"{str(state.get('config_hash'))[:8]}, now {run.config_hash[:8]}): moved to "
            f"{stale.name}, "
            "starting from step 0",
            stacklevel=2,
        )
        return 0
    try:
        load_weights(net, state["model"], path)
        load_weights(ema, state["ema"], path)
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"]["cpu"].cpu())
        if "cuda" in state["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["rng"]["cuda"]])
    except KeyError as e:
        raise CheckpointError(f"checkpoint {path} lacks {e}; delete it to start over") from e
    result.history = list(state["history"])
    result.train_seconds = float(state.get("train_seconds", 0.0))
    print(f"[{run.desc}] resumed from step {state['step']} ({path})", flush=True)
    return int(state["step"])
