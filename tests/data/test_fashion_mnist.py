"""Fashion-MNIST fetch (verified, atomic, with fallback) and loading, on fixtures and real data."""

import gzip
import logging
import time
from pathlib import Path

import numpy as np
import pytest

from genlab.data import fashion_mnist as fm
from genlab.data.idx import DataError, md5_bytes, write_idx

REAL_DIR = Path("/usr/share/datasets/fashion-mnist")
needs_real = pytest.mark.skipif(not REAL_DIR.is_dir(), reason="Fashion-MNIST not installed")


@pytest.fixture
def fixture_md5s(monkeypatch, fmnist_fixture):
    """Make the tiny fixture the 'expected' content by swapping in its MD5s."""
    monkeypatch.setattr(fm, "IDX_FILES", fmnist_fixture["md5s"])
    return fmnist_fixture["md5s"]


def local(path) -> dict:
    return {"kind": "local", "path": str(path)}


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("flavour", ["gz", "plain"])
def test_fetch_writes_decompressed_verified_files(tmp_path, fmnist_fixture, fixture_md5s, flavour):
    dest = tmp_path / "raw" / "fashion_mnist"
    info = fm.fetch_fashion_mnist(dest, [local(fmnist_fixture[flavour])])
    assert info == {"source": f"local:{fmnist_fixture[flavour]}", "files": fixture_md5s}
    assert sorted(p.name for p in dest.iterdir()) == sorted(fm.IDX_FILES)
    for name in fm.IDX_FILES:
        assert md5_bytes((dest / name).read_bytes()) == fixture_md5s[name]
    assert leftovers(dest.parent) == []


def test_load_round_trips_fixture(fmnist_fixture):
    arrays = fmnist_fixture["arrays"]
    for split in ("train", "test"):
        images, labels = fm.load_fashion_mnist(fmnist_fixture["gz"], split)
        assert images.dtype == np.uint8 and labels.dtype == np.int64
        np.testing.assert_array_equal(images, arrays[f"{split}_images"])
        np.testing.assert_array_equal(labels, arrays[f"{split}_labels"])


def test_wrong_md5_names_file_and_both_digests(tmp_path, fmnist_fixture):
    # Real digests, fixture content: every file mismatches; the first one is reported.
    dest = tmp_path / "dest"
    with pytest.raises(DataError) as err:
        fm.fetch_fashion_mnist(dest, [local(fmnist_fixture["gz"])])
    message = str(err.value)
    name = "train-images-idx3-ubyte"
    assert name in message and fm.IDX_FILES[name] in message
    assert fmnist_fixture["md5s"][name] in message
    assert not dest.exists() and leftovers(tmp_path) == []


def test_verify_md5_false_accepts_other_content(tmp_path, fmnist_fixture):
    info = fm.fetch_fashion_mnist(tmp_path / "d", [local(fmnist_fixture["gz"])], verify_md5=False)
    assert info["files"] == fmnist_fixture["md5s"]


@pytest.mark.parametrize("verify_md5", [True, False])
def test_truncated_plain_file_is_rejected(tmp_path, fmnist_fixture, fixture_md5s, verify_md5):
    bad = fmnist_fixture["plain"] / "t10k-images-idx3-ubyte"
    bad.write_bytes(bad.read_bytes()[:-10])
    dest = tmp_path / "dest"
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte"):
        fm.fetch_fashion_mnist(dest, [local(fmnist_fixture["plain"])], verify_md5=verify_md5)
    assert not dest.exists() and leftovers(tmp_path) == []


def test_truncated_gz_is_rejected(tmp_path, fmnist_fixture, fixture_md5s):
    bad = fmnist_fixture["gz"] / "train-labels-idx1-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:-12])
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz"):
        fm.fetch_fashion_mnist(tmp_path / "dest", [local(fmnist_fixture["gz"])])


def test_label_count_mismatch_is_rejected(tmp_path, fmnist_fixture):
    write_idx(fmnist_fixture["plain"] / "train-labels-idx1-ubyte", np.zeros(5, dtype=np.uint8))
    with pytest.raises(DataError, match="do not match 12 images"):
        fm.fetch_fashion_mnist(tmp_path / "d", [local(fmnist_fixture["plain"])], verify_md5=False)
    with pytest.raises(DataError, match="do not match 12 images"):
        fm.load_fashion_mnist(fmnist_fixture["plain"], "train")


def test_failed_fetch_keeps_existing_copy(tmp_path, fmnist_fixture, fixture_md5s):
    dest = tmp_path / "dest"
    fm.fetch_fashion_mnist(dest, [local(fmnist_fixture["gz"])])
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in dest.iterdir()}
    bad = fmnist_fixture["plain"] / "train-images-idx3-ubyte"
    bad.write_bytes(bad.read_bytes()[:-1] + b"\x01")  # same size, different content
    with pytest.raises(DataError, match="train-images-idx3-ubyte"):
        fm.fetch_fashion_mnist(dest, [local(fmnist_fixture["plain"])])
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in dest.iterdir()} == before
    assert leftovers(tmp_path) == []


def test_refetch_replaces_stale_copy(tmp_path, fmnist_fixture, fixture_md5s):
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "stale.txt").write_text("old")
    fm.fetch_fashion_mnist(dest, [local(fmnist_fixture["plain"])])
    assert sorted(p.name for p in dest.iterdir()) == sorted(fm.IDX_FILES)
    assert leftovers(tmp_path) == []


def test_falls_back_to_next_source(tmp_path, fmnist_fixture, fixture_md5s, caplog):
    sources = [local(tmp_path / "missing"), local(fmnist_fixture["gz"])]
    with caplog.at_level(logging.WARNING, logger=fm.__name__):
        info = fm.fetch_fashion_mnist(tmp_path / "dest", sources)
    assert info["source"] == f"local:{fmnist_fixture['gz']}"
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "missing" in warnings[0] and "\n" not in warnings[0]


def test_all_sources_failing_lists_each(tmp_path, fmnist_fixture):
    sources = [local(tmp_path / "missing"), local(fmnist_fixture["gz"])]
    with pytest.raises(DataError) as err:
        fm.fetch_fashion_mnist(tmp_path / "dest", sources)
    lines = str(err.value).splitlines()
    assert len(lines) == 3
    assert "no such directory" in lines[1] and "MD5" in lines[2]
    assert not (tmp_path / "dest").exists()


def test_missing_member_file(tmp_path, fmnist_fixture, fixture_md5s):
    (fmnist_fixture["gz"] / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="missing t10k-labels-idx1-ubyte"):
        fm.fetch_fashion_mnist(tmp_path / "dest", [local(fmnist_fixture["gz"])])


@pytest.mark.parametrize(
    ("sources", "message"),
    [
        ([], "at least one"),
        ([{"kind": "http"}], r"sources\[0\].kind"),
        ([{"kind": "local"}], "needs a 'path'"),
    ],
)
def test_bad_sources_config(tmp_path, sources, message):
    with pytest.raises(ValueError, match=message):
        fm.fetch_fashion_mnist(tmp_path / "dest", sources)


def test_load_bad_split(fmnist_fixture):
    with pytest.raises(ValueError, match="split"):
        fm.load_fashion_mnist(fmnist_fixture["gz"], "val")


def test_torchvision_source_plumbing(tmp_path, fmnist_fixture, fixture_md5s, monkeypatch):
    """The torchvision source copies from <root>/FashionMNIST/raw and cleans its temp dir."""

    def fake_download(root: Path, timeout_s: float) -> Path:
        raw = root / "FashionMNIST" / "raw"
        raw.mkdir(parents=True)
        for name in fm.IDX_FILES:  # torchvision keeps both the .gz and the extracted file
            data = gzip.decompress((fmnist_fixture["gz"] / f"{name}.gz").read_bytes())
            (raw / name).write_bytes(data)
            (raw / f"{name}.gz").write_bytes(gzip.compress(data))
        return raw

    monkeypatch.setattr(fm, "download_with_torchvision", fake_download)
    info = fm.fetch_fashion_mnist(tmp_path / "dest", [{"kind": "torchvision"}])
    assert info == {"source": "torchvision", "files": fixture_md5s}
    assert leftovers(tmp_path) == []


def test_real_torchvision_download_fails_cleanly_offline(tmp_path):
    """Offline, torchvision's download fails fast and is reported; online, it must verify."""
    start = time.monotonic()
    try:
        info = fm.fetch_fashion_mnist(tmp_path / "dest", [{"kind": "torchvision", "timeout_s": 2}])
    except DataError as err:
        assert "torchvision" in str(err) and time.monotonic() - start < 30
        assert not (tmp_path / "dest").exists() and leftovers(tmp_path) == []
    else:
        assert info["files"] == fm.IDX_FILES


@needs_real
def test_real_files_load():
    images, labels = fm.load_fashion_mnist(REAL_DIR, "test")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(labels), np.full(10, 1000))
    # Golden numbers of the upstream test set.
    assert labels[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]
    assert images.mean() == pytest.approx(73.1466, abs=1e-3)


@needs_real
@pytest.mark.slow
def test_real_fetch_verifies(tmp_path):
    info = fm.fetch_fashion_mnist(tmp_path / "fm", [local(REAL_DIR)])
    assert info["files"] == fm.IDX_FILES
    images, labels = fm.load_fashion_mnist(tmp_path / "fm", "train")
    assert images.shape == (60000, 28, 28)
    np.testing.assert_array_equal(np.bincount(labels), np.full(10, 6000))
