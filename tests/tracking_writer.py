"""One writer process of tests/test_tracking.py's concurrency test, as a parallel DAG job logs.

    python tracking_writer.py TRACKING_URI EXPERIMENT PARENT_RUN_ID WRITER BARRIER_DIR WRITERS STEPS

Imports MLflow first, then says it is ready (BARRIER_DIR/ready-WRITER) and waits until every writer
is ready, so all of them hit the database at the same moment. Then it opens a run, logs params and
STEPS steps of metrics, and ends the run.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import mlflow  # noqa: F401  (imported before the barrier: the slow part must not spread the writers out)

from atommem.tracking import TrackingConfig, tracked_run

PARAMS = 40
METRICS_PER_STEP = 5


def main(uri: str, experiment: str, parent: str, writer: int, barrier: Path, writers: int, steps: int) -> None:
    (barrier / f"ready-{writer}").touch()
    deadline = time.time() + 120
    while len(list(barrier.glob("ready-*"))) < writers:
        if time.time() > deadline:
            sys.exit(f"writer {writer}: the other writers never became ready")
        time.sleep(0.01)
    cfg = TrackingConfig(enabled=True, tracking_uri=uri, experiment=experiment, run_name=f"writer-{writer}",
                         parent_run_id=parent, tags={"writer": str(writer)})
    params = {"writer": writer, "section": {f"p{i}": i for i in range(PARAMS - 1)}}
    with tracked_run(cfg, params=params) as run:
        for step in range(steps):
            run.log_metrics({f"m{k}": writer + step + k for k in range(METRICS_PER_STEP)}, step=step)


if __name__ == "__main__":
    uri, experiment, parent, writer, barrier, writers, steps = sys.argv[1:]
    main(uri, experiment, parent, int(writer), Path(barrier), int(writers), int(steps))
