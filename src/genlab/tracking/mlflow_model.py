"""A trained model as an MLflow model that anyone can load from the tracking store.

Models whose family samples (`sample` hook in families/<family>/inference.py) or writes text
(`generate_text`, the character LMs) become a pyfunc model: `predict` takes a DataFrame of
requests and returns samples, exactly as `genlab sample` / `genlab generate-text` would:

    m = mlflow.pyfunc.load_model("runs:/<run id>/model")
    m.predict(pd.DataFrame({"n": [16], "seed": [0], "class": [3]}))   # (16, C, H, W) in [-1, 1]
    m.predict(pd.DataFrame({"prompt": ["The "], "chars": [200]}))      # ["The ..."]

The other models (the tokenizers, the synthetic-task GPTs) are pyfunc models of the network
itself: `predict(array)` is the EMA network's forward (a tokenizer's reconstruction, a GPT's
logits), the signature its input and output. The network is rebuilt from the checkpoint's
state dict, never pickled (spectral norm's parametrized modules cannot be), and is at
`model.unwrap_python_model().model.net`.

Either way the model folder is self-contained: genlab's code (code_paths), the checkpoint, and
a small workspace of the files the family's hooks read (a tokenizer a latent model decodes
with, the test images an interpolation starts from, ...), declared by the family's
`bundle(m)` hook; `predict` runs the hooks inside that workspace.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import logging
import math
import shutil
import warnings
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema, TensorSpec

import genlab
from genlab.inference import (
    PROCESSED,
    Trained,
    example_shape,
    hook,
    hooks,
    load_trained,
)

META = "genlab_model.json"
TEST_ROWS = 2000  # test examples kept in the bundle (interpolation pairs are drawn from them)


def kind(m: Trained) -> str:
    """'sample', 'text' or 'module': which MLflow model m becomes."""
    module = hooks(m.family.name)
    if module is not None and hasattr(module, "sample"):
        return "sample"
    if module is not None and hasattr(module, "generate_text") and not getattr(
            module, "synthetic", lambda _: False)(m):
        return "text"
    return "module"


def bundle_files(m: Trained) -> dict[Path, int | None]:
    """Workspace files m's hooks read -> rows of the array to keep (None: the whole file)."""
    files: dict[Path, int | None] = {m.path: None}
    dataset = getattr(m.cfg, "dataset", None)
    if dataset and (PROCESSED / dataset / "test_x.npy").is_file():
        files[PROCESSED / dataset / "test_x.npy"] = TEST_ROWS
    module = hooks(m.family.name)
    if module is not None and hasattr(module, "bundle"):
        files.update(module.bundle(m))
    return files


def write_bundle(m: Trained, root: Path) -> None:
    for path, rows in bundle_files(m).items():
        if path.is_absolute() or ".." in path.parts:
            raise ValueError(f"bundle path {path} must be relative to the workspace")
        dest = root / path
        dest.parent.mkdir(parents=True, exist_ok=True)
        if rows is None or path.suffix != ".npy":
            shutil.copyfile(path, dest)
        else:
            np.save(dest, np.array(np.load(path, mmap_mode="r")[:rows]))
    (root / META).write_text(json.dumps({"name": m.name, "family": m.family.name,
                                          "kind": kind(m)}))


def _requirements() -> list[str]:
    pins = []
    for dist in ("torch", "numpy", "pandas", "pyyaml"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            pins.append(f"{dist}=={importlib.metadata.version(dist).split('+')[0]}")
    return pins


def signature(m: Trained, what: str) -> ModelSignature:
    if what == "text":
        return ModelSignature(
            inputs=Schema([ColSpec("string", "prompt"), ColSpec("long", "chars", required=False),
                           ColSpec("long", "seed", required=False),
                           ColSpec("double", "temperature", required=False)]),
            outputs=Schema([ColSpec("string")]))
    if what == "sample":
        shape = example_shape(m.cfg.dataset)
        return ModelSignature(
            inputs=Schema([ColSpec("long", "n"), ColSpec("long", "seed", required=False),
                           ColSpec("long", "class", required=False),
                           ColSpec("double", "guidance", required=False),
                           ColSpec("long", "steps", required=False),
                           ColSpec("double", "temperature", required=False)]),
            outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, *shape))]))
    module = hooks(m.family.name)
    example = (module.example_input(m) if module is not None and hasattr(module, "example_input")
               else np.zeros((1, *example_shape(m.cfg.dataset)), np.float32))
    with torch.no_grad():
        out = m.net(torch.as_tensor(example)).float().numpy()
    dims_in, dims_out = (-1, *example.shape[1:]), (-1, *out.shape[1:])
    if np.issubdtype(example.dtype, np.integer):  # token ids: any sequence length
        dims_in, dims_out = (-1, -1), (-1, -1, *out.shape[2:])
    return ModelSignature(inputs=Schema([TensorSpec(example.dtype, dims_in)]),
                          outputs=Schema([TensorSpec(np.dtype(np.float32), dims_out)]))


def save(name: str, dest: Path) -> Path:
    """Write models/<name>.pt as an MLflow model folder at dest (replaced if there); run from
    the genlab workspace."""
    m = load_trained(name, {}, "cpu")
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # MLflow warns that the Sampler is cloudpickled and that no input example was given
        # (an example would have it sample at save time; the signature says the same).
        warnings.simplefilter("ignore", UserWarning)
        for logger in ("mlflow.pyfunc", "mlflow.pytorch"):
            logging.getLogger(logger).setLevel(logging.ERROR)
        return _save(m, dest)


def _save(m: Trained, dest: Path) -> Path:
    what = kind(m)
    code = [str(Path(genlab.__file__).parent)]
    common = dict(signature=signature(m, what), pip_requirements=_requirements(),
                  code_paths=code)
    workspace = dest.parent / f"{dest.name}.workspace"
    if workspace.exists():
        shutil.rmtree(workspace)
    write_bundle(m, workspace)
    try:
        mlflow.pyfunc.save_model(str(dest), python_model=Sampler(),
                                 artifacts={"workspace": str(workspace)}, **common)
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
    return dest


def _opt(row: dict, key: str, cast):
    """The request's value for key, None when absent or NaN (the model's own setting)."""
    value = row.get(key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return cast(value)


class Sampler(mlflow.pyfunc.PythonModel):
    """pyfunc of a genlab model: one request per input row; see the module docstring."""

    def load_context(self, context) -> None:
        self.root = Path(context.artifacts["workspace"])
        meta = json.loads((self.root / META).read_text())
        self.kind = meta["kind"]
        with contextlib.chdir(self.root):
            self.model = load_trained(meta["name"], {}, "cpu")

    def predict(self, context, model_input: pd.DataFrame, params=None):
        if self.kind == "module":
            return self._forward(model_input)
        m, out = self.model, []
        with contextlib.chdir(self.root):  # the hooks read the bundled workspace
            for row in model_input.to_dict("records"):
                generator = torch.Generator().manual_seed(_opt(row, "seed", int) or 0)
                if self.kind == "text":
                    out.append(hook(m, "generate_text")(
                        m, str(row["prompt"]), _opt(row, "chars", int) or 200, generator,
                        temperature=_opt(row, "temperature", float)))
                else:
                    out.append(hook(m, "sample")(
                        m, int(row["n"]), generator, label=_opt(row, "class", int),
                        guidance=_opt(row, "guidance", float), steps=_opt(row, "steps", int),
                        temperature=_opt(row, "temperature", float)).float())
        if self.kind == "text":
            return out
        return torch.cat(out).numpy().astype(np.float32)

    def _forward(self, model_input) -> np.ndarray:
        x = torch.as_tensor(np.asarray(model_input))
        with torch.no_grad():
            return self.model.net(x).float().numpy()
