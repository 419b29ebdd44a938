"""`genlab`: use the trained models of a genlab checkout without writing Python.

    genlab list                                    models, where they are, headline metrics
    genlab sample edm_fmnist --n 64 --out grid.png [--class 3 --guidance 2 --steps 10]
    genlab interpolate vae_fmnist --rows 8 --steps 10 --out lines.png
    genlab generate-text charlm_fortunes --prompt "The cat"

Run from the repository root (or pass --root). A request the models on disk cannot serve
(model not trained, unknown name, class out of range, option the family cannot use) prints
one line naming it and the command that fixes it, and exits with status 2. The same --seed
gives the same output on the same device.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import yaml

EXIT_USAGE = 2


def _params() -> dict:
    path = Path("params.yaml")
    if not path.is_file():
        from genlab.inference import UsageError

        raise UsageError(f"no params.yaml in {Path.cwd()}: run genlab from a genlab checkout "
                         "or pass --root")
    return yaml.safe_load(path.read_text()) or {}


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def cmd_list(args) -> None:
    from genlab import families
    from genlab.inference import HOOKS, hooks
    from genlab.tracking.report import headline

    params, rows = _params(), []
    for family in families.available():
        section = params.get(family)
        if not isinstance(section, dict):
            continue
        module = hooks(family)
        offers = ",".join(h.replace("_", "-") for h in HOOKS if module and hasattr(module, h))
        role = families.get(family).role
        for name in section:
            path = Path("models") / f"{name}.pt"
            train, ev = (_json(Path(f"metrics/{k}/{name}.json")) for k in ("train", "eval"))
            metric = headline(ev)
            rows.append({
                "model": name, "family": family,
                "status": (f"{path}" if path.is_file() else
                           f"not trained: dvc repro {'pretrain' if role == 'pretrain' else 'train'}"
                           f"-{family}@{name}"),
                "steps": str(train.get("steps", "")),
                "train s": str(train.get("train_seconds", "")),
                "metric": f"{metric[0]} {metric[1]:.4g}" if metric else "",
                "commands": offers or "-",
            })
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    keys = list(rows[0]) if rows else []
    widths = {k: max(len(k), *(len(r[k]) for r in rows)) for k in keys}
    print("  ".join(k.ljust(widths[k]) for k in keys))
    for r in rows:
        print("  ".join(r[k].ljust(widths[k]) for k in keys))


def _load(args):
    import torch

    from genlab.inference import UsageError, load_trained
    from genlab.training.device import pick_device

    try:
        device = pick_device(args.device)
    except RuntimeError as e:
        raise UsageError(f"--device {args.device}: {str(e).split(': ', 1)[-1]}") from None
    m = load_trained(args.name, _params(), device)
    generator = torch.Generator(device=device).manual_seed(args.seed)
    return m, generator


def _save(x, out: Path, title: str, nrow: int) -> None:
    from genlab.data.processed import float_to_images
    from genlab.tracking.figures import save_grid, save_scatter

    out.parent.mkdir(parents=True, exist_ok=True)
    if x.ndim == 4:
        save_grid(float_to_images(x), out, nrow=nrow)
    else:
        save_scatter({title: x.numpy()}, out, title)


def cmd_sample(args) -> None:
    from genlab.inference import UsageError, classes, hook

    if args.n < 1:
        raise UsageError(f"--n must be >= 1, got {args.n}")
    t0 = time.perf_counter()
    m, generator = _load(args)
    sample = hook(m, "sample")
    k = classes(m)
    if args.cls is not None and not 0 <= args.cls < k:
        raise UsageError(f"--class {args.cls} is out of range: model {m.name!r} "
                         + (f"takes classes 0..{k - 1}" if k else "is not class-conditional"))
    if args.guidance is not None and not k:
        raise UsageError(f"--guidance needs a class-conditional model; {m.name!r} is not")
    x = sample(m, args.n, generator, label=args.cls, guidance=args.guidance, steps=args.steps,
               temperature=args.temperature)
    _save(x, args.out, f"{m.name}: {args.n} samples", args.nrow)
    print(f"{args.out}: {args.n} samples of {m.name} ({m.family.name}) in "
          f"{time.perf_counter() - t0:.1f} s on {m.device}")


def cmd_interpolate(args) -> None:
    from genlab.inference import UsageError, hook

    if args.rows < 1 or args.steps < 2:
        raise UsageError(f"--rows must be >= 1 and --steps >= 2, got {args.rows}, {args.steps}")
    t0 = time.perf_counter()
    m, generator = _load(args)
    x = hook(m, "interpolate")(m, args.rows, args.steps, generator)
    _save(x, args.out, f"{m.name}: interpolations", args.steps)
    print(f"{args.out}: {args.rows} interpolations of {args.steps} steps ({m.name}) in "
          f"{time.perf_counter() - t0:.1f} s")


def cmd_generate_text(args) -> None:
    from genlab.inference import UsageError, hook

    if args.chars < 1:
        raise UsageError(f"--chars must be >= 1, got {args.chars}")
    m, generator = _load(args)
    text = hook(m, "generate_text")(m, args.prompt, args.chars, generator,
                                    temperature=args.temperature, top_k=args.top_k,
                                    top_p=args.top_p)
    print(text)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="genlab", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="`genlab <command> --help` for a command's options.")
    p.add_argument("--root", type=Path, default=Path("."),
                   help="the genlab checkout (default: the current folder)")
    sub = p.add_subparsers(dest="command", required=True, metavar="command")

    s = sub.add_parser("list", help="models in params.yaml: trained or not, headline metric")
    s.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    s.set_defaults(fn=cmd_list)

    def model(s, out: str | None = None):
        s.add_argument("name", help="a model's key in params.yaml (see `genlab list`)")
        s.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
        s.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"),
                       help="default auto: cuda, then mps, then cpu")
        if out:
            s.add_argument("--out", type=Path, default=Path(out), help=f"PNG (default {out})")

    s = sub.add_parser("sample", help="draw samples from a trained model into a PNG grid")
    model(s, "samples.png")
    s.add_argument("--n", type=int, default=64, help="samples (default 64)")
    s.add_argument("--nrow", type=int, default=8, help="images per grid row (default 8)")
    s.add_argument("--class", dest="cls", type=int, help="class label (conditional models)")
    s.add_argument("--guidance", type=float, help="classifier-free guidance weight w")
    s.add_argument("--steps", type=int, help="sampler steps (diffusion: EDM steps, DDIM "
                   "steps, NCSN noise levels)")
    s.add_argument("--temperature", type=float, help="latent / token temperature")
    s.set_defaults(fn=cmd_sample)

    s = sub.add_parser("interpolate", help="decoded straight lines between test-image pairs")
    model(s, "interpolations.png")
    s.add_argument("--rows", type=int, default=8, help="pairs, one per row (default 8)")
    s.add_argument("--steps", type=int, default=10, help="images per row (default 10)")
    s.set_defaults(fn=cmd_interpolate)

    s = sub.add_parser("generate-text", help="continue a prompt with a character LM")
    model(s)
    s.add_argument("--prompt", default="", help="text to continue (default: a new record)")
    s.add_argument("--chars", type=int, default=300, help="characters to draw (default 300)")
    s.add_argument("--temperature", type=float, help="default: the model's params")
    s.add_argument("--top-k", type=int, help="default: the model's params")
    s.add_argument("--top-p", type=float, help="default: the model's params")
    s.set_defaults(fn=cmd_generate_text)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from genlab.config import ConfigError
    from genlab.errors import CheckpointError, DataError
    from genlab.inference import UsageError

    if getattr(args, "out", None) is not None:
        args.out = args.out.absolute()  # relative to where genlab was called, not --root
    try:
        os.chdir(args.root)
    except OSError as e:
        print(f"genlab: error: --root {args.root}: {e.strerror}", file=sys.stderr)
        return EXIT_USAGE
    try:
        args.fn(args)
    except (UsageError, ConfigError, DataError, CheckpointError) as e:
        print(f"genlab: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # `genlab list | head`: the reader went away; stop quietly like other filters do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
