"""The `prior` family's params section: a class-conditional token prior per key (which
tokenizer's grids, the GPT over them, label dropout, the sampling knobs, the budget)."""

from __future__ import annotations

from dataclasses import dataclass

from genlab.config import (
    Check,
    LoopConfig,
    between,
    datasets,
    items,
    knob,
    non_negative,
    one_of,
    positive,
    unit_interval,
)

NAME = Check(lambda s: isinstance(s, str) and s.replace("_", "").isalnum(),
             "must be a model name of the vq section (letters, digits, _)")


@dataclass(frozen=True)
class PriorNetConfig:
    """The GPT over 1 + h w tokens (genlab.models.gpt.GPTArch less vocab and max_len, which the
    tokenizer's code count and grid fix)."""

    dim: int = knob(128, doc="model width D", check=positive)
    layers: int = knob(4, doc="transformer blocks", check=positive)
    heads: int = knob(4, doc="attention heads (must divide dim)", check=positive)
    mlp_ratio: int = knob(4, doc="MLP hidden width / D", check=positive)
    dropout: float = knob(0.0, doc="dropout on attention weights and residual branches",
                          check=between(0.0, 0.9))
    positions: str = knob("learned", check=one_of("learned", "rope", "alibi"),
                          doc="learned: one embedding per grid position (the grid is fixed); "
                          "rope: rotary queries and keys (Su et al. 2021); alibi: linear "
                          "distance penalties on the scores (Press et al. 2022)")

    def __post_init__(self):
        if self.dim % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide dim ({self.dim})")
        if (self.dim // self.heads) % 2 and self.positions == "rope":
            raise ValueError(f"rope needs an even head size, dim / heads = "
                             f"{self.dim // self.heads}")


@dataclass(frozen=True, kw_only=True)
class PriorConfig(LoopConfig):
    tokenizer: str = knob(doc="the vq model (params.yaml vq.<name>, models/<name>.pt) whose "
                          "token grids (data/tokens/<name>) this prior learns and whose "
                          "decoder draws its images", check=NAME)
    dataset: str = knob("fashion_mnist", doc="the image set the tokenizer encodes (labels, "
                        "the evaluator's test split)",
                        check=datasets(images=("fashion_mnist",), toy=False))
    net: PriorNetConfig = knob(factory=PriorNetConfig, doc="the GPT over the grid")
    label_dropout: float = knob(0.1, check=unit_interval,
                                doc="classes replaced by the null class in training (CFG)")
    guidance: tuple[float, ...] = knob(factory=lambda: (0.0,), check=items(non_negative),
                                       doc="CFG weights w evaluated (logits l_c + w (l_c - "
                                       "l_null)); the first is the headline")
    temperature: float = knob(1.0, doc="sampling temperature (0: greedy)", check=non_negative)
    top_k: int = knob(0, doc="sample from the k most likely codes (0: all)",
                      check=non_negative)
    top_p: float = knob(1.0, doc="nucleus sampling mass (1: off)", check=between(1e-6, 1.0))
    eval_samples: int = knob(0, doc="samples to score (0 = evaluate.n_samples)",
                             check=non_negative)
