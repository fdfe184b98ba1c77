"""state_f1 (atommem.tasks.state_f1): the memory an episode ends with against the world's true final state,
which `atommem prepare` writes into every statetrack sample. 1 for the oracle's memory, 0 for an empty one,
reported by every method's evaluation."""

from __future__ import annotations

import json

import pytest
from test_oracle import _play
from transformers import AutoTokenizer

from atommem.agent.env import EnvConfig
from atommem.data.loaders import load_benchmark, shipped_sample
from atommem.data.records import LongSample, read_samples
from atommem.data.statetrack import StateTrackConfig, build_statetrack_samples, distractor_pool
from atommem.errors import InputError
from atommem.eval.scoring import score_trajectories, summarize
from atommem.llm.base import Generation, ModelConfig, SamplingConfig, build_llm
from atommem.memory.embedders import HashingEmbedder
from atommem.methods import baseline_prompts as bp
from atommem.methods.base import MethodContext
from atommem.methods.registry import METHODS, get_method
from atommem.recipes.prepare import PrepareConfig, main
from atommem.tasks.state_f1 import memory_facts, state_f1, true_facts

TRUTH = {"Mary": {"location": "kitchen", "carries": ["apple", "key"]}, "John": {"location": "garden"},
         "book": {"location": "hallway"}}
ORACLE_MEMORY = ["Mary is in the kitchen.", "Mary carries the apple.", "Mary carries the key.",
                 "John is in the garden.", "The book is in the hallway.", "Chunk 2 of 3: nothing relevant."]


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def worlds(knobs: StateTrackConfig, num_samples: int, seed: int) -> list[LongSample]:
    pool = distractor_pool(load_benchmark("hotpotqa", shipped_sample("hotpotqa")))
    return build_statetrack_samples(pool, knobs, num_docs=4, num_samples=num_samples, seed=seed)


def test_the_facts_of_the_oracles_sentences_and_of_the_truth_agree():
    assert memory_facts(ORACLE_MEMORY) == true_facts(TRUTH) == {
        ("mary", "location", "kitchen"), ("mary", "carries", "apple"), ("mary", "carries", "key"),
        ("john", "location", "garden"), ("book", "location", "hallway")}
    assert state_f1(ORACLE_MEMORY, TRUTH) == 1.0
    # other phrasings of the same facts, in one scratchpad
    assert state_f1(["mary is at the kitchen; MARY is carrying the apple and the key. John is in garden. "
                     "The book is in the hallway"], TRUTH) == 1.0


def test_an_empty_memory_and_a_memory_of_no_facts_score_zero():
    assert state_f1([], TRUTH) == 0.0
    assert state_f1(["", "Chunk 1 of 2: nothing relevant to the questions.", "Mary went to the kitchen."], TRUTH) == 0.0


def test_false_and_stale_facts_cost_precision_and_missing_ones_recall():
    # 5 true facts; memory states 2 of them and a stale place for Mary: P = 2/3, R = 2/5
    memory = ["Mary is in the kitchen.", "Mary is in the cellar.", "John is in the garden."]
    assert state_f1(memory, TRUTH) == pytest.approx(2 * (2 / 3) * (2 / 5) / (2 / 3 + 2 / 5))
    # "carries nothing" and text about no statetrack name state nothing, so they cost nothing
    assert state_f1(memory + ["John carries nothing.", "The band is in the charts."], TRUTH) == state_f1(memory, TRUTH)
    # where a carried object is follows from its holder: stated right it is neutral, stated wrong it is false
    assert state_f1(ORACLE_MEMORY + ["The apple is in the kitchen."], TRUTH) == 1.0
    assert state_f1(ORACLE_MEMORY + ["The apple is in the garden."], TRUTH) < 1.0


def test_prepare_writes_the_true_final_state_and_reading_checks_it(tmp_path):
    out = tmp_path / "statetrack.jsonl"
    main(PrepareConfig(benchmark="statetrack", num_docs=4, max_samples=6, seed=7, out=str(out)))
    samples = read_samples(out)
    for sample in samples:
        assert sample.final_state and all(set(r) <= {"location", "carries"} for r in sample.final_state.values())
        for question in sample.questions:  # the truth answers the questions about places
            if question.question.startswith("Where is"):
                subject = question.question.removesuffix("?").split()[-1]
                # a carried object is where its holder is
                holders = [p for p, r in sample.final_state.items() if subject in r.get("carries", [])]
                assert sample.final_state[(holders or [subject])[0]]["location"] == question.answers[0]
        assert LongSample.from_dict(sample.to_dict()) == sample
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    rows[1]["final_state"] = {"Mary": {"location": 3}}
    out.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    with pytest.raises(InputError, match="line 2: .*final_state"):
        read_samples(out)


@pytest.mark.parametrize("knobs", [StateTrackConfig(),  # the default workflow's worlds
                                   StateTrackConfig(people=3, places=4, objects=3, events=12, questions=3)])
@pytest.mark.parametrize("use_store", [True, False])
def test_the_oracles_memory_has_state_f1_one_on_generated_worlds(tokenizer, knobs, use_store):
    samples = worlds(knobs, num_samples=10, seed=11)
    env = EnvConfig(chunk_tokens=128, chunk_overlap=32, max_turns=400, use_store=use_store)
    _, trajectories = _play(samples, env, tokenizer)
    rows = score_trajectories(trajectories, samples)
    assert [row["state_f1"] for row in rows] == [1.0] * len(rows)
    assert summarize(rows)["overall"]["state_f1"] == 1.0


class StateWriter:
    """Answers every prompt with the true final state of the sample whose context it reads: the memory block
    of memagent, the facts static-crud extracts (each ADDed), the agent's scratchpad."""

    def __init__(self, tokenizer, samples):
        self.tokenizer = tokenizer
        self.cfg = ModelConfig(name="scripted", max_model_len=4096)
        self.states = {s.context.split("\n")[1][:60]: s.final_state for s in samples}

    def state_text(self, prompt: str) -> str:
        for key, state in self.states.items():
            if key in prompt:
                return " ".join(f"{s} is in the {r['location']}." for s, r in state.items() if "location" in r)
        return ""

    def generate(self, conversations, sampling):
        replies = []
        for conversation in conversations:
            system, prompt = conversation[0]["content"], conversation[-1]["content"]
            text = self.state_text(prompt)
            if system == bp.DECIDE_SYSTEM:
                replies.append("ADD")
            elif system in (bp.MEMAGENT_READ_SYSTEM, bp.EXTRACT_SYSTEM):
                replies.append(text.replace(". ", ".\n") or "nothing")
            else:
                replies.append(f"<update_memory>{text}</update_memory>" if text else "\\boxed{x}")
        return [Generation(text=t, prompt_tokens=10, completion_tokens=3) for t in replies]


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_reports_state_f1_per_sample_and_in_the_summary(name, tiny_model_dir):
    samples = worlds(StateTrackConfig(), num_samples=2, seed=3)
    llm = build_llm(ModelConfig(name="tiny-random", max_model_len=2048, max_batch_size=8))
    ctx = MethodContext(llm=llm, sampling=SamplingConfig(max_new_tokens=8), embedder=HashingEmbedder(dim=64),
                        env=EnvConfig(chunk_tokens=256, chunk_overlap=8, max_turns=6), batch_size=2, progress=False)
    results = get_method(name).run(samples, ctx)
    rows = score_trajectories(results, samples)
    assert all(0.0 <= row["state_f1"] <= 1.0 for row in rows)
    assert 0.0 <= summarize(rows)["groups"]["statetrack_4"]["state_f1"] <= 1.0
    if name in ("full-context", "rag"):  # they write no memory
        assert all(r.final_memory == [] for r in results) and all(row["state_f1"] == 0.0 for row in rows)


@pytest.mark.parametrize("name", ["memagent", "static-crud"])
def test_a_fixed_workflows_memory_is_what_it_wrote(name, tokenizer):
    samples = worlds(StateTrackConfig(), num_samples=2, seed=3)
    ctx = MethodContext(llm=StateWriter(tokenizer, samples), sampling=SamplingConfig(max_new_tokens=8),
                        embedder=HashingEmbedder(dim=64), env=EnvConfig(chunk_tokens=4096, chunk_overlap=8),
                        batch_size=2, progress=False, options={"max_facts": 20} if name == "static-crud" else {})
    results = get_method(name).run(samples, ctx)
    for result, sample in zip(results, samples, strict=True):
        located = {s for s, r in sample.final_state.items() if "location" in r}
        assert {f[0] for f in memory_facts(result.final_memory)} == {s.lower() for s in located}
        assert state_f1(result.final_memory, sample.final_state) > 0.5
