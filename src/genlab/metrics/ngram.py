"""Interpolated Kneser-Ney n-gram model over token ids (Kneser & Ney 1995; the interpolated
form of Chen & Goodman 1999, Eq. 10 with one discount per order, D = n1 / (n1 + 2 n2)): the
count-based baseline of the character language model. Counts are held as sorted arrays of
packed n-gram codes, so fitting and scoring a few million characters is vectorised numpy.

P_k(w | h) = max(c_k(h w) - D_k, 0) / c_k(h .) + D_k N1+(h .) / c_k(h .) * P_{k-1}(w | h')
where h' drops h's first token, c_k are raw counts at the highest order and continuation
counts N1+(. h w) below it, and P_0(w) = 1 / V. A context never seen backs off entirely.
Each P_k sums to 1 over the vocabulary (tested)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def ngram_codes(ids: np.ndarray, k: int, bits: int) -> np.ndarray:
    """Packed codes of the k-grams ids[i:i + k] for i = 0 .. len - k: (len - k + 1,) int64."""
    codes = np.zeros(len(ids) - k + 1, dtype=np.int64)
    for j in range(k):
        codes = (codes << bits) | ids[j:len(ids) - k + 1 + j]
    return codes


@dataclass
class Counts:
    """One order's counts: sorted n-gram codes with their counts, and per context (the code
    without its last token) the total count and the number of distinct followers."""

    grams: np.ndarray
    counts: np.ndarray
    contexts: np.ndarray
    totals: np.ndarray
    followers: np.ndarray
    discount: float

    @classmethod
    def of(cls, grams: np.ndarray, counts: np.ndarray, bits: int) -> Counts:
        contexts, inverse = np.unique(grams >> bits, return_inverse=True)
        n1, n2 = (counts == 1).sum(), (counts == 2).sum()
        discount = n1 / (n1 + 2 * n2) if n1 + n2 > 0 else 0.5
        return cls(grams, counts, contexts, np.bincount(inverse, weights=counts),
                   np.bincount(inverse).astype(np.float64), float(discount))


def _lookup(keys: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
    """values[keys == query] for each query, 0 where the query is absent (keys sorted)."""
    if len(keys) == 0:
        return np.zeros(len(query))
    i = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
    return np.where(keys[i] == query, values[i], 0).astype(np.float64)


class KneserNey:
    """Fit on a training stream of ids (< vocab) up to max_order; score with any order <= it."""

    def __init__(self, train: np.ndarray, vocab: int, max_order: int):
        self.vocab, self.bits = vocab, max(1, math.ceil(math.log2(vocab)))
        if max_order * self.bits > 62:
            raise ValueError(f"order {max_order} of a {vocab}-symbol vocabulary does not fit "
                             f"a 64-bit code (at most {62 // self.bits})")
        self.max_order = max_order
        train = np.asarray(train, dtype=np.int64)
        distinct = {k: np.unique(ngram_codes(train, k, self.bits), return_counts=True)
                    for k in range(1, max_order + 2) if k <= len(train)}
        self.raw = {k: Counts.of(*distinct[k], self.bits) for k in range(1, max_order + 1)}
        self.cont = {}  # continuation counts N1+(. w_1..k): distinct left neighbours
        for k in range(1, max_order):
            suffixes = distinct[k + 1][0] & ((1 << (k * self.bits)) - 1)
            self.cont[k] = Counts.of(*np.unique(suffixes, return_counts=True), self.bits)

    def _interpolate(self, table: Counts, gram: np.ndarray, lower: np.ndarray) -> np.ndarray:
        ctx = gram >> self.bits
        total = _lookup(table.contexts, table.totals, ctx)
        followers = _lookup(table.contexts, table.followers, ctx)
        c = _lookup(table.grams, table.counts, gram)
        seen = total > 0
        safe = np.where(seen, total, 1.0)
        mixed = (np.maximum(c - table.discount, 0) + table.discount * followers * lower) / safe
        return np.where(seen, mixed, lower)

    def probabilities(self, ids: np.ndarray, order: int) -> np.ndarray:
        """P(ids[i] | up to order - 1 preceding ids) for i = 1 .. len - 1: (len - 1,).
        Near the start the history is what precedes i (lower orders only)."""
        assert 1 <= order <= self.max_order, f"order must be in [1, {self.max_order}]"
        ids = np.asarray(ids, dtype=np.int64)
        n = len(ids)
        p = np.full(n, 1.0 / self.vocab)  # P_0, then P_1 .. P_order at position i
        for k in range(1, order + 1):
            table = self.raw[k] if k == order else self.cont[k]
            gram = ngram_codes(ids, k, self.bits)  # k-gram ending at position i = start + k - 1
            pos = np.arange(k - 1, n)
            p[pos] = self._interpolate(table, gram, p[pos])
        return p[1:]

    def bits_per_token(self, ids: np.ndarray, order: int) -> float:
        return float(-np.log2(self.probabilities(ids, order)).mean())

    def choose_order(self, val: np.ndarray) -> tuple[int, dict[int, float]]:
        """The order with the lowest bits per token on `val`, and every order's score."""
        scores = {k: self.bits_per_token(val, k) for k in range(1, self.max_order + 1)}
        return min(scores, key=scores.get), scores
