"""The token store: a trained tokenizer's (family vq) outputs for later stages (latent diffusion,
the GPT token prior), written once by its evaluate stage under data/tokens/<name>/.

Format, per split s in {train, test} (.npy files, described by manifest.json as in the
processed-data store: shape, dtype, sha256 of each):
    s_tokens.npy      int32   (N, h, w)     code indices in [0, codes)
    s_latents.npy     float32 (N, D, h, w)  encoder output before quantisation
    s_quantized.npy   float32 (N, D, h, w)  quantised embedding (what the decoder reads)
    s_y.npy           the split's labels, as in data/processed (N,)
manifest.json also holds: tokenizer (models/<name>.pt), codes, latent_shape [D, h, w], and
stats {latents, quantized: {mean, std}}: the mean and std over every element of the train
split's latents. Latent diffusion trains on z / std (Rombach et al. 2022, Sec. 4.3.2: a
latent "scale factor" 1 / std, so the latents have unit variance) and decodes its samples
as tokenizer.decode_latent(z * std).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genlab.data.processed import load_array, read_manifest, save_arrays, write_manifest

SPLITS = ("train", "test")
KINDS = ("latents", "quantized")  # the two continuous latents


def latent_stats(z: np.ndarray, chunk: int = 10000) -> dict[str, float]:
    """Mean and std over every element of z (N, ...), accumulated in float64 by chunks."""
    total, total_sq, n = 0.0, 0.0, 0
    for i in range(0, len(z), chunk):
        c = z[i:i + chunk].astype(np.float64)
        total, total_sq, n = total + c.sum(), total_sq + np.square(c).sum(), n + c.size
    mean = total / n
    return {"mean": mean, "std": float(np.sqrt(max(total_sq / n - mean * mean, 0.0)))}


def write_token_store(root: Path, arrays: dict[str, np.ndarray], meta: dict) -> dict:
    """arrays {"<split>_<kind>": array} -> root/*.npy + manifest.json (with `meta` and the
    train latents' stats); returns the stats."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for old in root.glob("*.npy"):  # a store holds only the current tokenizer's arrays
        old.unlink()
    stats = {k: latent_stats(arrays[f"train_{k}"]) for k in KINDS}
    write_manifest(root, save_arrays(root, arrays), {**meta, "stats": stats})
    return stats


@dataclass(frozen=True)
class TokenSplit:
    tokens: np.ndarray  # (N, h, w) int32
    latents: np.ndarray  # (N, D, h, w) float32, pre-quantisation
    quantized: np.ndarray  # (N, D, h, w) float32
    labels: np.ndarray  # (N,)


def read_token_split(root: Path, split: str) -> TokenSplit:
    """One split of a token store, each array checked against the manifest."""
    assert split in SPLITS, f"split must be one of {SPLITS}, got {split!r}"
    get = lambda kind: load_array(Path(root), f"{split}_{kind}")  # noqa: E731
    return TokenSplit(get("tokens"), get("latents"), get("quantized"), get("y"))


def read_token_meta(root: Path) -> dict:
    """The store's manifest: tokenizer, codes, latent_shape, stats, arrays."""
    return read_manifest(Path(root))
