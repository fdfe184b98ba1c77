"""`atommem evaluate` end to end on the tiny model: outputs, scoring of every sample, resume after a crash."""

import json

import pytest

from atommem.cli import main as cli
from atommem.data.loaders import load_benchmark, shipped_sample
from atommem.data.longcontext import build_long_samples
from atommem.io import write_jsonl_atomic
from atommem.methods import registry
from atommem.methods.base import MethodResult


@pytest.fixture()
def samples_file(tmp_path, tiny_model_dir):
    samples = build_long_samples(load_benchmark("hotpotqa", shipped_sample("hotpotqa")), num_docs=6,
                                 max_group_size=2, max_samples=3)
    path = tmp_path / "samples.jsonl"
    write_jsonl_atomic(path, [s.to_dict() for s in samples])
    return path, samples


def run(samples_path, out_dir, *extra):
    return cli(["evaluate", "--set", f"samples={samples_path}", "--set", f"out_dir={out_dir}",
                "--set", "model.name=tiny-random", "--set", "embedder.kind=hashing", "--set", "env.chunk_tokens=256",
                "--set", "env.chunk_overlap=8", "--set", "env.max_turns=6", "--set", "sampling.max_new_tokens=12",
                "--set", "progress=false", *extra])


def test_evaluate_writes_scored_outputs(tmp_path, samples_file):
    path, samples = samples_file
    assert run(path, tmp_path / "out") == 0
    predictions = [json.loads(line) for line in (tmp_path / "out/predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == sum(len(s.questions) for s in samples)  # every sample scored (docs/method-fixes.md fix 5)
    assert {p["sample_id"] for p in predictions} == {s.id for s in samples}
    assert all(p["cost_llm_calls"] >= 1 and p["cost_amplification"] > 0 for p in predictions)
    summary = json.loads((tmp_path / "out/summary.json").read_text())
    assert summary["method"] == "atommem" and set(summary["groups"]) == {"hotpotqa_6"}
    assert summary["overall"]["n_samples"] == len(samples)
    trajectories = (tmp_path / "out/trajectories.jsonl").read_text().splitlines()
    assert len(trajectories) == len(samples)
    assert not (tmp_path / "out/partial.jsonl").exists()


def test_several_samples_files_give_one_summary_with_a_group_each(tmp_path, samples_file):
    path, samples = samples_file
    longer = build_long_samples(load_benchmark("hotpotqa", shipped_sample("hotpotqa")), num_docs=8,
                                max_group_size=2, max_samples=3)
    longer_path = tmp_path / "longer.jsonl"
    write_jsonl_atomic(longer_path, [s.to_dict() for s in longer])
    assert run(f"[{path},{longer_path}]", tmp_path / "out", "--set", "max_samples=2", "--set", "batch_size=4") == 0
    summary = json.loads((tmp_path / "out/summary.json").read_text())
    assert set(summary["groups"]) == {"hotpotqa_6", "hotpotqa_8"}
    assert summary["groups"]["hotpotqa_6"]["n_samples"] == summary["groups"]["hotpotqa_8"]["n_samples"] == 2
    assert summary["overall"]["n_samples"] == 4  # max_samples counts per file


def test_the_same_file_twice_is_refused(tmp_path, samples_file, capsys):
    path, _ = samples_file
    assert run(f"[{path},{path}]", tmp_path / "out") == 2
    assert "occurs twice" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_bad_input_fails_before_loading_a_model(tmp_path, capsys):
    assert cli(["evaluate", "--set", f"samples={tmp_path}/missing.jsonl", "--set", f"out_dir={tmp_path}"]) == 2
    assert "missing.jsonl" in capsys.readouterr().err
    assert cli(["evaluate", "--set", "method=nope", "--set", "samples=x", "--set", "out_dir=y"]) == 2
    assert "valid methods" in capsys.readouterr().err
    assert cli(["evaluate", "--set", "env.top_kk=3"]) == 2
    assert "env.top_kk" in capsys.readouterr().err


class CrashingMethod:
    """Answers 'x' to everything; raises on its second batch the first time round."""

    name = "crashing"
    seen: list[str] = []
    crash = True

    def run(self, samples, ctx):
        if CrashingMethod.crash and CrashingMethod.seen:
            CrashingMethod.crash = False
            raise RuntimeError("killed")
        CrashingMethod.seen += [s.id for s in samples]
        return [MethodResult(s.id, s.benchmark, s.num_docs, ["x"] * len(s.questions), 1, 10, 1, 0.1, 0, 100)
                for s in samples]


def test_resume_skips_finished_batches(tmp_path, samples_file, monkeypatch):
    path, samples = samples_file
    monkeypatch.setitem(registry.METHODS, "crashing", f"{__name__}:CrashingMethod")
    with pytest.raises(RuntimeError, match="killed"):
        run(path, tmp_path / "out", "--set", "method=crashing", "--set", "batch_size=1")
    assert CrashingMethod.seen == [samples[0].id]
    assert (tmp_path / "out/partial.jsonl").exists() and not (tmp_path / "out/summary.json").exists()
    assert run(path, tmp_path / "out", "--set", "method=crashing", "--set", "batch_size=1") == 0
    assert CrashingMethod.seen == [s.id for s in samples]  # the first sample was not run again
    summary = json.loads((tmp_path / "out/summary.json").read_text())
    assert summary["overall"]["n_samples"] == len(samples)
