"""MLE and MAP with conjugate priors; cross-entropy as NLL; logistic/softmax regression by GD.

Conjugate updates follow Bishop, Pattern Recognition and Machine Learning (2006), Sec. 2.1-2.3,
and Murphy, Conjugate Bayesian analysis of the Gaussian distribution (2007) for the
Normal-Inverse-Gamma prior. Regression is fitted by plain full-batch gradient descent.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def _check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}")


# ----------------------------------------------------------------------------- Bernoulli / Beta


def bernoulli_mle(x: torch.Tensor) -> torch.Tensor:
    """MLE of the success probability from 0/1 outcomes x: (n,): the sample mean k / n."""
    return x.double().mean()


def beta_posterior(x: torch.Tensor, *, a: float, b: float) -> tuple[float, float]:
    """Beta(a, b) prior times Bernoulli likelihood -> Beta(a + k, b + n - k) (Bishop Eq. 2.18)."""
    _check_positive("a", a)
    _check_positive("b", b)
    k = float(x.double().sum())
    return a + k, b + len(x) - k


def bernoulli_map(x: torch.Tensor, *, a: float, b: float) -> float:
    """Posterior mode (k + a - 1) / (n + a + b - 2); needs a, b >= 1 so the mode is interior."""
    if a < 1 or b < 1:
        raise ValueError(f"bernoulli_map needs a >= 1 and b >= 1 for an interior mode, "
                         f"got a={a}, b={b}")
    a_n, b_n = beta_posterior(x, a=a, b=b)
    if a_n + b_n - 2 <= 0:
        raise ValueError("bernoulli_map is undefined for the flat prior with no data")
    return (a_n - 1) / (a_n + b_n - 2)


# ---------------------------------------------------------------------- Categorical / Dirichlet


def category_counts(x: torch.Tensor, *, num_classes: int) -> torch.Tensor:
    """Counts n_k of integer labels x: (n,) in [0, num_classes): shape (K,)."""
    if x.numel() and (int(x.min()) < 0 or int(x.max()) >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}), got range "
                         f"[{int(x.min())}, {int(x.max())}]")
    return torch.bincount(x.long(), minlength=num_classes).double()


def categorical_mle(x: torch.Tensor, *, num_classes: int) -> torch.Tensor:
    """MLE of class probabilities: n_k / n, shape (K,)."""
    counts = category_counts(x, num_classes=num_classes)
    return counts / counts.sum()


def categorical_map(x: torch.Tensor, *, alpha: torch.Tensor) -> torch.Tensor:
    """Dirichlet(alpha) posterior mode (n_k + alpha_k - 1) / (n + sum(alpha) - K) (Bishop Eq. 2.41).

    alpha: (K,), every entry >= 1 so that the mode lies in the simplex.
    """
    alpha = alpha.double()
    if bool((alpha < 1).any()):
        raise ValueError(f"categorical_map needs alpha >= 1 everywhere, got {alpha.tolist()}")
    post = category_counts(x, num_classes=len(alpha)) + alpha  # Dirichlet(alpha + counts)
    return (post - 1) / (post.sum() - len(alpha))


# ------------------------------------------------------------------------------------ Gaussian


def gaussian_mle(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """MLE (mean, variance) of x: (n,); the variance divides by n (biased), Bishop Eq. 1.55-1.56."""
    x = x.double()
    mu = x.mean()
    return mu, ((x - mu) ** 2).mean()


def gaussian_mean_posterior(
    x: torch.Tensor, *, sigma2: float, mu0: float, tau2: float
) -> tuple[float, float]:
    """Known variance sigma2, prior mu ~ N(mu0, tau2): posterior N(mu_n, tau2_n).

    Bishop Eq. 2.141-2.142.

    The posterior is Gaussian so its mean is also the MAP estimate.
    """
    _check_positive("sigma2", sigma2)
    _check_positive("tau2", tau2)
    precision = 1.0 / tau2 + len(x) / sigma2
    mean = (mu0 / tau2 + float(x.double().sum()) / sigma2) / precision
    return mean, 1.0 / precision


@dataclass(frozen=True)
class NormalInverseGamma:
    """NIG(mu, kappa, alpha, beta): sigma2 ~ InvGamma(alpha, beta), mean ~ N(mu, sigma2 / kappa)."""

    mu: float
    kappa: float
    alpha: float
    beta: float

    def mode(self) -> tuple[float, float]:
        """Joint posterior mode (mu, beta / (alpha + 3/2)): the (mean, variance) MAP estimate."""
        return self.mu, self.beta / (self.alpha + 1.5)


def nig_posterior(x: torch.Tensor, *, prior: NormalInverseGamma) -> NormalInverseGamma:
    """Conjugate update of a NIG prior with Gaussian data x: (n,) (Murphy 2007, NIG section)."""
    for name in ("kappa", "alpha", "beta"):
        _check_positive(name, getattr(prior, name))
    x = x.double()
    n, xbar = len(x), float(x.mean())
    kappa_n = prior.kappa + n
    mu_n = (prior.kappa * prior.mu + n * xbar) / kappa_n
    scatter = float(((x - xbar) ** 2).sum())
    shift = prior.kappa * n * (xbar - prior.mu) ** 2 / kappa_n
    beta_n = prior.beta + 0.5 * (scatter + shift)
    return NormalInverseGamma(mu_n, kappa_n, prior.alpha + n / 2, beta_n)


# -------------------------------------------------------------- cross-entropy and regressions


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean categorical NLL: -1/N sum_i log softmax(logits_i)[y_i]; logits (N, K), targets (N,)."""
    log_probs = logits - torch.logsumexp(logits, dim=1, keepdim=True)  # (N, K)
    return -log_probs.gather(1, targets.long()[:, None]).mean()


def softmax_regression_loss(
    W: torch.Tensor, b: torch.Tensor, X: torch.Tensor, y: torch.Tensor, *, l2: float = 0.0
) -> torch.Tensor:
    """Cross-entropy of logits X W + b plus (l2 / 2) ||W||^2; W (D, K), b (K,), X (N, D), y (N,)."""
    return cross_entropy(X @ W + b, y) + 0.5 * l2 * (W**2).sum()


def softmax_regression_grad(
    W: torch.Tensor, b: torch.Tensor, X: torch.Tensor, y: torch.Tensor, *, l2: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Analytic gradient: r = dL/dlogits = (softmax - onehot) / N; dW = X^T r + l2 W, db = sum r."""
    logits = X @ W + b  # (N, K)
    probs = (logits - logits.logsumexp(1, keepdim=True)).exp()  # softmax
    resid = (probs - torch.nn.functional.one_hot(y.long(), W.shape[1]).to(probs)) / len(X)
    return X.T @ resid + l2 * W, resid.sum(0)


@dataclass
class RegressionFit:
    """Fitted weights, bias and the loss after every gradient step."""

    weight: torch.Tensor
    bias: torch.Tensor
    losses: list[float]


def fit_softmax_regression(
    X: torch.Tensor, y: torch.Tensor, *, num_classes: int, lr: float = 0.5,
    n_steps: int = 500, l2: float = 1e-3,
) -> RegressionFit:
    """Minimise the cross-entropy by full-batch gradient descent from zero weights."""
    _check_positive("lr", lr)
    if l2 < 0:
        raise ValueError(f"l2 must be >= 0, got {l2}")
    W = X.new_zeros(X.shape[1], num_classes)
    b = X.new_zeros(num_classes)
    losses = []
    for _ in range(n_steps):
        gW, gb = softmax_regression_grad(W, b, X, y, l2=l2)
        W, b = W - lr * gW, b - lr * gb
        losses.append(float(softmax_regression_loss(W, b, X, y, l2=l2)))
    return RegressionFit(W, b, losses)


def logistic_loss(
    w: torch.Tensor, b: torch.Tensor, X: torch.Tensor, y: torch.Tensor, *, l2: float = 0.0
) -> torch.Tensor:
    """Binary cross-entropy of sigmoid(X w + b) for y in {0, 1}, plus (l2 / 2) ||w||^2.

    Uses log sigmoid(z) = -softplus(-z) so the loss is stable for large |z|.
    """
    z = X @ w + b  # (N,)
    nll = y * torch.nn.functional.softplus(-z) + (1 - y) * torch.nn.functional.softplus(z)
    return nll.mean() + 0.5 * l2 * (w**2).sum()


def logistic_grad(
    w: torch.Tensor, b: torch.Tensor, X: torch.Tensor, y: torch.Tensor, *, l2: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Analytic gradient: (sigmoid(z) - y) / N gives dw = X^T r + l2 w and db = sum r."""
    resid = (torch.sigmoid(X @ w + b) - y) / len(X)
    return X.T @ resid + l2 * w, resid.sum()


def fit_logistic_regression(
    X: torch.Tensor, y: torch.Tensor, *, lr: float = 0.5, n_steps: int = 500, l2: float = 1e-3
) -> RegressionFit:
    """Binary logistic regression (y in {0, 1}) by full-batch gradient descent from zero weights."""
    _check_positive("lr", lr)
    if l2 < 0:
        raise ValueError(f"l2 must be >= 0, got {l2}")
    y = y.to(X.dtype)
    w, b = X.new_zeros(X.shape[1]), X.new_zeros(())
    losses = []
    for _ in range(n_steps):
        gw, gb = logistic_grad(w, b, X, y, l2=l2)
        w, b = w - lr * gw, b - lr * gb
        losses.append(float(logistic_loss(w, b, X, y, l2=l2)))
    return RegressionFit(w, b, losses)


def make_blobs(
    n: int, *, num_classes: int, dim: int = 2, spread: float = 1.0, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """n points (n, dim), float64, around num_classes centres drawn from N(0, 4 I); labels (n,)."""
    centres = 2.0 * torch.randn(num_classes, dim, generator=generator, dtype=torch.float64)
    y = torch.randint(num_classes, (n,), generator=generator)
    X = centres[y] + spread * torch.randn(n, dim, generator=generator, dtype=torch.float64)
    return X, y
