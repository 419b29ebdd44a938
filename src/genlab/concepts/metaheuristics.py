"""Gradient-free metaheuristics (PSO, simulated annealing, a genetic algorithm) vs momentum GD.

PSO: Kennedy and Eberhart (1995) with the inertia weight of Shi and Eberhart (1998).
Simulated annealing: Kirkpatrick, Gelatt and Vecchi (1983), Metropolis acceptance at temperature T
(`metropolis_annealing` is the chain; relations.py compares it with annealed Langevin).
Genetic algorithm: tournament selection, uniform crossover, Gaussian mutation and elitism.
Gradient descent with heavy-ball momentum: Polyak (1964). Test functions are the usual
Rastrigin, Rosenbrock and Ackley benchmarks, vectorised over a population x: (P, D) -> (P,).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

Objective = Callable[[torch.Tensor], torch.Tensor]  # (P, D) -> (P,)


# ---------------------------------------------------------------------------- test functions


def rastrigin(x: torch.Tensor) -> torch.Tensor:
    """10 D + sum_i [x_i^2 - 10 cos(2 pi x_i)]; global minimum 0 at x = 0."""
    return 10 * x.shape[-1] + (x**2 - 10 * torch.cos(2 * math.pi * x)).sum(-1)


def rosenbrock(x: torch.Tensor) -> torch.Tensor:
    """sum_i [100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2]; global minimum 0 at x = 1."""
    a, b = x[..., :-1], x[..., 1:]
    return (100 * (b - a**2) ** 2 + (1 - a) ** 2).sum(-1)


def ackley(x: torch.Tensor) -> torch.Tensor:
    """-20 exp(-0.2 sqrt(mean x^2)) - exp(mean cos(2 pi x)) + 20 + e; global minimum 0 at x = 0."""
    r = torch.sqrt((x**2).mean(-1) + 1e-30)  # tiny offset keeps the gradient finite at 0
    return -20 * torch.exp(-0.2 * r) - torch.exp(torch.cos(2 * math.pi * x).mean(-1)) + 20 + math.e


@dataclass(frozen=True)
class Benchmark:
    """A test function with its usual search box [low, high]^D and its minimiser value."""

    fn: Objective
    low: float
    high: float
    x_star: float  # every coordinate of the minimiser


BENCHMARKS: dict[str, Benchmark] = {
    "rastrigin": Benchmark(rastrigin, -5.12, 5.12, 0.0),
    "rosenbrock": Benchmark(rosenbrock, -2.048, 2.048, 1.0),
    "ackley": Benchmark(ackley, -32.768, 32.768, 0.0),
}


def get_benchmark(name: str) -> Benchmark:
    if name not in BENCHMARKS:
        raise ValueError(f"name must be one of {sorted(BENCHMARKS)}, got {name!r}")
    return BENCHMARKS[name]


@dataclass
class OptResult:
    """Best point (D,), its value, best-so-far value after each iteration, and evaluations used."""

    best_x: torch.Tensor
    best_f: float
    history: list[float]
    evals_per_iter: int


def _uniform(n: int, dim: int, low: float, high: float, g: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, dim, generator=g, dtype=torch.float64)


def _check_sizes(**sizes: int) -> None:
    for name, value in sizes.items():
        if int(value) < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")


# --------------------------------------------------------------------------- momentum baseline


def gradient_descent_momentum(
    f: Objective, x0: torch.Tensor, *, lr: float = 1e-3, momentum: float = 0.9,
    n_steps: int = 1000, velocity0: torch.Tensor | None = None,
) -> OptResult:
    """Heavy-ball GD from x0 (D,): v <- mu v - lr grad f(x); x <- x + v (Polyak 1964).

    Two-step form: x_{t+1} = x_t + mu (x_t - x_{t-1}) - lr grad f(x_t), with velocity0 (D,) the
    x_0 - x_{-1} (zero, a start at rest, by default); f is evaluated once per step, at x_t.
    Compare with the PSO velocity in `particle_swarm`:
        momentum:  v <- mu * v  - lr * grad f(x)
        PSO:       v <- w  * v  + c1 r1 (p_best - x) + c2 r2 (g_best - x)
    relations.pso_vs_heavy_ball measures when these are the same recursion (w = mu, and the
    pulls are lr times a noisy gradient) and how far apart they drift when they are not.
    """
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must be in [0, 1), got {momentum}")
    x = x0.detach().double().clone()
    v = torch.zeros_like(x) if velocity0 is None else velocity0.detach().double().clone()
    best_x, best_f, history = x.clone(), math.inf, []
    for _ in range(n_steps):
        x.requires_grad_(True)
        fx = f(x[None])[0]
        (grad,) = torch.autograd.grad(fx, x)
        x, fx = x.detach(), float(fx.detach())
        if fx < best_f:
            best_x, best_f = x.clone(), fx
        v = momentum * v - lr * grad  # heavy-ball velocity
        x = x + v
        history.append(best_f)
    return OptResult(best_x, best_f, history, evals_per_iter=1)


# ------------------------------------------------------------------------------ particle swarm


def particle_swarm(
    f: Objective, *, dim: int, low: float, high: float, n_particles: int = 40,
    n_iters: int = 200, inertia: float = 0.7, cognitive: float = 1.5, social: float = 1.5,
    generator: torch.Generator, x0: torch.Tensor | None = None, v0: torch.Tensor | None = None,
) -> OptResult:
    """Global-best PSO with inertia weight, positions clamped to the box [low, high]^dim.

    x0, v0 (P, D): start positions and velocities; by default uniform in the box and uniform
    within +-10% of its width. Each iteration draws r1, then r2, both (P, D) uniforms.
    """
    _check_sizes(dim=dim, n_particles=n_particles, n_iters=n_iters)
    for name, given in (("x0", x0), ("v0", v0)):
        if given is not None and tuple(given.shape) != (n_particles, dim):
            raise ValueError(f"{name} must be ({n_particles}, {dim}), got {tuple(given.shape)}")
    x = _uniform(n_particles, dim, low, high, generator) if x0 is None else x0.double().clone()
    if v0 is None:
        v = 0.1 * (high - low) * (2 * torch.rand(x.shape, generator=generator, dtype=x.dtype) - 1)
    else:
        v = v0.double().clone()  # (P, D)
    p_best, p_val = x.clone(), f(x)  # personal bests (P, D), (P,)
    history = []
    for _ in range(n_iters):
        g_best = p_best[p_val.argmin()]  # (D,)
        r1 = torch.rand(x.shape, generator=generator, dtype=x.dtype)
        r2 = torch.rand(x.shape, generator=generator, dtype=x.dtype)
        # Same shape as momentum's v <- mu v - lr grad f: inertia * v, plus "descent" pulls.
        v = inertia * v + cognitive * r1 * (p_best - x) + social * r2 * (g_best - x)
        x = (x + v).clamp(low, high)
        fx = f(x)
        better = fx < p_val
        p_best[better], p_val[better] = x[better], fx[better]
        history.append(float(p_val.min()))
    i = int(p_val.argmin())
    return OptResult(p_best[i], float(p_val[i]), history, evals_per_iter=n_particles)


# ------------------------------------------------------------------------- simulated annealing

SCHEDULES = ("geometric", "linear", "logarithmic")


def temperature_schedule(kind: str, *, t0: float, t_min: float, n_steps: int) -> torch.Tensor:
    """Temperatures T_0..T_{n-1} (n_steps,) from t0 down to t_min.

    geometric: T_k = t0 (t_min / t0)^(k / (n - 1));  linear: straight line;
    logarithmic: T_k = t0 / (1 + c log(1 + k)), with c set so that T_{n-1} = t_min
    (the Geman and Geman 1984 form, whose slow cooling is the one with convergence guarantees).
    """
    if kind not in SCHEDULES:
        raise ValueError(f"kind must be one of {SCHEDULES}, got {kind!r}")
    if not 0 < t_min <= t0:
        raise ValueError(f"need 0 < t_min <= t0, got t_min={t_min}, t0={t0}")
    s = torch.linspace(0, 1, n_steps, dtype=torch.float64)
    if kind == "geometric":
        return t0 * (t_min / t0) ** s
    if kind == "linear":
        return t0 + (t_min - t0) * s
    k = torch.arange(n_steps, dtype=torch.float64)
    c = (t0 / t_min - 1) / max(math.log(n_steps), 1e-12)
    return t0 / (1 + c * torch.log1p(k))


def metropolis_annealing(
    f: Objective, x0: torch.Tensor, temps: torch.Tensor, *, proposal_std: torch.Tensor,
    low: float, high: float, generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Chains x0 (C, D) through temperatures temps (K,), one Metropolis step at each T_k.

    Propose y = x + proposal_std[k] xi, xi ~ N(0, I), clamped to [low, high]^D, and accept with
    probability min(1, exp(-(f(y) - f(x)) / T_k)) (Kirkpatrick 1983): one f evaluation per step
    and chain. Returns the states (K, C, D) and their values (K, C) after each step.
    """
    x, fx = x0.double().clone(), f(x0.double())
    states, values = [], []
    for T, scale in zip(temps.tolist(), proposal_std.tolist(), strict=True):
        y = (x + scale * torch.randn(x.shape, generator=generator, dtype=x.dtype)).clamp(low, high)
        fy = f(y)
        u = torch.rand(len(x), generator=generator, dtype=x.dtype)
        accept = u.log() < -(fy - fx) / T  # Metropolis criterion
        x, fx = torch.where(accept[:, None], y, x), torch.where(accept, fy, fx)
        states.append(x)
        values.append(fx)
    return torch.stack(states), torch.stack(values)


def simulated_annealing(
    f: Objective, *, dim: int, low: float, high: float, n_chains: int = 16, n_iters: int = 500,
    t0: float = 10.0, t_min: float = 1e-3, schedule: str = "geometric", step_size: float = 0.5,
    generator: torch.Generator,
) -> OptResult:
    """Parallel SA chains from uniform starts; the best point any chain visited.

    The proposal std step_size * (high - low) * sqrt(T_k / t0) mirrors Langevin noise
    sqrt(2 eps T): both shrink with the square root of the temperature.
    """
    _check_sizes(dim=dim, n_chains=n_chains, n_iters=n_iters)
    temps = temperature_schedule(schedule, t0=t0, t_min=t_min, n_steps=n_iters)
    stds = torch.tensor([step_size * (high - low) * math.sqrt(T / t0) for T in temps.tolist()],
                        dtype=torch.float64)  # (K,)
    x = _uniform(n_chains, dim, low, high, generator)  # (C, D)
    states, values = metropolis_annealing(f, x, temps, proposal_std=stds, low=low, high=high,
                                          generator=generator)
    states, values = torch.cat([x[None], states]), torch.cat([f(x)[None], values])  # (K + 1, ...)
    history = values.min(1).values.cummin(0).values[1:].tolist()  # best so far after each step
    k, c = divmod(int(values.argmin()), n_chains)  # argmin takes the first, i.e. earliest, best
    return OptResult(states[k, c].clone(), float(values[k, c]), history, evals_per_iter=n_chains)


# --------------------------------------------------------------------------- genetic algorithm


def _tournament(fit: torch.Tensor, n: int, size: int, g: torch.Generator) -> torch.Tensor:
    """Indices (n,) of tournament winners: best (lowest f) of `size` uniformly drawn entrants."""
    entrants = torch.randint(len(fit), (n, size), generator=g)
    return entrants.gather(1, fit[entrants].argmin(1, keepdim=True))[:, 0]


def genetic_algorithm(
    f: Objective, *, dim: int, low: float, high: float, pop_size: int = 50,
    n_generations: int = 200, tournament_size: int = 3, crossover_rate: float = 0.9,
    mutation_rate: float = 0.2, mutation_scale: float = 0.1, n_elite: int = 2,
    generator: torch.Generator,
) -> OptResult:
    """Real-coded GA: tournament selection, uniform crossover, Gaussian mutation, elitism.

    mutation_scale is relative to the box width and decays linearly to 10% over the run, so
    the search goes from exploration to local refinement. The n_elite best survive unchanged.
    """
    _check_sizes(dim=dim, pop_size=pop_size, n_generations=n_generations,
                 tournament_size=tournament_size)
    if not 0 <= n_elite < pop_size:
        raise ValueError(f"n_elite must be in [0, pop_size), got {n_elite}")
    g, width = generator, high - low
    pop = _uniform(pop_size, dim, low, high, g)  # (P, D)
    fit = f(pop)
    history, n_child = [], pop_size - n_elite
    for gen in range(n_generations):
        mom = pop[_tournament(fit, n_child, tournament_size, g)]  # (P - E, D)
        dad = pop[_tournament(fit, n_child, tournament_size, g)]
        do_cross = torch.rand(n_child, 1, generator=g, dtype=pop.dtype) < crossover_rate
        take_dad = (torch.rand(mom.shape, generator=g, dtype=pop.dtype) < 0.5) & do_cross
        child = torch.where(take_dad, dad, mom)  # uniform crossover
        scale = mutation_scale * width * (1 - 0.9 * gen / max(n_generations - 1, 1))
        mutate = torch.rand(child.shape, generator=g, dtype=pop.dtype) < mutation_rate
        noise = scale * torch.randn(child.shape, generator=g, dtype=pop.dtype)
        child = (child + mutate * noise).clamp(low, high)
        elite = fit.argsort()[:n_elite]
        pop = torch.cat([pop[elite], child])
        fit = torch.cat([fit[elite], f(child)])
        history.append(float(fit.min()))
    i = int(fit.argmin())
    return OptResult(pop[i], float(fit[i]), history, evals_per_iter=n_child)
