"""Synthetic long-range tasks for sequence models, generated from a seed: copy and multi-query
associative recall (MQAR; Arora et al. 2023, "Zoology", Sec. 3), with the evidence placed at a
chosen distance back. A sequence is noise tokens with a block of evidence at a random (or
given) start and the queries at the end; only the answer tokens are scored.

- copy: evidence = M content tokens; the end is [SEP, c_1 .. c_M]: each c_j is predicted from
  the tokens before it (the model must find the evidence and continue it).
- mqar: evidence = N key-value pairs k_1 v_1 .. k_N v_N (distinct keys); the end is Q queries
  k v, keys drawn from the N without replacement: each query's v is predicted from its k.

Distance of an answer = its position minus the position of the same token in the evidence.
Token ids: [noise | keys | values | SEP]; copy draws its content from the values."""

from __future__ import annotations

from dataclasses import dataclass

import torch

TASKS = ("copy", "mqar")


@dataclass(frozen=True)
class RecallTask:
    kind: str  # copy | mqar
    items: int = 8  # copy: M tokens to copy; mqar: N key-value pairs (and N queries)
    keys: int = 64  # key symbols (mqar)
    values: int = 64  # value symbols (mqar answers; copy's content)
    noise: int = 16  # filler symbols between evidence and queries

    def __post_init__(self):
        assert self.kind in TASKS, f"kind must be one of {TASKS}"
        assert self.kind == "copy" or self.items <= self.keys, "mqar needs items <= keys"

    @property
    def vocab(self) -> int:
        return self.noise + self.keys + self.values + 1

    @property
    def sep(self) -> int:
        return self.vocab - 1

    @property
    def evidence_len(self) -> int:
        return self.items if self.kind == "copy" else 2 * self.items

    @property
    def query_len(self) -> int:
        return self.items + 1 if self.kind == "copy" else 2 * self.items

    @property
    def min_length(self) -> int:
        """Shortest sequence length (inputs) that holds the evidence and the queries."""
        return self.evidence_len + self.query_len - 1


def recall_batch(task: RecallTask, batch: int, length: int, generator: torch.Generator,
                 start: int | None = None):
    """(x (B, length + 1) int64, mask (B, length) bool, distance (B, length) int64).

    x[:, :-1] are the inputs and x[:, 1:] the targets; mask marks the scored targets (the
    answers) and distance their distance to the evidence (-1 elsewhere). start: position of
    the evidence block (None: uniform over every position that leaves room for the queries)."""
    if length < task.min_length:
        raise ValueError(f"length {length} is too short for {task.kind} with {task.items} items")
    n = length + 1
    last_start = n - task.query_len - task.evidence_len
    g = generator
    x = torch.randint(0, task.noise, (batch, n), generator=g)  # noise everywhere first
    s = (torch.randint(0, last_start + 1, (batch,), generator=g) if start is None
         else torch.full((batch,), min(start, last_start)))
    v0, k0 = task.noise + task.keys, task.noise
    if task.kind == "copy":
        content = v0 + torch.randint(0, task.values, (batch, task.items), generator=g)
        evidence_pos = s[:, None] + torch.arange(task.items)  # (B, M)
        answer_pos = n - task.items + torch.arange(task.items).expand(batch, -1)  # (B, M)
        x.scatter_(1, evidence_pos, content)
        x[:, n - task.items - 1] = task.sep
        x.scatter_(1, answer_pos, content)
    else:
        keys = k0 + torch.rand(batch, task.keys, generator=g).argsort(1)[:, :task.items]
        vals = v0 + torch.randint(0, task.values, (batch, task.items), generator=g)
        pair = torch.arange(task.items)
        x.scatter_(1, s[:, None] + 2 * pair, keys)  # k_i at s + 2i, v_i at s + 2i + 1
        x.scatter_(1, s[:, None] + 2 * pair + 1, vals)
        order = torch.rand(batch, task.items, generator=g).argsort(1)  # which pair each query asks
        q0 = n - 2 * task.items
        x.scatter_(1, q0 + 2 * pair.expand(batch, -1), keys.gather(1, order))
        answer_pos = q0 + 2 * pair.expand(batch, -1) + 1  # (B, N)
        x.scatter_(1, answer_pos, vals.gather(1, order))
        evidence_pos = s[:, None] + 2 * order + 1
    # targets are x[:, 1:]: the answer at position p of x is target index p - 1
    mask = torch.zeros(batch, length, dtype=torch.bool)
    mask.scatter_(1, answer_pos - 1, True)
    distance = torch.full((batch, length), -1, dtype=torch.long)
    distance.scatter_(1, answer_pos - 1, answer_pos - evidence_pos)
    return x, mask, distance
