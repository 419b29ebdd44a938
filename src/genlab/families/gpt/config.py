"""The `gpt` family's params section: one model per key (data / task, architecture, context,
evaluation settings), typed and validated."""

from __future__ import annotations

from dataclasses import dataclass

from genlab.config import LoopConfig, at_least, between, items, knob, non_negative, one_of, positive
from genlab.data.recall import RecallTask

TEXT_SETS = ("fortunes",)  # character corpora written by the text stage (data/text/<name>)
TASKS = ("copy", "mqar")  # synthetic recall tasks generated from the seed (genlab.data.recall)


@dataclass(frozen=True)
class GPTModelConfig:
    dim: int = knob(128, doc="model width D", check=positive)
    layers: int = knob(4, doc="transformer blocks", check=positive)
    heads: int = knob(4, doc="attention heads (must divide dim)", check=positive)
    mlp_ratio: int = knob(4, doc="MLP hidden width / D", check=positive)
    dropout: float = knob(0.0, doc="dropout on attention weights and residual branches",
                          check=between(0.0, 0.9))
    positions: str = knob("rope", doc="learned: absolute position table (GPT); rope: rotary "
                          "queries and keys (Su et al. 2021); alibi: linear distance penalties "
                          "on the attention scores (Press et al. 2022)",
                          check=one_of("learned", "rope", "alibi"))
    rope_base: float = knob(10000.0, doc="RoPE base wavelength", check=positive)
    token_shift: bool = knob(False, doc="mix each attention input with the previous "
                             "position's (RWKV's token shift): one-layer induction heads, "
                             "so copy / recall train in far fewer steps")
    max_len: int = knob(0, doc="learned position table size (0: the context); larger lets "
                        "the model run on longer sequences with untrained positions",
                        check=non_negative)

    def __post_init__(self):
        if self.dim % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide dim ({self.dim})")
        if (self.dim // self.heads) % 2 and self.positions == "rope":
            raise ValueError(f"rope needs an even head size, dim / heads = "
                             f"{self.dim // self.heads}")


@dataclass(frozen=True)
class RecallTaskConfig:
    items: int = knob(8, doc="copy: tokens to copy; mqar: key-value pairs (and queries)",
                      check=positive)
    keys: int = knob(64, doc="mqar key symbols", check=positive)
    values: int = knob(64, doc="value symbols (copy's content)", check=positive)
    noise: int = knob(16, doc="filler symbols between evidence and queries", check=positive)


@dataclass(frozen=True)
class ContextPhase:
    context: int = knob(doc="sequence length T of this phase", check=at_least(8))
    steps: int = knob(doc="optimiser steps of this phase", check=positive)


@dataclass(frozen=True, kw_only=True)  # dataset is required: the stages depend on it
class GPTConfig(LoopConfig):
    dataset: str = knob(doc=f"a text corpus {list(TEXT_SETS)} (character LM) or a synthetic "
                        f"task {list(TASKS)}", check=one_of(*TEXT_SETS, *TASKS))
    context: int = knob(256, doc="training sequence length T (tokens per example)",
                        check=at_least(8))
    curriculum: tuple[ContextPhase, ...] = knob(
        factory=tuple, doc="sequence-length warm-up: phases [{context, steps}, ...] of "
        "shorter sequences trained first, in order; the remaining steps use `context`")
    model: GPTModelConfig = knob(factory=GPTModelConfig, doc="architecture")
    task: RecallTaskConfig = knob(factory=RecallTaskConfig, doc="copy / mqar: the task")
    # evaluation: text
    ngram_max_order: int = knob(8, doc="Kneser-Ney baseline: orders 1..this are tried on the "
                                "validation split", check=positive)
    sample_chars: int = knob(400, doc="characters per text sample", check=positive)
    n_text_samples: int = knob(4, doc="text samples written", check=positive)
    temperature: float = knob(0.8, doc="sampling temperature (0: greedy)", check=non_negative)
    top_k: int = knob(0, doc="sample from the k most likely tokens (0: all)",
                  check=non_negative)
    top_p: float = knob(0.95, doc="nucleus sampling mass (1: off)", check=between(1e-6, 1.0))
    # evaluation: recall
    eval_sequences: int = knob(1000, doc="test sequences per evaluated length",
                               check=positive)
    eval_lengths: tuple[float, ...] = knob(
        factory=lambda: (1.0, 2.0), check=items(positive),
        doc="evaluated lengths as multiples of the context (2: length generalisation)")
    distance_bin: int = knob(32, doc="width of the distance bins of the accuracy curve",
                             check=positive)
    far: int = knob(200, doc="headline: accuracy on answers whose evidence is >= far back",
                    check=positive)

    def __post_init__(self):
        if self.dataset in TASKS and self.dataset == "mqar" and self.task.items > self.task.keys:
            raise ValueError(f"task.items ({self.task.items}) must be <= task.keys "
                             f"({self.task.keys}) for mqar")
        for i, phase in enumerate(self.curriculum):
            if phase.context > self.context:
                raise ValueError(f"curriculum[{i}].context ({phase.context}) must be <= "
                                 f"context ({self.context})")
            if self.dataset in TASKS and phase.context < self.min_length:
                raise ValueError(f"curriculum[{i}].context ({phase.context}) is too short for "
                                 f"{self.dataset} with {self.task.items} items (needs >= "
                                 f"{self.min_length})")
        if sum(p.steps for p in self.curriculum) >= self.steps:
            raise ValueError(f"curriculum steps ({sum(p.steps for p in self.curriculum)}) "
                             f"must leave some of steps ({self.steps}) for the full context")
        if self.model.max_len and self.model.max_len < self.context:
            raise ValueError(f"model.max_len ({self.model.max_len}) must be >= context "
                             f"({self.context})")

    @property
    def min_length(self) -> int:
        """Shortest recall sequence that holds the evidence and the queries."""
        t = self.task
        return RecallTask(self.dataset, items=t.items, keys=t.keys, values=t.values,
                          noise=t.noise).min_length

    def context_at(self, step: int) -> int:
        """Training sequence length at optimiser step `step` (0-based)."""
        for phase in self.curriculum:
            if step < phase.steps:
                return phase.context
            step -= phase.steps
        return self.context
