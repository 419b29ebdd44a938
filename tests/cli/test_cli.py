"""The `genlab` CLI on a checkout of tiny, untrained models (params_tiny.yaml's sections, saved
as the train stage saves them): every command end to end through `main`, its PNGs, its
determinism and its one-line errors (exit 2). Sampling quality is the evaluations' business;
these check the wiring that reaches each family's own sampler."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from genlab import families
from genlab.cli import main
from genlab.config import load_section
from genlab.data.text import write_splits
from genlab.training.checkpoint import save_atomic

TINY = Path(__file__).parents[1] / "e2e" / "params_tiny.yaml"
MODELS = {  # family -> tiny params keys saved as models/<key>.pt
    "autoencoder": ["ae", "ae_toy"], "diffusion": ["edm_toy", "edm_fmnist", "ddpm_fmnist"],
    "vae": ["vae_two_moons", "vae_fmnist"], "flow": ["realnvp_two_moons"],
    "gan": ["gan_eight_gaussians"], "gpt": ["recall_rope", "charlm"],
}
CHARLM = {"dataset": "fortunes", "context": 32, "steps": 2,
          "model": {"dim": 16, "layers": 1, "heads": 2, "positions": "rope"}}
TEXT = "The cat sat.\n%\nA dog ran far.\n%\n" * 40


def _shape(cfg) -> tuple[int, ...]:
    return (1, 28, 28) if cfg.dataset == "fashion_mnist" else (2,)


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("repo")
    params = yaml.safe_load(TINY.read_text())
    params["gpt"]["charlm"] = CHARLM
    rng = np.random.default_rng(0)
    for name in ("two_moons", "eight_gaussians"):
        folder = root / "data/processed/toy2d" / name
        folder.mkdir(parents=True)
        for split in ("train_x", "test_x"):
            np.save(folder / f"{split}.npy", rng.normal(size=(300, 2)).astype(np.float32))
    folder = root / "data/processed/fashion_mnist"
    folder.mkdir(parents=True)
    for split in ("train_x", "test_x"):
        np.save(folder / f"{split}.npy", rng.integers(0, 256, (64, 28, 28), dtype=np.uint8))
    corpus = root / "corpus.txt"
    corpus.write_text(TEXT)
    write_splits(root / "data/text/fortunes", {"train": TEXT, "val": TEXT[:200],
                                                "test": TEXT[:200]}, [corpus])
    (root / "models").mkdir()
    here = os.getcwd()
    os.chdir(root)  # the gpt family reads its vocabulary from data/text/<set>/
    try:
        _save_models(root, params)
    finally:
        os.chdir(here)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root


def _save_models(root: Path, params: dict) -> None:
    for fam, names in MODELS.items():
        family = families.get(fam)
        for name in names:
            cfg = load_section(family.config, params[fam][name], f"{fam}.{name}", "cpu")
            torch.manual_seed(0)
            built = family.build(cfg, _shape(cfg) if fam != "gpt" else (cfg.context,), False)
            with torch.no_grad():  # untrained nets zero some outputs (the U-Net's last conv):
                for t in built.net.parameters():  # a nudge makes every input matter
                    t.add_(0.05 * torch.randn_like(t))
            sd = built.net.state_dict()
            save_atomic({"family": fam, "config": dataclasses.asdict(cfg), "arch": built.arch,
                         "model": sd, "ema": sd}, root / "models" / f"{name}.pt")


def genlab(repo: Path, *args: str) -> int:
    return main(["--root", str(repo), *args])


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


@pytest.mark.parametrize("name", ["ae", "ae_toy", "edm_toy", "edm_fmnist", "ddpm_fmnist",
                                  "vae_two_moons", "vae_fmnist", "realnvp_two_moons",
                                  "gan_eight_gaussians"])
def test_sample_writes_a_png_and_the_same_seed_gives_the_same_image(repo, tmp_path, name):
    a, b, c = (tmp_path / f"{k}.png" for k in "abc")
    assert genlab(repo, "sample", name, "--n", "4", "--out", str(a), "--device", "cpu") == 0
    assert genlab(repo, "sample", name, "--n", "4", "--out", str(b), "--device", "cpu") == 0
    assert genlab(repo, "sample", name, "--n", "4", "--out", str(c), "--seed", "1") == 0
    assert _pixels(a).size > 0 and np.array_equal(_pixels(a), _pixels(b))
    if name != "ae_toy":  # a 1-D latent of an untrained toy AE decodes to nearly one point
        assert not np.array_equal(_pixels(a), _pixels(c))


def test_an_image_grid_holds_the_requested_samples(repo, tmp_path):
    out = tmp_path / "grid.png"
    assert genlab(repo, "sample", "edm_fmnist", "--n", "6", "--nrow", "3", "--class", "2",
                  "--guidance", "1.5", "--steps", "2", "--out", str(out)) == 0
    h, w = _pixels(out).shape[:2]
    assert (h, w) == (2 * 28 + 3 * 2, 3 * 28 + 4 * 2)  # 2 rows x 3 columns, 2-pixel padding


def test_steps_change_the_sampler_and_class_the_condition(repo, tmp_path):
    paths = [tmp_path / f"{i}.png" for i in range(3)]
    for out, extra in zip(paths, ([], ["--steps", "5"], ["--class", "7"]), strict=True):
        assert genlab(repo, "sample", "edm_fmnist", "--n", "2", "--out", str(out), *extra) == 0
    base = _pixels(paths[0])
    assert not np.array_equal(base, _pixels(paths[1]))
    assert not np.array_equal(base, _pixels(paths[2]))


@pytest.mark.parametrize("name", ["ae", "vae_fmnist"])
def test_interpolate_rows_run_between_two_test_images(repo, tmp_path, name):
    out = tmp_path / "lines.png"
    assert genlab(repo, "interpolate", name, "--rows", "2", "--steps", "5",
                  "--out", str(out)) == 0
    h, w = _pixels(out).shape[:2]
    assert (h, w) == (2 * 28 + 3 * 2, 5 * 28 + 6 * 2)


def test_generate_text_continues_the_prompt_with_known_characters(repo, capsys):
    assert genlab(repo, "generate-text", "charlm", "--prompt", "The ", "--chars", "20") == 0
    text = capsys.readouterr().out.rstrip("\n")
    assert text.startswith("The ") and len(text) == 24
    assert set(text) <= set(TEXT)
    genlab(repo, "generate-text", "charlm", "--prompt", "The ", "--chars", "20")
    assert capsys.readouterr().out.rstrip("\n") == text  # same seed, same text


@pytest.mark.parametrize("args, message", [
    (["sample", "nosuch"], "no model 'nosuch': not a key of any family section"),
    (["sample", "ncsn_toy"], "model 'ncsn_toy' is not trained yet (models/ncsn_toy.pt is "
                             "missing); run: dvc repro train-diffusion@ncsn_toy"),
    (["sample", "vqgan_fmnist"], "run: dvc repro pretrain-vq@vqgan_fmnist"),
    (["sample", "edm_fmnist", "--class", "10"], "--class 10 is out of range: model "
                                                "'edm_fmnist' takes classes 0..9"),
    (["sample", "edm_toy", "--class", "0"], "is not class-conditional"),
    (["sample", "edm_toy", "--guidance", "2"], "--guidance needs a class-conditional model"),
    (["sample", "gan_eight_gaussians", "--steps", "4"], "takes no --steps"),
    (["sample", "edm_fmnist", "--temperature", "0.5"], "takes no --temperature"),
    (["sample", "recall_rope"], "has no sample; it offers: generate-text"),
    (["interpolate", "edm_fmnist"], "has no interpolate; it offers: sample"),
    (["interpolate", "ae_toy"], "takes no --interpolate"),
    (["generate-text", "recall_rope"], "synthetic mqar task"),
    (["generate-text", "charlm", "--prompt", "~~"], "characters the model never saw"),
    (["sample", "ae", "--n", "0"], "--n must be >= 1"),
])
def test_bad_requests_are_one_line_naming_the_fix_and_exit_2(repo, capsys, args, message):
    assert genlab(repo, *args) == 2
    err = capsys.readouterr().err
    assert err.startswith("genlab: error: ") and message in err, err
    assert err.count("\n") == 1


def test_a_corrupt_model_file_is_a_clear_error(repo, tmp_path, capsys):
    bad = tmp_path / "bad"
    (bad / "models").mkdir(parents=True)
    (bad / "params.yaml").write_text((repo / "params.yaml").read_text())
    (bad / "models" / "ae.pt").write_bytes(b"not a checkpoint")
    assert genlab(bad, "sample", "ae") == 2
    assert "checkpoint" in capsys.readouterr().err


def test_list_shows_trained_and_untrained_models(repo, capsys):
    assert genlab(repo, "list") == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert "models/edm_fmnist.pt" in lines["edm_fmnist"]
    assert "not trained: dvc repro train-diffusion@ncsn_toy" in lines["ncsn_toy"]
    assert "sample,interpolate" in lines["vae_fmnist"]


def test_the_console_script_is_installed_and_has_help():
    exe = Path(sys.executable).with_name("genlab")
    assert exe.is_file(), "pip install -e . installs the genlab console script"
    for args in ([], ["sample"], ["interpolate"], ["generate-text"], ["list"]):
        out = subprocess.run([str(exe), *args, "--help"], capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0 and "usage: genlab" in out.stdout


@pytest.mark.parametrize("name", ["edm_fmnist", "ae", "vae_two_moons", "charlm", "recall_rope"])
def test_the_mlflow_model_of_a_trained_model_loads_alone_and_matches_the_cli(
        repo, tmp_path, monkeypatch, name):
    import mlflow
    import pandas as pd

    from genlab.inference import hook, load_trained
    from genlab.tracking.mlflow_model import save

    monkeypatch.chdir(repo)
    folder = save(name, tmp_path / "saved" / name)
    m = load_trained(name, {}, "cpu")
    monkeypatch.chdir(tmp_path)  # the folder alone: no workspace, no params.yaml
    if name == "recall_rope":  # a synthetic-task GPT has no sampler: the network itself
        model = mlflow.pyfunc.load_model(str(folder))
        ids = np.arange(32, dtype=np.int64).reshape(2, 16) % 8
        with torch.no_grad():
            np.testing.assert_array_equal(model.predict(ids), m.net(torch.as_tensor(ids)).numpy())
        net = model.unwrap_python_model().model.net
        mine = m.net.state_dict()
        assert net.state_dict().keys() == mine.keys()
        assert all(torch.equal(t, mine[k]) for k, t in net.state_dict().items())
        return
    model = mlflow.pyfunc.load_model(str(folder))
    if name == "charlm":
        (text,) = model.predict(pd.DataFrame({"prompt": ["The "], "chars": [12], "seed": [5]}))
        monkeypatch.chdir(repo)
        assert text == hook(m, "generate_text")(m, "The ", 12, torch.Generator().manual_seed(5))
        return
    x = model.predict(pd.DataFrame({"n": [3], "seed": [5]}))
    monkeypatch.chdir(repo)
    np.testing.assert_array_equal(x, hook(m, "sample")(m, 3, torch.Generator().manual_seed(5))
                                  .float().numpy())
