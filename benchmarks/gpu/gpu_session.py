"""One prepared GPU session: the Fashion-MNIST GPU presets and the U-Net benchmarks in one go.

Runs the stages directly (no dvc, MLflow off) under `profile: gpu`, with params.yaml
rewritten for the machine (and put back at exit), then packs what it measured into
<out>/results.tgz and prints a summary table. Parts (--parts picks a subset, so the session
can be split over calls), each with its own time limit so one failure does not sink the
rest; results.tgz is rewritten after each part, so a session cut short still returns what it
measured:

  data      fetch + preprocess Fashion-MNIST from a local folder of the four IDX .gz files;
  bench     bench_unet.py (next to this file): the 56 M CIFAR-10-size U-Net at batch 512
            (compiled and eager bf16, or --cifar-variants), then which random-number calls
            the Triton kernels inductor generated use (summary.json's rng_in_generated_code:
            tl.rand is one Philox call per element, rand4x one per four; the code cache is
            TORCHINDUCTOR_CACHE_DIR, by default <tmp>/genlab_inductor); bench_fmnist (not in
            the default list): the Fashion-MNIST GPU preset;
  profile   (not in the default list) profile_unet.py --compile on the 56 M network
            at batch 512: GPU time per kernel, and which aten op launched each non-Triton
            kernel; with TORCH_LOGS=output_code, so logs/profile_unet.log also holds the code
            inductor generated;
  bandwidth (not in the default list) a few compiled training steps of the same network with
            inductor's bandwidth profiler on (TORCHINDUCTOR_PROFILE=1): each Triton kernel
            timed alone, with the bytes it moves and its GB/s, in res/triton_bandwidth.txt
            (one table per compiled graph, slowest kernels first);
  train     the --models (edm_fmnist, ddpm_fmnist, ncsn_fmnist) CONCURRENTLY, each for its
            preset's max_seconds (240 s) of wall time after its first (compiling) step: with
            k of them each gets roughly 1/k of the GPU;
  sampling  10k EDM samples at 35 NFE (benchmarks/bench_sampling.py), nothing else running;
  evaluate  the trained ones (FD / precision / recall, CFG sweep), one after the other in
            the order of --models (concurrent evaluations starved the EDM sweep);
  resample  (not in the default list) the evaluate stage again for each --resample SPEC, on
            the weights already trained on this machine, with the spec's sampler settings:
            res/resample_<i>_<model>.json holds each run's metrics and its spec.

--resample MODEL:KEY=VALUE[;KEY=VALUE...] (repeatable) sets keys under diffusion.<MODEL>.gpu for
one evaluation, e.g. DDPM's samplers on the model the train part just made:

    --parts resample --resample "ddpm_fmnist:method.ddim_eta=1.0" \
        --resample "ddpm_fmnist:method.sampler=ancestral"

--models picks which of the three Fashion-MNIST presets train and evaluate (default all).

The data part needs --fmnist, the folder of the IDX files; evaluate and resample need
models/evaluator.pt (trained by the CPU pipeline); the U-Net parts (bench, bench_fmnist,
profile, bandwidth) need neither. E.g.

    python benchmarks/gpu/gpu_session.py --fmnist .gpu_data/fashion-mnist --out $OUT
    python benchmarks/gpu/gpu_session.py --parts bench,bandwidth --out $OUT

--set KEY=VALUE (repeatable) edits the rewritten params.yaml after everything else, with VALUE
read as YAML; KEY is a dotted path whose parent must exist, e.g. a batch-512 EDM trial:

    --models edm_fmnist --set diffusion.edm_fmnist.gpu.batch_size=512 \
        --set diffusion.edm_fmnist.gpu.lr=2e-3

--smoke shrinks every step (seconds of training, 200 samples, a tiny bench) so the whole path
can be checked on a CPU before spending GPU time.

The stages write where the pipeline does (data/, models/, metrics/, figures/): on the lent
machine that is a throw-away copy, but run here (e.g. --smoke) it overwrites this checkout's
outputs; `git checkout -- metrics figures` and `dvc checkout -f` bring them back.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent  # benchmarks/gpu: bench_unet.py, profile_unet.py
MODELS = ("edm_fmnist", "ddpm_fmnist", "ncsn_fmnist")
PARTS = ("data", "bench", "bench_fmnist", "profile", "bandwidth", "train", "sampling",
         "evaluate", "resample")
T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:6.1f} s] {msg}", flush=True)


def apply_sets(params: dict, sets: list[str]) -> dict:
    """params with each 'a.b.c=value' of sets applied (value parsed as YAML); a missing parent
    key or a malformed item is an error that names it."""
    for item in sets:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE")
        *parents, last = key.split(".")
        node = params
        for i, k in enumerate(parents):
            if not isinstance(node, dict) or k not in node:
                raise ValueError(f"--set {item!r}: params.yaml has no "
                                 f"{'.'.join(parents[:i + 1])}")
            node = node[k]
        if not isinstance(node, dict):
            raise ValueError(f"--set {item!r}: {'.'.join(parents)} is not a mapping")
        value = yaml.safe_load(raw)
        if isinstance(value, str):  # PyYAML reads 2e-3 as a string (YAML 1.1 wants 2.0e-3)
            try:
                value = float(value)
            except ValueError:
                pass
        node[last] = value
    return params


def parse_resample(spec: str) -> tuple[str, list[str]]:
    """'ddpm_fmnist:method.ddim_eta=1.0;method.ddim_steps=50' -> (model, --set items under
    diffusion.<model>.gpu); a malformed spec or an unknown model is an error that names it."""
    model, sep, rest = spec.partition(":")
    if not sep or model not in MODELS or not rest.strip():
        raise ValueError(f"--resample {spec!r}: expected MODEL:KEY=VALUE[;KEY=VALUE...] with "
                         f"MODEL one of {', '.join(MODELS)}")
    items = [item.strip() for item in rest.split(";") if item.strip()]
    return model, [f"diffusion.{model}.gpu.{item}" for item in items]


def written_since(path: Path, t0: float) -> list[Path]:
    """The files at path (the file itself, or every file under a folder) last modified at or
    after t0 (time.time()); none when path does not exist."""
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
    else:
        files = []
    return [f for f in files if f.stat().st_mtime >= t0]


def write_params(fmnist: Path | None, smoke: bool, compile_: str, sets: list[str]) -> None:
    p = yaml.safe_load(Path("params.yaml").read_text())
    p["profile"] = "gpu"
    p["tracking"]["enabled"] = False
    p["runtime"] |= {"progress": False, "compile": compile_}
    if fmnist is not None:
        p["data"]["fashion_mnist"]["sources"] = [{"kind": "local", "path": str(fmnist)}]
    p["data"]["moving_fmnist"]["enabled"] = False
    if smoke:
        tiny = {"max_seconds": 3.0, "eval_samples": 200, "batch_size": 16, "log_every": 5,
                "net": {"model_channels": 8, "num_blocks": 1, "num_heads": 1}}
        for m in MODELS:
            p["diffusion"][m]["gpu"] |= tiny
            p["diffusion"][m]["gpu"]["method"] = p["diffusion"][m]["gpu"].get("method", {}) | (
                {"num_scales": 10, "n_steps_each": 2} if m.startswith("ncsn") else {})
        p["evaluate"]["gpu"]["sample_batch_size"] = 100
        p["data"]["fashion_mnist"] |= {"limit_train": 2000, "limit_test": 500}
        p["data"]["toy2d"] |= {"n_train": 500, "n_test": 200}
    apply_sets(p, sets)
    Path("params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))


def run(cmd: list[str], logfile: Path, timeout: float, env: dict | None = None) -> int:
    log(f"$ {' '.join(cmd)}  (limit {timeout:.0f} s)")
    with logfile.open("w") as f:
        try:
            return subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, timeout=timeout,
                                  env=env).returncode
        except subprocess.TimeoutExpired:
            log(f"timed out: {' '.join(cmd)}")
            return 124


def run_parallel(cmds: dict[str, list[str]], logs: Path, timeout: float) -> dict[str, int]:
    procs = {}
    for key, cmd in cmds.items():
        log(f"$ {' '.join(cmd)} &")
        procs[key] = (subprocess.Popen(cmd, stdout=(logs / f"{key}.log").open("w"),
                                       stderr=subprocess.STDOUT), time.perf_counter())
    codes = {}
    for key, (proc, t) in procs.items():
        try:
            codes[key] = proc.wait(timeout=max(1.0, timeout - (time.perf_counter() - t)))
        except subprocess.TimeoutExpired:
            proc.kill()
            codes[key] = 124
        log(f"{key}: exit {codes[key]}")
    return codes


RNG_CALLS = ("tl.rand(", "rand4x(", "tl.randn(", "randn4x(")


def rng_in_generated_code(cache_dir: Path) -> dict:
    """How the Triton kernels inductor wrote to cache_dir draw random numbers: for each call
    in RNG_CALLS, how many of its Python files holding Triton code use it (kernel files and
    the wrappers that embed them, so a kernel can count twice: read which calls occur, not
    how often). tl.rand / tl.randn run one 10-round Philox per element; rand4x / randn4x
    (torch 2.13+) one per four elements."""
    counts = dict.fromkeys(RNG_CALLS, 0)
    files = 0
    for f in cache_dir.rglob("*.py") if cache_dir.is_dir() else []:
        try:
            src = f.read_text(errors="replace")
        except OSError:
            continue
        if "@triton.jit" not in src:
            continue
        files += 1
        for call in RNG_CALLS:
            counts[call] += call in src
    return {"cache_dir": str(cache_dir), "triton_files": files, "files_calling": counts}


def bench_variants() -> list[str]:
    """bench_unet.py's variant names (it imports genlab from this checkout's src/)."""
    for path in (str(HERE), str(HERE.parents[1] / "src")):
        if path not in sys.path:
            sys.path.insert(0, path)
    from bench_unet import VARIANTS

    return list(VARIANTS)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fmnist", type=Path, default=None,
                    help="folder with the 4 IDX .gz files (the data part needs it)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--budget", type=float, default=570.0, help="seconds for the whole session")
    ap.add_argument("--train-compile", default="auto", choices=("auto", "on", "off"),
                    help="runtime.compile for trainings, sampling and evaluation (the first "
                    "training step, which compiles, is off the 240 s clock)")
    ap.add_argument("--parts", default="data,bench,train,sampling,evaluate",
                    help="comma-separated subset of "
                    "data,bench,bench_fmnist,profile,train,sampling,evaluate,resample")
    ap.add_argument("--cifar-variants", default="compiled,eager-bf16",
                    help="bench_unet.py variants for the CIFAR-10-size network")
    ap.add_argument("--models", default=",".join(MODELS),
                    help="comma-separated subset of " + ",".join(MODELS))
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: a CPU check of the path")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="params.yaml edit after the rewrite, e.g. "
                    "diffusion.edm_fmnist.gpu.lr=2e-3")
    ap.add_argument("--resample", action="append", default=[], metavar="MODEL:KEY=VALUE;...",
                    help="part resample: one more evaluation of MODEL with these settings "
                    "under diffusion.MODEL.gpu")
    args = ap.parse_args(argv)
    try:
        resamples = [parse_resample(spec) for spec in args.resample]
    except ValueError as e:
        sys.exit(f"error: {e}")
    models = [m for m in args.models.split(",") if m]
    if not models or set(models) - set(MODELS):
        sys.exit(f"error: --models {args.models!r}: pick from {','.join(MODELS)}")
    parts = args.parts.split(",")
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        sys.exit(f"error: --parts: unknown {unknown}; pick from {','.join(PARTS)}")
    variants = bench_variants()
    cifar_variants = args.cifar_variants.split(",")
    unknown = [v for v in cifar_variants if v not in variants]
    if unknown:
        sys.exit(f"error: --cifar-variants: unknown {unknown}; pick from {','.join(variants)}")
    if "data" in parts:
        if args.fmnist is None:
            sys.exit("error: --parts data needs --fmnist, the folder of the IDX .gz files")
        for f in ("train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz"):
            if not (args.fmnist / f).is_file():
                sys.exit(f"error: {args.fmnist / f} not found (--fmnist)")
    if {"evaluate", "resample"} & set(parts) and not Path("models/evaluator.pt").is_file():
        sys.exit("error: models/evaluator.pt not found (the evaluate and resample parts need "
                 "it): train it with the CPU pipeline first")
    root = Path.cwd()
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(root / "src"), str(root), *filter(None, [os.environ.get("PYTHONPATH")])])
    os.environ["PYTHONUNBUFFERED"] = "1"
    # inductor's code cache at a known place, so the session can report how it draws dropout
    inductor_cache = Path(os.environ.setdefault(
        "TORCHINDUCTOR_CACHE_DIR", str(Path(tempfile.gettempdir()) / "genlab_inductor")))
    logs = args.out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    res = args.out / "res"
    res.mkdir(exist_ok=True)
    bandwidth_table = res / "triton_bandwidth.txt"
    py = sys.executable
    env_info = subprocess.run(["nvidia-smi"], capture_output=True, text=True) \
        if shutil.which("nvidia-smi") else None
    (logs / "nvidia-smi.txt").write_text(env_info.stdout if env_info else "no nvidia-smi\n")
    remaining = lambda: args.budget - (time.perf_counter() - T0)  # noqa: E731
    summary: dict = {"smoke": args.smoke, "steps": {}}
    started = time.time()

    def pack() -> None:
        """results.tgz with whatever this session has written so far (called after every
        part, so a session cut short still returns what it measured). Metrics, figures and
        samples that the checkout already held (the CPU pipeline's) are left out, of the
        summary too, so no number in it predates the session."""
        for m in MODELS:
            for src in (Path(f"metrics/eval/{m}.json"), Path(f"metrics/train/{m}.json")):
                if written_since(src, started):
                    summary.setdefault(m, {})[src.parent.name] = json.loads(src.read_text())
        summary["seconds"] = time.perf_counter() - T0
        (res / "summary.json").write_text(json.dumps(summary, indent=2))
        fresh = [f for path in [Path("metrics"), *[Path(f"figures/{m}") for m in MODELS],
                                *[Path(f"data/samples/{m}.npz") for m in MODELS]]
                 for f in written_since(path, started)]
        with tarfile.open(args.out / "results.tgz", "w:gz") as tar:
            for path in [res, logs, Path("params.yaml"), *fresh]:
                if path.exists():
                    tar.add(path, arcname=str(path).replace(str(args.out) + os.sep, ""))
        shutil.copy(res / "summary.json", args.out / "summary.json")

    # The rewritten params.yaml is for this session only (results.tgz keeps a copy): the
    # original comes back when the script exits, also after an error.
    params_file = Path("params.yaml").resolve()
    atexit.register(params_file.write_text, params_file.read_text())
    try:
        write_params(args.fmnist, args.smoke, args.train_compile, args.sets)
        for spec, (_, extra) in zip(args.resample, resamples, strict=True):
            try:  # every spec's keys are checked before anything runs
                apply_sets(yaml.safe_load(Path("params.yaml").read_text()), extra)
            except ValueError as e:
                raise ValueError(f"--resample {spec!r}: {e}") from e
    except ValueError as e:
        sys.exit(f"error: {e}")
    base_params = Path("params.yaml").read_text()

    # 1. Data.
    if "data" in parts:
        for stage in ("fetch", "preprocess"):
            summary["steps"][stage] = run([py, "-m", f"stages.{stage}"], logs / f"{stage}.log",
                                          120)

    # 2. U-Net throughput first (it also shows whether torch.compile works on this machine):
    #    the CIFAR-10-size network at batch 512, then the Fashion-MNIST preset alone.
    small = ["--preset", "fmnist_gpu", "--batch", "128", "--warmup", "20", "--steps", "60",
             "--variants", "compiled,eager-bf16"]
    big = ["--preset", "edm_cifar10", "--batch", "512", "--warmup", "10", "--steps", "40",
           "--variants", args.cifar_variants]
    if args.smoke:
        small = ["--preset", "fmnist_cpu", "--batch", "4", "--warmup", "1", "--steps", "1",
                 "--variants", "eager-bf16"]
        big = small
    if "bench" in parts:
        summary["steps"]["bench_cifar"] = run(
            [py, str(HERE / "bench_unet.py"), *big, "--json", str(res / "bench_unet_cifar.json")],
            logs / "bench_unet_cifar.log",  # ~150 s a compiled variant (120 s compiling),
            # more for compiled-autotune, which benchmarks block sizes for every kernel
            min(170.0 * len(cifar_variants)
                + (230.0 if "compiled-autotune" in cifar_variants else 0.0), remaining() - 10))
        summary["rng_in_generated_code"] = rng_in_generated_code(inductor_cache)
        pack()
    if "bench_fmnist" in parts:
        summary["steps"]["bench_fmnist"] = run(
            [py, str(HERE / "bench_unet.py"), *small, "--json",
             str(res / "bench_unet_fmnist.json")],
            logs / "bench_unet_fmnist.log", min(150.0, remaining() - 10))
        pack()

    if "profile" in parts:
        prof = ["--preset", "fmnist_cpu", "--batch", "4", "--warmup", "0", "--steps", "1"] \
            if args.smoke else ["--preset", "edm_cifar10", "--batch", "512", "--compile"]
        summary["steps"]["profile"] = run(
            [py, str(HERE / "profile_unet.py"), *prof, "--json", str(res / "profile_unet.json")],
            logs / "profile_unet.log", min(330.0, remaining() - 10),
            env=os.environ | {"TORCH_LOGS": "output_code"})  # the generated code to the log
        pack()

    if "bandwidth" in parts:
        # A few steps suffice: the profiler times each kernel once, alone, on its first call.
        bw = ["--preset", "fmnist_cpu", "--batch", "4", "--warmup", "1", "--steps", "1",
               "--variants", "eager-bf16"] if args.smoke else \
            ["--preset", "edm_cifar10", "--batch", "512", "--warmup", "2", "--steps", "2",
             "--variants", "compiled"]
        summary["steps"]["bandwidth"] = run(
            [py, str(HERE / "bench_unet.py"), *bw], logs / "bandwidth.log",
            min(240.0, remaining() - 10),
            env=os.environ | {"TORCHINDUCTOR_PROFILE": "1",
                              "TORCHINDUCTOR_PROFILE_OUTPUT": str(bandwidth_table.resolve())})
        pack()

    # 3. Three trainings at once, each on its own time budget (first step = compile warm-up,
    #    off the clock).
    if "train" in parts:
        summary["steps"]["train"] = run_parallel(
            {f"train_{m}": [py, "-m", "stages.train", "diffusion", m] for m in models}, logs,
            timeout=min(420.0, remaining() - 60))
        pack()

    # 4. Sampling time, alone on the GPU.
    if "sampling" in parts:
        n = "200" if args.smoke else "10000"
        summary["steps"]["bench_sampling"] = run(
            [py, str(HERE.parent / "bench_sampling.py"), "edm_fmnist", "--n", n, "--batch",
             "100" if args.smoke else "2500", "--json", str(res / "sampling_edm_fmnist.json")],
            logs / "bench_sampling.log", min(120.0, remaining() - 30))
        pack()

    # 5. Evaluations (not timed), at once.
    if "evaluate" in parts:
        summary["steps"]["evaluate"] = {}
        for m in models:
            summary["steps"]["evaluate"][m] = run(
                [py, "-m", "stages.evaluate", "diffusion", m], logs / f"evaluate_{m}.log",
                remaining() - 8)
            pack()

    # 6. More evaluations of trained models under other sampler settings.
    if "resample" in parts:
        for i, (model, extra) in enumerate(resamples):
            Path("params.yaml").write_text(yaml.safe_dump(
                apply_sets(yaml.safe_load(base_params), extra), sort_keys=False))
            key = f"resample_{i}_{model}"
            code = run([py, "-m", "stages.evaluate", "diffusion", model], logs / f"{key}.log",
                       remaining() - 8)
            summary["steps"][key] = code
            metrics = Path(f"metrics/eval/{model}.json")
            if code == 0 and metrics.exists():
                (res / f"{key}.json").write_text(json.dumps(
                    {"spec": args.resample[i], "metrics": json.loads(metrics.read_text())},
                    indent=2))
            pack()
        Path("params.yaml").write_text(base_params)

    pack()
    log("done")
    if args.smoke and set(parts) & {"data", "train", "sampling", "evaluate", "resample"}:
        log("the stages rewrote this checkout's outputs: `git checkout -- metrics figures` "
            "and `dvc checkout -f` restore them")
    print(json.dumps(summary["steps"]))
    for m in (m for m in MODELS if m in summary):
        met = summary[m]
        tr, ev = met.get("train", {}), met.get("eval", {})
        keys = sorted(k for k in ev if k.startswith("sample_") or k.startswith("fd_"))
        print(m, json.dumps({"steps": tr.get("steps"), "train_s": tr.get("train_seconds"),
                             **{k: round(ev[k], 4) for k in keys}}))
    for f in sorted(p.name for p in res.glob("resample_*.json")):
        r = json.loads((res / f).read_text())
        print(f, r["spec"], json.dumps({k: round(v, 4) for k, v in r["metrics"].items()
                                        if k.startswith(("sample_fd", "sample_p", "sample_r"))
                                        and isinstance(v, (int, float))}))
    if (res / "profile_unet.json").exists():
        prof = json.loads((res / "profile_unet.json").read_text())
        print("profile_unet", json.dumps({k: prof.get(k) for k in ("ms_per_step", "warmup_s")}),
              json.dumps({k: round(v, 1) for k, v in prof["by_kind_ms"].items()}))
        for r in prof.get("launchers", [])[:12]:
            print(f"  {r['ms']:7.2f} ms {r['calls']:5.0f}x {r['kernel'][:60]} | "
                  f"{r['chain'][:110]} | {r['shapes'][:80]}")
    if bandwidth_table.exists():
        print("triton_bandwidth.txt (first lines):")
        print("\n".join(bandwidth_table.read_text().splitlines()[:40]))
    for f in ("sampling_edm_fmnist.json", "bench_unet_fmnist.json", "bench_unet_cifar.json"):
        if (res / f).exists():
            print(f, (res / f).read_text()[:1500])


if __name__ == "__main__":
    main(sys.argv[1:])
