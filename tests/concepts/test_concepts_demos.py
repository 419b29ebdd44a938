"""run_concepts with tiny knobs: every figure is written and every metric is finite."""

import math

import pytest

from genlab.concepts import demos
from genlab.concepts.demos import run_concepts

FIGURES = ["optim_rastrigin", "optim_rosenbrock", "optim_ackley", "schedules", "pso_momentum",
           "annealing", "mcmc_gaussian", "mcmc_banana", "mcmc_mixture", "diffusion_forward",
           "diffusion_reverse", "ksg_mi", "likelihood", "importance", "moving_averages"]


def test_run_concepts_tiny(tmp_path, monkeypatch):
    # The relation demos' sizes are constants, not knobs: shrink them for this smoke test.
    for name, value in {"PSO_ITERS": 10, "ANNEAL_CHAINS": 40, "STEPS_EACH": (2, 4, 8),
                        "FIXED_STEPS": 90, "FIXED_CHAINS": 20}.items():
        monkeypatch.setattr(demos, name, value)
    metrics = run_concepts(tmp_path / "figs", seed=0, dims=[2], budget=200, n_chains=8,
                           n_steps=40, ksg_n=100, n_rho=3, sde_particles=200, sde_steps=20)
    for name in FIGURES:
        path = tmp_path / "figs" / f"{name}.png"
        assert path.exists() and path.stat().st_size > 1000, name
    assert metrics and all(isinstance(v, float) and math.isfinite(v) for v in metrics.values())
    for key in ("optim/rastrigin_d2/pso_best", "mcmc/gaussian/hmc_ess", "mcmc/banana/mala_accept",
                "diffusion/vp_reverse_weight_err", "info/ksg_max_abs_err", "importance/ess_frac",
                "pso_momentum/reduced_max_abs_diff", "anneal/langevin_final_energy_mean",
                "anneal/sa_stationary_tv_step0.1"):
        assert key in metrics


def test_run_concepts_rejects_bad_knobs(tmp_path):
    with pytest.raises(ValueError, match="dims"):
        run_concepts(tmp_path, seed=0, dims=[1], budget=200, n_chains=8, n_steps=40)
    with pytest.raises(ValueError, match="budget"):
        run_concepts(tmp_path, seed=0, dims=[2], budget=10, n_chains=8, n_steps=40)
