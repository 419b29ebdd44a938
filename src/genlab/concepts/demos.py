"""Runs every concepts demonstration, writes its figures (PNG, Agg) and returns flat metrics.

Each demo_* function is one figure group and returns {"<group>/<name>": float}; run_concepts
chains them with the given knobs. Nothing is read from files or the environment.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from genlab.concepts import importance as imp  # noqa: E402
from genlab.concepts import information as info  # noqa: E402
from genlab.concepts import likelihood as lik  # noqa: E402
from genlab.concepts import mcmc  # noqa: E402
from genlab.concepts import metaheuristics as mh  # noqa: E402
from genlab.concepts import relations as rel  # noqa: E402
from genlab.concepts import sde as sdes  # noqa: E402
from genlab.concepts.moving_averages import moving_average_demo  # noqa: E402
from genlab.training.device import torch_threads  # noqa: E402

GD_LR = {"rastrigin": 1e-3, "rosenbrock": 5e-4, "ackley": 1e-2}  # stable heavy-ball step sizes
SA_T_MIN = {"ackley": 1e-8}  # Ackley's funnel is narrow in its wide box: cool further
GRAD_COST = 3  # a reverse-mode gradient costs a few evaluations (cheap gradient principle)


def _save(fig: plt.Figure, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def single_intra_op_thread():
    """torch ops on one intra-op thread: the demos loop over tiny tensors, where threaded
    kernels (softmax, logsumexp) were measured 100x slower on a shared CPU."""
    return torch_threads(1)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------- optimisation


def _run_optimisers(name: str, dim: int, budget: int, seed: int) -> dict[str, mh.OptResult]:
    """PSO, SA, GA and momentum GD on one benchmark with `budget` function evaluations each."""
    b = mh.get_benchmark(name)
    box = {"dim": dim, "low": b.low, "high": b.high}
    x0 = b.low + (b.high - b.low) * torch.rand(dim, generator=_gen(seed), dtype=torch.float64)
    return {
        "pso": mh.particle_swarm(b.fn, **box, n_particles=40, n_iters=max(budget // 40, 1),
                                 generator=_gen(seed)),
        "sa": mh.simulated_annealing(b.fn, **box, n_chains=20, n_iters=max(budget // 20, 1),
                                     t_min=SA_T_MIN.get(name, 1e-6), generator=_gen(seed)),
        "ga": mh.genetic_algorithm(b.fn, **box, pop_size=50, n_elite=2,
                                   n_generations=max(budget // 48, 1), generator=_gen(seed)),
        "gd_momentum": mh.gradient_descent_momentum(b.fn, x0, lr=GD_LR[name], momentum=0.9,
                                                    n_steps=max(budget // GRAD_COST, 1)),
    }


def demo_optimisers(out_dir: Path, *, dims: list[int], budget: int, seed: int) -> dict[str, float]:
    """Best-so-far curves vs function evaluations, one figure per benchmark, a column per dim."""
    metrics = {}
    for name in mh.BENCHMARKS:
        fig, axes = plt.subplots(1, len(dims), figsize=(4.5 * len(dims), 3.5), squeeze=False)
        for ax, dim in zip(axes[0], dims, strict=True):
            for method, res in _run_optimisers(name, dim, budget, seed).items():
                cost = res.evals_per_iter * (GRAD_COST if method == "gd_momentum" else 1)
                evals = [(i + 1) * cost for i in range(len(res.history))]
                ax.plot(evals, [max(h, 1e-12) for h in res.history], label=method)
                metrics[f"optim/{name}_d{dim}/{method}_best"] = res.best_f
            ax.set(yscale="log", xlabel="function evaluations", ylabel="best f so far",
                   title=f"{name}, D={dim}")
            ax.legend(fontsize=7)
        _save(fig, out_dir / f"optim_{name}.png")
    return metrics


def demo_schedules(out_dir: Path, *, n_steps: int) -> dict[str, float]:
    """SA temperature schedules beside the annealed-Langevin temperature ladder."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    progress = torch.linspace(0, 1, n_steps)
    for kind in mh.SCHEDULES:
        temps = mh.temperature_schedule(kind, t0=10.0, t_min=1e-3, n_steps=n_steps)
        ax.plot(progress, temps / temps[0], label=f"SA T/T0 ({kind})")
    ladder = mcmc.langevin_temperatures(t_max=1.0, t_min=1e-4, n_levels=10)
    levels = torch.arange(len(ladder) + 1) / len(ladder)  # each level holds for 1/L of the run
    ax.step(levels, torch.cat([ladder, ladder[-1:]]), where="post", ls="--", c="k",
            label="annealed Langevin T_i / T_1 (L=10)")
    ax.set(yscale="log", xlabel="fraction of run", ylabel="relative temperature / noise variance")
    ax.legend(fontsize=7)
    _save(fig, out_dir / "schedules.png")
    return {"schedule/final_temp_ratio": float(temps[-1] / temps[0])}


# ------------------------------------------------------------------------- measured relations

# Fixed experiment sizes (not params: they pin what the figures and tests show).
PSO_PARTICLES, PSO_ITERS = 8, 50  # swarm of the "several particles" case; iterations per path
WELL = rel.DoubleWell(tilt=0.3)  # global well near -1.04, local well near +0.96, barrier 0.72
T_MAX, T_MIN, N_LEVELS = 1.0, 0.01, 20  # the geometric ladder both annealers follow
ANNEAL_STEP, ANNEAL_CHAINS = 0.02, 500  # Langevin step eps (SA proposes std sqrt(2 eps T))
STEPS_EACH = (10, 30, 100)  # steps per level: budgets of 200, 600, 2000 oracle calls per chain
T_FIXED, FIXED_STEPS, FIXED_CHAINS = 0.5, 1500, 200  # stationary check (first third burn-in)
FIXED_EPS = (0.02, 0.05, 0.1)  # step sizes of the stationary check
HIST = {"low": -2.0, "high": 2.0}  # histogram range of the stationary check, 40 bins


def demo_pso_momentum(out_dir: Path, *, seed: int) -> dict[str, float]:
    """One-particle PSO without social term vs its heavy-ball twin; how the paths part."""
    cases = rel.pso_momentum_cases(n_particles=PSO_PARTICLES, n_iters=PSO_ITERS,
                                   generator=_gen(seed))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    pso, hb = cases["reduced"]
    axes[0].plot(pso[:, 0], pso[:, 1], "o", ms=5, mfc="none", label="PSO, 1 particle, c2 = 0")
    axes[0].plot(hb[:, 0], hb[:, 1], "-", lw=1, c="k", label="heavy ball, beta = w, alpha = c1/2")
    axes[0].set(xlabel="x1", ylabel="x2", title="same start, velocity and draws")
    axes[0].legend(fontsize=7)
    metrics = {"pso_momentum/path_max_abs": float(pso.abs().max())}
    for name, (pso, hb) in cases.items():
        diff = (pso - hb).norm(dim=1)  # (n + 1,)
        axes[1].plot(diff.clamp(min=1e-18), label=name)
        metrics[f"pso_momentum/{name}_max_abs_diff"] = float((pso - hb).abs().max())
    axes[1].set(yscale="log", xlabel="iteration", ylabel="|x_PSO - x_heavy ball|")
    axes[1].legend(fontsize=7)
    _save(fig, out_dir / "pso_momentum.png")
    return metrics


def _global_frac(x: torch.Tensor) -> torch.Tensor:
    """Fraction of chains in the global (left) basin: x (..., C, 1) -> (...)."""
    return (x[..., 0] < WELL.critical_points()[1]).double().mean(-1)


def _anneal_panels(axes, seed: int) -> dict[str, float]:
    """Global-basin fraction against budget, and at the end of each level (largest budget),
    for chains that all start at the local (wrong) minimum."""
    x0 = torch.full((ANNEAL_CHAINS, 1), WELL.critical_points()[2], dtype=torch.float64)
    kw = {"t_max": T_MAX, "t_min": T_MIN, "n_levels": N_LEVELS, "step_size": ANNEAL_STEP}
    runs = {n: rel.anneal_both(WELL, x0, n_steps_each=n, generator=_gen(seed), **kw)
            for n in STEPS_EACH}
    evals, n_last, metrics = [N_LEVELS * n for n in STEPS_EACH], STEPS_EACH[-1], {}
    for alg in ("sa", "langevin"):
        fracs = [float(_global_frac(runs[n][alg][-1])) for n in STEPS_EACH]
        axes[0].plot(evals, fracs, "o-", label=alg)
        axes[1].plot(_global_frac(runs[n_last][alg][n_last - 1::n_last]), "o-", label=alg)
        metrics |= {f"anneal/{alg}_global_frac_e{e}": f for e, f in zip(evals, fracs, strict=True)}
        final = runs[n_last][alg][-1]  # (C, 1)
        metrics[f"anneal/{alg}_final_energy_mean"] = float(WELL.energy(final).mean())
    ladder = mh.temperature_schedule("geometric", t0=T_MAX, t_min=T_MIN, n_steps=N_LEVELS)
    exact = [rel.boltzmann_basin_prob(WELL, temperature=t) for t in ladder.tolist()]
    axes[0].axhline(exact[-1], c="k", ls=":", label="exp(-E / T_min)")
    axes[0].set(xticks=evals, xlabel="oracle calls per chain", ylabel="P(global basin) at end")
    axes[1].plot(exact, "k:", label="exp(-E / T_k)")
    axes[1].set(xlabel=f"level k ({n_last} steps each)", ylabel="P(global basin)")
    e_min = float(WELL.energy(torch.tensor([[WELL.critical_points()[0]]], dtype=torch.float64)))
    return metrics | {"anneal/boltzmann_global_frac_t_min": exact[-1],
                      "anneal/global_min_energy": e_min}


def _stationary_panels(axes, seed: int) -> dict[str, float]:
    """SA (exact Metropolis) and Langevin (unadjusted) chains held at T_FIXED: histogram
    distance to exp(-E / T_FIXED) against the step size."""
    x0 = HIST["low"] + (HIST["high"] - HIST["low"]) * torch.rand(
        FIXED_CHAINS, 1, generator=_gen(seed), dtype=torch.float64)  # (C, 1), over both wells
    probs = rel.boltzmann_bins(WELL.energy, temperature=T_FIXED, n_bins=40, **HIST)
    tv, metrics = {"sa": [], "langevin": []}, {}
    for eps in FIXED_EPS:
        runs = rel.sample_at_temperature(WELL, x0, temperature=T_FIXED, n_steps=FIXED_STEPS,
                                         step_size=eps, generator=_gen(seed))
        for alg, states in runs.items():
            kept = states[FIXED_STEPS // 3:]  # (n, C, 1) after burn-in
            tv[alg].append(rel.histogram_tv(kept, probs, **HIST))
            metrics[f"anneal/{alg}_stationary_tv_step{eps:g}"] = tv[alg][-1]
            if eps == FIXED_EPS[-1]:
                axes[0].hist(kept.flatten(), bins=40, range=(HIST["low"], HIST["high"]),
                             density=True, histtype="step", label=f"{alg}, eps = {eps:g}")
    width = (HIST["high"] - HIST["low"]) / 40
    axes[0].stairs(probs / width, torch.linspace(HIST["low"], HIST["high"], 41), color="k",
                   label="exp(-E / T), binned")
    axes[0].set(xlabel="x", ylabel="density", title=f"held at T = {T_FIXED}")
    for alg, values in tv.items():
        axes[1].plot(FIXED_EPS, values, "o-", label=alg)
    axes[1].set(xlabel="step size eps", ylabel="histogram TV to exp(-E / T)", yscale="log",
                title=f"held at T = {T_FIXED}")
    return metrics


def demo_annealing(out_dir: Path, *, seed: int) -> dict[str, float]:
    """SA vs annealed Langevin on one double well: same ladder, same oracle-call budget."""
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.6))
    metrics = _anneal_panels(axes[:2], seed) | _stationary_panels(axes[2:], seed)
    for ax in axes:
        ax.legend(fontsize=7)
    _save(fig, out_dir / "annealing.png")
    return metrics


# ----------------------------------------------------------------------------------------- MCMC


def _targets() -> dict[str, object]:
    cov = torch.tensor([[1.0, 0.9], [0.9, 1.0]], dtype=torch.float64)
    means = torch.tensor([[-1.5, 0.0], [1.5, 0.5]])
    mixture = mcmc.GaussianMixture(torch.tensor([0.3, 0.7]), means, torch.tensor([0.7, 0.7]))
    return {"gaussian": mcmc.CorrelatedGaussian(torch.tensor([1.0, -1.0]), cov),
            "banana": mcmc.Banana(a=1.5, b=0.5), "mixture": mixture}


def _run_samplers(target, *, n_chains: int, n_steps: int, seed: int) -> dict[str, mcmc.ChainResult]:
    x0 = 2.0 * torch.randn(n_chains, 2, generator=_gen(seed), dtype=torch.float64)  # overdispersed
    lp, sc, kw = target.log_prob, target.score, {"n_steps": n_steps}
    return {
        "rwm": mcmc.random_walk_metropolis(lp, x0, step_size=0.6, generator=_gen(seed), **kw),
        "ula": mcmc.ula(lp, x0, step_size=0.05, score=sc, generator=_gen(seed), **kw),
        "mala": mcmc.mala(lp, x0, step_size=0.1, score=sc, generator=_gen(seed), **kw),
        "hmc": mcmc.hmc(lp, x0, step_size=0.2, n_leapfrog=10, score=sc, generator=_gen(seed), **kw),
    }


def _chain_metrics(prefix: str, res: mcmc.ChainResult, target) -> dict[str, float]:
    kept = res.samples[res.samples.shape[0] // 5:]  # drop 20% burn-in; (n, C, D)
    flat = kept.reshape(-1, kept.shape[-1])
    ess = min(mcmc.effective_sample_size(kept[..., d]) for d in range(kept.shape[-1]))
    return {f"{prefix}_accept": res.accept_rate, f"{prefix}_ess": ess,
            f"{prefix}_mean_err": float((flat.mean(0) - target.mean).abs().max()),
            f"{prefix}_cov_err": float((torch.cov(flat.T) - target.cov).abs().max())}


def _density_grid(target, lim: tuple[float, float, float, float]):
    xs = torch.linspace(lim[0], lim[1], 120, dtype=torch.float64)
    ys = torch.linspace(lim[2], lim[3], 120, dtype=torch.float64)
    gx, gy = torch.meshgrid(xs, ys, indexing="xy")
    logp = target.log_prob(torch.stack([gx.flatten(), gy.flatten()], -1)).reshape(gx.shape)
    return gx, gy, logp


def demo_mcmc(out_dir: Path, *, n_chains: int, n_steps: int, seed: int) -> dict[str, float]:
    """Scatter of each sampler over log-density contours (top) and traces of chain 0 (bottom)."""
    metrics = {}
    for tname, target in _targets().items():
        runs = _run_samplers(target, n_chains=n_chains, n_steps=n_steps, seed=seed)
        lim = (-4.5, 4.5, -5.0, 4.0) if tname != "banana" else (-5.0, 5.0, -8.0, 3.0)
        gx, gy, logp = _density_grid(target, lim)
        top = float(logp.max())
        fig, axes = plt.subplots(2, len(runs), figsize=(3.4 * len(runs), 6.2))
        for j, (sname, res) in enumerate(runs.items()):
            metrics.update(_chain_metrics(f"mcmc/{tname}/{sname}", res, target))
            pts = res.samples[n_steps // 5:].reshape(-1, 2)
            pts = pts[:: max(len(pts) // 3000, 1)]  # thin to ~3000 points for the scatter
            axes[0, j].contour(gx, gy, logp, levels=[top - d for d in (8, 6, 4, 2, 1, 0.25)],
                               cmap="viridis")
            axes[0, j].scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.3, c="tab:red")
            axes[0, j].set(title=f"{sname}, acc={res.accept_rate:.2f}", xlim=lim[:2], ylim=lim[2:])
            axes[1, j].plot(res.samples[:, 0, 0], lw=0.6)
            axes[1, j].set(xlabel="step", ylabel="x1 (chain 0)")
        fig.suptitle(f"MCMC on the {tname} target")
        _save(fig, out_dir / f"mcmc_{tname}.png")
    return metrics


# ------------------------------------------------------------------------------------ diffusion


def _diffusion_mixture() -> mcmc.GaussianMixture:
    return mcmc.GaussianMixture(torch.tensor([0.3, 0.5, 0.2]),
                                torch.tensor([[-3.0], [0.0], [2.5]]), torch.tensor([0.4, 0.5, 0.3]))


def _mixture_pdf(mix: mcmc.GaussianMixture, xs: torch.Tensor) -> torch.Tensor:
    return mix.log_prob(xs[:, None]).exp()


def _forward_panel(axes, kind: str, mix, x0, times, n_steps: int, seed: int) -> dict[str, float]:
    """Histograms of Euler-Maruyama forward samples vs the closed-form marginal mixture.

    Errors are the worst over `times`: |mean error| in marginal standard deviations, and the
    relative variance error.
    """
    sde = sdes.make_sde(kind)
    _, snaps = sdes.euler_maruyama(sde, x0, n_steps=n_steps, generator=_gen(seed), keep=times)
    errs = {"mean": 0.0, "var": 0.0}
    for ax, t in zip(axes, times, strict=True):
        exact = sdes.mixture_marginal(mix, sde, t)
        x = snaps[t][:, 0]
        sd = math.sqrt(float(exact.cov[0, 0]))
        errs["mean"] = max(errs["mean"], abs(float(x.mean() - exact.mean[0])) / sd)
        errs["var"] = max(errs["var"], abs(float(x.var() / exact.cov[0, 0] - 1)))
        xs = torch.linspace(float(exact.mean[0]) - 4 * sd, float(exact.mean[0]) + 4 * sd, 300,
                            dtype=torch.float64)
        ax.hist(x, bins=60, density=True, alpha=0.5)
        ax.plot(xs, _mixture_pdf(exact, xs), c="k", lw=1)
        ax.set(title=f"{kind.upper()} t={t}", yticks=[])
    return {f"diffusion/{kind}_forward_mean_err_in_sd": errs["mean"],
            f"diffusion/{kind}_forward_var_rel_err": errs["var"]}


def demo_diffusion(out_dir: Path, *, n_particles: int, n_steps: int, seed: int) -> dict[str, float]:
    """Forward VE/VP marginals vs closed form; reverse SDE (exact score) vs the data mixture."""
    mix, times = _diffusion_mixture(), (0.0, 0.1, 0.3, 0.6, 1.0)
    x0 = mix.sample(n_particles, generator=_gen(seed))
    fig, axes = plt.subplots(2, len(times), figsize=(3 * len(times), 5))
    metrics = {}
    for row, kind in enumerate(("ve", "vp")):
        metrics.update(_forward_panel(axes[row], kind, mix, x0, times, n_steps, seed))
    _save(fig, out_dir / "diffusion_forward.png")
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    xs = torch.linspace(-5, 5, 400, dtype=torch.float64)
    for ax, kind in zip(axes, ("ve", "vp"), strict=True):
        sde = sdes.make_sde(kind)
        x_end = sdes.mixture_marginal(mix, sde, 1.0).sample(n_particles, generator=_gen(seed + 1))
        x = sdes.reverse_sde(sde, sdes.mixture_score(mix, sde), x_end, n_steps=n_steps,
                             generator=_gen(seed + 2))
        w, m = sdes.assign_components(mix, x)
        metrics[f"diffusion/{kind}_reverse_weight_err"] = float((w - mix.weights).abs().max())
        metrics[f"diffusion/{kind}_reverse_mean_err"] = float((m - mix.means).abs().max())
        ax.hist(x[:, 0], bins=80, density=True, alpha=0.5, label="reverse-SDE samples")
        ax.plot(xs, _mixture_pdf(mix, xs), c="k", lw=1, label="data mixture")
        ax.set(title=f"reverse {kind.upper()} SDE, exact score")
        ax.legend(fontsize=7)
    _save(fig, out_dir / "diffusion_reverse.png")
    return metrics


# ---------------------------------------------------------------------------------- information


def demo_information(out_dir: Path, *, n: int, k: int, n_rho: int, seed: int) -> dict[str, float]:
    """KSG estimate of I(X; Y) vs -1/2 log(1 - rho^2) over rho; KL of Gaussians vs Monte Carlo."""
    g = _gen(seed)
    rhos = torch.linspace(0.0, 0.95, n_rho).tolist()
    est = [info.ksg_mutual_information(*info.sample_correlated_gaussian(n, rho=r, generator=g), k=k)
           for r in rhos]
    true = [info.gaussian_mi(r) for r in rhos]
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.plot(rhos, true, c="k", label="-1/2 log(1 - rho^2)")
    ax.plot(rhos, est, "o", label=f"KSG (k={k}, n={n})")
    ax.set(xlabel="rho", ylabel="I(X; Y) [nats]")
    ax.legend()
    _save(fig, out_dir / "ksg_mi.png")
    errs = [abs(a - b) for a, b in zip(est, true, strict=True)]
    return {"info/ksg_max_abs_err": max(errs), "info/ksg_mean_abs_err": sum(errs) / len(errs),
            "info/kl_mvn_mc_rel_err": _kl_mc_rel_err(g)}


def _kl_mc_rel_err(g: torch.Generator) -> float:
    mu0, mu1 = torch.tensor([0.0, 1.0, -1.0]).double(), torch.tensor([0.5, 0.0, 0.0]).double()
    a = torch.randn(3, 3, generator=g, dtype=torch.float64)
    cov0, cov1 = a @ a.T + torch.eye(3).double(), torch.diag(torch.tensor([1.0, 2.0, 0.5])).double()
    p = mcmc.CorrelatedGaussian(mu0, cov0)
    q = mcmc.CorrelatedGaussian(mu1, cov1)
    x = p.sample(100_000, generator=g)
    mc = float((p.log_prob(x) - q.log_prob(x)).mean())
    exact = float(info.kl_mvn(mu0, cov0, mu1, cov1))
    return abs(mc - exact) / exact


# ---------------------------------------------------------------------- likelihood / IS / EMA


def demo_likelihood(out_dir: Path, *, seed: int) -> dict[str, float]:
    """Bernoulli MLE vs MAP as data accrue; logistic and softmax regression trained by plain GD."""
    g = _gen(seed)
    flips = (torch.rand(200, generator=g) < 0.3).double()
    ns = list(range(1, 201))
    mle = [float(lik.bernoulli_mle(flips[:n])) for n in ns]
    map_ = [lik.bernoulli_map(flips[:n], a=5.0, b=5.0) for n in ns]
    X, y = lik.make_blobs(400, num_classes=3, generator=g)
    soft = lik.fit_softmax_regression(X, y, num_classes=3, lr=0.5, n_steps=300, l2=1e-3)
    yb = (y == 0).long()
    logi = lik.fit_logistic_regression(X, yb, lr=0.5, n_steps=300, l2=1e-3)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    axes[0].plot(ns, mle, label="MLE k/n")
    axes[0].plot(ns, map_, label="MAP, Beta(5, 5) prior")
    axes[0].axhline(0.3, c="k", ls=":", label="true p")
    axes[0].set(xlabel="n flips", ylabel="estimate of p")
    axes[0].legend(fontsize=7)
    axes[1].plot(soft.losses, label="softmax regression (K=3)")
    axes[1].plot(logi.losses, label="logistic regression")
    axes[1].set(xlabel="GD step", ylabel="cross-entropy + L2", yscale="log")
    axes[1].legend(fontsize=7)
    _save(fig, out_dir / "likelihood.png")
    gw, gb = lik.logistic_grad(logi.weight, logi.bias, X, yb.double(), l2=1e-3)
    acc = float(((X @ soft.weight + soft.bias).argmax(1) == y).double().mean())
    return {"likelihood/bernoulli_mle_err": abs(mle[-1] - 0.3),
            "likelihood/bernoulli_map_err": abs(map_[-1] - 0.3),
            "likelihood/logistic_grad_norm": float(torch.cat([gw, gb[None]]).norm()),
            "likelihood/softmax_final_loss": soft.losses[-1], "likelihood/softmax_train_acc": acc}


def demo_importance(out_dir: Path, *, seed: int, n: int = 2000) -> dict[str, float]:
    """E_p[x^2] for p = N(1, 1) by IS/SNIS from q = N(0, s^2) over proposal scales s; Kish ESS."""
    g = _gen(seed)
    scales = [0.6, 0.8, 1.0, 1.5, 2.0, 3.0, 5.0]
    rows = []
    for s in scales:
        x = s * torch.randn(n, generator=g, dtype=torch.float64)
        log_w = imp.gaussian_log_pdf(x, mean=1.0, std=1.0) - imp.gaussian_log_pdf(x, mean=0, std=s)
        rows.append((float(imp.importance_estimate(x**2, log_w)),
                     float(imp.self_normalised_estimate(x**2, log_w)), imp.kish_ess(log_w) / n))
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    axes[0].plot(scales, [r[0] for r in rows], "o-", label="IS")
    axes[0].plot(scales, [r[1] for r in rows], "s-", label="SNIS")
    axes[0].axhline(2.0, c="k", ls=":", label="truth E[x^2] = 2")
    axes[0].set(xlabel="proposal std s", ylabel="estimate")
    axes[0].legend(fontsize=7)
    axes[1].plot(scales, [r[2] for r in rows], "o-")
    axes[1].set(xlabel="proposal std s", ylabel="Kish ESS / n")
    _save(fig, out_dir / "importance.png")
    i = scales.index(2.0)
    return {"importance/is_abs_err": abs(rows[i][0] - 2.0),
            "importance/snis_abs_err": abs(rows[i][1] - 2.0), "importance/ess_frac": rows[i][2]}


def demo_moving_averages(out_dir: Path, *, seed: int) -> dict[str, float]:
    """SMA, raw EMA and bias-corrected EMA (the training loop's implementation) on a step signal."""
    d = moving_average_demo(300, window=20, half_life=10.0, generator=_gen(seed))
    fig, ax = plt.subplots(figsize=(6, 3.4))
    ax.plot(d["x"], c="0.7", lw=0.6, label="noisy signal")
    for key in ("sma", "ema_raw", "ema_corrected"):
        ax.plot(d[key], label=key)
    ax.set(xlabel="step", ylabel="value")
    ax.legend(fontsize=7)
    _save(fig, out_dir / "moving_averages.png")
    early = slice(0, 10)
    return {"ema/raw_early_abs_err": float((d["ema_raw"][early] - d["clean"][early]).abs().mean()),
            "ema/corrected_early_abs_err":
                float((d["ema_corrected"][early] - d["clean"][early]).abs().mean())}


# ------------------------------------------------------------------------------------------ all


def run_concepts(
    out_dir: Path, *, seed: int = 0, dims: list[int] | tuple[int, ...] = (2, 5), budget: int = 6000,
    n_chains: int = 64, n_steps: int = 1000, ksg_n: int = 1000, ksg_k: int = 3, n_rho: int = 8,
    sde_particles: int = 5000, sde_steps: int = 500,
) -> dict[str, float]:
    """Run all demonstrations, write PNGs into out_dir and return a flat {name: float} dict.

    budget: function evaluations per optimiser; n_chains x n_steps: MCMC size per sampler;
    ksg_n, ksg_k, n_rho: KSG sample size, neighbour count and number of rho values;
    sde_particles, sde_steps: diffusion particles and Euler-Maruyama steps.
    """
    _check_knobs(dims=dims, budget=budget, n_chains=n_chains, n_steps=n_steps, ksg_n=ksg_n,
                 ksg_k=ksg_k, n_rho=n_rho, sde_particles=sde_particles, sde_steps=sde_steps)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics: dict[str, float] = {}
    with single_intra_op_thread():
        metrics |= demo_optimisers(out_dir, dims=list(dims), budget=budget, seed=seed)
        metrics |= demo_schedules(out_dir, n_steps=max(budget // 20, 2))
        metrics |= demo_pso_momentum(out_dir, seed=seed)
        metrics |= demo_annealing(out_dir, seed=seed)
        metrics |= demo_mcmc(out_dir, n_chains=n_chains, n_steps=n_steps, seed=seed)
        metrics |= demo_diffusion(out_dir, n_particles=sde_particles, n_steps=sde_steps, seed=seed)
        metrics |= demo_information(out_dir, n=ksg_n, k=ksg_k, n_rho=n_rho, seed=seed)
        metrics |= demo_likelihood(out_dir, seed=seed)
        metrics |= demo_importance(out_dir, seed=seed)
        metrics |= demo_moving_averages(out_dir, seed=seed)
    return {key: float(value) for key, value in metrics.items()}


def _check_knobs(*, dims, budget, n_chains, n_steps, ksg_n, ksg_k, n_rho, sde_particles,
                 sde_steps) -> None:
    if not dims or any(int(d) < 2 for d in dims):
        raise ValueError(f"dims must be a non-empty list of ints >= 2, got {dims}")
    minimum = {"budget": (budget, 50), "n_chains": (n_chains, 1), "n_steps": (n_steps, 10),
               "ksg_n": (ksg_n, 10), "n_rho": (n_rho, 2), "sde_particles": (sde_particles, 10),
               "sde_steps": (sde_steps, 10), "ksg_k": (ksg_k, 1)}
    for name, (value, low) in minimum.items():
        if int(value) < low:
            raise ValueError(f"{name} must be >= {low}, got {value}")
    if ksg_k >= ksg_n:
        raise ValueError(f"ksg_k must be < ksg_n, got ksg_k={ksg_k}, ksg_n={ksg_n}")
