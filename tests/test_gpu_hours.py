"""benchmarks/gpu_hours.py: the GPU-hour table of docs/paper-scale.md runs from the shipped configs, and each
stage's hours follow the config value that sizes it."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks/gpu_hours.py"
spec = importlib.util.spec_from_file_location("gpu_hours", SCRIPT)
gpu_hours = sys.modules["gpu_hours"] = importlib.util.module_from_spec(spec)  # dataclasses look their module up
spec.loader.exec_module(gpu_hours)


def hours(*overrides: str, configfiles: tuple[str, ...] = ("config/paper.yaml",)) -> dict[str, float]:
    rows, _ = gpu_hours.table(gpu_hours.merged_config(list(configfiles), list(overrides)))
    return {row["stage"]: row["gpu_h"] for row in rows}


@pytest.mark.parametrize("configfiles", [["config/paper.yaml"], ["config/paper.yaml", "config/paper-small.yaml"]])
def test_the_script_prints_the_table_of_each_paper_config(configfiles):
    result = subprocess.run([sys.executable, str(SCRIPT), "--configfile", *configfiles], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for stage in ("| SFT |", "| RL update |", "| evaluate atommem-rl |", "| evaluate rag |", "| total |"):
        assert stage in result.stdout, result.stdout


def test_paper_small_fits_one_node_in_a_day_at_the_measured_rate():
    """What config/paper-small.yaml claims, at the ceiling (the H200's measured FLOP/s at any model size)."""
    rows, total = gpu_hours.table(gpu_hours.merged_config(["config/paper.yaml", "config/paper-small.yaml"], []))
    assert total["gpu_h"] / gpu_hours.NODE_GPUS < gpu_hours.DAY_HOURS
    assert gpu_hours.critical_path(rows, "gpu_h") < gpu_hours.DAY_HOURS
    rows, total = gpu_hours.table(gpu_hours.merged_config(["config/paper.yaml"], []))
    assert total["gpu_h"] / gpu_hours.NODE_GPUS > gpu_hours.DAY_HOURS  # paper.yaml itself does not


@pytest.mark.parametrize(
    "override, doubled, also_changed",
    [
        ("sft.num_train_epochs=6", {"SFT"}, set()),
        ("rl.steps=200", {"RL rollouts (3 run(s))", "RL update"}, {"RL probes"}),  # a probe every 10 steps
        ("rl.prompts_per_step=16", {"RL rollouts (3 run(s))", "RL update"}, set()),
        ("rl.group_size=16", {"RL rollouts (3 run(s))", "RL update"}, set()),
    ],
)
def test_a_doubled_config_value_doubles_exactly_the_stages_it_sizes(override, doubled, also_changed):
    base, twice = hours(), hours(override)
    assert base.keys() == twice.keys()
    for stage in base:
        if stage in doubled:
            assert twice[stage] == pytest.approx(2 * base[stage], rel=1e-9), stage
        elif stage not in also_changed:
            assert twice[stage] == pytest.approx(base[stage], rel=1e-9), stage
        else:
            assert twice[stage] != pytest.approx(base[stage], rel=1e-3), stage


def test_more_questions_scale_synthesis_sft_and_evaluation_with_the_samples():
    """Questions are cut into groups of 1..10 as `atommem prepare` cuts them: twice the questions is about
    twice the samples, not exactly."""
    base = hours()
    more_train = hours("data.train.questions=40000")
    more_eval = hours("data.eval.max_questions=1200")
    for stage in ("synthesis (oracle; embedder only)", "SFT"):
        assert more_train[stage] / base[stage] == pytest.approx(2, rel=0.05), stage
    # RL draws its steps' samples from them: only their mean group size moves its episodes
    assert more_train["RL update"] == pytest.approx(base["RL update"], rel=0.01)
    for stage in base:
        if stage.startswith("evaluate"):
            assert more_eval[stage] / base[stage] == pytest.approx(2, rel=0.1), stage


def test_hours_follow_the_model_size():
    base, half = hours(), hours("model.name=qwen3-4b")
    assert half["SFT"] / base["SFT"] == pytest.approx(4.0 / 8.19)


def test_an_unknown_model_is_one_line_and_exit_2():
    result = subprocess.run([sys.executable, str(SCRIPT), "--set", "model.name=my-model"], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "model.name" in result.stderr and "my-model" in result.stderr
