"""Stage report: metrics/summary.csv across models and reports/index.html + report.md with the
metrics tables, grids and loss curves (images embedded: readable offline, one file). Also logs
params.yaml, all metrics and dvc.lock's output hashes to the pipeline's parent MLflow run."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from genlab.tracking.report import build_report
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


def run(argv: list[str]) -> None:
    params = load_params()
    with tracker(params, "report", {}) as tr:
        notes = yaml.safe_load(GPU_NOTES.read_text()) if GPU_NOTES.is_file() else {}
        table = build_report(Path("metrics"), Path("figures"), SUMMARY, REPORTS, notes)
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
