"""End to end through SLURM: a real single-node cluster (tests/slurm_cluster.py) runs the part of the test
config's DAG that the gains table needs (data, model conversion, synthesis, SFT, RL, the three policy
evaluations and the table: a job of every kind but the baselines, figures and ablations, which take the
same path through the profile), submitted by `snakemake --profile profiles/slurm`, one sbatch job each.
The whole DAG runs locally in tests/test_workflow.py."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from slurm_cluster import LocalSlurm, SlurmUnavailable, daemons_running
from test_workflow import ENV, SNAKEMAKE, workdir

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


@pytest.fixture
def cluster(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("starting slurmctld, slurmd and munged needs root")
    if daemons_running():
        pytest.skip(f"SLURM daemons already run here ({daemons_running()}); a second cluster would clash")
    cluster = LocalSlurm(tmp_path / "slurm")
    try:
        cluster.__enter__()
    except SlurmUnavailable as err:
        pytest.skip(str(err))
    try:
        yield cluster
    finally:
        cluster.__exit__(None, None, None)


TARGETS = ["results/tables/gains.csv", "results/tables/gains.md"]


def test_test_config_dag_runs_as_sbatch_jobs(cluster, tmp_path):
    run = workdir(tmp_path / "run")
    cmd = [
        SNAKEMAKE, *TARGETS, "--profile", "profiles/slurm", "--configfile", "config/test.yaml",
        # this cluster has no accounting database: query squeue, submit without an account
        "--slurm-status-command", "squeue", "--slurm-no-account", "--jobs", "4",
        # a one-node cluster answers at once: poll every 2 s, not after the plugin's 40 s wait per job
        "--slurm-init-seconds-before-status-checks", "2", "--seconds-between-status-checks", "2",
    ]
    result = subprocess.run(cmd, cwd=run, capture_output=True, text=True, timeout=2400, env=ENV)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-8000:]
    for path in TARGETS:
        assert (run / path).stat().st_size > 0, path
    # every job went through sbatch
    planned = snakemake_job_count(run)
    assert planned >= 8, planned
    assert output.count("has been submitted with SLURM jobid") == planned, output[-8000:]


def snakemake_job_count(run: Path) -> int:
    """Jobs the targets need, from a dry-run summary in a fresh folder (the real run is finished)."""
    fresh = workdir(run.parent / "dry")
    result = subprocess.run([SNAKEMAKE, *TARGETS, "-n", "--configfile", "config/test.yaml"], cwd=fresh,
                            capture_output=True, text=True, env=ENV)
    return int(next(line.split()[1] for line in result.stdout.splitlines() if line.startswith("total")))
