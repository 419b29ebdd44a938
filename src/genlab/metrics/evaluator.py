"""The evaluator's use at test time: accuracy, batched features, and its weights file."""

from __future__ import annotations

from pathlib import Path

import torch

from genlab.data.labels import FASHION_MNIST_CLASSES as CLASSES
from genlab.models.classifier import EvaluatorCNN
from genlab.training.checkpoint import CheckpointError, load_checkpoint, load_weights, save_atomic


@torch.no_grad()
def predict(net: torch.nn.Module, x: torch.Tensor, batch: int = 1000) -> torch.Tensor:
    """Class predictions (N,) for float images (N, C, H, W) in [-1, 1]."""
    net.eval()
    dev = next(net.parameters()).device
    return torch.cat([net(x[i:i + batch].to(dev)).argmax(1).cpu() for i in range(0, len(x), batch)])


def class_fractions(pred: torch.Tensor) -> dict[str, float]:
    """{Fashion-MNIST class name: fraction of `pred` (N,) predicted as it}, every class listed."""
    counts = torch.bincount(pred.long(), minlength=len(CLASSES)).float()
    return {name: (counts[i] / max(len(pred), 1)).item() for i, name in enumerate(CLASSES)}


def accuracy(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1000) -> float:
    return (predict(net, x, batch) == y.cpu()).float().mean().item()


def feature_fn(net: EvaluatorCNN):
    """A function (B, C, H, W) in [-1, 1] -> penultimate features (B, D) float32 on CPU."""
    net.eval()
    dev = next(net.parameters()).device

    @torch.no_grad()
    def features(x: torch.Tensor) -> torch.Tensor:
        return net.features(x.to(dev)).float().cpu()

    return features


def save_evaluator(net: EvaluatorCNN, arch: dict, metrics: dict, path: Path) -> None:
    save_atomic({"arch": arch, "model": net.state_dict(), "metrics": metrics}, path)


def load_evaluator(path: Path, device: torch.device | str = "cpu") -> EvaluatorCNN:
    state = load_checkpoint(path, map_location=device)
    if "arch" not in state or "model" not in state:
        raise CheckpointError(f"{path} is not an evaluator file (needs 'arch' and 'model')")
    net = EvaluatorCNN(**state["arch"])
    load_weights(net, state["model"], path)
    return net.to(device).eval()
