"""The pipeline report: a summary table of every model's metrics/eval/<model>.json and the
evaluator (pandas), and an offline HTML page + Markdown file with the tables, each model's sweep
table (guidance weights, noise levels), sample grids and loss curves."""

from __future__ import annotations

import base64
import html
import json
import subprocess
from pathlib import Path

import pandas as pd

from genlab.config import flatten

# Columns shown first in the overview table, when a model has them.
KEY_COLUMNS = ["test_accuracy", "recon_mse", "recon_psnr", "recon_fd", "sample_fd",
               "fd_floor_train_vs_test", "fd_noise_ceiling", "sample_precision", "sample_recall",
               "sample_class_accuracy", "recon_swd", "sample_swd", "swd_floor", "swd_gaussian",
               "swd_over_floor", "kl", "modes_covered", "high_quality_frac", "nll_iwae_bpd",
               "test_bpd", "nfe", "final_train_loss", "train_seconds"]

# The ranking tables put every family on one scale: Fashion-MNIST models by sample FD (same
# evaluator, same sample count), toy models by SWD over the true-vs-true floor.
IMAGE_RANK = ["sample_fd", "fd_floor_train_vs_test", "fd_noise_ceiling", "sample_precision",
              "sample_recall", "n_samples", "bits_per_dim", "train_seconds"]
TOY_RANK = ["swd_over_floor", "sample_swd", "swd_floor", "kl", "kl_se", "modes_covered",
            "high_quality_frac", "train_seconds"]
# A likelihood model's bits/dim under the name its family reports it.
BPD_KEYS = ("test_bpd", "nll_iwae_bpd")


INTRO = ("FD here uses genlab's Fashion-MNIST evaluator features: it is not comparable to "
         "Inception FID. Compare each FD with its floor (train vs test) and noise ceiling, at "
         "the same sample count. These numbers are those of the profile the pipeline ran "
         "(the CPU default trains each model on a time budget); a model's section says what "
         "the GPU profile gave where it was measured.")

# A model's headline metric: the first of these its metrics/eval/<model>.json holds (the
# experiments table and `genlab list` show it).
HEADLINE = (
    ("sample_fd", "FD"), ("recon_fd", "recon FD"), ("test_bits_per_dim", "bits/dim"),
    ("test_bits_per_char", "bits/char"), ("accuracy_far_x1", "far acc"),
    ("swd_over_floor", "SWD/floor"), ("recon_mse", "recon MSE"), ("test_accuracy", "test acc"),
)

# Metrics files of the "Foundations" section (first principles), not of generative models.
FOUNDATIONS = ("scratch_cnn", "scratch_ae", "concepts")


def summary_table(metrics_dir: Path) -> pd.DataFrame:
    """One row for the evaluator (metrics/evaluator.json) and one per metrics/eval/<model>.json."""
    paths = [metrics_dir / "evaluator.json"] if (metrics_dir / "evaluator.json").is_file() else []
    paths += sorted((metrics_dir / "eval").glob("*.json"))
    rows = {p.stem: json.loads(p.read_text()) for p in paths}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "model"
    first = [c for c in KEY_COLUMNS if c in table.columns]
    return table[first + sorted(c for c in table.columns if c not in first)]


def ranking(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(image models sorted by sample FD, toy models sorted by SWD / floor), lower is better;
    columns a model lacks stay empty."""
    table = table.copy()
    bpd = [k for k in BPD_KEYS if k in table.columns]
    table["bits_per_dim"] = table[bpd].bfill(axis=1).iloc[:, 0] if bpd else float("nan")

    def ranked(key: str, columns: list[str]) -> pd.DataFrame:
        if key not in table.columns:
            return pd.DataFrame(columns=columns)
        rows = table[table[key].notna()].sort_values(key)
        return rows.reindex(columns=columns).dropna(axis=1, how="all")

    return ranked("sample_fd", IMAGE_RANK), ranked("swd_over_floor", TOY_RANK)


def headline(metrics: dict) -> tuple[str, float] | None:
    """(label, value) of the model's headline metric, None when it has none of HEADLINE."""
    return next(((label, metrics[k]) for k, label in HEADLINE
                 if isinstance(metrics.get(k), int | float)), None)


def overview_table(table: pd.DataFrame,
                   model_params: dict[str, tuple[str, dict]]) -> pd.DataFrame:
    """One row per model: family, headline metric (HEADLINE) and training seconds, in the
    table's order (the cards below hold every metric)."""
    rows = {}
    for model, row in table.iterrows():
        found = headline(row.dropna().to_dict())
        rows[model] = {"family": model_params.get(model, ("", None))[0] or "",
                       "metric": found[0] if found else "",
                       "value": found[1] if found else float("nan"),
                       "train_seconds": row.get("train_seconds", float("nan"))}
    out = pd.DataFrame.from_dict(rows, orient="index",
                                 columns=["family", "metric", "value", "train_seconds"])
    out.index.name = "model"
    return out


def dvc_exp_show(timeout: float = 120.0) -> list | None:
    """`dvc exp show --json` of the current repository (workspace, commits, experiments);
    None when DVC is not there, fails or times out (the report then says so)."""
    try:
        out = subprocess.run(["dvc", "exp", "show", "--json"], capture_output=True, text=True,
                             timeout=timeout)
        return json.loads(out.stdout) if out.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return None


def experiment_runs(show: list) -> list[tuple[str, dict]]:
    """(label, data) for the workspace, each commit and each DVC experiment of `show`
    (`dvc exp show --json`); label: the experiment's name, else the short revision."""
    runs = []
    for entry in show:
        label = "workspace" if entry.get("rev") == "workspace" else (
            entry.get("name") or str(entry.get("rev", ""))[:7])
        if entry.get("data"):
            runs.append((label, entry["data"]))
        for exp in entry.get("experiments") or []:
            for rev in exp.get("revs") or []:
                if rev.get("data"):
                    runs.append((rev.get("name") or str(rev.get("rev", ""))[:7], rev["data"]))
    return runs


def _flat(d: dict) -> dict:
    """config.flatten with list values as JSON text (one table cell each)."""
    return {k: json.dumps(v) if isinstance(v, list) else v for k, v in flatten(d).items()}


def experiments_tables(show: list) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(each model's headline metric per experiment: rows (model, metric), one column per
    experiment; the params.yaml keys whose values differ between the experiments)."""
    metrics, params = {}, {}
    for label, data in experiment_runs(show):
        col = {}
        for path, entry in (data.get("metrics") or {}).items():
            p = Path(path)
            found = headline((entry or {}).get("data") or {}) if p.parent.name == "eval" else None
            if found:
                col[(p.stem, found[0])] = found[1]
        metrics[label] = col
        params[label] = _flat(((data.get("params") or {}).get("params.yaml") or {})
                              .get("data") or {})
    table = pd.DataFrame(metrics)
    if len(table):
        table.index.names = ["model", "metric"]
    p = pd.DataFrame(params)
    changed = p[p.astype(str).nunique(axis=1) > 1] if len(p.columns) > 1 else p.iloc[0:0]
    return table, changed


def _img_tag(png: Path) -> str:
    data = base64.b64encode(png.read_bytes()).decode()
    return f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(png.name)}">' \
           f"<figcaption>{html.escape(png.stem)}</figcaption></figure>"


def build_report(metrics_dir: Path, figures_dir: Path, summary_csv: Path,
                 out_dir: Path, gpu_notes: dict[str, str] | None = None,
                 model_params: dict[str, tuple[str, dict]] | None = None,
                 experiments: list | None = None) -> pd.DataFrame:
    """Write summary_csv and out_dir/index.html + report.md; gpu_notes maps a model to what
    the GPU profile gave for it, shown in its section (models without a note: the CPU run is
    what the GPU profile runs too, or it was not measured). model_params: each model's
    (family, params.yaml section), shown in its card; experiments: `dvc exp show --json`
    output for the table across experiments (None: not available, the report says so)."""
    gpu_notes, model_params = gpu_notes or {}, model_params or {}
    table = summary_table(metrics_dir)
    summary_csv.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(summary_csv, float_format="%.6g")
    out_dir.mkdir(parents=True, exist_ok=True)
    sections_html, sections_md = [], []
    for model in table.index:
        figs = sorted((figures_dir / model).glob("*.png"))
        row = table.loc[model].dropna()
        sweep_path = metrics_dir / "sweeps" / f"{model}.csv"
        sweep = pd.read_csv(sweep_path) if sweep_path.is_file() else None
        gpu = gpu_notes.get(model, "")
        family, raw = model_params.get(model, (None, None))
        params = (pd.Series(_flat(raw), name="value", dtype=object).to_frame()
                  if raw else None)
        sections_html.append(f'<section class="card" id="{html.escape(model)}">'
                             f"<h2>{html.escape(model)}"
                             + (f" <small>({html.escape(family)})</small>" if family else "")
                             + "</h2>"
                             + (f"<p><b>At the GPU profile:</b> {html.escape(gpu)}</p>"
                                if gpu else "")
                             + row.to_frame("value").to_html(float_format="%.5g")
                             + ("" if params is None else "<details><summary>params</summary>"
                                + params.to_html() + "</details>")
                             + ("" if sweep is None else "<h3>sweep</h3>" + sweep.to_html(
                                 index=False, float_format="%.4g", na_rep=""))
                             + '<div class="figs">' + "".join(_img_tag(p) for p in figs)
                             + "</div></section>")
        sections_md.append(f"## {model}\n\n"
                           + (f"**At the GPU profile:** {gpu}\n\n" if gpu else "")
                           + row.to_frame("value").to_markdown(floatfmt=".5g")
                           + ("" if sweep is None else "\n\nSweep:\n\n" + sweep.to_markdown(
                               index=False, floatfmt=".4g"))
                           + "\n\n" + "\n".join(f"![{p.stem}](../{p.as_posix()})" for p in figs))
    found_html, found_md = foundations(metrics_dir, figures_dir)
    overview = overview_table(table, model_params)
    wide = table[[c for c in KEY_COLUMNS if c in table.columns]]
    images, toys = ranking(table)
    rank_html = "".join(f"<h2>{html.escape(title)}</h2>" + t.to_html(float_format="%.4g", na_rep="")
                        for title, t in ((RANK_TITLES[0], images), (RANK_TITLES[1], toys))
                        if len(t))
    exp_html, exp_md = experiments_section(experiments)
    links = overview.copy()
    links.index = [f'<a href="#{html.escape(m)}">{html.escape(m)}</a>' for m in links.index]
    links.index.name = "model"
    (out_dir / "index.html").write_text(_page(links.to_html(float_format="%.4g", na_rep="",
                                                            escape=False)
                                              + rank_html + exp_html
                                              + "<details><summary>All key metrics</summary>"
                                              + wide.to_html(float_format="%.4g", na_rep="")
                                              + "</details>",
                                              "\n".join(sections_html) + found_html))
    rank_md = "".join(f"## {title}\n\n" + _md(t) + "\n\n"
                      for title, t in ((RANK_TITLES[0], images), (RANK_TITLES[1], toys)) if len(t))
    (out_dir / "report.md").write_text("# genlab report\n\n" + INTRO + "\n\n" + _md(overview)
                                       + "\n\n" + rank_md + exp_md + "\n\n".join(sections_md)
                                       + found_md + "\n")
    return table


def experiments_section(show: list | None) -> tuple[str, str]:
    """HTML and Markdown of the table across DVC experiments (headline metric per model)."""
    title = "Across DVC experiments (dvc exp show)"
    if show is None:
        note = "`dvc exp show --json` was not available when the report was built."
        return f"<h2>{title}</h2><p>{html.escape(note)}</p>", f"## {title}\n\n{note}\n\n"
    table, changed = experiments_tables(show)
    note = ("Each model's headline metric in the workspace, the commit and every DVC "
            "experiment (`dvc exp run -S ...`); the params that differ between them below.")
    return (f"<h2>{title}</h2><p>{html.escape(note)}</p>"
            + table.to_html(float_format="%.4g", na_rep="")
            + ("" if changed.empty else "<h3>Params that differ</h3>" + changed.to_html()),
            f"## {title}\n\n{note}\n\n" + _md(table) + "\n\n"
            + ("" if changed.empty else "Params that differ:\n\n" + _md(changed) + "\n\n"))


RANK_TITLES = ("Ranking: Fashion-MNIST models by sample FD (lower is better)",
               "Ranking: toy-set models by SWD over the true-vs-true floor (1 is perfect)")


def _md(table: pd.DataFrame) -> str:
    blanks = table.astype(object).where(table.notna(), None)  # NaN -> empty cell
    return blanks.to_markdown(floatfmt=".4g", missingval="")


def foundations(metrics_dir: Path, figures_dir: Path) -> tuple[str, str]:
    """The "Foundations" section: each first-principles metrics file as a key/value table
    (keys like optim/rastrigin_d5/pso_best grouped by their first part) and its figures."""
    parts_html, parts_md = [], []
    for name in FOUNDATIONS:
        path = metrics_dir / f"{name}.json"
        if not path.is_file():
            continue
        values = pd.Series(json.loads(path.read_text()), name="value")
        values = values[[not isinstance(v, list | dict) for v in values]]
        figs = sorted((figures_dir / name).glob("*.png"))
        parts_html.append(f"<h3>{html.escape(name)}</h3>"
                          + values.to_frame().to_html(float_format="%.4g")
                          + '<div class="figs">' + "".join(_img_tag(p) for p in figs) + "</div>")
        parts_md.append(f"### {name}\n\n" + values.to_frame().to_markdown(floatfmt=".4g")
                        + "\n\n" + "\n".join(f"![{p.stem}](../{p.as_posix()})" for p in figs))
    if not parts_html:
        return "", ""
    return ("<h2>Foundations</h2>" + "".join(parts_html),
            "\n\n## Foundations\n\n" + "\n\n".join(parts_md))


def _page(overview: str, body: str) -> str:
    style = ("body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}"
             "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;"
             "padding:2px 6px}figure{display:inline-block;margin:6px}img{max-width:420px}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>genlab report</title>"
            f"<style>{style}</style></head><body><h1>genlab report</h1>"
            f"<p>{html.escape(INTRO)}</p>"
            f"{overview}{body}</body></html>")
