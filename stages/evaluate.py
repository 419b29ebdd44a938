"""Stage evaluate-<family>@<name>: load models/<name>.pt and run its family's evaluation;
write metrics/eval/<name>.json, the family's sweep table metrics/sweeps/<name>.csv, figures
and data/samples/<name>.npz. `python -m stages.evaluate <family> <name>`."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import torch

from genlab import families
from genlab.config import is_toy
from genlab.data.processed import load_array
from genlab.errors import CheckpointError
from genlab.tracking.figures import save_loss_curve
from genlab.training.checkpoint import load_checkpoint, load_weights
from stages._common import (
    PROCESSED,
    Outputs,
    evaluate_section,
    main,
    model_section,
    runtime,
    tracker,
)

EVALUATOR = Path("models/evaluator.pt")


def load_model(family: families.Family, name: str, cfg, device: torch.device,
               nhwc: bool) -> torch.nn.Module:
    """The EMA weights of models/<name>.pt in the architecture saved with them."""
    path = Path(f"models/{name}.pt")
    state = load_checkpoint(path, map_location=device)
    if state.get("family") != family.name or "arch" not in state:
        raise CheckpointError(f"{path} holds family {state.get('family')!r}, not "
                              f"{family.name!r}; rerun: dvc repro train-{family.name}@{name}")
    net = family.rebuild(state["arch"], cfg, nhwc)
    load_weights(net, state["ema"], path)
    return net.to(device).eval()


def speed_up(family: families.Family, net: torch.nn.Module, rt, device: torch.device,
             nhwc: bool) -> torch.nn.Module:
    """runtime.channels_last / runtime.compile for sampling: NHWC weights and an in-place
    torch.compile of the family's backbone (samplers and wrappers stay eager). The first
    batch of each new shape pays the compile time."""
    if nhwc:
        net.to(memory_format=torch.channels_last)
    backbone = family.backbone(net)
    if backbone is not None and rt.use("compile", device.type):
        backbone.compile()
    return net


def run(argv: list[str]) -> None:
    # 1. Params, validated before any model or data is read.
    family, name, params, cfg = model_section(argv, "evaluate")
    evaluate = families.evaluation(family.name)
    ev = evaluate_section(params)
    rt, device, seed = runtime(params)
    nhwc = rt.use("channels_last", device.type) and not is_toy(cfg.dataset)
    stage = f"evaluate-{family.name}@{name}"

    with tracker(params, stage, {"evaluate": params.get("evaluate", {})}) as tr:
        # 2. The family's metrics, figures, sweep table and samples.
        net = speed_up(family, load_model(family, name, cfg, device, nhwc), rt, device, nhwc)
        figures, sweep = Path(f"figures/{name}"), Path(f"metrics/sweeps/{name}.csv")
        samples, out = Path(f"data/samples/{name}.npz"), Path(f"metrics/eval/{name}.json")
        # All of a model's outputs are written under temp names and published together at
        # the end: a failure half-way leaves the previous complete set (stages/_common.Outputs).
        with Outputs(figures, sweep, samples, out) as outputs:
            ctx = families.EvalContext(
                name=name, cfg=cfg, net=net, settings=ev, seed=seed, device=device,
                bf16=rt.bf16, arrays=lambda key: load_array(PROCESSED, key),
                evaluator=EVALUATOR, figures=outputs.stage(figures, folder=True),
                samples=outputs.stage(samples), sweep=outputs.stage(sweep))
            metrics = evaluate(ctx)

            # 3. The training run's summary and loss curve beside them.
            history = json.loads(Path(f"metrics/train/{name}.json").read_text())
            metrics |= {"final_train_loss": history["final_loss"],
                        "train_seconds": history["train_seconds"]}
            rows = pd.read_csv(f"metrics/loss/{name}.csv").to_dict("records")
            save_loss_curve(rows, ctx.figures / "loss.png", f"{name}: training loss")
            metrics = _numeric(metrics, stage)
            outputs.json(out, metrics)

        # 4. Tracking, once the outputs are in place.
        tr.log_metrics(metrics)
        for png in sorted(figures.glob("*.png")):
            tr.log_artifact(png, "figures")
        tr.tag_outputs([out, figures])
        print(f"{stage}: " + ", ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items())))


def _numeric(metrics: dict, stage: str) -> dict[str, float]:
    """The metrics as floats (None dropped); a value that is not a number is a family's bug,
    named here: metrics/eval holds numbers only."""
    out = {}
    for k, v in metrics.items():
        if v is None:
            continue
        try:
            out[k] = float(v)
        except (TypeError, ValueError):
            raise TypeError(f"{stage}: metric {k!r} is {v!r}, not a number") from None
    return out


if __name__ == "__main__":
    main(run)
