"""The generated state-tracking task: deterministic files, gold answers that an independent replay of
the text confirms, and questions that only the inserted facts answer."""

import re

import pytest

from atommem.config import ConfigError
from atommem.data.loaders import load_benchmark, shipped_sample
from atommem.data.records import read_samples
from atommem.data.statetrack import NAMES, StateTrackConfig, build_statetrack_samples, distractor_pool
from atommem.eval.metrics import normalize_answer
from atommem.recipes.prepare import PrepareConfig, main

# The fact sentences, written out again here so the check does not reuse the generator's code.
_WHO = "(" + "|".join(NAMES) + ")"
FACT = re.compile(
    rf"Correction: {_WHO} actually went to the (\w+), not the \w+\."
    rf"|{_WHO} went to the (\w+)\."
    rf"|{_WHO} picked up the (\w+)\."
    rf"|{_WHO} gave the (\w+) to {_WHO}\."
    rf"|{_WHO} dropped the (\w+)\."
)


def brute_force_answer(facts: list[str], question: str) -> str:
    """Replay fact sentences one by one in plain dictionaries and answer a question about the end state."""
    location, holder, lying = {}, {}, {}
    for fact in facts:
        m = FACT.fullmatch(fact)
        assert m, fact
        g = m.groups()
        if g[0]:
            location[g[0]] = g[1]
        elif g[2]:
            location[g[2]] = g[3]
        elif g[4]:
            holder[g[5]] = g[4]
            lying.pop(g[5], None)
        elif g[6]:
            holder[g[7]] = g[8]
        else:
            holder.pop(g[10], None)
            lying[g[10]] = location.get(g[9])
    if m := re.fullmatch(r"What is (\w+) carrying\?", question):
        carried = sorted(o for o, p in holder.items() if p == m.group(1))
        return " and ".join(carried) or "nothing"
    if m := re.fullmatch(r"Where is the (\w+)\?", question):
        obj = m.group(1)
        return location.get(holder[obj]) if obj in holder else lying.get(obj)
    m = re.fullmatch(r"Where is (\w+)\?", question)
    return location.get(m.group(1))


def facts_in_text(text: str) -> list[str]:
    return [m.group(0) for m in FACT.finditer(text)]


def _prepare(tmp_path, name, **overrides) -> list:
    cfg = PrepareConfig(benchmark="statetrack", num_docs=6, max_samples=25, seed=7, out=str(tmp_path / name))
    for key, value in overrides.items():
        setattr(cfg, key, value)
    main(cfg)
    return read_samples(cfg.out)


def test_same_seed_gives_byte_identical_files_and_another_seed_differs(tmp_path):
    _prepare(tmp_path, "a.jsonl")
    _prepare(tmp_path, "b.jsonl")
    _prepare(tmp_path, "c.jsonl", seed=8)
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert (tmp_path / "a.jsonl").read_bytes() != (tmp_path / "c.jsonl").read_bytes()


@pytest.mark.parametrize("distractor_format", ["hotpotqa", "2wikimultihopqa", "musique"])
def test_a_brute_force_replay_of_the_text_gives_every_gold_answer(tmp_path, distractor_format):
    samples = _prepare(tmp_path, "s.jsonl", distractor_format=distractor_format,
                       statetrack=StateTrackConfig(people=3, places=4, objects=3, events=14, questions=3))
    kinds = set()
    corrections = 0
    for sample in samples:
        facts = facts_in_text(sample.context)
        assert len(facts) == 14  # every event is in the text, and nothing else reads as a fact
        corrections += sum(f.startswith("Correction:") for f in facts)
        for question in sample.questions:
            kinds.add(re.sub(r"the \w+", "the O", re.sub(_WHO, "P", question.question)))
            normalized = [normalize_answer(a) for a in question.answers]
            assert normalize_answer(brute_force_answer(facts, question.question)) in normalized
    assert corrections > 0
    assert kinds == {"Where is P?", "What is P carrying?", "Where is the O?"}


def test_only_the_inserted_facts_answer_the_questions(tmp_path):
    samples = _prepare(tmp_path, "s.jsonl", statetrack=StateTrackConfig(events=12, questions=3))
    for sample in samples:
        facts = facts_in_text(sample.context)
        # the people are named only by facts: the distractor text never mentions them
        for name in NAMES:
            in_text = len(re.findall(rf"\b{name}\b", sample.context))
            assert in_text == sum(len(re.findall(rf"\b{name}\b", f)) for f in facts)
        for question in sample.questions:
            # the recorded supporting facts alone determine the answer, and sit in the recorded documents
            answer = normalize_answer(brute_force_answer(question.supporting_facts, question.question))
            assert answer in [normalize_answer(a) for a in question.answers]
            for fact in question.supporting_facts:
                assert any(fact in sample.documents[p - 1].sentences for p in question.gold_doc_positions)


def test_disjoint_distractor_parts():
    records = load_benchmark("hotpotqa", shipped_sample("hotpotqa"))
    first, second = distractor_pool(records, 2, 0), distractor_pool(records, 2, 1)
    assert first and second and not {p.key for p in first} & {p.key for p in second}
    samples = build_statetrack_samples(second, StateTrackConfig(), num_docs=4, num_samples=5, seed=1)
    first_keys = {p.title for p in first}
    assert not any(d.title in first_keys for s in samples for d in s.documents)


def test_bad_knobs_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="statetrack.people"):
        _prepare(tmp_path, "x.jsonl", statetrack=StateTrackConfig(people=0))
    with pytest.raises(ConfigError, match="statetrack.question_types"):
        _prepare(tmp_path, "x.jsonl", statetrack=StateTrackConfig(question_types=["why"]))
    with pytest.raises(ConfigError, match="distractor_format"):
        _prepare(tmp_path, "x.jsonl", distractor_format="squad")
    assert not (tmp_path / "x.jsonl").exists()


@pytest.mark.parametrize(
    "question, answers, entries, backed",
    [
        ("Where is Mary?", ["kitchen"], ["Mary is in the kitchen."], True),
        ("Where is Mary?", ["kitchen"], ["John is in the kitchen.", "Mary is in the garden."], False),
        ("Where is Mary?", ["kitchen"], [], False),
        ("Where is the apple?", ["garden"], ["The apple is in the garden."], True),
        ("Where is the apple?", ["garden"], ["John carries the apple.", "John is in the garden."], True),
        ("Where is the apple?", ["garden"], ["John carries the apple.", "Mary is in the garden."], False),
        ("What is John carrying?", ["apple and key", "key and apple"], ["John carries the key and the apple."], True),
        ("What is John carrying?", ["apple and key", "key and apple"], ["John carries the key."], False),
        ("What is John carrying?", ["nothing"], ["John is in the hallway."], True),
        ("What is John carrying?", ["nothing"], ["John is in the hallway.", "John carries the cup."], False),
        ("Who wrote Hamlet?", ["Shakespeare"], ["Shakespeare wrote Hamlet."], None),
    ],
)
def test_memory_backs_an_answer_only_when_the_shown_entries_hold_it(question, answers, entries, backed):
    from atommem.data.statetrack import memory_backs

    assert memory_backs(question, answers, entries) is backed


def test_shown_memory_reads_back_the_entries_and_scratchpad_a_prompt_shows():
    from atommem.agent.prompts import shown_memory, user_message

    entries = ["Mary is in the kitchen.", "A <add_memory>tag</add_memory>\nover two lines"]
    content = user_message(questions=["Where is Mary?"], scratchpad="John went home. He sat.\nDone",
                           query="Mary", memories=entries, chunk="Memory 9: not an entry", chunk_position=(0, 2),
                           reads_left=3)["content"]
    shown = shown_memory(content)
    assert shown[0] == "Mary is in the kitchen."
    assert "tag" in shown[1] and "over two lines" in shown[1] and "<add_memory>" not in shown[1]
    assert shown[2:] == ["John went home.", "He sat.", "Done"]
    assert shown_memory(user_message(questions=["q"], scratchpad=None, query=None, memories=None, chunk=None,
                                     chunk_position=None, reads_left=None, answer_question="q")["content"]) == []
