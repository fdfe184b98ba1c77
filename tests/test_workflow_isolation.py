"""The workflow tests run in their own folders, whatever the user's own runs left in the repository.

README order is `make run`, then `make test`: the first leaves results/ and .snakemake/ in the checkout. A
test that dry-ran the workflow in the checkout planned against that state ("Nothing to be done"), and the
recipes' checks then read the finished run's files. This test proves that the workflow tests depend on
neither folder and change neither.

Design: the user's checkout is never touched. The test builds a second tree in tmp_path that stands for a
checkout after `make run` (workflow/, config/, data/, profiles/ linked in; tests/ and pyproject.toml
copied, so that the copied tests take that tree as their repository root) and fills its results/ with one
file or folder for every output and log of the default config's DAG, older to newer in the order the jobs
run, so that Snakemake takes the run as finished. It then runs the planning tests of
tests/test_workflow.py there in a real pytest process, and compares a hash of every file, folder and
timestamp under results/ and .snakemake/ before and after.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from test_workflow import ENV, REPO, SNAKEMAKE, workdir

# the tests of tests/test_workflow.py that plan the default config's workflow, the one whose finished run the
# tree holds: its dry-run, its training stages' launch, one figure as target, and each job's config checked by
# its recipe (the same tests of the other configs plan through the same `workdir`)
PLANNING_TESTS = ("(test_dry_run or test_each_training_stage or test_every_job_config) and config/config"
                  " and not paper and not learn and not fixed or test_one_figure")


def default_run_outputs(run: Path) -> list[list[str]]:
    """The outputs and logs of each job of the default config's DAG, jobs in the order a run starts them
    (a dry-run in the fresh run folder `run`)."""
    result = subprocess.run([SNAKEMAKE, "-n", "--cores", "2", "--configfile", "config/config.yaml"],
                            cwd=workdir(run), capture_output=True, text=True, timeout=300, env=ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \S+:\n)", result.stdout):
        paths = []
        for key in ("output", "log"):
            line = re.search(rf"^\s+{key}: (.*)$", block, re.M)
            paths += line.group(1).split(", ") if line else []
        if paths:
            jobs.append(paths)
    return jobs


def populate_finished_run(tree: Path, jobs: list[list[str]]) -> None:
    """results/ as a finished run leaves it: a file for each output with a suffix, a folder with a file in
    it for each one without (model folders), each job's newer than the one before."""
    start = time.time() - 10 * len(jobs)
    for number, paths in enumerate(jobs):
        stamp = start + 10 * number
        for name in paths:
            path = tree / name
            assert path.is_relative_to(tree / "results"), name
            if path.suffix:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text('{"from": "the user\'s own run"}\n')
            else:
                path.mkdir(parents=True, exist_ok=True)
                (path / "config.json").write_text('{"from": "the user\'s own run"}\n')
                os.utime(path / "config.json", (stamp, stamp))
            os.utime(path, (stamp, stamp))
    # what else a run leaves: its log, the MLflow store
    (tree / ".snakemake/log").mkdir(parents=True, exist_ok=True)
    (tree / ".snakemake/log/2026-01-01T000000.000000.snakemake.log").write_text("Finished jobid: 0 (Rule: all)\n")
    (tree / "results/mlflow.db").write_bytes(b"SQLite format 3\0")


def snapshot(tree: Path) -> dict[str, tuple]:
    """Every folder, file and link under results/ and .snakemake/: its kind, content hash and mtime."""
    state = {}
    for top in ("results", ".snakemake"):
        for folder, dirs, files in os.walk(tree / top):
            for name in [*dirs, *files, ""]:
                path = Path(folder, name)
                info = path.lstat()
                if path.is_symlink():
                    entry = ("link", os.readlink(path))
                elif path.is_dir():
                    entry = ("folder", info.st_mtime_ns)
                else:
                    entry = ("file", hashlib.sha256(path.read_bytes()).hexdigest(), info.st_mtime_ns)
                state[str(path.relative_to(tree))] = entry
    return state


def test_workflow_tests_neither_read_nor_change_a_finished_runs_results(tmp_path):
    tree = tmp_path / "checkout"
    tree.mkdir()
    for name in ("workflow", "config", "data", "profiles"):
        (tree / name).symlink_to(REPO / name)
    shutil.copytree(REPO / "tests", tree / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tree)
    populate_finished_run(tree, default_run_outputs(tmp_path / "plan"))
    # the tree is one the tests used to fail in: a dry-run of the default config in it has nothing to do
    finished = subprocess.run([SNAKEMAKE, "-n", "--cores", "2", "--configfile", "config/config.yaml"],
                              cwd=tree, capture_output=True, text=True, timeout=300, env=ENV)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert "Nothing to be done" in finished.stdout + finished.stderr, finished.stdout[-3000:]
    before = snapshot(tree)
    assert len([key for key, entry in before.items() if entry[0] == "file"]) > 50

    # the copied tests, as `make test` runs them: from the root of that tree
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_workflow.py",
         "-m", "not slow", "-k", PLANNING_TESTS],
        cwd=tree, capture_output=True, text=True, timeout=1200, env={**ENV, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-3000:]
    passed = re.search(r"(\d+) passed", result.stdout)
    assert passed and int(passed.group(1)) == 4, result.stdout[-3000:]
    assert snapshot(tree) == before
