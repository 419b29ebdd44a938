"""IDX reader/writer: golden bytes, round trips, and clear errors on bad files."""

import gzip
from pathlib import Path

import numpy as np
import pytest

from genlab.data.idx import DataError, encode_idx, read_idx, write_idx

FMNIST_REAL_DIR = Path("/usr/share/datasets/fashion-mnist")


def test_golden_header_bytes():
    # LeCun's spec: 0x00 0x00, dtype 0x08 (uint8), ndim, then big-endian uint32 dims.
    data = encode_idx(np.arange(6, dtype=np.uint8).reshape(2, 3))
    assert data == bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 0, 1, 2, 3, 4, 5])


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_round_trip(tmp_path, suffix, dtype):
    array = (np.arange(2 * 3 * 5) - 7).astype(dtype).reshape(2, 3, 5)
    path = tmp_path / f"a{suffix}"
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.shape == (2, 3, 5)
    np.testing.assert_array_equal(back, array)


def test_multibyte_values_are_big_endian(tmp_path):
    write_idx(tmp_path / "a", np.array([258], dtype=np.int32))
    assert (tmp_path / "a").read_bytes()[-4:] == bytes([0, 0, 1, 2])


def test_gz_file_is_compressed(tmp_path):
    write_idx(tmp_path / "a.gz", np.zeros(100, dtype=np.uint8))
    assert gzip.decompress((tmp_path / "a.gz").read_bytes()) == encode_idx(np.zeros(100, np.uint8))


def test_truncated_file_names_the_file(tmp_path):
    path = tmp_path / "images"
    write_idx(path, np.zeros((4, 5, 5), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(DataError) as err:
        read_idx(path)
    assert str(path) in str(err.value)
    assert "truncated" in str(err.value) and "needs 100 payload bytes, found 97" in str(err.value)


def test_trailing_bytes_rejected(tmp_path):
    path = tmp_path / "labels"
    path.write_bytes(encode_idx(np.zeros(3, dtype=np.uint8)) + b"\x00")
    with pytest.raises(DataError, match="trailing"):
        read_idx(path)


def test_truncated_gzip_stream(tmp_path):
    path = tmp_path / "x.gz"
    write_idx(path, np.random.default_rng(0).integers(0, 256, (50, 28, 28), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match="x.gz"):
        read_idx(path)


@pytest.mark.parametrize(
    ("head", "message"),
    [
        (bytes([1, 0, 8, 1, 0, 0, 0, 1, 0]), "magic"),
        (bytes([0, 0, 7, 1, 0, 0, 0, 1, 0]), "dtype code 0x07"),
        (bytes([0, 0, 8, 0]), "0 dimensions"),
        (bytes([0, 0, 8, 3, 0, 0, 0, 1]), "truncated IDX header"),
        (bytes([0, 0]), "not an IDX file"),
    ],
)
def test_bad_headers(tmp_path, head, message):
    path = tmp_path / "bad"
    path.write_bytes(head)
    with pytest.raises(DataError, match=message):
        read_idx(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_idx(tmp_path / "nope")


def test_dataerror_is_valueerror():
    assert issubclass(DataError, ValueError)


def test_write_rejects_unsupported_dtype(tmp_path):
    with pytest.raises(ValueError, match="dtype"):
        write_idx(tmp_path / "a", np.zeros(3, dtype=np.int64))


@pytest.mark.skipif(not FMNIST_REAL_DIR.is_dir(), reason="Fashion-MNIST not installed")
def test_real_label_file():
    labels = read_idx(FMNIST_REAL_DIR / "t10k-labels-idx1-ubyte.gz")
    assert labels.shape == (10000,) and labels.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(labels), np.full(10, 1000))  # balanced test set
