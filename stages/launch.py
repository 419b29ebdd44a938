"""Multi-process training for a stage: with runtime.processes > 1 (or nodes > 1) the stage
re-runs itself under `torchrun`, and each worker joins the process group here.

The dvc.yaml command stays `python -m stages.train <family> <name>`: that first process reads
params, checks them, then waits on `torchrun ... -m stages.train <family> <name>`, whose
workers see torchrun's RANK / WORLD_SIZE / LOCAL_RANK and train as DDP ranks. One process and
one node: no torchrun, no process group, the stage runs as it always did.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch

from genlab.config import ConfigError, RuntimeConfig
from genlab.training import distributed
from genlab.training.distributed import Dist

ENDPOINT = re.compile(r"[A-Za-z0-9.\-\[\]:]+:\d+")


def under_torchrun(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether this process is a worker torchrun started."""
    return "LOCAL_RANK" in environ and "WORLD_SIZE" in environ and "RANK" in environ


def world_size(rt: RuntimeConfig) -> int:
    return rt.processes * rt.nodes


def wanted(rt: RuntimeConfig, environ: Mapping[str, str] = os.environ) -> bool:
    """True in the stage's first process when params ask for several processes or machines."""
    return world_size(rt) > 1 and not under_torchrun(environ)


def check(rt: RuntimeConfig, batch_size: int, where: str) -> None:
    """Params errors a multi-process run would meet, before any process is started."""
    if rt.nodes > 1 and not ENDPOINT.fullmatch(rt.rdzv_endpoint):
        raise ConfigError(f"runtime.rdzv_endpoint: nodes is {rt.nodes}, so it must be the "
                          f"host:port every machine reaches (got {rt.rdzv_endpoint!r})")
    try:
        Dist(world=world_size(rt)).check_batch(batch_size, where)
    except ValueError as e:
        raise ConfigError(f"{e} (runtime.processes x runtime.nodes)") from e


def torchrun_argv(rt: RuntimeConfig, module: str, args: list[str], run_id: str) -> list[str]:
    """The torchrun command that runs `python -m module args` as processes x nodes workers."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(rt.processes)]
    if rt.nodes == 1:
        cmd += ["--standalone"]
    else:
        cmd += ["--nnodes", str(rt.nodes), "--rdzv-backend", "c10d",
                "--rdzv-endpoint", rt.rdzv_endpoint, "--rdzv-id", run_id]
    return cmd + ["-m", module, *args]


def run_id(module: str, args: list[str], params_text: str) -> str:
    """The rendezvous id every machine computes alike: the stage and its params.yaml."""
    key = "\0".join([module, *args, params_text])
    return "genlab-" + hashlib.sha256(key.encode()).hexdigest()[:12]


def relaunch(rt: RuntimeConfig, module: str, args: list[str]) -> int:
    """Run the stage under torchrun and return its exit status (non-zero if any worker
    failed: torchrun then stops the others)."""
    params = Path("params.yaml")
    cmd = torchrun_argv(rt, module, args,
                        run_id(module, args, params.read_text() if params.exists() else ""))
    print(f"{module}: {world_size(rt)} processes: {' '.join(cmd[1:])}", flush=True)
    env = dict(os.environ)
    if rt.num_threads:  # torchrun would set OMP_NUM_THREADS=1 when it is unset
        env.setdefault("OMP_NUM_THREADS", str(rt.num_threads))
    return subprocess.run(cmd, env=env).returncode


@contextlib.contextmanager
def process_group(device: torch.device,
                  environ: Mapping[str, str] = os.environ) -> Iterator[tuple[Dist | None,
                                                                        torch.device]]:
    """(this worker's Dist, its device) inside torchrun, left on exit; (None, device)
    otherwise. On CUDA each worker takes the GPU of its local rank."""
    if not under_torchrun(environ):
        yield None, device
        return
    rank, world = int(environ["RANK"]), int(environ["WORLD_SIZE"])
    local = int(environ["LOCAL_RANK"])
    if device.type == "cuda":
        device = torch.device("cuda", local)
    try:
        yield distributed.init(rank, world, local, device), device
    finally:
        distributed.teardown()
