"""Tests for improved precision/recall: hand-worked golden numbers, a brute-force numpy oracle,
and the limiting cases (identical sets, disjoint sets, half the modes)."""

import numpy as np
import pytest
import torch

from genlab.metrics.prd import knn_radii, precision_recall


def _oracle(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, float]:
    """Brute force: all pairwise distances by explicit differences, sort, compare."""

    def dists(a, b):
        return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))

    def radii(x):
        return np.sort(dists(x, x), axis=1)[:, k]  # column 0 is the point itself

    def coverage(ref, query):
        return float((dists(query, ref) <= radii(ref)[None, :]).any(axis=1).mean())

    return coverage(real, fake), coverage(fake, real)


def _modes(n_per_mode: int, centres: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    d = centres.shape[1]
    return np.concatenate([c + rng.standard_normal((n_per_mode, d)) for c in centres])


def test_knn_radii_golden_on_a_line():
    x = torch.tensor([[0.0], [1.0], [3.0], [7.0]])
    assert knn_radii(x, k=1).tolist() == [1.0, 1.0, 2.0, 4.0]
    assert knn_radii(x, k=2).tolist() == [3.0, 2.0, 3.0, 6.0]


def test_precision_recall_golden_on_a_line():
    # real radii (k=1): [1, 1, 2, 4]; fake 11 lies only on the boundary of ball(7, 4), which
    # counts as inside; -1.5 is outside every ball. Fake radii: [2, 1.5, 1.5, 3, 6] cover all real.
    real = torch.tensor([[0.0], [1.0], [3.0], [7.0]])
    fake = torch.tensor([[0.5], [2.0], [5.0], [11.0], [-1.5]])
    assert precision_recall(real, fake, k=1) == (4 / 5, 1.0)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_batched_equals_bruteforce_numpy_oracle(k):
    rng = np.random.default_rng(k)
    real = rng.standard_normal((120, 6))
    fake = 1.3 * rng.standard_normal((90, 6)) + 0.4
    want = _oracle(real, fake, k)
    assert 0.0 < want[0] < 1.0 and 0.0 < want[1] < 1.0  # a non-trivial case
    assert precision_recall(real, fake, k=k, batch=17) == want
    real32, fake32 = real.astype(np.float32), fake.astype(np.float32)  # torch float32 input
    assert precision_recall(torch.from_numpy(real32), torch.from_numpy(fake32), k=k) == (
        _oracle(real32.astype(np.float64), fake32.astype(np.float64), k)
    )


def test_batch_size_does_not_change_the_result():
    gen = torch.Generator().manual_seed(0)
    real, fake = torch.randn(300, 8, generator=gen), torch.randn(250, 8, generator=gen) * 1.2
    assert precision_recall(real, fake, batch=7) == precision_recall(real, fake, batch=4096)


def test_identical_sets_give_one_one():
    x = torch.randn(500, 16, generator=torch.Generator().manual_seed(1))
    assert precision_recall(x, x.clone()) == (1.0, 1.0)


def test_disjoint_far_apart_clusters_give_zero_zero():
    gen = torch.Generator().manual_seed(2)
    real, fake = torch.randn(400, 4, generator=gen), torch.randn(300, 4, generator=gen) + 100.0
    assert precision_recall(real, fake) == (0.0, 0.0)


CENTRES = 20.0 * np.array([[1, 1], [1, -1], [-1, 1], [-1, -1]], dtype=float)


def test_subset_of_half_the_modes_gives_exactly_one_and_half():
    # Fake = the real points of 2 of 4 equally weighted, well separated modes. Every fake point is
    # a real point (precision 1); real points of the covered modes are fake points (inside), and
    # those of the missing modes are farther from every fake point than any fake k-NN radius.
    rng = np.random.default_rng(3)
    real = _modes(250, CENTRES, rng)
    assert precision_recall(real, real[:500]) == (1.0, 0.5)


def test_fresh_samples_from_half_the_modes():
    # Recall cannot exceed the mass of the covered modes (0.5); precision is 1 minus fake
    # outliers that fall outside the real manifold.
    rng = np.random.default_rng(4)
    real, fake = _modes(500, CENTRES, rng), _modes(500, CENTRES[:2], rng)
    precision, recall = precision_recall(real, fake)
    assert precision >= 0.97
    assert 0.47 <= recall <= 0.5


def test_invariant_to_rigid_motions_and_scaling():
    gen = torch.Generator().manual_seed(5)
    real, fake = torch.randn(200, 5, generator=gen), torch.randn(150, 5, generator=gen) + 0.5
    q, _ = torch.linalg.qr(torch.randn(5, 5, generator=gen))
    move = lambda x: 3.0 * x.double() @ q.double() + 7.0  # noqa: E731
    assert precision_recall(move(real), move(fake)) == precision_recall(real, fake)


def test_rejects_bad_arguments():
    x = torch.randn(10, 3)
    with pytest.raises(ValueError, match="k must"):
        precision_recall(x, x, k=10)
    with pytest.raises(ValueError, match="batch"):
        precision_recall(x, x, batch=0)
    with pytest.raises(ValueError, match="share D"):
        precision_recall(x, torch.randn(10, 4))


@pytest.mark.slow
def test_ten_thousand_by_ten_thousand_in_128d_runs_in_modest_memory():
    # Same distribution with low intrinsic dimension (4-d Gaussian mapped linearly into 128-d),
    # the regime of learned features: both numbers are close to 1.
    gen = torch.Generator().manual_seed(6)
    lift = torch.randn(4, 128, generator=gen)
    real = torch.randn(10_000, 4, generator=gen) @ lift
    fake = torch.randn(10_000, 4, generator=gen) @ lift
    precision, recall = precision_recall(real, fake, batch=1024)  # peak ~ 1024 x 10k x 8 B
    assert precision > 0.95 and recall > 0.95
