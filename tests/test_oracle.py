"""The oracle teacher plays real long-context samples with zero invalid ops and answers every question."""

from collections import Counter

import pytest
from transformers import AutoTokenizer

from atommem.agent.env import EnvConfig, Episode
from atommem.agent.ops import parse_response
from atommem.agent.runner import run_lockstep
from atommem.data.loaders import load_benchmark, shipped_sample
from atommem.data.longcontext import build_long_samples
from atommem.eval.scoring import score_trajectory
from atommem.eval.write_audit import audit_writes
from atommem.llm.base import SamplingConfig
from atommem.memory.embedders import HashingEmbedder
from atommem.methods.base import MethodResult
from atommem.train.oracle import OracleTeacher, question_keywords


def _samples():
    samples = []
    for benchmark in ("hotpotqa", "2wikimultihopqa", "musique"):
        records = load_benchmark(benchmark, shipped_sample(benchmark))
        samples += build_long_samples(records, num_docs=8, max_samples=2, max_group_size=3)
    return samples


def _play(samples, env, tokenizer):
    episodes = [Episode(s, env, HashingEmbedder(dim=256), tokenizer) for s in samples]
    trajectories = run_lockstep(episodes, OracleTeacher(episodes, tokenizer), SamplingConfig(), progress=False)
    return episodes, trajectories


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_oracle_trajectories_are_valid_and_answer_correctly(tokenizer):
    samples = _samples()
    assert any(len(s.questions) > 1 for s in samples)
    env = EnvConfig(chunk_tokens=256, chunk_overlap=64, max_turns=400)
    episodes, trajectories = _play(samples, env, tokenizer)
    ops, writes = Counter(), Counter()
    for episode, trajectory, sample in zip(episodes, trajectories, samples):
        assert not trajectory.truncated
        writes.update(audit_writes(trajectory))
        for turn in trajectory.turns:
            assert turn.invalid == {} and turn.ignored == {}, turn.response
            assert not parse_response(turn.response).invalid
            ops.update(op["name"] for op in turn.ops)
        # one reading turn per chunk (every turn advances), then one answer turn per question
        assert len(trajectory.turns) == trajectory.num_chunks + len(sample.questions)
        assert [row["em"] for row in score_trajectory(trajectory, sample)] == [1.0] * len(sample.questions)
        memory = " ".join(e.text for e in episode.store.entries)
        for question in sample.questions:
            for fact in question.supporting_facts:
                assert " ".join(fact.split()) in memory
    assert ops["create"] and ops["scratchpad"] and ops["read"] and ops["update"] and ops["answer"]


def test_oracle_respects_a_scratchpad_only_ablation(tokenizer):
    samples = _samples()[:2]
    env = EnvConfig(chunk_tokens=256, chunk_overlap=64, max_turns=400, use_store=False)
    _, trajectories = _play(samples, env, tokenizer)
    for trajectory, sample in zip(trajectories, samples, strict=True):
        assert not trajectory.truncated
        assert {op["name"] for turn in trajectory.turns for op in turn.ops} <= {"scratchpad", "answer"}
        assert all(turn.invalid == {} and turn.ignored == {} for turn in trajectory.turns)
        rows = score_trajectory(trajectory, sample)
        assert [row["em"] for row in rows] == [1.0] * len(sample.questions)
        assert all("memory_backed" not in row for row in rows)  # a statetrack diagnostic only


def test_question_keywords_drop_stopwords():
    assert question_keywords("Which band was formed in the same city as the Beatles?") == "band formed city Beatles"


def _statetrack_samples():
    from atommem.data.statetrack import StateTrackConfig, build_statetrack_samples, distractor_pool

    pool = distractor_pool(load_benchmark("hotpotqa", shipped_sample("hotpotqa")))
    world = StateTrackConfig(people=3, places=4, objects=3, events=12, questions=3)
    return build_statetrack_samples(pool, world, num_docs=6, num_samples=12, seed=5)


def test_oracle_tracks_a_changing_world_with_create_update_delete_and_read(tokenizer):
    from atommem.data.statetrack import facts_in
    from atommem.tasks.statetrack_oracle import entries, world_after

    samples = _statetrack_samples()
    env = EnvConfig(chunk_tokens=128, chunk_overlap=32, max_turns=400)
    episodes, trajectories = _play(samples, env, tokenizer)
    ops, writes = Counter(), Counter()
    for episode, trajectory, sample in zip(episodes, trajectories, samples):
        assert not trajectory.truncated
        writes.update(audit_writes(trajectory))
        for turn in trajectory.turns:
            assert turn.invalid == {} and turn.ignored == {}, turn.response
            ops.update(op["name"] for op in turn.ops)
        rows = score_trajectory(trajectory, sample)
        assert [row["em"] for row in rows] == [1.0] * len(sample.questions)
        # the oracle answers from its memory, never by a guess; evaluation sees it through a method's result
        assert [row["memory_backed"] for row in rows] == [True] * len(rows)
        result = MethodResult(sample.id, sample.benchmark, sample.num_docs, trajectory.answers, llm_calls=0,
                              input_tokens=0, output_tokens=0, wall_s=0.0, peak_store=0, context_tokens=0,
                              trajectory=trajectory)
        assert [row["memory_backed"] for row in score_trajectory(result, sample)] == [True] * len(rows)
        # the store ends holding exactly the final state (besides the notes that move past empty chunks)
        final = entries(world_after(facts_in(" ".join(sample.context.split()))))
        kept = sorted(e.text for e in episode.store.entries if not e.text.startswith("Chunk "))
        assert kept == sorted(final.values())
    assert ops["create"] and ops["update"] and ops["delete"] and ops["read"] and ops["answer"]
    # one entry per fact: every Update rewrites its own fact, no Create repeats a shown one
    assert writes["writes_update_judged"] == ops["update"] and writes["writes_create_judged"] > 0
    assert writes["writes_update_other_fact"] == 0 and writes["writes_create_repeat"] == 0


def test_oracle_plays_statetrack_without_a_store(tokenizer):
    samples = _statetrack_samples()[:4]
    env = EnvConfig(chunk_tokens=128, chunk_overlap=32, max_turns=400, use_store=False)
    episodes, trajectories = _play(samples, env, tokenizer)
    for trajectory, sample in zip(trajectories, samples):
        assert all(turn.invalid == {} and turn.ignored == {} for turn in trajectory.turns)
        rows = score_trajectory(trajectory, sample)
        assert [row["em"] for row in rows] == [1.0] * len(sample.questions)
        assert [row["memory_backed"] for row in rows] == [True] * len(rows)  # from the scratchpad
