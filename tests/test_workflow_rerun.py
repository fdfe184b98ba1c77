"""A config change reruns exactly the jobs whose work it defines, and everything downstream of them.

One full run of the test DAG (the session's `killed_test_dag`: killed mid-RL, then finished by a rerun), then
one dry-run per changed key (`--configfile` with that key only, default
rerun triggers): the jobs Snakemake plans are compared with the ones the key affects, and the jobs the key
itself defines must give "params have changed" as their reason.
"""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml
from test_workflow import ENV, SNAKEMAKE

TEST_CONFIG = "config/test.yaml"

# the test DAG's jobs (rule[wildcards]) downstream of each stage
RL_RUNS = {f"rl[variant={v}]" for v in ("full", "scratchpad-only", "store-only")}
ABLATIONS = {f"evaluate_ablation[ablation={a}]" for a in ("no-update", "no-store-no-update")}
CURVES = {"figure_op_frequency", "figure_train_reward"}
REPORT = {"table_main", "table_ablations", "figure_em_by_length", *CURVES}
# the gains table reads the policies' predictions, not the baselines'
AFTER_RL = RL_RUNS | {"evaluate_policy[policy=rl]", "table_gains"} | ABLATIONS | REPORT
AFTER_SFT = {"sft", "evaluate_policy[policy=sft]"} | AFTER_RL
AFTER_SYNTHESIS = {"synthesize"} | AFTER_SFT
AFTER_DATA = {"prepare_train[benchmark=statetrack,num_docs=4]"} | AFTER_SYNTHESIS

# stage: (the changed key, the jobs whose params it changes, every job that must rerun)
CASES = {
    "data": ({"data": {"statetrack": {"train_seed": 7}}},
             {"prepare_train[benchmark=statetrack,num_docs=4]"},
             AFTER_DATA),
    "synthesis": ({"synthesize": {"min_fraction_correct": 0.25}}, {"synthesize"}, AFTER_SYNTHESIS),
    "sft": ({"sft": {"learning_rate": 1.0e-4}}, {"sft"}, AFTER_SFT),
    "rl": ({"rl": {"learning_rate": 1.0e-3}}, RL_RUNS, AFTER_RL),
    "evaluation": ({"evaluate": {"method_options": {"static-crud": {"max_facts": 3}}}},
                   {"evaluate_baseline[method=static-crud]"},
                   {"evaluate_baseline[method=static-crud]", "table_main", "figure_em_by_length"}),
    "figures": ({"figures": {"smoothing": 0.5}}, CURVES, CURVES),
    # no job's results depend on these: nothing reruns
    "tracking": ({"tracking": {"experiment": "elsewhere"}}, set(), set()),
    "gpu count": ({"resources": {"evaluate": {"gpu": 1}}}, set(), set()),
}


def planned_jobs(dry_run_output: str) -> dict[str, str]:
    """{rule[wildcards]: reason} of every job a dry-run plans, except the `all` target."""
    jobs = {}
    for block in re.split(r"\n(?=(?:local)?rule \S+:\n)", dry_run_output):
        head = re.match(r"(?:local)?rule (\S+):\n", block)
        if not head or head.group(1) == "all":
            continue
        wildcards = re.search(r"^\s+wildcards: (.*)$", block, re.M)
        name = head.group(1) + (f"[{wildcards.group(1).replace(' ', '')}]" if wildcards else "")
        reason = re.search(r"^\s+reason: (.*)$", block, re.M)
        jobs[name] = reason.group(1) if reason else ""
    return jobs


@pytest.fixture
def finished_run(killed_test_dag):
    assert killed_test_dag.rerun.returncode == 0, killed_test_dag.rerun.stderr[-5000:]
    return killed_test_dag.run


def dry_run(run, *configfiles: str) -> str:
    # one --configfile with every file: a second --configfile flag would replace the first
    result = subprocess.run([SNAKEMAKE, "-n", "--cores", "2", "--configfile", TEST_CONFIG, *configfiles],
                            cwd=run, capture_output=True, text=True, timeout=300, env=ENV)
    assert result.returncode == 0, result.stderr[-5000:]
    return result.stdout


@pytest.mark.slow
def test_an_unchanged_config_reruns_nothing(finished_run):
    assert planned_jobs(dry_run(finished_run)) == {}


@pytest.mark.slow
@pytest.mark.parametrize("stage", CASES)
def test_a_changed_key_reruns_exactly_what_it_affects(finished_run, stage):
    change, changed, affected = CASES[stage]
    path = finished_run / f"change-{stage.replace(' ', '-')}.yaml"
    path.write_text(yaml.safe_dump(change))
    jobs = planned_jobs(dry_run(finished_run, str(path)))
    assert set(jobs) == affected
    for job in changed:
        assert "params have changed" in jobs[job].lower(), (job, jobs[job])
    for job in affected - changed:
        assert "params have changed" not in jobs[job].lower(), (job, jobs[job])
