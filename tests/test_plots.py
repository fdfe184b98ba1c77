"""Figures from synthetic metrics.jsonl / summary.json files."""

import json
import random

import pytest

from atommem import plots
from atommem.io import write_json_atomic, write_jsonl_atomic


def fake_metrics(path, steps=60, seed=0, reward0=0.6):
    """Curves shaped like the paper's: Create rising 3 -> 4.5, Read falling, reward 0.60 -> 0.68."""
    rng = random.Random(seed)
    rows = []
    for step in range(steps):
        t = step / max(steps - 1, 1)
        rows.append(
            {
                "step": step,
                "reward/mean": reward0 + 0.08 * t + rng.gauss(0, 0.02),
                "reward/std": 0.2,
                "ops/create_per_turn": 3 + 1.5 * t + rng.gauss(0, 0.2),
                "ops/read_per_turn": 0.4 - 0.2 * t + rng.gauss(0, 0.03),
                "ops/update_per_turn": 0.2 + 0.15 * t + rng.gauss(0, 0.03),
                "ops/delete_per_turn": 0.02 + 0.01 * t + rng.gauss(0, 0.005),
            }
        )
    write_jsonl_atomic(path, rows)
    return path


def fake_summary(path, run, benchmark, num_docs, em):
    group = {"em_macro": em, "em_micro": em, "f1_macro": em + 0.1}
    write_json_atomic(
        path,
        {"method": "atommem", "policy": "rl", "run": run, "config": {},
         "groups": {f"{benchmark}_{num_docs}": group, "overall": group}},
    )
    return path


def assert_written(paths, out):
    assert [p.name for p in paths] == [out.name, out.with_suffix(".png").name]
    assert out.read_bytes().startswith(b"%PDF") and out.stat().st_size > 1000
    assert out.with_suffix(".png").read_bytes().startswith(b"\x89PNG")


def test_ema_debiased_and_smooth():
    assert plots.ema([2.0, 2.0, 2.0]) == pytest.approx([2.0, 2.0, 2.0])
    smooth = plots.ema([0.0, 1.0] * 20)
    assert max(smooth[10:]) - min(smooth[10:]) < 0.5


def test_op_frequency_and_reward(tmp_path):
    runs = {name: fake_metrics(tmp_path / f"{name}.jsonl", seed=i) for i, name in enumerate(["hotpotqa", "musique"])}
    out = tmp_path / "fig" / "op_frequency.pdf"
    assert_written(plots.op_frequency(runs, out), out)

    runs = {
        label: fake_metrics(tmp_path / f"r{i}.jsonl", seed=i, reward0=r0)
        for i, (label, r0) in enumerate([("full", 0.6), ("scratchpad-only", 0.5), ("store-only", 0.45)])
    }
    out = tmp_path / "fig" / "train_reward.pdf"
    assert_written(plots.train_reward(runs, out, std_band=True), out)


def test_single_step_run_is_drawn(tmp_path):
    out = tmp_path / "one.pdf"
    assert_written(plots.train_reward({"one": fake_metrics(tmp_path / "m.jsonl", steps=1)}, out), out)


def test_missing_key_names_file_and_key(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(json.dumps({"step": 0, "reward/mean": 0.5}) + "\n")
    with pytest.raises(plots.PlotInputError, match=r"metrics\.jsonl.*'ops/create_per_turn'"):
        plots.op_frequency({"run": path}, tmp_path / "x.pdf")
    assert not (tmp_path / "x.pdf").exists()


def test_out_must_be_pdf(tmp_path):
    with pytest.raises(plots.PlotInputError, match="must end in .pdf"):
        plots.train_reward({"a": fake_metrics(tmp_path / "m.jsonl")}, tmp_path / "x.png")


def test_em_by_length_joins_folders_of_one_run(tmp_path):
    paths = []
    for run, base in [("memagent", 0.2), ("atommem-rl", 0.4)]:
        for benchmark in ["hotpotqa", "2wikimultihopqa", "musique"]:
            for docs in [10, 20, 40]:
                path = tmp_path / run / f"{benchmark}_{docs}" / "summary.json"
                paths.append(fake_summary(path, run, benchmark, docs, base - docs / 400))
    out = tmp_path / "em_by_length.pdf"
    assert_written(plots.em_by_length(paths, out), out)
    assert plots.read_em_points(paths[0]) == [("hotpotqa", 10, pytest.approx(0.175))]


def test_em_by_length_missing_metric(tmp_path):
    path = tmp_path / "summary.json"
    write_json_atomic(path, {"method": "rag", "groups": {"musique_10": {"f1_macro": 0.1}}})
    with pytest.raises(plots.PlotInputError, match=r"summary\.json.*musique_10.*'em_macro'"):
        plots.em_by_length([path], tmp_path / "x.pdf")
