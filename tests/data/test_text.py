"""Character text data and the Kneser-Ney baseline on generated text (never the fortunes
package): the text stage's clear error on a missing source, record splits, the manifest's
checksums, seeded windows, and Kneser-Ney probabilities against a hand computation and
summing to one over the vocabulary."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from genlab.data.text import (
    corpus_files,
    decode,
    encode,
    load_split,
    random_windows,
    read_records,
    sha256,
    split_records,
    write_splits,
)
from genlab.errors import DataError
from genlab.metrics.ngram import KneserNey
from stages import text as text_stage


def fortune_folder(tmp_path):
    """Two generated fortune files in the strfile format, plus a .dat index and a .u8 link."""
    rng = np.random.default_rng(0)
    words = ["cat", "dog", "sat", "on", "the", "mat", "Hello,", "world!"]
    folder = tmp_path / "fortunes"
    folder.mkdir()
    for name in ("alpha", "beta"):
        records = [" ".join(rng.choice(words, 6)) for _ in range(20)]
        (folder / name).write_text("\n%\n".join(records) + "\n%\n")
        (folder / f"{name}.dat").write_bytes(b"\x00\x01binary")
        (folder / f"{name}.u8").symlink_to(folder / name)
    return folder


def test_text_stage_names_the_missing_source_and_the_fix(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match=r"nowhere is missing.*apt-get install fortunes"):
        text_stage.run([str(missing)])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no fortune files"):
        corpus_files(tmp_path / "empty")


def test_records_split_into_disjoint_parts_with_a_checked_manifest(tmp_path):
    files = corpus_files(fortune_folder(tmp_path))
    assert [f.name for f in files] == ["alpha", "beta"]  # .dat and .u8 left out
    records = read_records(files)
    assert len(records) == 40 and all("%" not in r for r in records)
    splits = split_records(records, (0.1, 0.1), seed=3)
    assert splits == split_records(records, (0.1, 0.1), seed=3)
    parts = {k: set(v.split("\n%\n")) - {""} for k, v in splits.items()}
    assert sum(map(len, parts.values())) == len(set(records))
    assert not parts["train"] & parts["test"] and not parts["val"] & parts["test"]
    out = tmp_path / "out"
    manifest = write_splits(out, splits, files)
    for name, digest in manifest["files"].items():
        assert sha256(out / name) == digest
    ids, vocab = load_split(out, "test")
    assert decode(ids, vocab) == splits["test"]
    assert json.loads((out / "manifest.json").read_text())["vocab_size"] == len(vocab)


def test_encode_decode_round_trip_and_seeded_windows():
    vocab = sorted(set("hello world"))
    ids = encode("hello world", vocab)
    assert decode(ids, vocab) == "hello world"
    t = torch.as_tensor(ids.astype(np.int64))
    a = random_windows(t, 4, 6, torch.Generator().manual_seed(1))
    assert torch.equal(a, random_windows(t, 4, 6, torch.Generator().manual_seed(1)))
    for row in a:  # each window is a contiguous slice of the text
        assert any(torch.equal(row, t[s:s + 4]) for s in range(len(t) - 3))
    with pytest.raises(DataError, match="shorter than a window"):
        random_windows(t, 20, 2, torch.Generator())


def test_kneser_ney_matches_a_hand_computation():
    """Corpus a b a b a c (ids 0 1 0 1 0 2), V = 3.
    Unigrams a:3 b:2 c:1, n1 = n2 = 1, D1 = 1/3: P1(a) = (3 - 1/3)/6 + (1/3)(3/6)(1/3) = 1/2,
    P1(b) = 1/3, P1(c) = 1/6. Bigrams ab:2 ba:2 ac:1, D2 = 1/(1 + 2*2) = 0.2; continuation
    unigrams a, b, c: 1 each, D = 1, so the lower order is uniform: P(b | a) = (2 - 0.2)/3 +
    0.2 (2/3)(1/3) = 29/45, P(c | a) = 0.8/3 + 2/45 = 14/45, P(a | a) = 2/45."""
    kn = KneserNey(np.array([0, 1, 0, 1, 0, 2]), vocab=3, max_order=2)
    assert kn.raw[2].discount == pytest.approx(0.2) and kn.raw[1].discount == pytest.approx(1/3)
    p1 = [kn.probabilities(np.array([0, w]), 1)[0] for w in range(3)]
    np.testing.assert_allclose(p1, [1 / 2, 1 / 3, 1 / 6])
    p2 = [kn.probabilities(np.array([0, w]), 2)[0] for w in range(3)]
    np.testing.assert_allclose(p2, [2 / 45, 29 / 45, 14 / 45])
    # an unseen context (c) backs off to the (uniform) lower order
    np.testing.assert_allclose(kn.probabilities(np.array([2, 1]), 2), [1 / 3])


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_kneser_ney_probabilities_sum_to_one_over_the_vocabulary(order):
    rng = np.random.default_rng(4)
    vocab = 6
    train = rng.choice(vocab, 3000, p=[0.4, 0.2, 0.2, 0.1, 0.07, 0.03])
    kn = KneserNey(train, vocab, max_order=4)
    for _ in range(20):
        history = rng.integers(0, vocab, max(order - 1, 1))  # order 1 ignores it
        total = sum(kn.probabilities(np.r_[history, w], order)[-1] for w in range(vocab))
        assert total == pytest.approx(1.0, abs=1e-12)
    # the order chosen on held-out text is where its bits per token are lowest
    best, scores = kn.choose_order(rng.choice(vocab, 500))
    assert scores[best] == min(scores.values())
