"""The `evaluator` section of params.yaml: the Fashion-MNIST CNN behind FD and
precision/recall (architecture + its training loop), typed and validated."""

from __future__ import annotations

from dataclasses import dataclass

from genlab.config import LoopConfig, knob, positive, unit_interval


@dataclass(frozen=True)
class EvaluatorConfig(LoopConfig):
    width: int = knob(32, doc="channels of the first conv block (x2 in the second)",
                      check=positive)
    depth: int = knob(1, doc="3x3 convs per block", check=positive)
    feature_dim: int = knob(128, doc="penultimate features used for FD and precision/recall",
                            check=positive)
    dropout: float = knob(0.3, doc="dropout before the last layer", check=unit_interval)
    label_smoothing: float = knob(0.0, doc="cross-entropy label smoothing", check=unit_interval)
    augment: bool = knob(True, doc="random horizontal flips and 2-pixel shifts while training")
