"""2-D toy samplers and densities: determinism, geometry, and sampler/density agreement."""

import math

import pytest
import torch

from genlab.data import toy2d

NAMES = sorted(toy2d.SAMPLERS)
N = 20_000


def draw(name: str, n: int = N, seed: int = 0) -> torch.Tensor:
    return toy2d.sample_toy(name, n, torch.Generator().manual_seed(seed))


def midpoint_grid(lim: float, dx: float) -> tuple[torch.Tensor, float]:
    """Cell centers (M, 2) of a grid over [-lim, lim]^2 whose cell edges are multiples of dx."""
    centers = torch.arange(-lim + dx / 2, lim, dx, dtype=torch.float64)
    gy, gx = torch.meshgrid(centers, centers, indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1), dx * dx


@pytest.mark.parametrize("name", NAMES)
def test_shape_dtype_determinism(name):
    a, b, c = draw(name, 500), draw(name, 500), draw(name, 500, seed=1)
    assert a.shape == (500, 2) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert draw(name, 0).shape == (0, 2)


@pytest.mark.parametrize("name", NAMES)
def test_zero_mean_unit_ish_scale(name):
    x = draw(name).double()
    std = x.std(dim=0)
    assert (x.mean(dim=0).abs() < 5 * std / math.sqrt(N)).all()  # zero mean in expectation
    assert ((std > 0.4) & (std < 1.6)).all()


def test_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError, match="checkerboard.*swiss_roll"):
        toy2d.sample_toy("spiral", 10, torch.Generator())
    with pytest.raises(ValueError, match="name must be one of"):
        toy2d.log_density("spiral", torch.zeros(1, 2))


def test_checkerboard_points_lie_in_dark_squares():
    x = draw("checkerboard")
    cell = torch.floor(x + 2).long()
    assert ((cell >= 0) & (cell < 4)).all()
    assert (cell.sum(dim=1) % 2 == 0).all()
    counts = torch.bincount(cell[:, 0] * 4 + cell[:, 1], minlength=16)
    dark = counts[counts > 0]
    assert len(dark) == 8 and (dark - N / 8).abs().max() < 5 * math.sqrt(N / 8)
    assert (x - torch.floor(x)).mean().item() == pytest.approx(0.5, abs=0.01)  # uniform inside


def test_eight_gaussians_components():
    x = draw("eight_gaussians").double()
    k = torch.round(torch.atan2(x[:, 1], x[:, 0]) / (math.pi / 4)).long() % 8
    means = toy2d.gaussian_means()
    for j in range(8):
        group = x[k == j]
        assert abs(len(group) - N / 8) < 5 * math.sqrt(N / 8)
        assert torch.allclose(group.mean(dim=0), means[j], atol=0.02)
        assert torch.allclose(
            group.std(dim=0), torch.full((2,), 0.2, dtype=torch.float64), atol=0.015
        )
    assert means[2].tolist() == pytest.approx([0.0, 2.0], abs=1e-12)  # radius 2 on the circle


def test_rings_radii_and_weights():
    radius = draw("rings").double().norm(dim=1)
    radii = torch.tensor(toy2d.RING_RADII, dtype=torch.float64)
    ring = (radius[:, None] - radii).abs().argmin(dim=1)
    fractions = torch.bincount(ring, minlength=4).double() / N
    assert torch.allclose(fractions, radii / radii.sum(), atol=0.015)  # weights ~ circumference
    for j, r in enumerate(toy2d.RING_RADII):
        on_ring = radius[ring == j]
        # Radius of a noisy circle point: mean r + s^2 / (2 r), std s (s << r).
        assert on_ring.mean().item() == pytest.approx(r + 0.05**2 / (2 * r), abs=0.004)
        assert on_ring.std().item() == pytest.approx(0.05, rel=0.1)


def test_two_moons_lie_near_their_arcs():
    x = draw("two_moons", 4000).double()
    a = torch.linspace(0, math.pi, 2001, dtype=torch.float64)
    upper = torch.stack([a.cos() - 0.5, a.sin() - 0.25], dim=1)
    lower = torch.stack([0.5 - a.cos(), 0.25 - a.sin()], dim=1)
    distance = torch.cdist(x, torch.cat([upper, lower])).min(dim=1).values
    assert (distance < 5 * toy2d.MOON_NOISE).all()
    assert distance.mean().item() == pytest.approx(0.08 * math.sqrt(2 / math.pi), rel=0.1)


@pytest.mark.parametrize("name", NAMES)
def test_density_integrates_to_one_and_matches_samples(name):
    points, cell = midpoint_grid(lim=3.5, dx=0.05)  # edges on multiples of 0.05
    p = toy2d.log_density(name, points).exp()
    assert (p.sum() * cell).item() == pytest.approx(1.0, abs=2e-3)
    region = (points[:, 0] > 0.3) & (points[:, 1] > -0.3)
    x = draw(name)
    in_region = ((x[:, 0] > 0.3) & (x[:, 1] > -0.3)).double().mean().item()
    assert (p[region].sum() * cell).item() == pytest.approx(in_region, abs=0.015)


def test_eight_gaussians_density_matches_torch_mixture():
    mixture = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(torch.full((8,), 1 / 8, dtype=torch.float64)),
        torch.distributions.Independent(
            torch.distributions.Normal(toy2d.gaussian_means(), 0.2 * torch.ones(8, 2)), 1
        ),
    )
    xy = torch.randn(300, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2
    assert torch.allclose(toy2d.log_density("eight_gaussians", xy), mixture.log_prob(xy))


def test_rings_bessel_density_matches_angle_quadrature():
    xy = torch.randn(200, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    phi = torch.arange(4096, dtype=torch.float64) * 2 * math.pi / 4096  # exact for periodic
    radii = torch.tensor(toy2d.RING_RADII, dtype=torch.float64)
    centers = (radii[:, None, None] * torch.stack([phi.cos(), phi.sin()], -1)).reshape(-1, 2)
    weights = (radii / radii.sum()).repeat_interleave(4096) / 4096
    s2 = toy2d.RING_NOISE**2
    kernel = torch.exp(-torch.cdist(xy, centers).square() / (2 * s2)) / (2 * math.pi * s2)
    reference = (kernel * weights).sum(dim=1)
    assert torch.allclose(toy2d.log_density("rings", xy).exp(), reference, rtol=1e-8, atol=1e-300)


def test_checkerboard_density_closed_form():
    # Dark squares (i, j) = (floor(x + 2), floor(y + 2)) with i + j even, on [-2, 2]^2.
    xy = torch.tensor(
        [[-1.5, -1.5], [-0.5, -1.5], [0.5, 0.5], [2.5, 0.5], [1.99, -0.99], [1.99, -1.01]]
    )
    logp = toy2d.log_density("checkerboard", xy)
    dark = -math.log(8)
    expected = [dark, -math.inf, dark, -math.inf, dark, -math.inf]
    assert logp.tolist() == pytest.approx(expected)
    assert logp.dtype == torch.float32


def test_density_grid_layout():
    xs, ys, p = toy2d.density_grid("two_moons", lim=2.0, res=41)
    assert xs.shape == ys.shape == (41,) and p.shape == (41, 41)
    i, j = 30, 12  # p[i, j] is the density at (xs[j], ys[i])
    point = torch.stack([xs[j], ys[i]])[None]
    assert p[i, j].item() == pytest.approx(
        toy2d.log_density("two_moons", point).exp().item(), rel=1e-5
    )
    assert p[i, j] != p[j, i]
