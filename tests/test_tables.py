"""Comparison tables from synthetic summary.json files, and the compare / plot recipes through the CLI."""

import math

import pandas as pd
import pytest

from atommem import tables
from atommem.cli import main as cli
from atommem.io import write_json_atomic, write_jsonl_atomic


def group(em, cost=True, judge=None):
    g = {"em_macro": em, "em_micro": em - 0.01, "f1_macro": em + 0.1, "f1_micro": em + 0.09}
    if judge is not None:
        g["judge_macro"] = judge
    if cost:
        g.update(cost_llm_calls=12.0, cost_input_tokens=48000.0, cost_output_tokens=900.0,
                 cost_wall_s=3.5, cost_peak_store=7.0, cost_context_tokens=16000.0)
    return g


def write_summary(root, run, method, policy, groups):
    path = root / run / "summary.json"
    write_json_atomic(path, {"method": method, "policy": policy, "run": run, "config": {},
                             "groups": {**groups, "overall": group(0.0)}})
    return path


@pytest.fixture
def summaries(tmp_path):
    return [
        write_summary(tmp_path, "atommem-rl", "atommem", "rl",
                      {"hotpotqa_10": group(0.4, judge=0.5), "musique_10": group(0.2, judge=0.3)}),
        write_summary(tmp_path, "memagent", "memagent", "zero-shot",
                      {"hotpotqa_10": group(0.3, cost=False), "hotpotqa_20": group(0.25, cost=False)}),
    ]


def test_collect_columns_rows_and_amplification(summaries):
    frame = tables.collect(summaries)
    assert list(frame.columns) == [
        "run", "method", "policy", "benchmark", "num_docs",
        "em_macro", "em_micro", "f1_macro", "f1_micro", "judge_macro",
        "cost_llm_calls", "cost_input_tokens", "cost_output_tokens", "cost_wall_s", "cost_peak_store",
        "cost_context_tokens", "amplification",
    ]
    assert len(frame) == 4  # "overall" groups are left out
    assert list(zip(frame.benchmark, frame.num_docs, frame.run)) == [
        ("hotpotqa", 10, "atommem-rl"), ("hotpotqa", 10, "memagent"),
        ("hotpotqa", 20, "memagent"), ("musique", 10, "atommem-rl"),
    ]
    assert frame.amplification[0] == pytest.approx(3.0)
    assert math.isnan(frame.amplification[1]) and math.isnan(frame.judge_macro[1])


def test_statetrack_rows_show_state_f1_and_other_rows_leave_it_blank(summaries, tmp_path):
    statetrack = write_summary(tmp_path, "atommem-sft", "atommem", "sft",
                               {"statetrack_4": group(0.5) | {"state_f1": 0.75}})
    frame = tables.collect([*summaries, statetrack])
    assert list(frame.columns).index("state_f1") == list(frame.columns).index("judge_macro") + 1
    assert frame.set_index("benchmark").state_f1["statetrack"] == 0.75
    assert math.isnan(frame.state_f1[0])
    assert "| 0.750 |" in tables.to_markdown(frame)
    assert "state_f1" not in tables.collect(summaries).columns  # no statetrack group, no column


def test_rows_and_groups_select(summaries):
    frame = tables.collect(summaries, groups=["hotpotqa_10"])
    assert list(frame.run) == ["atommem-rl", "memagent"] and set(frame.num_docs) == {10}
    frame = tables.collect(summaries, keep=["memagent"], groups=["hotpotqa_20"])
    assert list(frame.run) == ["memagent"] and list(frame.num_docs) == [20]
    with pytest.raises(tables.TableInputError, match=r"groups: the filter \['musique_20'\] keeps none"):
        tables.collect(summaries, groups=["musique_20"])


def test_markdown_is_a_well_formed_pipe_table(summaries):
    frame = tables.collect(summaries)
    lines = tables.to_markdown(frame).splitlines()
    assert len(lines) == 2 + len(frame)
    assert all(line.startswith("| ") and line.endswith(" |") or line.startswith("|-") for line in lines)
    assert {line.count("|") for line in lines} == {len(frame.columns) + 1}
    assert lines[1].split("|")[1:4] == ["---", "---", "---"] and lines[1].split("|")[6] == "---:"
    assert "| atommem-rl | atommem | rl | hotpotqa | 10 | 0.400 |" in lines[2]
    assert "| 12.000 | 48,000 | 900.000 |" in lines[2] and lines[2].endswith("| 3.000 |")


def test_pipe_in_label_is_escaped(tmp_path):
    path = write_summary(tmp_path, "a|b", "rag", "", {"hotpotqa_10": group(0.1)})
    row = tables.to_markdown(tables.collect([path])).splitlines()[2]
    assert row.startswith("| a\\|b | rag |  | hotpotqa |")


def test_missing_score_names_file_and_key(tmp_path):
    path = write_summary(tmp_path, "x", "rag", "", {"hotpotqa_10": {"em_macro": 0.1, "em_micro": 0.1}})
    with pytest.raises(tables.TableInputError, match=r"x/summary\.json.*hotpotqa_10.*'f1_macro'"):
        tables.collect([path])


def test_compare_recipe_writes_csv_and_md(summaries, tmp_path):
    out = tmp_path / "tables"
    args = ["compare", "--set", f"inputs=['{tmp_path}/*/summary.json']", "--set", f"out_csv={out}/main.csv",
            "--set", f"out_md={out}/main.md", "--set", "rows=[memagent]"]
    assert cli(args) == 0
    frame = pd.read_csv(out / "main.csv")
    assert set(frame.run) == {"memagent"} and len(frame) == 2
    # the kept rows have no judge and no cost: those columns are left out
    assert list(frame.columns)[5:] == ["em_macro", "em_micro", "f1_macro", "f1_micro"]
    assert (out / "main.md").read_text().startswith("| run | method |")


def test_compare_recipe_config_errors(tmp_path, capsys):
    assert cli(["compare", "--set", f"inputs=['{tmp_path}/none/*.json']"]) == 2
    assert "inputs[0]" in capsys.readouterr().err
    assert cli(["compare", "--set", "sortt=[run]"]) == 2
    assert "unknown key sortt" in capsys.readouterr().err


def test_plot_recipe(tmp_path, capsys):
    metrics = tmp_path / "train" / "run-a" / "metrics.jsonl"
    write_jsonl_atomic(metrics, [{"step": s, "reward/mean": 0.5, "reward/std": 0.1} for s in range(3)])
    out = tmp_path / "fig" / "train_reward.pdf"
    assert cli(["plot", "--set", "figure=train_reward", "--set", f"inputs=[{metrics}]",
                "--set", f"out={out}", "--set", "std_band=true"]) == 0
    assert out.exists() and out.with_suffix(".png").exists()
    assert cli(["plot", "--set", "figure=nope", "--set", f"inputs=[{metrics}]"]) == 2
    assert "one of op_frequency, train_reward, em_by_length" in capsys.readouterr().err
