"""MLE / MAP / conjugacy / cross-entropy / regression tests against closed forms and autograd."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import distributions as D

from genlab.concepts import information
from genlab.concepts import likelihood as lik


def _t(v):
    return torch.tensor(v, dtype=torch.float64)


def _log_evidence_spread(log_prior, log_lik, log_post, thetas):
    """Bayes: log prior + log lik - log posterior is one constant (log evidence) for all theta."""
    vals = torch.stack([log_prior(t) + log_lik(t) - log_post(t) for t in thetas])
    return float(vals.max() - vals.min())


def test_bernoulli_mle_and_map_closed_forms(gen):
    x = (torch.rand(37, generator=gen) < 0.3).double()
    k, n = float(x.sum()), len(x)
    assert float(lik.bernoulli_mle(x)) == pytest.approx(k / n)
    assert lik.bernoulli_map(x, a=3.0, b=2.0) == pytest.approx((k + 3 - 1) / (n + 3 + 2 - 2))
    assert lik.bernoulli_map(x, a=1.0, b=1.0) == pytest.approx(k / n)  # flat prior: MAP = MLE


def test_bernoulli_map_is_argmax_of_beta_posterior_on_grid(gen):
    x = (torch.rand(20, generator=gen) < 0.6).double()
    a_n, b_n = lik.beta_posterior(x, a=4.0, b=2.5)
    grid = torch.linspace(1e-4, 1 - 1e-4, 100_001, dtype=torch.float64)
    lp = D.Beta(_t(a_n), _t(b_n)).log_prob(grid)
    assert lik.bernoulli_map(x, a=4.0, b=2.5) == pytest.approx(float(grid[lp.argmax()]), abs=2e-5)


def test_beta_bernoulli_conjugacy(gen):
    x = (torch.rand(15, generator=gen) < 0.4).double()
    a_n, b_n = lik.beta_posterior(x, a=2.0, b=3.0)
    prior, post = D.Beta(_t(2.0), _t(3.0)), D.Beta(_t(a_n), _t(b_n))
    spread = _log_evidence_spread(prior.log_prob, lambda p: D.Bernoulli(p).log_prob(x).sum(),
                                  post.log_prob,
                                  torch.rand(10, generator=gen, dtype=torch.float64) * 0.9 + 0.05)
    assert spread < 1e-10


def test_bernoulli_map_rejects_bad_prior():
    with pytest.raises(ValueError, match="a >= 1"):
        lik.bernoulli_map(torch.ones(3), a=0.5, b=2.0)


def test_categorical_mle_map_and_dirichlet_conjugacy(gen):
    x = torch.randint(4, (50,), generator=gen)
    counts = torch.bincount(x, minlength=4).double()
    assert torch.allclose(lik.categorical_mle(x, num_classes=4), counts / 50)
    alpha = torch.tensor([2.0, 1.5, 3.0, 1.0], dtype=torch.float64)
    map_ = lik.categorical_map(x, alpha=alpha)
    assert torch.allclose(map_, (counts + alpha - 1) / (50 + alpha.sum() - 4))
    assert torch.allclose(lik.categorical_map(x, alpha=torch.ones(4)), counts / 50)
    post = D.Dirichlet(counts + alpha)
    for _ in range(50):  # the MAP beats random nearby points of the simplex
        q = (map_ + 0.01 * torch.randn(4, generator=gen, dtype=torch.float64)).clamp_min(1e-6)
        assert post.log_prob(map_) >= post.log_prob(q / q.sum())
    thetas = D.Dirichlet(torch.ones(4, dtype=torch.float64)).sample((8,))
    spread = _log_evidence_spread(D.Dirichlet(alpha).log_prob,
                                  lambda p: D.Categorical(probs=p).log_prob(x).sum(),
                                  post.log_prob, thetas)
    assert spread < 1e-6


def test_category_counts_rejects_out_of_range_labels():
    with pytest.raises(ValueError, match="labels"):
        lik.categorical_mle(torch.tensor([0, 3]), num_classes=3)


def test_gaussian_mle_is_sample_mean_and_zero_gradient(gen):
    x = 2.0 + 3.0 * torch.randn(200, generator=gen, dtype=torch.float64)
    mu, var = lik.gaussian_mle(x)
    assert float(mu) == pytest.approx(float(x.mean()))
    assert float(var) == pytest.approx(float(x.var(unbiased=False)))
    theta = torch.stack([mu, var.log()]).requires_grad_(True)
    nll = -D.Normal(theta[0], theta[1].mul(0.5).exp()).log_prob(x).sum()
    (grad,) = torch.autograd.grad(nll, theta)
    assert grad.abs().max() < 1e-8


def test_gaussian_mean_posterior_conjugacy_and_limits(gen):
    x = 1.0 + torch.randn(30, generator=gen, dtype=torch.float64)
    m, v = lik.gaussian_mean_posterior(x, sigma2=1.0, mu0=-2.0, tau2=0.5)
    spread = _log_evidence_spread(
        lambda mu: D.Normal(_t(-2.0), _t(math.sqrt(0.5))).log_prob(mu),
        lambda mu: D.Normal(mu, _t(1.0)).log_prob(x).sum(),
        lambda mu: D.Normal(_t(m), _t(math.sqrt(v))).log_prob(mu),
        torch.randn(6, generator=gen, dtype=torch.float64))
    assert spread < 1e-8
    m_flat, v_flat = lik.gaussian_mean_posterior(x, sigma2=1.0, mu0=0.0, tau2=1e12)
    assert m_flat == pytest.approx(float(x.mean()), abs=1e-8)  # vague prior: MAP -> MLE
    assert v_flat == pytest.approx(1.0 / 30)


def test_nig_conjugacy_mode_and_sequential_updates(gen):
    x = 0.5 + 2.0 * torch.randn(25, generator=gen, dtype=torch.float64)
    prior = lik.NormalInverseGamma(mu=0.0, kappa=2.0, alpha=3.0, beta=4.0)
    post = lik.nig_posterior(x, prior=prior)

    def nig_log_pdf(p, theta):  # theta = (mu, sigma2)
        inv_gamma = D.TransformedDistribution(D.Gamma(_t(p.alpha), _t(p.beta)),
                                              [D.PowerTransform(_t(-1.0))])
        normal = D.Normal(_t(p.mu), (theta[1] / p.kappa).sqrt())
        return inv_gamma.log_prob(theta[1]) + normal.log_prob(theta[0])

    thetas = [_t([float(m), float(s)]) for m, s in
              zip(torch.randn(6, generator=gen), 0.5 + torch.rand(6, generator=gen), strict=True)]
    spread = _log_evidence_spread(lambda t: nig_log_pdf(prior, t),
                                  lambda t: D.Normal(t[0], t[1].sqrt()).log_prob(x).sum(),
                                  lambda t: nig_log_pdf(post, t), thetas)
    assert spread < 1e-8
    mode = torch.tensor(post.mode(), dtype=torch.float64).requires_grad_(True)
    (grad,) = torch.autograd.grad(nig_log_pdf(post, mode), mode)
    assert grad.abs().max() < 1e-8
    two_step = lik.nig_posterior(x[10:], prior=lik.nig_posterior(x[:10], prior=prior))
    for name in ("mu", "kappa", "alpha", "beta"):
        assert getattr(two_step, name) == pytest.approx(getattr(post, name))


def test_cross_entropy_matches_torch_and_is_categorical_nll(gen):
    logits = torch.randn(64, 5, generator=gen, dtype=torch.float64)
    y = torch.randint(5, (64,), generator=gen)
    assert torch.allclose(lik.cross_entropy(logits, y), F.cross_entropy(logits, y))
    p_hat = lik.categorical_mle(y, num_classes=5)  # constant logits log p: CE = NLL / n
    ce = lik.cross_entropy(p_hat.log().expand(64, 5), y)
    assert float(ce) == pytest.approx(-float(D.Categorical(probs=p_hat).log_prob(y).mean()))
    assert float(ce) == pytest.approx(float(information.entropy(p_hat)))  # at the MLE: H(p_hat)


@pytest.mark.parametrize("l2", [0.0, 0.1])
def test_softmax_regression_grad_matches_autograd(gen, l2):
    X = torch.randn(32, 4, generator=gen, dtype=torch.float64)
    y = torch.randint(3, (32,), generator=gen)
    W = torch.randn(4, 3, generator=gen, dtype=torch.float64).requires_grad_(True)
    b = torch.randn(3, generator=gen, dtype=torch.float64).requires_grad_(True)
    auto = torch.autograd.grad(lik.softmax_regression_loss(W, b, X, y, l2=l2), (W, b))
    mine = lik.softmax_regression_grad(W.detach(), b.detach(), X, y, l2=l2)
    for a, m in zip(auto, mine, strict=True):
        assert torch.allclose(a, m, atol=1e-12)


def test_logistic_grad_matches_autograd(gen):
    X = torch.randn(40, 3, generator=gen, dtype=torch.float64)
    y = (torch.rand(40, generator=gen) < 0.5).double()
    w = torch.randn(3, generator=gen, dtype=torch.float64).requires_grad_(True)
    b = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    auto = torch.autograd.grad(lik.logistic_loss(w, b, X, y, l2=0.05), (w, b))
    mine = lik.logistic_grad(w.detach(), b.detach(), X, y, l2=0.05)
    assert torch.allclose(auto[0], mine[0]) and torch.allclose(auto[1], mine[1])
    bce = F.binary_cross_entropy_with_logits(X @ w + b, y)
    assert torch.allclose(lik.logistic_loss(w, b, X, y), bce)


def _newton_logistic(X, y, l2, iters=30):
    """Oracle: Newton's method with autograd Hessian on the same (strictly convex) loss."""
    theta = torch.zeros(X.shape[1] + 1, dtype=torch.float64)
    loss = lambda t: lik.logistic_loss(t[:-1], t[-1], X, y, l2=l2)  # noqa: E731
    for _ in range(iters):
        g = torch.autograd.functional.jacobian(loss, theta)
        theta = theta - torch.linalg.solve(torch.autograd.functional.hessian(loss, theta), g)
    return theta


def test_logistic_regression_reaches_the_optimum(gen):
    X, y = lik.make_blobs(300, num_classes=2, generator=gen, spread=1.5)
    fit = lik.fit_logistic_regression(X, y, lr=1.0, n_steps=3000, l2=1e-2)
    gw, gb = lik.logistic_grad(fit.weight, fit.bias, X, y.double(), l2=1e-2)
    assert float(torch.cat([gw, gb[None]]).norm()) < 1e-6
    oracle = _newton_logistic(X, y.double(), 1e-2)
    assert torch.allclose(torch.cat([fit.weight, fit.bias[None]]), oracle, atol=1e-5)
    assert all(b <= a + 1e-12 for a, b in zip(fit.losses, fit.losses[1:], strict=False))


def test_softmax_regression_two_classes_equals_logistic(gen):
    X, y = lik.make_blobs(200, num_classes=2, generator=gen, spread=1.5)
    soft = lik.fit_softmax_regression(X, y, num_classes=2, lr=1.0, n_steps=4000, l2=2e-2)
    logi = lik.fit_logistic_regression(X, y, lr=1.0, n_steps=4000, l2=1e-2)  # l2 halves: w = 2 W_1
    assert torch.allclose(soft.weight[:, 1] - soft.weight[:, 0], logi.weight, atol=1e-5)
    assert float(soft.bias[1] - soft.bias[0]) == pytest.approx(float(logi.bias), abs=1e-5)
    gW, gb = lik.softmax_regression_grad(soft.weight, soft.bias, X, y, l2=2e-2)
    assert max(float(gW.abs().max()), float(gb.abs().max())) < 1e-6


def test_fit_rejects_bad_arguments():
    X, y = torch.zeros(4, 2), torch.zeros(4)
    with pytest.raises(ValueError, match="lr"):
        lik.fit_logistic_regression(X, y, lr=0.0)
    with pytest.raises(ValueError, match="l2"):
        lik.fit_softmax_regression(X, y, num_classes=2, l2=-1.0)
