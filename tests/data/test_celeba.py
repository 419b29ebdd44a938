"""CelebA through torchvision's class on fixtures in the real file formats; NCSN preprocessing."""

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torchvision import transforms

from genlab.data import celeba
from genlab.data.idx import DataError


def expected_faces(images: np.ndarray, size: int) -> np.ndarray:
    """Reference preprocessing of the original (pre-JPEG) arrays with torchvision transforms."""
    pipeline = transforms.Compose([transforms.CenterCrop(140), transforms.Resize(size)])
    return np.stack([np.asarray(pipeline(Image.fromarray(im))) for im in images])


def test_preprocess_matches_torchvision_transforms():
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (218, 178, 3), dtype=np.uint8))
    ours = celeba.preprocess_face(image, size=64)
    reference = transforms.Compose(
        [transforms.CenterCrop(140), transforms.Resize(64, antialias=True)]
    )(image)
    assert ours.shape == (64, 64, 3) and ours.dtype == np.uint8
    np.testing.assert_array_equal(ours, np.asarray(reference))


def test_preprocess_crop_is_centered():
    # A 140x140 white square exactly at the center crop box survives as all-white.
    image = np.zeros((218, 178, 3), dtype=np.uint8)
    image[39:179, 19:159] = 255
    out = celeba.preprocess_face(Image.fromarray(image), size=32)
    assert out.min() == 255


def test_preprocess_rejects_oversized_crop():
    with pytest.raises(ValueError, match="crop"):
        celeba.preprocess_face(Image.new("RGB", (178, 218)), size=64, crop=200)


def test_fixture_loads_through_torchvision(celeba_fixture):
    train = celeba_fixture["partition"] == 0
    faces = celeba.load_celeba(celeba_fixture["root"], "train", size=64, verify_md5=False)
    assert faces.shape == (train.sum(), 64, 64, 3) and faces.dtype == np.uint8
    reference = expected_faces(celeba_fixture["images"][train], 64)
    # JPEG (quality 95) of smooth images: small per-pixel error.
    error = np.abs(faces.astype(int) - reference.astype(int))
    assert error.mean() < 1.0 and error.max() < 10


@pytest.mark.parametrize(
    ("split", "code"), [("train", 0), ("valid", 1), ("test", 2), ("all", None)]
)
def test_split_sizes_follow_partition_file(celeba_fixture, split, code):
    faces = celeba.load_celeba(celeba_fixture["root"], split, size=8, verify_md5=False)
    partition = celeba_fixture["partition"]
    assert len(faces) == (len(partition) if code is None else (partition == code).sum())


def test_annotations_parse_like_the_real_files(celeba_fixture):
    dataset = celeba.CheckedCelebA(celeba_fixture["root"], split="test", verify_md5=False)
    assert isinstance(dataset, torchvision.datasets.CelebA)
    test = celeba_fixture["partition"] == 2
    assert dataset.filename == [f for f, t in zip(celeba_fixture["files"], test, strict=True) if t]
    expected = torch.from_numpy((celeba_fixture["attrs"][test] + 1) // 2)
    assert torch.equal(dataset.attr, expected)
    assert dataset.attr_names[:2] == ["5_o_Clock_Shadow", "Arched_Eyebrows"]
    assert dataset.bbox.shape == (test.sum(), 4) and dataset.landmarks_align.shape[1] == 10


def test_limit_keeps_first_images(celeba_fixture):
    all_faces = celeba.load_celeba(celeba_fixture["root"], "all", size=16, verify_md5=False)
    first = celeba.load_celeba(celeba_fixture["root"], "all", size=16, verify_md5=False, limit=3)
    np.testing.assert_array_equal(first, all_faces[:3])
    assert len(celeba.load_celeba(celeba_fixture["root"], "all", 16, False, limit=0)) == 0


def test_verify_md5_on_fixture_is_a_clear_error(celeba_fixture):
    with pytest.raises(DataError) as err:
        celeba.load_celeba(celeba_fixture["root"], "train", verify_md5=True)
    message = str(err.value)
    assert str(celeba_fixture["root"] / "celeba") in message and "download=true" in message


def test_missing_annotation_file(celeba_fixture):
    (celeba_fixture["root"] / "celeba" / "list_bbox_celeba.txt").unlink()
    with pytest.raises(DataError, match="list_bbox_celeba.txt"):
        celeba.load_celeba(celeba_fixture["root"], "train", verify_md5=False)


def test_missing_image_names_it(celeba_fixture):
    (celeba_fixture["root"] / "celeba" / "img_align_celeba" / "000002.jpg").unlink()
    with pytest.raises(DataError, match="000002.jpg"):
        celeba.load_celeba(celeba_fixture["root"], "train", verify_md5=False)


def test_corrupt_annotation_file(celeba_fixture):
    path = celeba_fixture["root"] / "celeba" / "list_eval_partition.txt"
    path.write_text("000001.jpg zero\n")
    with pytest.raises(DataError, match="missing or corrupt"):
        celeba.load_celeba(celeba_fixture["root"], "train", verify_md5=False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"split": "val"}, "split"), ({"size": 0}, "size"), ({"limit": -1}, "limit")],
)
def test_bad_arguments(celeba_fixture, kwargs, message):
    args = {"split": "train", "verify_md5": False, **kwargs}
    with pytest.raises(ValueError, match=message):
        celeba.load_celeba(celeba_fixture["root"], **args)
