"""MLflow tracking: one sqlite store under results/, one parent run per DAG invocation, one run per job.

Recipes always write

    with tracked_run(cfg.tracking, to_dict(cfg)) as run:
        run.log_metrics(row, step=row["step"])
        run.log_artifact(summary_path)

and the same code is a no-op when `tracking.enabled` is false, so recipes never branch on it.
mlflow is imported inside functions only: importing it costs about a second and most commands don't log.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from atommem.config import flatten, option

log = logging.getLogger(__name__)

SQLITE_PREFIX = "sqlite:///"
# MLflow sets sqlite's busy timeout (20 s), but sqlite skips the busy handler when two transactions both
# try to upgrade a read to a write; one of them fails at once with "database is locked". A failed write
# rolls back whole, so it is safe to retry.
LOCKED_RETRY_S = 120.0


@dataclass
class TrackingConfig:
    enabled: bool = option(False, "log runs to MLflow")
    tracking_uri: str = option("sqlite:///results/mlflow.db", "tracking store")
    experiment: str = option("atommem", "experiment name")
    # None: an `mlartifacts/` folder beside the sqlite file, as an absolute file URI (MLflow's default is
    # relative to the CWD of whichever process first creates the experiment)
    artifact_location: str | None = option(None, "artifact folder; null = mlartifacts/ beside the sqlite file (an absolute file URI)")
    run_name: str | None = option(None, "MLflow run name")
    tags: dict = option(dict, "run tags")
    parent_run_id: str | None = option(None, "nest this run under that one")


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a sqlite:/// URI (relative to the CWD unless it has four slashes), else None."""
    if not tracking_uri.startswith(SQLITE_PREFIX):
        return None
    return Path(tracking_uri[len(SQLITE_PREFIX) :])


def default_artifact_location(tracking_uri: str) -> str | None:
    db = sqlite_path(tracking_uri)
    return (db.parent / "mlartifacts").resolve().as_uri() if db is not None else None


def ensure_store(tracking_uri: str, experiment: str, artifact_location: str | None = None) -> str:
    """Create the store and the experiment if missing; return the experiment id. Idempotent.

    Creating a new sqlite DB from several processes at once crashes in MLflow's migrations, so the DAG
    calls this once (Snakemake `onstart:`) before any job logs; later concurrent calls only read.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    db = sqlite_path(tracking_uri)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)  # sqlite creates the file, not its folder
    client = MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is not None:
        return found.experiment_id
    location = artifact_location or default_artifact_location(tracking_uri)
    try:
        return client.create_experiment(experiment, artifact_location=location)
    except MlflowException:
        # another process created it between our lookup and create
        found = client.get_experiment_by_name(experiment)
        if found is None:
            raise
        return found.experiment_id


def start_parent_run(cfg: TrackingConfig) -> str:
    """Open the run that groups every job of one DAG invocation; jobs get its id as `parent_run_id`."""
    from mlflow.tracking import MlflowClient

    experiment_id = ensure_store(cfg.tracking_uri, cfg.experiment, cfg.artifact_location)
    client = MlflowClient(tracking_uri=cfg.tracking_uri)
    run = retry_locked(client.create_run, experiment_id, run_name=cfg.run_name, tags=_clean_tags(cfg.tags))
    return run.info.run_id


def end_parent_run(cfg: TrackingConfig, run_id: str, status: str = "FINISHED") -> None:
    """Close the parent run (Snakemake `onsuccess:` with FINISHED, `onerror:` with FAILED)."""
    from mlflow.tracking import MlflowClient

    retry_locked(MlflowClient(tracking_uri=cfg.tracking_uri).set_terminated, run_id, status=status)


def retry_locked(write: Callable, *args, **kwargs):
    """Call `write(*args, **kwargs)`, retrying with jittered backoff while the sqlite store is locked."""
    deadline = time.monotonic() + LOCKED_RETRY_S
    delay = 0.05
    while True:
        try:
            return write(*args, **kwargs)
        except Exception as err:  # MLflow wraps sqlite's OperationalError in its own exceptions
            if "database is locked" not in str(err) or time.monotonic() > deadline:
                raise
            log.debug("mlflow store locked; retrying %s in %.2f s", getattr(write, "__name__", write), delay)
            time.sleep(delay * random.uniform(0.5, 1.5))  # jitter: writers that collided do not collide again
            delay = min(delay * 2, 2.0)


class TrackedRun:
    """What `tracked_run` yields; `run_id` is None and every method does nothing when tracking is off."""

    def __init__(self, run_id: str | None = None):
        self.run_id = run_id

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        """Log the numeric values of `metrics` (others are skipped); `step` defaults to metrics["step"]."""
        if self.run_id is None:
            return
        import mlflow

        if step is None and isinstance(metrics.get("step"), int):
            step = metrics["step"]
        numeric = {
            k: float(v)
            for k, v in metrics.items()
            if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v)
        }
        if numeric:
            retry_locked(mlflow.log_metrics, numeric, step=step, run_id=self.run_id)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Copy a file or folder into the run's artifacts."""
        if self.run_id is None:
            return
        import mlflow

        path = Path(path)
        if path.is_dir():
            retry_locked(mlflow.log_artifacts, str(path), artifact_path=artifact_path, run_id=self.run_id)
        elif path.is_file():
            retry_locked(mlflow.log_artifact, str(path), artifact_path=artifact_path, run_id=self.run_id)
        else:
            raise FileNotFoundError(f"log_artifact: {path} does not exist")


@contextmanager
def tracked_run(cfg: TrackingConfig, params: dict | None = None, main_process: bool = True) -> Iterator[TrackedRun]:
    """A run (nested under `cfg.parent_run_id` if set) with `params` flattened and `cfg.tags`.

    Under a multi-process launch only the main process (`main_process`) opens it: one run per job.

    The run ends FINISHED, or FAILED if the block raises. It is also mlflow's active run, so libraries
    that log to the active run (TRL's `report_to="mlflow"`) log into it.
    """
    if not (cfg.enabled and main_process):
        yield TrackedRun(None)
        return
    import mlflow

    experiment_id = ensure_store(cfg.tracking_uri, cfg.experiment, cfg.artifact_location)
    mlflow.set_tracking_uri(cfg.tracking_uri)
    mlflow.set_experiment(experiment_id=experiment_id)
    # creating the run is start_run's last write, so a retry never leaves a second run behind
    active = retry_locked(
        mlflow.start_run,
        experiment_id=experiment_id,
        run_name=cfg.run_name,
        parent_run_id=cfg.parent_run_id,
        tags=_clean_tags(cfg.tags),
    )
    run_id = active.info.run_id
    status = "FAILED"
    try:
        params = _clean_params(flatten(params or {}))
        if params:
            # batches of MLflow's 100-per-request limit; re-logging an equal value is allowed, so a retry
            # after a partly written set is safe
            retry_locked(mlflow.log_params, params)
        log.info("mlflow run %s in %s", run_id, cfg.tracking_uri)
        yield TrackedRun(run_id)
        status = "FINISHED"
    finally:
        _end_run(cfg.tracking_uri, run_id, status)


def _end_run(tracking_uri: str, run_id: str, status: str) -> None:
    """mlflow.end_run, whose write is retried: it leaves the active-run stack before it writes."""
    import mlflow
    from mlflow.tracking import MlflowClient

    try:
        mlflow.end_run(status)
    except Exception as err:
        if "database is locked" not in str(err):
            raise
        retry_locked(MlflowClient(tracking_uri=tracking_uri).set_terminated, run_id, status)


def summary_metrics(summary: dict) -> dict[str, float]:
    """summary.json groups as MLflow metrics named `{group}/{metric}` ("hotpotqa_10/em_macro",
    "overall/cost_wall_s"): the names the comparison notebook reads back."""
    return {
        f"{group}/{name}": value
        for group, values in summary.get("groups", {}).items()
        for name, value in values.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    }


def _truncate(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 3] + "..."


def _clean_params(params: dict) -> dict[str, str]:
    from mlflow.utils.validation import MAX_ENTITY_KEY_LENGTH, MAX_PARAM_VAL_LENGTH

    return {
        _truncate(str(k), MAX_ENTITY_KEY_LENGTH): _truncate(str(v), MAX_PARAM_VAL_LENGTH)
        for k, v in params.items()
    }


def _clean_tags(tags: dict) -> dict[str, str]:
    from mlflow.utils.validation import MAX_ENTITY_KEY_LENGTH, MAX_TAG_VAL_LENGTH

    return {
        _truncate(str(k), MAX_ENTITY_KEY_LENGTH): _truncate(str(v), MAX_TAG_VAL_LENGTH)
        for k, v in (tags or {}).items()
    }
