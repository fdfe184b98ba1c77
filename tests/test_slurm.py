"""End to end through SLURM: a real single-node cluster (tests/slurm_cluster.py) runs the test
config's full DAG submitted by `snakemake --profile profiles/slurm`, one sbatch job per rule."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from slurm_cluster import LocalSlurm, daemons_running
from test_workflow import ENV, FINAL, SNAKEMAKE, workdir

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


@pytest.fixture
def cluster(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("starting slurmctld, slurmd and munged needs root")
    if daemons_running():
        pytest.skip(f"SLURM daemons already run here ({daemons_running()}); a second cluster would clash")
    with LocalSlurm(tmp_path / "slurm") as running:
        yield running


def test_test_config_dag_runs_as_sbatch_jobs(cluster, tmp_path):
    run = workdir(tmp_path / "run")
    cmd = [
        SNAKEMAKE, "--profile", "profiles/slurm", "--configfile", "config/test.yaml",
        # this cluster has no accounting database: query squeue, submit without an account
        "--slurm-status-command", "squeue", "--slurm-no-account", "--jobs", "4",
    ]
    result = subprocess.run(cmd, cwd=run, capture_output=True, text=True, timeout=2400, env=ENV)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-8000:]
    assert "sbatch" in output or "SLURM" in output
    for path in FINAL:
        assert (run / path).stat().st_size > 0, path
    # the jobs ran under SLURM: the executor keeps one log folder per submitted rule
    submitted = {p.name for p in (run / ".snakemake/slurm_logs").iterdir()}
    assert {"rule_rl", "rule_evaluate_policy", "rule_table_main"} <= submitted, submitted
