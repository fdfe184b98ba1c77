"""The paired bootstrap of policy gains (atommem/eval/paired.py) and the `atommem gains` recipe."""

import numpy as np
import pandas as pd
import pytest

from atommem.cli import main as cli
from atommem.errors import InputError
from atommem.eval.paired import compare_runs, paired_bootstrap
from atommem.io import write_jsonl_atomic


def predictions(path, ems, benchmark="statetrack", num_docs=4):
    rows = [{"sample_id": f"s{i // 2}", "question_id": f"q{i % 2}", "benchmark": benchmark, "num_docs": num_docs,
             "em": em} for i, em in enumerate(ems)]
    write_jsonl_atomic(path, rows)
    return path


def test_interval_brackets_the_mean_gain_and_shrinks_with_more_questions():
    rng = np.random.default_rng(1)
    a = rng.random(400) < 0.3
    b = a | (rng.random(400) < 0.2)  # b keeps every answer a got right and adds some
    low, high = paired_bootstrap(a, b, resamples=2000, confidence=0.95, seed=0)
    gain = b.mean() - a.mean()
    assert low < gain < high and low > 0
    low_small, high_small = paired_bootstrap(a[:40], b[:40], resamples=2000, confidence=0.95, seed=0)
    assert high_small - low_small > high - low


def test_pairing_matters_and_equal_runs_gain_exactly_zero():
    # the same 50 right answers: an unpaired test would see two noisy 0.5s, the paired one sees no difference
    same = np.arange(100) % 2
    assert paired_bootstrap(same, same, resamples=500, confidence=0.95, seed=0) == (0.0, 0.0)


def test_compare_runs_pairs_questions_by_id(tmp_path):
    a = predictions(tmp_path / "a.jsonl", [0, 0, 1, 0, 0, 0])
    b = predictions(tmp_path / "b.jsonl", [1, 1, 1, 1, 1, 1])
    (gain,) = compare_runs(a, b, resamples=1000)
    assert gain.group == "statetrack_4" and gain.n_questions == 6
    assert gain.em_a == pytest.approx(1 / 6) and gain.em_b == 1.0 and gain.em_diff == pytest.approx(5 / 6)
    assert 0 < gain.ci_low <= gain.em_diff <= gain.ci_high <= 1


def test_different_questions_are_an_error_naming_both_files(tmp_path):
    a = predictions(tmp_path / "a.jsonl", [0, 1, 1, 0])
    b = predictions(tmp_path / "b.jsonl", [0, 1, 1, 0, 1, 1])
    with pytest.raises(InputError, match=r"a\.jsonl and .*b\.jsonl: group 'statetrack_4'.*sample 's2'"):
        compare_runs(a, b)


def test_a_row_without_em_is_an_error_naming_file_row_and_key(tmp_path):
    a = predictions(tmp_path / "a.jsonl", [0, 1])
    b = tmp_path / "b.jsonl"
    write_jsonl_atomic(b, [{"sample_id": "s0", "question_id": "q0", "benchmark": "statetrack", "num_docs": 4}])
    with pytest.raises(InputError, match=r"b\.jsonl: row 1 has no key 'em'"):
        compare_runs(a, b)


def test_gains_recipe_compares_each_run_with_the_one_before(tmp_path, capsys):
    runs = [predictions(tmp_path / "eval" / run / "predictions.jsonl", ems)
            for run, ems in [("atommem-zeroshot", [0] * 40), ("atommem-sft", [1] * 30 + [0] * 10),
                             ("atommem-rl", [1] * 30 + [0] * 10)]]
    out = tmp_path / "tables"
    assert cli(["gains", "--set", f"inputs={[str(p) for p in runs]}", "--set", f"out_csv={out}/gains.csv",
                "--set", f"out_md={out}/gains.md"]) == 0
    frame = pd.read_csv(out / "gains.csv")
    assert list(zip(frame["from"], frame["to"])) == [("atommem-zeroshot", "atommem-sft"), ("atommem-sft", "atommem-rl")]
    assert list(frame.excludes_zero) == [True, False]
    assert frame.em_diff.tolist() == pytest.approx([0.75, 0.0])
    assert (out / "gains.md").read_text().startswith("| from | to | benchmark |")
    assert cli(["gains", "--set", f"inputs=[{runs[0]}]"]) == 2
    assert "at least two" in capsys.readouterr().err
    elsewhere = predictions(tmp_path / "hotpotqa.jsonl", [1, 0], benchmark="hotpotqa", num_docs=10)
    assert cli(["gains", "--set", f"inputs=[{runs[0]},{elsewhere}]"]) == 2
    assert "no '<benchmark>_<num_docs>' group is scored by two consecutive runs" in capsys.readouterr().err
