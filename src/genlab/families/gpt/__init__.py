"""Family `gpt` (role generative): a decoder-only transformer (genlab.models.gpt) trained on
next-token prediction, either as a character language model on a text corpus (data/text/<set>,
written by the text stage) or on a synthetic long-range task (copy, multi-query associative
recall) generated from the seed; wired from its params section."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from genlab.data.recall import RecallTask, recall_batch
from genlab.data.text import load_split, random_windows
from genlab.families import Built, Family, TrainData, register
from genlab.families.gpt.config import TASKS, GPTConfig
from genlab.models.gpt import GPT, GPTArch, decay_groups, gpt_kwargs
from genlab.objectives.gpt import NextTokenLoss

TEXT = Path("data/text")  # the text stage's output: data/text/<set>/{train,val,test}.npy


def recall_task(cfg: GPTConfig) -> RecallTask:
    t = cfg.task
    return RecallTask(cfg.dataset, items=t.items, keys=t.keys, values=t.values, noise=t.noise)


def vocab_size(cfg: GPTConfig) -> int:
    if cfg.dataset in TASKS:
        return recall_task(cfg).vocab
    return len(load_split(TEXT / cfg.dataset, "val")[1])


def rebuild(arch: dict, cfg: GPTConfig | None = None, nhwc: bool = False) -> nn.Module:
    """The network of `arch` ({"kwargs": GPT constructor kwargs})."""
    return GPT(**arch["kwargs"])


def build(cfg: GPTConfig, shape: tuple[int, ...], nhwc: bool = False) -> Built:
    """GPT for sequences of shape (T + 1,), its next-token objective, AdamW decay groups."""
    m = cfg.model
    arch = GPTArch(vocab=vocab_size(cfg), max_len=m.max_len or cfg.context, dim=m.dim,
                   layers=m.layers, heads=m.heads, mlp_ratio=m.mlp_ratio, dropout=m.dropout,
                   positions=m.positions, rope_base=m.rope_base,
                   token_shift=m.token_shift)
    net = GPT(**gpt_kwargs(arch))
    return Built(net=net, objective=NextTokenLoss(), arch={"kwargs": gpt_kwargs(arch)},
                 param_groups=decay_groups(net, cfg.weight_decay))


def data(cfg: GPTConfig, seed: int, device: torch.device) -> TrainData:
    """Training batches (x (B, T + 1) int64, answer mask (B, T) or None) that depend only on
    (seed, step): random windows of the training text, or freshly generated task sequences.
    T is the context, or a curriculum phase's shorter one early on."""
    def generator(step: int) -> torch.Generator:
        return torch.Generator().manual_seed(seed * 1_000_003 + step)

    if cfg.dataset in TASKS:
        task = recall_task(cfg)

        def batches(step):
            x, mask, _ = recall_batch(task, cfg.batch_size, cfg.context_at(step),
                                      generator(step))
            return x.to(device), mask.to(device)

        return TrainData(batches, (cfg.context + 1,), cfg.steps * cfg.batch_size)

    ids = torch.as_tensor(load_split(TEXT / cfg.dataset, "train")[0])

    def text_batches(step):
        x = random_windows(ids, cfg.context_at(step) + 1, cfg.batch_size,
                           generator(step))  # (B, T + 1)
        return x.to(device), None

    return TrainData(text_batches, (cfg.context + 1,), len(ids) - cfg.context)


FAMILY = register(Family(name="gpt", role="generative", config=GPTConfig, build=build,
                         rebuild=rebuild, data=data))
