"""The processed-data store refuses what its manifest does not vouch for: changed payloads of
the same size, broken manifests, entries without a digest."""

from __future__ import annotations

import json

import numpy as np
import pytest

from genlab.data.processed import MANIFEST, load_array, save_arrays, write_manifest
from genlab.errors import DataError


@pytest.fixture
def store(tmp_path):
    arr = np.arange(600, dtype=np.uint8).reshape(6, 10, 10)
    write_manifest(tmp_path, save_arrays(tmp_path, {"set/train_x": arr}), {"source": "test"})
    return tmp_path, arr


def test_a_clean_array_loads(store):
    root, arr = store
    assert np.array_equal(load_array(root, "set/train_x"), arr)


def test_a_payload_changed_in_place_is_refused(store):
    root, _ = store
    path = root / "set/train_x.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # same size, same header: only the digest can tell
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="sha256"):
        load_array(root, "set/train_x")


@pytest.mark.parametrize("text,match", [
    ("{not json", "not valid JSON"),
    ('{"source": "test"}', "no 'arrays' table"),
    ('{"arrays": {"set/train_x": {"shape": [6, 10, 10]}}}', "lacks shape / dtype / sha256"),
])
def test_a_broken_manifest_is_a_clear_error(store, text, match):
    root, _ = store
    (root / MANIFEST).write_text(text)
    with pytest.raises(DataError, match=match):
        load_array(root, "set/train_x")


def test_the_manifest_written_holds_each_digest(store):
    root, _ = store
    entry = json.loads((root / MANIFEST).read_text())["arrays"]["set/train_x"]
    assert len(entry["sha256"]) == 64 and entry["shape"] == [6, 10, 10]
