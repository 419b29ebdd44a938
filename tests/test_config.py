"""params.yaml validation: the committed file is valid, and each bad value is one clear error
that names its key path."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest

from genlab.config import AETrainConfig, ConfigError, load, load_train
from stages._common import validate_params
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
    ("train.ae.lr", -1.0, "train.ae.lr must be > 0"),
    ("train.ae.lr", "fast", "train.ae.lr must be float"),
    ("train.ae.steps", 0, "train.ae.steps must be > 0"),
    ("train.ae.steps", 10.5, "train.ae.steps must be int"),
    ("train.ae.batch_size", True, "train.ae.batch_size must be int"),
    ("train.ae.decay", "linear", "train.ae.decay must be one of"),
    ("train.ae.grad_clip", -0.1, "train.ae.grad_clip must be >= 0"),
    ("train.ae.lrr", 0.1, "train.ae.lrr is not a known key"),
    ("train.ae.model.kind", "mlp", "train.ae.model.kind 'mlp' does not fit"),
    ("train.ae.model.widths", [], "train.ae.model.widths must be a non-empty list"),
    ("train.ae.model.widths", [32, -8], "train.ae.model.widths must be a non-empty list"),
    ("train.ae.objective.noise_levels", [0.1, -0.5], "train.ae.objective.noise_levels"),
    ("train.ae.dataset", "mnist", "train.ae.dataset must be fashion_mnist or toy2d"),
    ("train.ae.family", "gan", "train.ae.family must be one of"),
    ("evaluator.dropout", 1.0, "evaluator.dropout must be in [0, 1)"),
    ("evaluator.width", 0, "evaluator.width must be > 0"),
    ("evaluate.k", 0, "evaluate.k must be > 0"),
    ("data.fashion_mnist.sources", [], "data.fashion_mnist.sources must list at least one"),
    ("data.fashion_mnist.sources", [{"kind": "ftp"}], "data.fashion_mnist.sources[0].kind"),
    ("data.fashion_mnist.limit_train", -5, "data.fashion_mnist.limit_train must be >= 0"),
    ("data.toy2d.names", ["spiral"], "data.toy2d.names must only name"),
    ("data.moving_fmnist.size", 16, "data.moving_fmnist.size must be >= 28"),
    ("runtime.device", "tpu", "runtime.device must be one of"),
    ("seed", -1, "seed must be an int >= 0"),
    ("evaluator", DELETE, "evaluator is missing"),
    ("trian", {}, "trian is not a known top-level key"),
]


# ids without object reprs (memory addresses), so every pytest-xdist worker collects the same
@pytest.mark.parametrize("path,value,message", BAD,
                         ids=[f"{p}=<deleted>" if v is DELETE else f"{p}={v!r}" for p, v, _ in BAD])
def test_bad_value_names_its_key(params, path, value, message):
    with pytest.raises(ConfigError) as err:
        validate_params(_set(params, path, value))
    assert message in str(err.value)


def test_defaults_and_int_to_float():
    cfg = load(AETrainConfig, {"lr": 1, "model": {"widths": [8, 16]}}, "train.x")
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float)
    assert cfg.model.widths == (8, 16) and cfg.batch_size == 128


def test_required_key_is_reported():
    with pytest.raises(ConfigError, match="data.fashion_mnist is required"):
        from genlab.config import DataConfig

        load(DataConfig, {}, "data")


def test_config_is_frozen():
    cfg = load_train({}, "ae")
    with pytest.raises(AttributeError):
        cfg.lr = 3.0


def test_stage_rejects_bad_params_before_reading_data(tmp_path, params):
    """A real stage process: exit 2, one line naming the key, nothing written."""
    import yaml

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(_set(params, "train.ae.lr", -3e-4)))
    proc = subprocess.run([sys.executable, "-m", "stages.train", "ae"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2, proc.stderr
    assert "train.ae.lr must be > 0, got -0.0003" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def test_unknown_model_name_is_reported(tmp_path, params):
    import yaml

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    proc = subprocess.run([sys.executable, "-m", "stages.train", "vae"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2 and "train.vae is not in params.yaml" in proc.stderr


# ---------------------------------------------------------------------------------------------
# Profiles: `profile: gpu` merges each section's `gpu:` overrides.

def test_profile_overrides_merge_deeply_and_both_profiles_are_validated(params):
    from genlab.config import apply_profile

    raw = {"lr": 1.0, "net": {"a": 1, "b": 2}, "gpu": {"net": {"b": 3}, "lr": 2.0},
           "cpu": {"steps": 5}}
    assert apply_profile(raw, "gpu", "x") == {"lr": 2.0, "net": {"a": 1, "b": 3}}
    assert apply_profile(raw, "cpu", "x") == {"lr": 1.0, "net": {"a": 1, "b": 2}, "steps": 5}
    cpu = load_train(params["train"]["edm_fmnist"], "edm_fmnist", "cpu")
    gpu = load_train(params["train"]["edm_fmnist"], "edm_fmnist", "gpu")
    assert gpu.max_seconds == 240.0 and cpu.max_seconds == 0.0
    assert gpu.net.model_channels > cpu.net.model_channels
    assert gpu.net.channel_mult == cpu.net.channel_mult  # untouched keys come from the base
    # A bad value in the inactive profile is still caught, and named with its profile.
    bad = _set(params, "train.edm_fmnist.gpu.lr", -1.0)
    assert bad["profile"] == "cpu"
    with pytest.raises(ConfigError,
                       match=r"train.edm_fmnist.lr must be > 0.*overrides of train.edm_fmnist.gpu"):
        validate_params(bad)


@pytest.mark.parametrize("path,value,message", [
    ("profile", "tpu", "profile must be one of ['cpu', 'gpu']"),
    ("train.edm_fmnist.gpu", 3, "train.edm_fmnist.gpu must be a mapping of overrides"),
    ("train.edm_fmnist.gpu.net", {"model_channels": 0}, "model_channels must be > 0"),
    ("evaluate.gpu", {"sample_batch_size": 0}, "evaluate.sample_batch_size must be > 0"),
    ("runtime.compile", "yes", "runtime.compile must be one of"),
    ("train.ncsn_fmnist.method.parametrization", "eps", "method.parametrization must be one of"),
    ("train.ncsn_fmnist.method.parametrization", "score",
     "train.ncsn_fmnist.method.weighting 'unit' weights the denoiser parametrization's"),
    ("train.ncsn_fmnist.method.weighting", "edm", "method.weighting must be one of"),
    ("train.edm_fmnist.max_seconds", -1.0, "train.edm_fmnist.max_seconds must be >= 0"),
    ("train.edm_fmnist.dataset", "mnist", "must be one of ['fashion_mnist', 'cifar10', 'celeba']"),
])
def test_bad_profile_and_speed_keys_are_named(params, path, value, message):
    with pytest.raises(ConfigError) as err:
        validate_params(_set(params, path, value))
    assert message in str(err.value)


def test_celeba_cannot_be_conditional(params):
    p = _set(params, "train.edm_fmnist.dataset", "celeba")
    with pytest.raises(ConfigError, match="celeba has no class labels"):
        validate_params(p)
