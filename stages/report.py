"""Stage report: metrics/summary.csv across models and reports/index.html + report.md with the
metrics tables, grids, loss curves and params of each model (images embedded: readable
offline, one file), and each model's headline metric across DVC experiments (`dvc exp show
--json`). Also logs params.yaml, all metrics and dvc.lock's output hashes to the pipeline's
parent MLflow run."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from genlab.tracking.report import build_report, dvc_exp_show
from stages._common import load_params, main, tracker

SUMMARY = Path("metrics/summary.csv")
REPORTS = Path("reports")
GPU_NOTES = Path("docs/gpu-profile.yaml")  # what the GPU profile gave, per model (measured)


def dvc_lock_hashes(path: Path = Path("dvc.lock")) -> dict[str, str]:
    """{out path: md5} from dvc.lock (empty before the first lock is written)."""
    if not path.is_file():
        return {}
    lock = yaml.safe_load(path.read_text()) or {}
    return {o["path"]: o.get("md5", "") for stage in lock.get("stages", {}).values()
            for o in stage.get("outs", [])}


def model_sections(params: dict) -> dict[str, tuple[str, dict]]:
    """{model: (family, its params.yaml section)} over the family sections (none imported)."""
    from genlab.families import available

    return {name: (family, raw) for family in available()
            if isinstance(params.get(family), dict)
            for name, raw in params[family].items() if isinstance(raw, dict)}


def run(argv: list[str]) -> None:
    params = load_params()
    with tracker(params, "report", {}) as tr:
        notes = yaml.safe_load(GPU_NOTES.read_text()) if GPU_NOTES.is_file() else {}
        table = build_report(Path("metrics"), Path("figures"), SUMMARY, REPORTS, notes,
                             model_params=model_sections(params), experiments=dvc_exp_show())
        print(table.to_string(max_cols=12))
        tr.log_artifact(Path("params.yaml"))
        tr.log_artifact(SUMMARY)
        tr.log_artifact(REPORTS / "report.md")
        for model, row in table.iterrows():
            tr.log_metrics({f"{model}.{k}": v for k, v in row.dropna().items()
                            if isinstance(v, int | float)})
        tr.set_tags({f"dvc.{k}": v for k, v in dvc_lock_hashes().items()}, parent=True)
        tr.set_tags({"params.yaml": json.dumps(params)[:5000]}, parent=True)


if __name__ == "__main__":
    main(run)
