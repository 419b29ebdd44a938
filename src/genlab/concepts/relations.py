"""Two relations measured: PSO vs heavy-ball momentum (Polyak 1964), SA vs annealed Langevin.

PSO <-> heavy ball. On f(x) = |x - c|^2 / 2, a particle whose personal and global bests both sit
at the minimiser c (it started there: no point beats f(c) = 0) moves by
    v <- w v + c1 r1 (c - x) + c2 r2 (c - x) = w v - alpha g,       alpha = (c1 + c2) / 2,
    g = 2 k (x - c),   k = (c1 r1 + c2 r2) / (c1 + c2),   E k = 1/2,   so E g = grad f(x);
that is x_{t+1} = x_t + w (x_t - x_{t-1}) - alpha g_t: heavy ball with beta = w on an unbiased
gradient estimate, g_t = grad f_t for the random quadratic f_t(x) = sum_i k_i (x_i - c_i)^2.
Without the social term (c2 = 0) alpha = c1 / 2 and k = r1. pso_vs_heavy_ball runs the real
`particle_swarm` and `gradient_descent_momentum` on the same draws and returns both paths.

SA <-> annealed Langevin. Simulated annealing (`metropolis_annealing`, Kirkpatrick 1983) and
annealed Langevin (`mcmc.annealed_langevin`, ULA per level as in Song and Ermon 2019, Alg. 1)
on one tilted double well, each with its own geometric ladder over the same temperatures and
one oracle call (an energy for SA, a gradient for Langevin) per step and chain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from genlab.concepts import mcmc
from genlab.concepts import metaheuristics as mh

BOX = 100.0  # half-width of the search box: far beyond every path here, so clamps never act

# ------------------------------------------------------------------------ PSO <-> heavy ball


def pso_coefficient_quadratic(
    center: torch.Tensor, *, cognitive: float, social: float, n_particles: int, particle: int,
    generator: torch.Generator,
) -> mh.Objective:
    """f_t(x) = sum_i k_i (x_i - c_i)^2 for x (1, D), with k = (c1 r1 + c2 r2) / (c1 + c2)
    redrawn at every call.

    r1, r2 (P, D) are drawn as `particle_swarm` draws its coefficients in one iteration, and
    row `particle` is used: given a copy of the swarm's generator, call t sees iteration t's
    draws. E f_t = |x - c|^2 / 2 and E grad f_t = x - c (module docstring).
    """
    dim = center.shape[-1]

    def f_t(x: torch.Tensor) -> torch.Tensor:  # (1, D) -> (1,)
        r1 = torch.rand(n_particles, dim, generator=generator, dtype=torch.float64)[particle]
        r2 = torch.rand(n_particles, dim, generator=generator, dtype=torch.float64)[particle]
        k = (cognitive * r1 + social * r2) / (cognitive + social)  # (D,)
        return (k * (x - center) ** 2).sum(-1)

    return f_t


def _recorded(f: mh.Objective, path: list[torch.Tensor]) -> mh.Objective:
    """f that also appends every point it is evaluated at to `path`: the optimiser's path."""

    def g(x: torch.Tensor) -> torch.Tensor:
        path.append(x.detach().clone())
        return f(x)

    return g


def pso_vs_heavy_ball(
    x0: torch.Tensor, v0: torch.Tensor, *, inertia: float, cognitive: float, social: float,
    hb_social: float, particle: int, n_iters: int, generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Paths (n_iters + 1, D) of swarm particle `particle` and of its heavy-ball twin.

    The swarm starts at x0, v0 (P, D) on f(x) = |x|^2 / 2 (c = 0). The twin starts at the same
    position and velocity with beta = inertia and alpha = (cognitive + hb_social) / 2 on
    `pso_coefficient_quadratic` fed a copy of the swarm's generator. hb_social = social gives
    the matched twin; hb_social = 0 the twin of the swarm without its social term.
    """
    twin_gen = torch.Generator().set_state(generator.get_state())
    pso_path, hb_path = [], []
    mh.particle_swarm(_recorded(lambda x: 0.5 * (x**2).sum(-1), pso_path), dim=x0.shape[1],
                      low=-BOX, high=BOX, n_particles=len(x0), n_iters=n_iters, inertia=inertia,
                      cognitive=cognitive, social=social, generator=generator, x0=x0, v0=v0)
    f_t = pso_coefficient_quadratic(torch.zeros(x0.shape[1], dtype=torch.float64),
                                    cognitive=cognitive, social=hb_social, n_particles=len(x0),
                                    particle=particle, generator=twin_gen)
    mh.gradient_descent_momentum(_recorded(f_t, hb_path), x0[particle],
                                 lr=(cognitive + hb_social) / 2, momentum=inertia,
                                 n_steps=n_iters + 1, velocity0=v0[particle])
    return torch.stack(pso_path)[:, particle], torch.cat(hb_path)  # (n + 1, D) each


def pso_momentum_cases(
    *, n_particles: int, n_iters: int, generator: torch.Generator, inertia: float = 0.7,
    cognitive: float = 1.5, social: float = 1.5,
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """(PSO path, heavy-ball path) per case, in 2-D; particle 0 starts at the minimiser 0.

    reduced: one particle, no social term. social_on: the social term back on, against the
    reduced twin. social_on_matched: the same against the matched twin (with one particle
    g_best = p_best, so the social pull is a second cognitive pull). swarm_best / swarm_other:
    n_particles particles, matched twins of particle 0 (its bests stay at 0) and particle 1
    (started off the minimiser: its personal best moves, so its pull is not a gradient of f).
    Every case draws its coefficients from the same generator state.
    """
    v0 = torch.randn(n_particles, 2, generator=generator, dtype=torch.float64)  # (P, 2)
    x0 = 3 * (2 * torch.rand(n_particles, 2, generator=generator, dtype=torch.float64) - 1)
    x0[0] = 0.0
    state = generator.get_state()
    common = {"inertia": inertia, "cognitive": cognitive, "n_iters": n_iters}
    runs = {"reduced": (1, 0.0, 0.0, 0), "social_on": (1, social, 0.0, 0),
            "social_on_matched": (1, social, social, 0),
            "swarm_best": (n_particles, social, social, 0),
            "swarm_other": (n_particles, social, social, 1)}
    return {name: pso_vs_heavy_ball(x0[:n], v0[:n], social=s, hb_social=hb, particle=i,
                                    generator=torch.Generator().set_state(state), **common)
            for name, (n, s, hb, i) in runs.items()}


# -------------------------------------------------------------- SA <-> annealed Langevin


@dataclass(frozen=True)
class DoubleWell:
    """E(x) = (x^2 - 1)^2 + tilt x on x (C, 1) -> (C,); tilt > 0 makes the left well global."""

    tilt: float = 0.3

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        return ((x**2 - 1) ** 2 + self.tilt * x).sum(-1)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """-E(x), an unnormalised log density (C,)."""
        return -self.energy(x)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """-E'(x) = -(4 x (x^2 - 1) + tilt), (C, 1)."""
        return -(4 * x * (x**2 - 1) + self.tilt)

    def critical_points(self) -> tuple[float, float, float]:
        """Global minimum, barrier top, local minimum: the roots of x^3 - x + tilt / 4 = 0 by
        the trigonometric cubic formula, x_k = 2 / sqrt(3) cos(phi / 3 - 2 pi k / 3)."""
        if not 0 < self.tilt < 8 / (3 * math.sqrt(3)):
            raise ValueError(f"tilt must be in (0, {8 / (3 * math.sqrt(3)):.3f}) for two wells")
        phi = math.acos(-self.tilt / 4 * 1.5 * math.sqrt(3))
        roots = sorted(2 / math.sqrt(3) * math.cos(phi / 3 - 2 * math.pi * k / 3) for k in range(3))
        return roots[0], roots[1], roots[2]


def boltzmann_bins(
    energy: mh.Objective, *, temperature: float, low: float, high: float, n_bins: int,
) -> torch.Tensor:
    """Probabilities (n_bins,) of exp(-E / T) on equal bins of [low, high], normalised on it
    (trapezoid rule, 50 cells a bin)."""
    xs = torch.linspace(low, high, 50 * n_bins + 1, dtype=torch.float64)
    e = energy(xs[:, None])
    w = torch.exp(-(e - e.min()) / temperature)
    p = (0.5 * (w[:-1] + w[1:])).reshape(n_bins, 50).sum(1)
    return p / p.sum()


def boltzmann_basin_prob(well: DoubleWell, *, temperature: float) -> float:
    """Mass of exp(-E / T) left of the barrier top, the global basin (trapezoid rule on
    [-3, 3], where E >= 63)."""
    xs = torch.linspace(-3.0, 3.0, 60_001, dtype=torch.float64)
    e = well.energy(xs[:, None])
    w = torch.exp(-(e - e.min()) / temperature)
    cells = 0.5 * (w[:-1] + w[1:])  # (n - 1,)
    return float(cells[xs[1:] <= well.critical_points()[1]].sum() / cells.sum())


def histogram_tv(x: torch.Tensor, probs: torch.Tensor, *, low: float, high: float) -> float:
    """Total variation between the histogram of x (any shape) on equal bins of [low, high]
    and probs (n_bins,); mass of x outside [low, high] counts in full."""
    counts = torch.histc(x.flatten(), len(probs), low, high)
    n = x.numel()
    return 0.5 * float((counts / n - probs).abs().sum() + (1 - counts.sum() / n))


def anneal_both(
    well: DoubleWell, x0: torch.Tensor, *, t_max: float, t_min: float, n_levels: int,
    n_steps_each: int, step_size: float, generator: torch.Generator,
) -> dict[str, torch.Tensor]:
    """States (n_levels n_steps_each, C, 1) of SA and annealed Langevin from x0 (C, 1).

    Both hold each of the n_levels geometric temperatures for n_steps_each steps, each from its
    own ladder function. SA proposes the Gaussian move Langevin injects, std sqrt(2 eps T),
    and replaces Langevin's drift eps grad log p by the Metropolis test.
    """
    sa_ladder = mh.temperature_schedule("geometric", t0=t_max, t_min=t_min, n_steps=n_levels)
    temps = sa_ladder.repeat_interleave(n_steps_each)  # (L n,)
    sa, _ = mh.metropolis_annealing(well.energy, x0, temps, proposal_std=(2 * step_size * temps)
                                    .sqrt(), low=-BOX, high=BOX, generator=generator)
    ladder = mcmc.langevin_temperatures(t_max=t_max, t_min=t_min, n_levels=n_levels)
    ld = mcmc.annealed_langevin(well.log_prob, x0, ladder, n_steps_each=n_steps_each,
                                step_size=step_size, generator=generator, score=well.score)
    return {"sa": sa, "langevin": ld.samples}


def sample_at_temperature(
    well: DoubleWell, x0: torch.Tensor, *, temperature: float, n_steps: int, step_size: float,
    generator: torch.Generator,
) -> dict[str, torch.Tensor]:
    """States (n_steps, C, 1) of the two chains of `anneal_both` held at one temperature: SA's
    is the Metropolis chain of exp(-E / T), Langevin's the unadjusted (step-biased) one."""
    return anneal_both(well, x0, t_max=temperature, t_min=temperature, n_levels=1,
                       n_steps_each=n_steps, step_size=step_size, generator=generator)
