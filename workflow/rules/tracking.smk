# One MLflow store and one parent run per DAG invocation. `onstart` (in the Snakefile) runs once in the main process,
# after the DAG is built and before any job (never in dry-runs, never inside SLURM jobs, which run
# with --no-hooks), so exactly one process creates the sqlite schema. Jobs inherit the parent run id
# through the environment (local jobs as children, SLURM jobs through sbatch --export=ALL);
# workflow/scripts/launch.sh adds it to the job's tracking config.
import os
from pathlib import Path

# set here, not by the user: launch.sh reads it in every job
PARENT_RUN_ENV = "ATOMMEM_PARENT_RUN_ID"


def tracking_config(**extra):
    from atommem.tracking import TrackingConfig

    tracking = dict(config["tracking"])
    if tracking["artifact_location"]:
        # absolute: MLflow resolves a relative artifact location against each job's CWD
        tracking["artifact_location"] = Path(tracking["artifact_location"]).resolve().as_uri()
    return TrackingConfig(**tracking, **extra)


def start_tracking():
    """Create the store and the invocation's parent run (called from the Snakefile's onstart)."""
    if config["tracking"]["enabled"]:
        from atommem.tracking import ensure_store, start_parent_run

        parent = tracking_config(
            run_name="snakemake",
            tags={"workflow": "atommem", "configfiles": ",".join(map(str, workflow.configfiles))},
        )
        ensure_store(parent.tracking_uri, parent.experiment, parent.artifact_location)
        os.environ[PARENT_RUN_ENV] = start_parent_run(parent)


def finish_parent_run(status):
    """Close the invocation's parent run, so the MLflow UI does not show it running forever (the Snakefile's
    onsuccess and onerror)."""
    run_id = os.environ.get(PARENT_RUN_ENV)
    if run_id:
        from atommem.tracking import end_parent_run

        end_parent_run(tracking_config(), run_id, status)
