"""Hand-written optimisers: SGD with momentum (Sutskever et al. 2013) and Adam (Kingma & Ba 2015).

They update `Parameter.value` in place from `Parameter.grad`, following torch.optim's update
rules (same order of operations), so trajectories match torch.optim.SGD / Adam to rounding.
"""

from __future__ import annotations

import torch

from genlab.scratch.layers import Parameter


def _check_params(params: list[Parameter]) -> list[Parameter]:
    params = list(params)
    if not params or not all(isinstance(p, Parameter) for p in params):
        raise ValueError("params: expected a non-empty list of Parameter")
    return params


def _check_lr(lr: float) -> float:
    if not lr >= 0:
        raise ValueError(f"lr: expected a learning rate >= 0, got {lr!r}")
    return float(lr)


def _grad(p: Parameter, weight_decay: float) -> torch.Tensor:
    """The gradient used for the update, plus L2 weight decay: g + lambda * theta."""
    if p.grad is None:
        raise RuntimeError("step() called before backward() set every Parameter.grad")
    return p.grad if weight_decay == 0 else p.grad + weight_decay * p.value


class SGD:
    """theta <- theta - lr * v with v <- mu v + (1 - dampening) g (v = g on the first step).

    Nesterov: theta <- theta - lr * (g + mu v).
    """

    def __init__(
        self,
        params: list[Parameter],
        *,
        lr: float,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        self.params = _check_params(params)
        self.lr = _check_lr(lr)
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum: expected 0 <= momentum < 1, got {momentum!r}")
        if nesterov and (momentum == 0 or dampening != 0):
            raise ValueError("nesterov: needs momentum > 0 and dampening == 0")
        self.momentum, self.dampening = momentum, dampening
        self.weight_decay, self.nesterov = weight_decay, nesterov
        self.velocity: list[torch.Tensor | None] = [None] * len(self.params)

    @torch.no_grad()
    def step(self) -> None:
        for i, p in enumerate(self.params):
            g = _grad(p, self.weight_decay)
            if self.momentum:
                g = self._momentum(i, g)
            p.value.add_(g, alpha=-self.lr)

    def _momentum(self, i: int, g: torch.Tensor) -> torch.Tensor:
        v = self.velocity[i]
        if v is None:
            v = self.velocity[i] = g.clone()
        else:
            v.mul_(self.momentum).add_(g, alpha=1 - self.dampening)
        return g.add(v, alpha=self.momentum) if self.nesterov else v


class Adam:
    """Adam with bias correction (Kingma & Ba 2015, Algorithm 1):

    m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
    theta <- theta - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
    """

    def __init__(
        self,
        params: list[Parameter],
        *,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        self.params = _check_params(params)
        self.lr = _check_lr(lr)
        if not all(0 <= b < 1 for b in betas) or len(betas) != 2:
            raise ValueError(f"betas: expected two values in [0, 1), got {betas!r}")
        if not eps > 0:
            raise ValueError(f"eps: expected eps > 0, got {eps!r}")
        self.betas, self.eps, self.weight_decay = betas, eps, weight_decay
        self.t = 0
        self.m = [torch.zeros_like(p.value) for p in self.params]
        self.v = [torch.zeros_like(p.value) for p in self.params]

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        b1, b2 = self.betas
        step_size = self.lr / (1 - b1**self.t)  # bias correction of m
        root_c2 = (1 - b2**self.t) ** 0.5  # bias correction of v, inside the sqrt
        for p, m, v in zip(self.params, self.m, self.v, strict=True):
            g = _grad(p, self.weight_decay)
            m.lerp_(g, 1 - b1)  # m <- b1 m + (1 - b1) g
            v.mul_(b2).addcmul_(g, g, value=1 - b2)  # v <- b2 v + (1 - b2) g^2
            denom = (v.sqrt() / root_c2).add_(self.eps)
            p.value.addcdiv_(m, denom, value=-step_size)
