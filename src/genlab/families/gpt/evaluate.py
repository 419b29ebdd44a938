"""Evaluation of the `gpt` family. Character LM: held-out bits per character on the test split
beside an interpolated Kneser-Ney n-gram (order chosen on the validation split), and text
samples drawn with the KV cache. Recall tasks: accuracy of the greedy answers as a function of
the distance to their evidence, at the training context and at multiples of it."""

from __future__ import annotations

import math
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from genlab.data.recall import recall_batch  # noqa: E402
from genlab.data.text import SEPARATOR, decode, encode, load_split  # noqa: E402
from genlab.families import EvalContext  # noqa: E402
from genlab.families.gpt import TEXT, recall_task  # noqa: E402
from genlab.families.gpt.config import TASKS  # noqa: E402
from genlab.metrics.ngram import KneserNey  # noqa: E402
from genlab.samplers.autoregressive import sample_autoregressive  # noqa: E402


def evaluate(ctx: EvalContext) -> dict:
    return (evaluate_recall if ctx.cfg.dataset in TASKS else evaluate_text)(ctx)


# ---------------------------------------------------------------------------------------------
# Character language model.


@torch.no_grad()
def stream_nll(net, ids: torch.Tensor, context: int, batch: int, device) -> torch.Tensor:
    """-ln p(ids[i] | ids[<i]) for i = 1 .. N - 1 in nats: (N - 1,). Windows of `context`
    tokens advance by half a context; each target is scored once, by the first window that
    holds it with at least half a context before it (the first window scores all of its own)."""
    n, stride = len(ids), max(context // 2, 1)
    starts = list(range(0, max(n - context, 0) + 1, stride))
    if starts[-1] + context < n:
        starts.append(n - context)
    nll = torch.empty(n - 1)
    for chunk in range(0, len(starts), batch):
        s = torch.tensor(starts[chunk:chunk + batch])
        windows = ids[s[:, None] + torch.arange(min(context, n))]  # (b, T)
        logits = net(windows[:, :-1].to(device)).float()  # (b, T - 1, V)
        loss = F.cross_entropy(logits.transpose(1, 2), windows[:, 1:].to(device),
                               reduction="none").cpu()  # (b, T - 1)
        for row, j in enumerate(range(chunk, chunk + len(s))):
            start = starts[j]
            first = 0 if j == 0 else starts[j - 1] + context - 1 - start  # first new target
            nll[start + first:start + context - 1] = loss[row, first:]
    return nll


def evaluate_text(ctx: EvalContext) -> dict:
    cfg, net, dev = ctx.cfg, ctx.net, ctx.device
    root = TEXT / cfg.dataset
    train, vocab = load_split(root, "train")
    val, test = load_split(root, "val")[0], load_split(root, "test")[0]

    # 1. The transformer's bits per character on the test split.
    t0 = time.perf_counter()
    nll = stream_nll(net, torch.as_tensor(test), cfg.context, ctx.settings.batch_size // 8 or 1,
                     dev)
    metrics = {"test_bits_per_char": nll.mean().item() / math.log(2),
               "test_characters": len(test), "transformer_eval_seconds": time.perf_counter() - t0}

    # 2. Kneser-Ney n-gram baseline: order chosen on val, scored on the same test targets.
    t0 = time.perf_counter()
    kn = KneserNey(train, len(vocab), min(cfg.ngram_max_order, 62 // math.ceil(
        math.log2(len(vocab)))))
    order, val_scores = kn.choose_order(val)
    rows = [{"model": f"kneser_ney_{k}", "order": k, "val_bits_per_char": v,
             "test_bits_per_char": kn.bits_per_token(test, k)} for k, v in val_scores.items()]
    metrics |= {"ngram_order": order, "ngram_test_bits_per_char": rows[order - 1][
        "test_bits_per_char"], "ngram_val_bits_per_char": val_scores[order],
        "ngram_seconds": time.perf_counter() - t0}
    metrics["bits_per_char_gain"] = (metrics["ngram_test_bits_per_char"]
                                     - metrics["test_bits_per_char"])
    rows.append({"model": "gpt", "order": cfg.context, "val_bits_per_char": float("nan"),
                 "test_bits_per_char": metrics["test_bits_per_char"]})
    pd.DataFrame(rows).to_csv(ctx.sweep, index=False)

    # 3. Samples (KV-cache decoding), each after a record separator: one text file.
    t0 = time.perf_counter()
    g = torch.Generator(device=dev).manual_seed(ctx.seed)
    prompt = torch.as_tensor(encode(SEPARATOR, vocab), dtype=torch.long).to(dev)
    prompt = prompt.expand(cfg.n_text_samples, -1)
    steps = min(cfg.sample_chars, net.arch.max_len - prompt.shape[1]) \
        if net.arch.positions == "learned" else cfg.sample_chars
    seqs = sample_autoregressive(net, prompt, steps, cfg.temperature, cfg.top_k, cfg.top_p, g)
    texts = [decode(s[prompt.shape[1]:].tolist(), vocab) for s in seqs.cpu()]
    (ctx.figures / "samples.txt").write_text(
        "".join(f"--- sample {i} (T={cfg.temperature}, top-k={cfg.top_k}, top-p={cfg.top_p})"
                f"\n{t}\n" for i, t in enumerate(texts)))
    np.savez(ctx.samples, tokens=seqs.cpu().numpy())
    metrics["sample_seconds"] = time.perf_counter() - t0
    return metrics


# ---------------------------------------------------------------------------------------------
# Recall tasks.


@torch.no_grad()
def recall_accuracy(net, task, n: int, length: int, batch: int, seed: int, device
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Greedy answers on n fresh sequences of `length`: (distance, correct) per answer."""
    g = torch.Generator().manual_seed(seed)
    dist, correct = [], []
    for i in range(0, n, batch):
        x, mask, distance = recall_batch(task, min(batch, n - i), length, g)
        pred = net(x[:, :-1].to(device)).argmax(-1).cpu()  # (b, T)
        dist.append(distance[mask])
        correct.append((pred == x[:, 1:])[mask])
    return torch.cat(dist).numpy(), torch.cat(correct).numpy()


def save_accuracy_curve(rows: pd.DataFrame, path, title: str) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for length, part in rows.groupby("length"):
        ax.plot(part["distance"], part["accuracy"], marker="o", ms=3, label=f"length {length}")
    ax.set(xlabel="distance to the evidence (tokens)", ylabel="accuracy", ylim=(-0.02, 1.02),
           title=title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def evaluate_recall(ctx: EvalContext) -> dict:
    cfg, net, dev = ctx.cfg, ctx.net, ctx.device
    task, metrics, rows = recall_task(cfg), {}, []
    for mult in cfg.eval_lengths:
        length = int(round(mult * cfg.context))
        tag = f"x{mult:g}"
        if net.arch.positions == "learned" and length > net.arch.max_len:
            continue  # no position embedding that far: not evaluated
        t0 = time.perf_counter()
        dist, correct = recall_accuracy(net, task, cfg.eval_sequences, length,
                                        ctx.settings.batch_size // 8 or 1, ctx.seed + 17, dev)
        metrics[f"eval_seconds_{tag}"] = time.perf_counter() - t0
        metrics[f"accuracy_{tag}"] = correct.mean()
        far = dist >= cfg.far
        if far.any():
            metrics[f"accuracy_far_{tag}"] = correct[far].mean()
        metrics[f"answers_far_{tag}"] = int(far.sum())
        beyond = dist > cfg.context  # evidence further back than any training example
        if beyond.any():
            metrics[f"accuracy_beyond_context_{tag}"] = correct[beyond].mean()
        bins = dist // cfg.distance_bin
        for b in np.unique(bins):
            sel = bins == b
            rows.append({"length": length, "distance": int((b + 0.5) * cfg.distance_bin),
                         "accuracy": float(correct[sel].mean()), "answers": int(sel.sum())})
    table = pd.DataFrame(rows, columns=["length", "distance", "accuracy", "answers"])
    table.to_csv(ctx.sweep, index=False)
    save_accuracy_curve(table, ctx.figures / "accuracy_by_distance.png",
                        f"{ctx.name}: {cfg.dataset}, {cfg.model.positions} positions")
    np.savez(ctx.samples, **{
        k: np.asarray(v) for k, v in table.to_dict("list").items()})
    return {k: float(v) for k, v in metrics.items()}
