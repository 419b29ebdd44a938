"""params.yaml validation: the committed file is valid, and each bad value is one clear error
that names its key path."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest

from genlab import families
from genlab.config import ConfigError, load, load_section
from genlab.families.autoencoder.config import AutoencoderConfig
from genlab.families.diffusion.config import DiffusionConfig, EDMConfig, NCSNConfig
from stages.check_params import validate_params
from tests.conftest import ROOT


def test_committed_params_are_valid(params):
    validate_params(params)


def _set(d: dict, path: str, value) -> dict:
    d = copy.deepcopy(d)
    *parents, last = path.split(".")
    node = d
    for p in parents:
        node = node[p]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return d


DELETE = object()

# (key path, bad value, text the error must contain)
BAD = [
    ("autoencoder.ae.lr", -1.0, "autoencoder.ae.lr must be > 0 and finite"),
    ("autoencoder.ae.lr", float("inf"), "autoencoder.ae.lr must be > 0 and finite, got inf"),
    ("autoencoder.ae.lr", float("nan"), "autoencoder.ae.lr must be > 0 and finite, got nan"),
    ("autoencoder.ae.lr", "fast", "autoencoder.ae.lr must be float"),
    ("autoencoder.ae.steps", 0, "autoencoder.ae.steps must be > 0"),
    ("autoencoder.ae.steps", 10.5, "autoencoder.ae.steps must be int"),
    ("autoencoder.ae.batch_size", True, "autoencoder.ae.batch_size must be int"),
    ("autoencoder.ae.decay", "linear", "autoencoder.ae.decay must be one of"),
    ("autoencoder.ae.grad_clip", -0.1, "autoencoder.ae.grad_clip must be >= 0"),
    ("autoencoder.ae.lrr", 0.1, "autoencoder.ae.lrr is not a known key"),
    ("autoencoder.ae.model.kind", "mlp", "autoencoder.ae.model.kind 'mlp' does not fit"),
    ("autoencoder.ae.model.widths", [], "autoencoder.ae.model.widths must be a non-empty list"),
    ("autoencoder.ae.model.widths", [32, -8], "autoencoder.ae.model.widths must be a non-empty"),
    ("autoencoder.ae.objective.noise_levels", [0.1, -0.5], "objective.noise_levels must be a"),
    ("autoencoder.ae.dataset", "mnist", "autoencoder.ae.dataset must be one of ['fashion_mnist',"),
    ("autoencoder.ae.dataset", DELETE, "autoencoder.ae.dataset is required"),
    ("autoencoder.ae.family", "gan", "autoencoder.ae.family is not a known key"),
    ("autoencoder.dae", None, "autoencoder.dae must be a mapping"),
    ("autoencoder.edm_toy", {"dataset": "fashion_mnist"},
     "diffusion.edm_toy: the name is taken by autoencoder.edm_toy"),
    ("autoencoder.sub/x", {"dataset": "fashion_mnist"}, "a model name must be letters"),
    ("diffusion.edm_toy.method.kind", "flow", "diffusion.edm_toy.method.kind must be one of "
     "['edm', 'ddpm', 'ncsn'], got 'flow'"),
    ("diffusion.edm_toy.method.num_steps", 1, "diffusion.edm_toy.method.num_steps must be >= 2"),
    ("diffusion.edm_toy.method.sigma_min", 30.0, "diffusion.edm_toy.method.sigma_min (30.0) "
     "must be < sigma_max"),
    ("diffusion.edm_toy.guidance", [0.0, -1.0], "diffusion.edm_toy.guidance must be a non-empty"),
    ("evaluator.dropout", 1.0, "evaluator.dropout must be in [0, 1)"),
    ("evaluator.width", 0, "evaluator.width must be > 0"),
    ("evaluate.k", 0, "evaluate.k must be > 0"),
    ("data.fashion_mnist.sources", [], "data.fashion_mnist.sources must not be empty"),
    ("data.fashion_mnist.sources", [{"kind": "ftp"}], "data.fashion_mnist.sources[0].kind"),
    ("data.fashion_mnist.limit_train", -5, "data.fashion_mnist.limit_train must be >= 0"),
    ("data.toy2d.names", ["spiral"], "data.toy2d.names must only name"),
    ("data.moving_fmnist.size", 16, "data.moving_fmnist.size must be >= 28"),
    ("runtime.device", "tpu", "runtime.device must be one of"),
    ("seed", -1, "seed must be an int >= 0"),
    ("evaluator", DELETE, "evaluator is missing"),
    ("trian", {}, "trian is not a known top-level key"),
    ("presets.nosuch", {}, "presets.nosuch is not a model family"),
    ("concepts.ksg_n", 9, "concepts.ksg_n must be in [10, 5000]"),
    ("scratch.cnn.schedule", "step", "scratch.cnn.schedule must be one of"),
]


# ids without object reprs (memory addresses), so every pytest-xdist worker collects the same
@pytest.mark.parametrize("path,value,message", BAD,
                         ids=[f"{p}=<deleted>" if v is DELETE else f"{p}={v!r}" for p, v, _ in BAD])
def test_bad_value_names_its_key(params, path, value, message):
    with pytest.raises(ConfigError) as err:
        validate_params(_set(params, path, value))
    assert message in str(err.value)


def test_defaults_and_int_to_float():
    cfg = load(AutoencoderConfig, {"lr": 1, "model": {"widths": [8, 16]},
                                   "dataset": "fashion_mnist"}, "autoencoder.x")
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float)
    assert cfg.model.widths == (8, 16) and cfg.batch_size == 128


def test_required_key_is_reported():
    from genlab.data.config import DataConfig

    with pytest.raises(ConfigError, match="data.fashion_mnist is required"):
        load(DataConfig, {}, "data")


def test_config_is_frozen():
    cfg = load(AutoencoderConfig, {"dataset": "fashion_mnist"}, "autoencoder.x")
    with pytest.raises(AttributeError):
        cfg.lr = 3.0


def test_tagged_section_picks_its_class_by_kind():
    """`method` is typed by its kind: each kind gets its own class, defaults and checks."""
    cfg = load(DiffusionConfig, {"dataset": "toy2d/two_moons", "net": {"kind": "mlp"},
                                 "method": {"kind": "ncsn", "num_scales": 7}}, "diffusion.x")
    assert isinstance(cfg.method, NCSNConfig) and cfg.method.num_scales == 7
    edm = load(DiffusionConfig, {"dataset": "toy2d/two_moons", "net": {"kind": "mlp"}}, "d.x")
    assert isinstance(edm.method, EDMConfig)  # no method section: the first kind's defaults
    with pytest.raises(ConfigError, match=r"d.x.method.num_scales is not a known key"):
        load(DiffusionConfig, {"dataset": "toy2d/two_moons", "net": {"kind": "mlp"},
                               "method": {"kind": "edm", "num_scales": 7}}, "d.x")


def _stage(tmp_path, params, *argv):
    import yaml

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return subprocess.run([sys.executable, "-m", *argv], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def test_stage_rejects_bad_params_before_reading_data(tmp_path, params):
    """A real stage process: exit 2, one line naming the key, nothing written."""
    proc = _stage(tmp_path, _set(params, "autoencoder.ae.lr", -3e-4),
                  "stages.train", "autoencoder", "ae")
    assert proc.returncode == 2, proc.stderr
    assert "autoencoder.ae.lr must be > 0 and finite, got -0.0003" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def test_stage_refuses_an_output_folder_it_cannot_write_before_any_work(tmp_path, params):
    """`models` is a file here (a permission check cannot fail for root): exit 2, one line."""
    (tmp_path / "models").write_text("not a folder")
    proc = _stage(tmp_path, params, "stages.train", "autoencoder", "ae")
    assert proc.returncode == 2, proc.stderr
    assert "error: cannot create output folder models" in proc.stderr
    assert not (tmp_path / "checkpoints").exists() or not any((tmp_path / "checkpoints").iterdir())


@pytest.mark.parametrize("argv,message", [
    (["autoencoder", "vae"], "autoencoder.vae is not in params.yaml"),
    (["nosuch", "ae"],
     f"no model family 'nosuch' (families: {families.available()})"),
    (["ae"], "usage: python -m stages.train <family> <name>"),
])
def test_unknown_family_or_model_is_reported(tmp_path, params, argv, message):
    proc = _stage(tmp_path, params, "stages.train", *argv)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr


# ---------------------------------------------------------------------------------------------
# Profiles: `profile: gpu` merges each section's `gpu:` overrides.

def test_profile_overrides_merge_deeply_and_both_profiles_are_validated(params):
    from genlab.config import apply_profile

    raw = {"lr": 1.0, "net": {"a": 1, "b": 2}, "gpu": {"net": {"b": 3}, "lr": 2.0},
           "cpu": {"steps": 5}}
    assert apply_profile(raw, "gpu", "x") == {"lr": 2.0, "net": {"a": 1, "b": 3}}
    assert apply_profile(raw, "cpu", "x") == {"lr": 1.0, "net": {"a": 1, "b": 2}, "steps": 5}
    raw = params["diffusion"]["edm_fmnist"]
    cpu = load_section(DiffusionConfig, raw, "diffusion.edm_fmnist", "cpu")
    gpu = load_section(DiffusionConfig, raw, "diffusion.edm_fmnist", "gpu")
    assert gpu.max_seconds == 240.0 and cpu.max_seconds != gpu.max_seconds
    assert gpu.net.model_channels > cpu.net.model_channels
    assert gpu.net.channel_mult == cpu.net.channel_mult  # untouched keys come from the base
    # A bad value in the inactive profile is still caught, and named with its profile.
    bad = _set(params, "diffusion.edm_fmnist.gpu.lr", -1.0)
    assert bad["profile"] == "cpu"
    with pytest.raises(ConfigError, match=r"diffusion.edm_fmnist.lr must be > 0.*overrides of "
                                          r"diffusion.edm_fmnist.gpu"):
        validate_params(bad)


@pytest.mark.parametrize("path,value,message", [
    ("profile", "tpu", "profile must be one of ['cpu', 'gpu']"),
    ("diffusion.edm_fmnist.gpu", 3, "diffusion.edm_fmnist.gpu must be a mapping of overrides"),
    ("diffusion.edm_fmnist.gpu.net", {"model_channels": 0}, "model_channels must be > 0"),
    ("evaluate.gpu", {"sample_batch_size": 0}, "evaluate.sample_batch_size must be > 0"),
    ("runtime.compile", "yes", "runtime.compile must be one of"),
    ("diffusion.ncsn_fmnist.method.parametrization", "eps",
     "method.parametrization must be one of"),
    ("diffusion.ncsn_fmnist.method.parametrization", "score",
     "diffusion.ncsn_fmnist.method.weighting 'unit' weights the denoiser parametrization's"),
    ("diffusion.ncsn_fmnist.method.weighting", "edm", "method.weighting must be one of"),
    ("diffusion.edm_fmnist.max_seconds", -1.0, "diffusion.edm_fmnist.max_seconds must be >= 0"),
    ("diffusion.edm_fmnist.dataset", "mnist",
     "must be one of ['fashion_mnist', 'cifar10', 'celeba',"),
])
def test_bad_profile_and_speed_keys_are_named(params, path, value, message):
    with pytest.raises(ConfigError) as err:
        validate_params(_set(params, path, value))
    assert message in str(err.value)


def test_celeba_cannot_be_conditional(params):
    p = _set(params, "diffusion.edm_fmnist.dataset", "celeba")
    with pytest.raises(ConfigError, match="celeba has no class labels"):
        validate_params(p)
