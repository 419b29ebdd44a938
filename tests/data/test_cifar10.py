"""CIFAR-10 through torchvision's class on fixtures in the real pickle layout."""

import pickle

import numpy as np
import pytest
import torchvision

from genlab.data import cifar10
from genlab.data.idx import DataError


def test_fixture_round_trips_through_torchvision(cifar_fixture):
    root = cifar_fixture["root"]
    for split in ("train", "test"):
        images, labels = cifar10.load_cifar10(root, split, verify_md5=False)
        assert images.dtype == np.uint8 and labels.dtype == np.int64
        assert images.shape == cifar_fixture[f"{split}_images"].shape
        np.testing.assert_array_equal(images, cifar_fixture[f"{split}_images"])  # exact pixels
        np.testing.assert_array_equal(labels, cifar_fixture[f"{split}_labels"])
    assert images.shape == (4, 32, 32, 3)  # test batch of 4; train is 5 batches of 4
    assert len(cifar10.load_cifar10(root, "train", verify_md5=False)[0]) == 20


def test_reads_through_torchvision_class(cifar_fixture):
    dataset = cifar10.CheckedCIFAR10(
        cifar_fixture["root"], train=False, download=False, verify_md5=False
    )
    assert isinstance(dataset, torchvision.datasets.CIFAR10)
    assert dataset.classes == cifar10.CLASSES  # read from batches.meta by torchvision
    image, label = dataset[1]  # torchvision's PIL path agrees with our array
    np.testing.assert_array_equal(np.asarray(image), cifar_fixture["test_images"][1])
    assert label == cifar_fixture["test_labels"][1]


def test_verify_md5_on_fixture_is_a_clear_error(cifar_fixture):
    with pytest.raises(DataError) as err:
        cifar10.load_cifar10(cifar_fixture["root"], "train", verify_md5=True)
    message = str(err.value)
    assert "cifar-10-batches-py" in message and "download=true" in message
    assert "verify_md5=True" in message


def test_verify_md5_defers_to_torchvision(cifar_fixture, monkeypatch):
    # With the fixture's own digests in torchvision's tables, the MD5 path accepts it.
    md5s = cifar_fixture["md5s"]
    monkeypatch.setattr(
        cifar10.CheckedCIFAR10,
        "train_list",
        [[f"data_batch_{i}", md5s[f"data_batch_{i}"]] for i in range(1, 6)],
    )
    monkeypatch.setattr(cifar10.CheckedCIFAR10, "test_list", [["test_batch", md5s["test_batch"]]])
    monkeypatch.setattr(
        cifar10.CIFAR10, "meta", {**cifar10.CIFAR10.meta, "md5": md5s["batches.meta"]}
    )
    images, _ = cifar10.load_cifar10(cifar_fixture["root"], "test", verify_md5=True)
    np.testing.assert_array_equal(images, cifar_fixture["test_images"])


def test_fetch_without_download_reports_bad_md5(cifar_fixture):
    with pytest.raises(DataError, match="missing or corrupt"):
        cifar10.fetch_cifar10(cifar_fixture["root"], download=False)


def test_missing_dataset(tmp_path):
    with pytest.raises(DataError, match=str(tmp_path / "cifar-10-batches-py")):
        cifar10.load_cifar10(tmp_path, "test", verify_md5=False)


def test_missing_batch_without_md5(cifar_fixture):
    (cifar_fixture["root"] / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DataError):
        cifar10.load_cifar10(cifar_fixture["root"], "test", verify_md5=False)


def test_corrupt_pickle_without_md5(cifar_fixture):
    path = cifar_fixture["root"] / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match="test_batch is corrupt"):
        cifar10.load_cifar10(cifar_fixture["root"], "test", verify_md5=False)


def test_wrong_data_layout_without_md5(cifar_fixture):
    path = cifar_fixture["root"] / "cifar-10-batches-py" / "test_batch"
    entry = pickle.loads(path.read_bytes())
    entry["data"] = entry["data"][:, :100]  # not 3x32x32 per row
    path.write_bytes(pickle.dumps(entry, protocol=2))
    with pytest.raises(DataError):
        cifar10.load_cifar10(cifar_fixture["root"], "test", verify_md5=False)


def test_bad_split(cifar_fixture):
    with pytest.raises(ValueError, match="split"):
        cifar10.load_cifar10(cifar_fixture["root"], "valid", verify_md5=False)


class _Payload:
    """Unpickling this calls os.mkdir(marker): what a crafted batch file could do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return os.mkdir, (self.marker,)


@pytest.mark.parametrize("verify_md5", [False, True])
def test_a_crafted_batch_is_refused_before_anything_is_unpickled(cifar_fixture, tmp_path,
                                                                 verify_md5):
    marker = tmp_path / "was-run"
    path = cifar_fixture["root"] / "cifar-10-batches-py" / "data_batch_1"
    entry = pickle.loads(path.read_bytes())
    entry["extra"] = _Payload(marker)
    path.write_bytes(pickle.dumps(entry, protocol=2))
    with pytest.raises(DataError, match="data_batch_1 .*mkdir"):
        cifar10.load_cifar10(cifar_fixture["root"], "train", verify_md5=verify_md5)
    assert not marker.exists()
