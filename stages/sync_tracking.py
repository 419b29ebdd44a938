"""`make sync-tracking`: replay the tracking spools that stages left while the MLflow store was
unreachable into their runs, and mark KILLED the runs whose process is gone. Not a DVC stage:
it writes to MLflow only."""

from __future__ import annotations

import sys

from genlab.tracking.mlflow_tracker import spool_dir_for, sync
from stages._common import load_params, main, tracking_target


def run(argv: list[str]) -> None:
    target = tracking_target(load_params(), "sync-tracking")
    if target is None:
        print("tracking.enabled is false: nothing to sync")
        return
    folder = spool_dir_for(target)
    report = sync(target, folder)
    print(f"{folder}: {len(report.replayed)} spool(s) replayed, {len(report.in_use)} in use by "
          f"a running stage, {len(report.failed)} failed; {len(report.killed)} stale run(s) "
          f"marked KILLED in {target.uri}")
    for path, why in report.failed.items():
        print(f"  failed: {path}: {why}", file=sys.stderr)
    if report.failed:
        sys.exit(1)


if __name__ == "__main__":
    main(run)
