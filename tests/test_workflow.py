"""The Snakemake workflow: config validation, dry-runs, lint, and the test config's full DAG
(including a SIGKILL in the middle and a rerun that keeps finished jobs).

Every test runs Snakemake in its own run folder (`workdir`), never in the repository root: a user's own
run leaves results/ and .snakemake/ there, and what they hold would change what a dry-run plans and what
the recipes' checks find (tests/test_workflow_isolation.py runs these tests in a tree that has both)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
import yaml
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
# each entry: the --configfile arguments of one shipped configuration
CONFIGS = [
    "config/config.yaml", "config/test.yaml", "config/learn.yaml", "config/paper.yaml",
    "config/paper.yaml config/paper-cpu.yaml", "config/paper.yaml config/paper-small.yaml",
    "config/config.yaml config/rl-fixed-worlds.yaml",
    "config/config.yaml config/rl-fixed-worlds.yaml config/rl-fixed-worlds-choose.yaml",
    "config/learn.yaml config/learn-gpu.yaml",
]
FINAL = [f"results/tables/{t}.{e}" for t in ("main", "ablations") for e in ("csv", "md")] + [
    f"results/figures/{f}.{e}" for f in ("op_frequency", "train_reward", "em_by_length") for e in ("pdf", "png")
]


# jobs call `atommem` from PATH: the environment this test runs in
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def snakemake(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Snakemake in `cwd`, a run folder made by `workdir` (there is no default: not the repository root)."""
    return subprocess.run(
        [SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=ENV
    )


def workdir(tmp_path: Path) -> Path:
    """A run folder with the repo's workflow, configs and data linked in, so results/ and .snakemake/ are
    this folder's own: Snakemake neither reads nor writes the repository's."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    for name in ("workflow", "config", "data", "profiles"):
        (tmp_path / name).symlink_to(REPO / name)
    return tmp_path


def planned_rules(dry_run_output: str) -> set[str]:
    """The rules of the jobs a dry-run plans (not every rule name it prints: it also lists, for one, the
    rules whose outputs have no metadata)."""
    return set(re.findall(r"^(?:local)?rule (\S+):$", dry_run_output, re.M))


def bad_config(tmp_path: Path, content: dict) -> str:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(content))
    return str(path)


@pytest.mark.parametrize(
    "content, words",
    [
        ({"env": {"chunk_tokns": 256}}, ["chunk_tokns", "env"]),
        ({"rl": {"steps": "many"}}, ["many", "steps"]),
        ({"data": {"doc_counts": [10, "lots"]}}, ["lots", "doc_counts"]),
        ({"evaluate": {"baselines": ["memagnet"]}}, ["memagnet", "baselines"]),
        ({"data": {"benchmarks": ["hotpot"]}}, ["hotpot", "data.benchmarks", "valid: hotpotqa"]),
        ({"data": {"sources": {"squad": {"path": "x.json"}}}}, ["squad", "data.sources"]),
        ({"ablations": {"benchmarks": ["statetracking"]}}, ["statetracking", "ablations.benchmarks"]),
        ({"rl": {"reward": "states"}}, ["states", "rl.reward", "answer+state"]),
        ({"ablations": {"runs": ["no-such-ablation"]}}, ["no-such-ablation", "ablations.runs"]),
        ({"ablations": {"custom": {"no-store": {"top_k": 2}}}}, ["no-store", "ablations.custom"]),
        ({"ablations": {"custom": {"mine": {"top_kk": 2}}}}, ["top_kk"]),
        ({"accelerate_config": "config/accelerate/cpu.yaml"}, ["accelerate_config", "object"]),
        ({"accelerate_config": {"rl": "config/accelerate/none.yaml"}}, ["accelerate_config.rl", "none.yaml"]),
    ],
)
def test_bad_config_fails_before_any_job_and_names_the_key(tmp_path, content, words):
    result = snakemake("-n", "--cores", "1", "--configfile", bad_config(tmp_path, content),
                       cwd=workdir(tmp_path / "run"))
    assert result.returncode != 0
    message = result.stdout + result.stderr
    for word in words:
        assert word in message, message
    assert "Job stats" not in message


def test_schema_defaults_are_the_default_config():
    """A key added to one of them only would make `--configfile` overrides behave differently."""
    from snakemake.utils import validate

    filled: dict = {}
    validate(filled, str(REPO / "workflow/schemas/config.schema.yaml"))
    default = yaml.safe_load((REPO / "config/config.yaml").read_text())
    validate(default, str(REPO / "workflow/schemas/config.schema.yaml"))
    assert filled == default


@pytest.mark.parametrize("configfile", CONFIGS)
def test_dry_run(configfile, tmp_path):
    result = snakemake("-n", "--cores", "2", "--resources", "gpu=8", "--configfile", *configfile.split(),
                       cwd=workdir(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert {"prepare_eval", "synthesize", "sft", "rl", "evaluate_policy", "evaluate_baseline", "evaluate_ablation",
            "table_main", "table_gains", "figure_op_frequency"} <= planned_rules(result.stdout), result.stdout


@pytest.mark.parametrize(
    "configfile, overlay, sft, rl",
    [
        ("config/config.yaml", None, "", ""),
        ("config/learn.yaml", None, "", ""),  # CPU: both stages one process, faster (README)
        # the stages read their own keys: a launch set for SFT alone leaves RL one process
        ("config/learn.yaml", {"accelerate_config": {"sft": "config/accelerate/cpu.yaml"}},
         "config/accelerate/cpu.yaml", ""),
        ("config/paper.yaml", None, "config/accelerate/fsdp.yaml", "config/accelerate/fsdp.yaml"),
        ("config/paper.yaml config/paper-cpu.yaml", None, "config/accelerate/fsdp-cpu.yaml",
         "config/accelerate/fsdp-cpu.yaml"),
        ("config/paper.yaml config/paper-small.yaml", None, "config/accelerate/fsdp.yaml",
         "config/accelerate/fsdp.yaml"),
    ],
)
def test_each_training_stage_launches_with_its_own_accelerate_config(configfile, overlay, sft, rl, tmp_path):
    configfiles = configfile.split()
    if overlay:
        (tmp_path / "overlay.yaml").write_text(yaml.safe_dump(overlay))
        configfiles.append(str(tmp_path / "overlay.yaml"))
    result = snakemake("-n", "-p", "--cores", "2", "--resources", "gpu=8", "--configfile", *configfiles,
                       cwd=workdir(tmp_path / "run"))
    assert result.returncode == 0, result.stdout + result.stderr
    launches = re.findall(r"ACCELERATE_CONFIG=(\S*) \S+launch.sh \d+ train (sft|rl) ", result.stdout)
    assert {stage for _, stage in launches} == {"sft", "rl"}
    for path, stage in launches:
        assert path.strip("'") == {"sft": sft, "rl": rl}[stage], (stage, path)


def test_one_figure_builds_only_what_it_needs(tmp_path):
    result = snakemake("-n", "--cores", "2", "results/figures/op_frequency.pdf", cwd=workdir(tmp_path))
    assert result.returncode == 0, result.stderr
    planned = planned_rules(result.stdout)
    assert "rl" in planned and "evaluate_policy" not in planned, result.stdout


def test_lint_is_clean(tmp_path):
    result = snakemake("--lint", cwd=workdir(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr


def job_commands(configfile: str, run: Path) -> list[list[str]]:
    """`atommem STAGE ARGS...` of every job of a dry-run in the run folder `run`, as the rules build them
    (launch.sh unwrapped)."""
    import shlex

    result = snakemake("-n", "-p", "--cores", "2", "--resources", "gpu=8", "--configfile", *configfile.split(),
                       cwd=run)
    assert result.returncode == 0, result.stdout + result.stderr
    commands = []
    for line in result.stdout.splitlines():
        if not line.startswith("Shell command: "):
            continue
        words = shlex.split(line.removeprefix("Shell command: ").split(" > ")[0])
        while words and re.match(r"[A-Z_]+=", words[0]):  # environment assignments (ACCELERATE_CONFIG=...)
            words = words[1:]
        if words and words[0].endswith("launch.sh"):
            words = ["atommem", *words[3:]]
        if words and words[0] == "atommem":
            commands.append(words[1:])
    return commands


def made_by_an_earlier_job(message: str) -> bool:
    """A dry-run runs no job, so a file or model folder that an upstream job writes under results/ is not
    there yet; the recipe checks it when its job starts. A hub model (paper.yaml's Qwen3) cannot be resolved
    on a machine without the hub. Any other error is the config's."""
    return bool(re.match(r"results/\S+: file not found$", message) or "no model folder results/" in message
                or "is not in the local hub cache and the hub is offline" in message)


@pytest.mark.parametrize("configfile", CONFIGS)
def test_every_job_config_is_accepted_by_its_recipe(configfile, tmp_path, monkeypatch):
    """Each job's inline config resolves into its recipe's config class and passes the recipe's full check.
    The checks run in the dry-run's own run folder, as the jobs would: the paths in the configs are relative."""
    import importlib

    from atommem.cli import STAGES, build_parser
    from atommem.config import from_dict, load_config

    run = workdir(tmp_path)
    commands = job_commands(configfile, run)
    monkeypatch.chdir(run)
    checked = set()
    for argv in commands:
        args = build_parser().parse_args(argv)
        recipe = importlib.import_module(STAGES[args.stage][0])
        try:
            cfg = from_dict(recipe.CONFIG_CLASS, load_config(args.config, args.overrides))
            if hasattr(recipe, "check_config"):
                recipe.check_config(cfg)
        except Exception as err:
            if not made_by_an_earlier_job(str(err)):
                pytest.fail(f"{configfile}: {' '.join(argv)[:200]}...: {err}")
        checked.add(args.stage)
    assert {"prepare", "synthesize", "sft", "rl", "evaluate", "compare", "plot"} <= checked


def stage_running(session: int, stage: str) -> bool:
    """Whether a process of this session runs `atommem <stage>` (directly or as `-m atommem.cli <stage>`)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # the session id is the 6th field, after the parenthesised command name
            sid = int(stat.read_text().rsplit(")", 1)[1].split()[3])
            argv = (stat.parent / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue  # the process ended while we looked
        if sid != session:
            continue
        words = [w.decode(errors="replace") for w in argv]
        if any(w.endswith(("atommem", "atommem.cli")) and nxt == stage for w, nxt in zip(words, words[1:])):
            return True
    return False


@dataclass
class KilledRun:
    """The test DAG killed with SIGKILL while an RL job ran, then run again to the end by the same command."""

    run: Path
    lock_left: bool                 # the kill left Snakemake's lock behind
    finished_mtimes: dict           # path -> mtime_ns of outputs finished before the kill
    rerun: subprocess.CompletedProcess


def kill_mid_rl_then_rerun(run: Path) -> KilledRun:
    """One full run of the test DAG, interrupted. tests/conftest.py runs it once per session
    (`killed_test_dag`): this file checks the kill and the rerun, tests/test_workflow_rerun.py dry-runs config
    changes against the finished folder."""
    # the local profile reruns jobs a kill left incomplete (their outputs are removed first)
    cmd = [SNAKEMAKE, "--profile", "profiles/local", "--cores", "2", "--configfile", "config/test.yaml"]
    # its own process group, so one killpg reaches snakemake and every job it started
    proc = subprocess.Popen(cmd, cwd=run, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, env=ENV)
    sft_done = run / "results/train/sft/final"
    # kill while an RL job runs: a state of the DAG, not a guess at how long getting there takes
    deadline = time.time() + 1200
    while not (sft_done.exists() and stage_running(proc.pid, "rl")) and proc.poll() is None:
        assert time.time() < deadline, "no RL job started within 20 minutes"
        time.sleep(0.2)
    assert proc.poll() is None, "the DAG ended before it could be interrupted"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()

    finished = {p: p.stat().st_mtime_ns for p in (run / "results/data").rglob("*.jsonl")}
    finished[sft_done / "config.json"] = (sft_done / "config.json").stat().st_mtime_ns
    lock_left = bool(list((run / ".snakemake/locks").glob("*.lock")))
    # the same command again: the stale lock of the dead process is removed, the DAG picks up where it stopped
    rerun = subprocess.run(cmd, cwd=run, capture_output=True, text=True, timeout=1800, env=ENV)
    return KilledRun(run, lock_left, finished, rerun)


@pytest.mark.slow
def test_sigkill_mid_run_then_rerun_keeps_finished_jobs(killed_test_dag, monkeypatch):
    run, rerun = killed_test_dag.run, killed_test_dag.rerun
    assert killed_test_dag.lock_left, "the kill should leave Snakemake's lock behind"
    assert rerun.returncode == 0, rerun.stdout[-5000:] + rerun.stderr[-5000:]
    assert "removed the stale lock" in rerun.stderr
    for path, mtime in killed_test_dag.finished_mtimes.items():
        assert path.stat().st_mtime_ns == mtime, f"{path} was redone"
    # the rerun completes the whole test DAG: every figure and table, and the MLflow store
    for path in FINAL:
        assert (run / path).stat().st_size > 0, path
    assert (run / "results/mlflow.db").exists()
    # the comparison notebook runs against this DAG's own MLflow store
    notebook = nbformat.read(REPO / "notebooks/compare_runs.ipynb", as_version=4)
    monkeypatch.setenv("ATOMMEM_MLFLOW_URI", f"sqlite:///{run / 'results/mlflow.db'}")
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(REPO / "notebooks")}}).execute()
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors

