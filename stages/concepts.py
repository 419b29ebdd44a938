"""Stage concepts: run the first-principles demonstrations (likelihood, information theory,
metaheuristics, MCMC, diffusion processes, importance sampling, moving averages) and two
measured relations (PSO vs heavy-ball momentum, simulated annealing vs annealed Langevin),
writing metrics/concepts.json and figures/concepts/*.png."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from genlab.concepts.config import ConceptsConfig
from genlab.concepts.demos import run_concepts
from genlab.config import load, load_seed
from stages._common import load_params, main, tracker, write_json

FIGS = Path("figures/concepts")
METRICS = Path("metrics/concepts.json")


def run(argv: list[str]) -> None:
    params = load_params()
    cfg = load(ConceptsConfig, params.get("concepts", {}), "concepts")
    seed = load_seed(params)
    with tracker(params, "concepts", {"concepts": params.get("concepts", {}), "seed": seed}) as tr:
        t0 = time.perf_counter()
        kwargs = dataclasses.asdict(cfg) | {"dims": list(cfg.dims)}
        metrics = run_concepts(FIGS, seed=seed, **kwargs)
        metrics["seconds"] = round(time.perf_counter() - t0, 1)
        write_json(METRICS, metrics)
        tr.log_metrics({k.replace("/", "."): v for k, v in metrics.items()})
        for png in sorted(FIGS.glob("*.png")):
            tr.log_artifact(png, "figures")
        print(f"concepts: {len(metrics)} metrics, {len(list(FIGS.glob('*.png')))} figures "
              f"in {metrics['seconds']} s")


if __name__ == "__main__":
    main(run)
