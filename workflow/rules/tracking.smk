# One MLflow store and one parent run per DAG invocation. `onstart` runs once in the main process,
# after the DAG is built and before any job (never in dry-runs, never inside SLURM jobs, which run
# with --no-hooks), so exactly one process creates the sqlite schema. Jobs inherit the parent run id
# through the environment: local jobs as children, SLURM jobs through sbatch --export=ALL.
import os
from pathlib import Path

# shell fragment of every tracked rule: adds the parent run id when there is one
PARENT_RUN = "${{ATOMMEM_PARENT_RUN_ID:+--set tracking.parent_run_id=$ATOMMEM_PARENT_RUN_ID}}"


onstart:
    if config["tracking"]["enabled"]:
        from atommem.tracking import ensure_store, start_parent_run

        tracking = config["tracking"]
        # an absolute URI: MLflow resolves a relative artifact location against each job's CWD
        artifacts = Path(tracking["artifact_location"]).resolve().as_uri()
        ensure_store(tracking["tracking_uri"], tracking["experiment"], artifacts)
        os.environ["ATOMMEM_PARENT_RUN_ID"] = start_parent_run(
            tracking_uri=tracking["tracking_uri"],
            experiment=tracking["experiment"],
            run_name="snakemake",
            tags={"workflow": "atommem", "configfiles": ",".join(workflow.configfiles)},
        )


def end_parent_run(status):
    """Mark the invocation's parent run finished, so the MLflow UI does not show it running forever."""
    run_id = os.environ.get("ATOMMEM_PARENT_RUN_ID")
    if run_id:
        from mlflow.tracking import MlflowClient

        MlflowClient(config["tracking"]["tracking_uri"]).set_terminated(run_id, status)


onsuccess:
    end_parent_run("FINISHED")


onerror:
    end_parent_run("FAILED")
