"""`genlab generate-text` for the character LMs: the prompt (after a record separator, as the
training text has one between records) continued with the KV cache, temperature / top-k /
top-p as given or as the model's params say."""

from __future__ import annotations

import numpy as np
import torch

from genlab.data.text import SEPARATOR, decode, encode, load_split
from genlab.families.gpt import TEXT
from genlab.families.gpt.config import TASKS
from genlab.inference import Trained, UsageError
from genlab.samplers.autoregressive import sample_autoregressive


def synthetic(m: Trained) -> bool:
    """Trained on a synthetic task (recall, copy): no text to continue."""
    return m.cfg.dataset in TASKS


def bundle(m: Trained) -> dict:
    """Files an MLflow model of a character LM needs besides its checkpoint: the vocabulary
    (vocab.json; train.npy cut to one id, as load_split reads both)."""
    if synthetic(m):
        return {}
    root = TEXT / m.cfg.dataset
    return {root / "train.npy": 1, root / "vocab.json": None}


def example_input(m: Trained) -> np.ndarray:
    """What the network's forward takes: token ids (B, T)."""
    return np.zeros((1, m.cfg.context), np.int64)


@torch.no_grad()
def generate_text(m: Trained, prompt: str, chars: int, generator: torch.Generator, *,
                  temperature: float | None = None, top_k: int | None = None,
                  top_p: float | None = None) -> str:
    if synthetic(m):
        raise UsageError(f"model {m.name!r} is trained on the synthetic {m.cfg.dataset} task, "
                         "not on text: generate-text needs a character LM")
    root = TEXT / m.cfg.dataset
    if not (root / "train.npy").is_file():
        raise UsageError(f"{root / 'train.npy'} is missing; run: dvc repro text")
    vocab = load_split(root, "train")[1]
    unknown = sorted(set(prompt) - set(vocab))
    if unknown:
        raise UsageError(f"the prompt has characters the model never saw: {unknown[:5]}")
    ids = torch.as_tensor(encode(SEPARATOR + prompt, vocab), dtype=torch.long)[None]
    if m.net.arch.positions == "learned":
        chars = min(chars, m.net.arch.max_len - ids.shape[1])
        if chars <= 0:
            raise UsageError(f"the prompt fills the model's {m.net.arch.max_len} positions")
    seq = sample_autoregressive(
        m.net, ids.to(m.device), chars,
        m.cfg.temperature if temperature is None else temperature,
        m.cfg.top_k if top_k is None else top_k,
        m.cfg.top_p if top_p is None else top_p, generator)
    return prompt + decode(seq[0, ids.shape[1]:].tolist(), vocab)
