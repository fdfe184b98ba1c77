"""On a real single-node SLURM cluster (tests/slurm_cluster.py): an RL job submitted with the SLURM profile's
flags for rl is stopped in the middle of a step, either requeued (`scontrol requeue`, as a preemption does)
or sent SIGTERM without being ended (`scancel --signal=TERM`, what the profile's `--signal=TERM@<secs>` does
ahead of a time limit). The rule's shell ignores SIGTERM (the Snakefile's shell prefix), `atommem rl`
finishes the step, writes a checkpoint and exits 75; in the second case launch.sh requeues the job itself.
The job goes back to the queue, starts again, resumes from that checkpoint, and ends with the weights of an
uninterrupted run."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from test_kill_resume import assert_same_weights
from test_preemption import RL_STEPS, rl_config
from test_slurm import cluster  # noqa: F401 (the fixture)

from atommem.io import read_jsonl

pytestmark = [pytest.mark.slurm, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "profiles/slurm/config.yaml"
VENV_BIN = Path(sys.executable).parent


def profile_flags(rule: str) -> list[str]:
    """The sbatch flags profiles/slurm gives a rule's jobs for preemption: --requeue and its slurm_extra."""
    profile = yaml.safe_load(PROFILE.read_text())
    flags = ["--requeue"] if profile.get("slurm-requeue") else []
    return flags + shlex.split(profile["set-resources"][rule].get("slurm_extra", ""))


def shell_prefix() -> str:
    """The Snakefile's shell prefix (workflow/rules/common.smk), as every rule's shell starts with it."""
    text = (REPO / "workflow/rules/common.smk").read_text()
    return re.search(r'^shell\.prefix\("(.*)"\)$', text, re.M).group(1)


def job_state(job: str) -> str:
    result = subprocess.run(["squeue", "-h", "-j", job, "-t", "all", "-o", "%T"], capture_output=True, text=True)
    return result.stdout.strip()


STOPS = {"requeue": ["scontrol", "requeue"], "early-signal": ["scancel", "--signal=TERM", "--full"]}


@pytest.mark.parametrize("how", list(STOPS))
def test_rl_job_stopped_mid_step_resumes_to_the_uninterrupted_result(cluster, tmp_path, tiny_model_dir, rl_straight, how):  # noqa: F811
    flags = profile_flags("rl")
    assert "--requeue" in flags and any(f.startswith("--signal=") for f in flags), flags

    out = tmp_path / "out"
    config = rl_config(tmp_path, tiny_model_dir, out)
    log = tmp_path / "rl.log"
    script = tmp_path / "job.sh"
    # what the rl rule runs (workflow/rules/train.smk), under the prefix every rule's shell gets
    script.write_text(f"#!/bin/bash\n{shell_prefix()}{REPO}/workflow/scripts/launch.sh 0 train rl "
                      f"--config {config} >> {log} 2>&1\n")
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}", "OMP_NUM_THREADS": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    submit = subprocess.run(["sbatch", "--parsable", "-D", str(REPO), "-o", str(tmp_path / "slurm-%j.out"),
                             "--open-mode=append", *flags, str(script)], capture_output=True, text=True, env=env)
    assert submit.returncode == 0, submit.stderr
    job = submit.stdout.strip().split(";")[0]

    metrics = out / "metrics.jsonl"
    deadline = time.monotonic() + 600
    while not (metrics.exists() and metrics.read_bytes().count(b"\n") >= 1):  # step 2 is under way
        assert job_state(job) in ("PENDING", "RUNNING"), (job_state(job), log.read_text()[-3000:])
        assert time.monotonic() < deadline, "step 1 not done in time"
        time.sleep(0.1)
    stop = subprocess.run([*STOPS[how], job], capture_output=True, text=True)
    assert stop.returncode == 0, stop.stderr

    deadline = time.monotonic() + 900
    released = False
    while (state := job_state(job)) != "COMPLETED":
        assert state not in ("FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL"), (
            state, log.read_text()[-3000:])
        assert time.monotonic() < deadline, f"job {job} still {state}: {log.read_text()[-3000:]}"
        if state == "PENDING" and not released:
            # slurmctld gives a requeued job a begin time minutes ahead (reason BeginTime); the test's one-node
            # cluster has nothing to wait for, so the job may start now
            released = subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"],
                                      capture_output=True).returncode == 0
        time.sleep(1)

    text = log.read_text()
    stopped = re.search(rf"atommem rl: preempted: SIGTERM after step (\d+) of {RL_STEPS}; checkpoint \S+ written", text)
    assert stopped, text[-3000:]
    step = int(stopped.group(1))
    assert step < RL_STEPS and re.search(rf"resumed from \S+step_{step} \(step {step}\)", text), text[-3000:]
    if how == "early-signal":  # nobody else requeues the job: launch.sh did
        assert f"launch.sh: preempted with a checkpoint written; requeueing SLURM job {job}\n" in text
        assert f"scontrol requeue {job} failed" not in text, text[-3000:]
    show = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True).stdout
    assert "Restarts=1" in show, show
    assert [r["step"] for r in read_jsonl(metrics)] == list(range(1, RL_STEPS + 1))
    assert_same_weights(out / "final", rl_straight / "final")
