"""The extension points of docs/extending.md, each added as a toy in the files the page names: the test's
own code stands in for the new module, a monkeypatched entry for the one registry line."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
import yaml

from atommem.config import ConfigError
from atommem.data.loaders import LOADERS, SHIPPED_SAMPLES, load_benchmark, load_hotpotqa, shipped_sample
from atommem.data.longcontext import build_long_samples
from atommem.io import read_json, write_jsonl_atomic
from atommem.llm.base import ModelConfig
from atommem.methods import registry
from atommem.methods.base import MethodResult

REPO = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text(encoding="utf-8"))


class EchoFirstWord:
    """A toy baseline (its module): answers every question with its first word, in one LLM-free pass."""

    name = "echo-first-word"

    def run(self, samples, ctx):
        return [MethodResult(s.id, s.benchmark, s.num_docs, [q.question.split()[0] for q in s.questions],
                             len(s.questions), 1, 1, 0.1, 0, 1, final_memory=[]) for s in samples]


def test_a_baseline_is_one_module_and_one_registry_line(tmp_path, monkeypatch):
    """The workflow checks evaluate.baselines against the registry, and evaluation runs a baseline by name."""
    from atommem.recipes.evaluate import EvaluateConfig, main

    monkeypatch.setitem(registry.METHODS, "echo-first-word", f"{__name__}:EchoFirstWord")  # the registry line
    registry.check_baselines(["memagent", "echo-first-word"])
    with pytest.raises(ConfigError, match=r"evaluate.baselines: \['echo'\] .*\(valid: .*echo-first-word"):
        registry.check_baselines(["echo"])
    baselines = SCHEMA["properties"]["evaluate"]["properties"]["baselines"]
    assert "enum" not in baselines["items"]  # the names live in the registry only
    registry.check_baselines(baselines["default"])

    samples = build_long_samples(load_benchmark("hotpotqa", shipped_sample("hotpotqa")), num_docs=4, seed=1,
                                 max_samples=2, max_group_size=3)
    path = tmp_path / "samples.jsonl"
    write_jsonl_atomic(path, [s.to_dict() for s in samples])
    cfg = EvaluateConfig(method="echo-first-word", run="echo-first-word", samples=str(path),
                         out_dir=str(tmp_path / "out"), progress=False,
                         model=ModelConfig(name="tiny-random", max_model_len=2048))
    cfg.embedder.kind = "hashing"
    main(cfg)
    summary = read_json(tmp_path / "out" / "summary.json")
    assert summary["method"] == "echo-first-word"
    assert summary["overall"]["n_questions"] == sum(len(s.questions) for s in samples)


def load_toyqa(path):
    """A toy benchmark's loader: HotpotQA's layout under another name."""
    return [dataclasses.replace(record, benchmark="toyqa") for record in load_hotpotqa(path)]


def test_a_benchmark_is_a_loader_and_its_data(tmp_path, monkeypatch):
    """The loader above, its two entries in atommem/data/loaders.py (set here by the test) and a data file
    are all `atommem prepare` needs; the workflow schema names no benchmark (the workflow checks the names
    against LOADERS), and the rules' benchmark wildcard takes lower-case letters and digits."""
    from atommem.cli import main as cli_main

    data = tmp_path / "toyqa" / "dev.sample.json"
    data.parent.mkdir()
    data.write_text(json.dumps(json.loads(shipped_sample("hotpotqa").read_text(encoding="utf-8"))[:12]),
                    encoding="utf-8")
    monkeypatch.setitem(LOADERS, "toyqa", load_toyqa)
    monkeypatch.setitem(SHIPPED_SAMPLES, "toyqa", str(data))
    out = tmp_path / "toyqa_6.jsonl"
    assert cli_main(["prepare", "--set", "benchmark=toyqa", "--set", "num_docs=6", "--set", "max_group_size=2",
                    "--set", f"out={out}"]) == 0
    samples = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert samples and {s["benchmark"] for s in samples} == {"toyqa"}

    data_keys, ablations = SCHEMA["properties"]["data"]["properties"], SCHEMA["properties"]["ablations"]["properties"]
    named = [data_keys["benchmarks"]["items"], data_keys["train"]["properties"]["benchmark"],
             data_keys["statetrack"]["properties"]["distractor_format"], ablations["benchmarks"]["items"]]
    assert not [key for key in named if "enum" in key]
    assert "properties" not in data_keys["sources"]
    assert all(re.fullmatch(r"[a-z0-9]+", name) for name in LOADERS)


def toy_state_f1(memory, final_state) -> float:
    """The toy task's state score: the share of true colours that memory states."""
    stated = {entry_key_colour(text) for text in memory}
    return sum(("colour", who) in stated for who in final_state) / len(final_state)


def entry_key_colour(text: str):
    m = re.fullmatch(r"(\w+) is (red|blue|green)\.", text.strip())
    return ("colour", m.group(1)) if m else None


def test_a_generated_task_reaches_every_stage_through_its_task(monkeypatch):
    """A toy task registered by one TASKS entry: the oracle, scoring (memory_backed, state_f1), the write
    audit and the state reward call its hooks, with no branch on its name anywhere else."""
    from atommem.agent.env import Trajectory, TurnRecord
    from atommem.agent.prompts import user_message
    from atommem.data.records import LongSample, Paragraph, Question
    from atommem.eval.scoring import score_trajectory
    from atommem.eval.write_audit import audit_writes
    from atommem.tasks import TASKS, task_of
    from atommem.tasks.base import Task
    from atommem.train.oracle import respond
    from atommem.train.reward import check_reward, episode_reward

    toy = Task(name="colours", knobs=dict, distractor_pool=lambda records, parts, part: [],
               generate=lambda pool, knobs, num_docs, num_samples, seed: [], default_samples=1,
               oracle=lambda episode: "<final_answer>\\boxed{red}</final_answer>",
               memory_backs=lambda question, answers, shown: any(a in " ".join(shown) for a in answers),
               entry_key=entry_key_colour, state_f1=toy_state_f1)
    monkeypatch.setitem(TASKS, "colours", toy)  # the one registry entry
    assert task_of("colours") is toy

    sample = LongSample(id="colours-1-0", benchmark="colours", num_docs=1,
                        questions=[Question("q0", "What colour is Ann?", ["red"], [], [1])],
                        documents=[Paragraph("Doc", ("Ann is red.",))], context="Ann is red.",
                        final_state={"Ann": {"colour": "red"}, "Bob": {"colour": "blue"}})
    episode = type("Episode", (), {"sample": sample})()
    assert respond(episode) == "<final_answer>\\boxed{red}</final_answer>"

    shown = ["Ann is red."]
    prompt = user_message(questions=[sample.questions[0].question], scratchpad=None, query=None, memories=shown,
                          chunk="text", chunk_position=(0, 1), reads_left=3)["content"]
    turn = TurnRecord(turn=0, phase="answer", chunk_index=0, question_index=0,
                      messages=[{"role": "system", "content": "sys"}, {"role": "user", "content": prompt}],
                      response="", ops=[{"name": "create", "text": "Ann is green.", "index": None},
                                        {"name": "answer", "text": "red", "index": None}],
                      invalid={}, ignored={}, store_size=1, prompt_tokens=1, completion_tokens=1)
    trajectory = Trajectory(sample_id=sample.id, benchmark="colours", num_docs=1, turns=[turn], answers=["red"],
                            answer_status=["answered"], truncated=False, num_chunks=1, context_tokens=3,
                            peak_store_size=1, final_memory=shown)
    [row] = score_trajectory(trajectory, sample)
    assert row["em"] == 1.0 and row["memory_backed"] is True and row["state_f1"] == 0.5
    assert audit_writes(trajectory) == {"writes_update_judged": 0, "writes_update_other_fact": 0,
                                        "writes_create_judged": 1, "writes_create_repeat": 1}
    check_reward("state", [sample])
    assert episode_reward(trajectory, sample, "state") == 0.5


def test_every_task_has_its_knobs_in_prepare_and_its_section_in_the_workflow_config():
    """The conventions the rules and `atommem prepare` read a task by: PrepareConfig.<name> holds its knobs,
    and data.<name> in the workflow config has statetrack's keys (workflow/rules/configs.smk)."""
    from atommem.recipes.prepare import PrepareConfig
    from atommem.tasks import TASKS

    data_keys = SCHEMA["properties"]["data"]["properties"]
    for name, task in TASKS.items():
        assert isinstance(getattr(PrepareConfig(), name), task.knobs)
        assert re.fullmatch(r"[a-z0-9]+", name) and name not in LOADERS
        assert {"doc_counts", "distractor_format", "train_seed", "eval_seed", "eval_samples",
                "world"} <= set(data_keys[name]["properties"])
