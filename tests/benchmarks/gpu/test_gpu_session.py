"""benchmarks/gpu/gpu_session.py's --set: params edits for a GPU trial, checked before anything
runs."""

from __future__ import annotations

import importlib.util

import pytest

from tests.conftest import ROOT


def _gpu_session():
    spec = importlib.util.spec_from_file_location("gpu_session",
                                                  ROOT / "benchmarks/gpu/gpu_session.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_set_edits_nested_keys_with_yaml_values():
    params = {"train": {"edm_fmnist": {"gpu": {"batch_size": 128, "lr": 1e-3}}}}
    out = _gpu_session().apply_sets(params, ["train.edm_fmnist.gpu.batch_size=512",
                                             "train.edm_fmnist.gpu.lr=2e-3",
                                             "train.edm_fmnist.gpu.net={model_channels: 96}"])
    assert out["train"]["edm_fmnist"]["gpu"] == {"batch_size": 512, "lr": 2e-3,
                                                 "net": {"model_channels": 96}}


@pytest.mark.parametrize("item, message", [
    ("train.edm_fmnist.gpu.batch_size", "expected KEY=VALUE"),
    ("=3", "expected KEY=VALUE"),
    ("train.edm_fmnst.gpu.lr=1", "params.yaml has no train.edm_fmnst"),
    ("train.edm_fmnist.gpu.lr.x=1", "train.edm_fmnist.gpu.lr is not a mapping"),
])
def test_set_errors_name_the_item(item, message):
    params = {"train": {"edm_fmnist": {"gpu": {"lr": 1e-3}}}}
    with pytest.raises(ValueError, match=message):
        _gpu_session().apply_sets(params, [item])


def test_resample_spec_parses_into_sets_under_the_gpu_block():
    model, sets = _gpu_session().parse_resample(
        "ddpm_fmnist:method.ddim_eta=1.0; method.ddim_steps=50")
    assert model == "ddpm_fmnist"
    assert sets == ["diffusion.ddpm_fmnist.gpu.method.ddim_eta=1.0",
                    "diffusion.ddpm_fmnist.gpu.method.ddim_steps=50"]


@pytest.mark.parametrize("spec", ["ddpm_fmnist", "ddpm_fmnist:", "gan:method.x=1",
                                  "method.ddim_eta=1.0"])
def test_bad_resample_spec_names_itself(spec):
    with pytest.raises(ValueError, match="--resample"):
        _gpu_session().parse_resample(spec)


def test_unknown_part_is_an_error_before_anything_runs(tmp_path):
    params = (ROOT / "params.yaml").read_text()
    with pytest.raises(SystemExit, match=r"--parts: unknown \['profle'\]"):
        _gpu_session().main(["--fmnist", str(tmp_path), "--out", str(tmp_path / "out"),
                             "--parts", "data,profle"])
    assert not (tmp_path / "out").exists()
    assert (ROOT / "params.yaml").read_text() == params


def test_unknown_cifar_variant_is_an_error_before_anything_runs(tmp_path):
    with pytest.raises(SystemExit, match=r"--cifar-variants: unknown \['compiled-nchw'\]"):
        _gpu_session().main(["--fmnist", str(tmp_path), "--out", str(tmp_path / "out"),
                             "--parts", "bench", "--cifar-variants", "compiled,compiled-nchw"])
    assert not (tmp_path / "out").exists()


def test_parts_ask_only_for_the_inputs_they_use(tmp_path, monkeypatch):
    """The data part needs --fmnist, evaluate and resample need the evaluator; each missing
    input is named before anything runs."""
    with pytest.raises(SystemExit, match=r"--parts data needs --fmnist"):
        _gpu_session().main(["--out", str(tmp_path / "out"), "--parts", "data,bench"])
    monkeypatch.chdir(tmp_path)  # no models/evaluator.pt here
    with pytest.raises(SystemExit, match=r"models/evaluator.pt not found \(the evaluate"):
        _gpu_session().main(["--out", str(tmp_path / "out"), "--parts", "bench,evaluate"])
    assert not (tmp_path / "out").exists()


def test_written_since_keeps_only_files_written_after_the_start(tmp_path):
    import os
    import time

    old, new = tmp_path / "figs" / "old.png", tmp_path / "figs" / "sub" / "new.png"
    new.parent.mkdir(parents=True)
    old.write_text("x")
    new.write_text("y")
    t0 = time.time()
    os.utime(old, (t0 - 100, t0 - 100))  # e.g. a committed figure from the CPU pipeline
    os.utime(new, (t0 + 1, t0 + 1))
    gs = _gpu_session()
    assert gs.written_since(tmp_path / "figs", t0) == [new]
    assert gs.written_since(old, t0) == [] and gs.written_since(new, t0) == [new]
    assert gs.written_since(tmp_path / "missing", t0) == []


def test_rng_in_generated_code_counts_kernel_files_per_call(tmp_path):
    jit = "import triton\n@triton.jit\ndef k(seed, offs):\n"
    (tmp_path / "ab").mkdir()
    (tmp_path / "ab" / "c1.py").write_text(jit + "    r = tl.rand(seed, offs)\n")
    (tmp_path / "ab" / "c2.py").write_text(jit + "    r = triton_helpers.rand4x(seed, offs, 8)\n")
    (tmp_path / "c3.py").write_text(jit + "    r = tl.randn(seed, o)\n    q = tl.rand(seed, o)\n")
    (tmp_path / "c4.py").write_text("x = 'tl.rand(' # not a kernel\n")
    gpu_session = _gpu_session()
    out = gpu_session.rng_in_generated_code(tmp_path)
    assert out["triton_files"] == 3
    assert out["files_calling"] == {"tl.rand(": 2, "rand4x(": 1, "tl.randn(": 1, "randn4x(": 0}
    assert gpu_session.rng_in_generated_code(tmp_path / "missing")["triton_files"] == 0
