"""Fuzzing the op parser and the episode environment against independent reference models.

Cases come from a seeded generator, so every CI run checks the same cases and a failure names the case
number that reproduces it. The default is 10,000 parser responses and 1,000 episodes (about 9,000
turns); `ATOMMEM_FUZZ_SCALE=10` runs ten times as many (100,000 parser responses), and
`ATOMMEM_FUZZ_SEED` picks another fixed sequence:

    ATOMMEM_FUZZ_SCALE=10 pytest -q tests/test_fuzz.py

The parser is compared op by op with tests/grammar_reference.py (a second implementation of the
grammar); each episode turn is checked against a small model of the environment's rules (what runs,
what is ignored or invalid, store size, scratchpad, reading pointer, query limit, answers).
"""

from __future__ import annotations

import os
import random
from collections import Counter

import pytest
from agent_helpers import generation, make_sample
from grammar_reference import TAGS, reference_parse

from atommem.agent.env import EnvConfig, Episode
from atommem.agent.ops import OP_TAGS, STORE_OPS, parse_response

SCALE = float(os.environ.get("ATOMMEM_FUZZ_SCALE", "1"))
SEED = int(os.environ.get("ATOMMEM_FUZZ_SEED", "20260530"))
PARSER_CASES = int(10_000 * SCALE)
EPISODE_CASES = int(1_000 * SCALE)

assert TAGS == OP_TAGS, "the reference grammar must name the same tags as atommem.agent.ops"

WORDS = ["fact", "Paris", "item 3", "é", "日本", " ", "\n", "\t", "\u00a0", "{", "}", "<", ">", "/", ":",
         "Memory", "memory", "\\boxed", "\\boxed{", "\\boxed {", "}}", "٣", "0", "-1", "<|im_end|>"]


def fragment(rng: random.Random) -> str:
    """One piece of a model response: a word, a tag (whole, cut, or closing), or a tag body."""
    roll = rng.random()
    tag = rng.choice(list(OP_TAGS.values()))
    if roll < 0.25:
        return rng.choice(WORDS)
    if roll < 0.40:
        return rng.choice([f"<{tag}>", f"</{tag}>", f"<{tag}", f"{tag}>", f"< {tag}>", f"<{tag.upper()}>"])
    if roll < 0.60:
        return memory_ref(rng)
    if roll < 0.70:
        return boxed(rng)
    if roll < 0.80:  # a whole well-formed op, possibly with another op nested inside
        inner = fragment(rng) if rng.random() < 0.3 else body(rng, tag)
        return f"<{tag}>{inner}</{tag}>"
    if roll < 0.90:
        return "".join(rng.choice("ab {}<>/:\n\\") for _ in range(rng.randint(1, 12)))
    return str(rng.choice([0, 1, 7, 10**3, 10**18, 10**40, -5]))


def memory_ref(rng: random.Random) -> str:
    number = rng.choice(["1", "2", "0", "00", "12", "99999999999999999999999999", "-1", "x", "٣", "1.5", ""])
    space = rng.choice([" ", "", "  ", "\n", "\u00a0", "\t"])
    colon = rng.choice([":", "", " :", ": "])
    text = rng.choice(["", " ", "new text", " spaced \n", "Memory 2: nested"])
    return f"{rng.choice(['Memory', 'memory', 'Memory', ' Memory'])}{space}{number}{colon}{text}"


def boxed(rng: random.Random) -> str:
    content = rng.choice(["C", "", " 21 ", "{a}", "x{y", "a}b", "\\frac{1}{2}", "\\boxed{in}"])
    return rng.choice(["\\boxed{", "\\boxed {", "\\boxed\n{", "\\boxed"]) + content + rng.choice(["}", "", "}}"])


def body(rng: random.Random, tag: str) -> str:
    if tag in ("modify_memory", "delete_memory"):
        return memory_ref(rng)
    if tag == "final_answer":
        return boxed(rng) if rng.random() < 0.8 else rng.choice(["", " ", "plain answer"])
    return rng.choice(["", "  ", "a fact", "line\nbreak", "x" * rng.randint(0, 50)])


def response(rng: random.Random, case: int) -> str:
    """A generated response; every 500th is very long (tens of thousands of characters)."""
    if case % 500 == 499:
        pieces = [fragment(rng) for _ in range(rng.randint(2_000, 6_000))]
        return "".join(pieces) + "x" * rng.randint(0, 50_000)
    return "".join(fragment(rng) for _ in range(rng.randint(0, 40)))


def test_parser_matches_the_reference_grammar():
    rng = random.Random(SEED)
    seen = Counter()
    for case in range(PARSER_CASES):
        text = response(rng, case)
        parsed = parse_response(text)
        ops, invalid = reference_parse(text)
        got = [(op.name, op.text, op.index) for op in parsed.ops]
        assert got == ops, f"case {case} (seed {SEED}): {text[:300]!r}"
        assert parsed.invalid == invalid, f"case {case} (seed {SEED}): {text[:300]!r}"
        seen.update(name for name, _, _ in ops)
        seen.update(invalid)
    # the generator reaches every op and every kind of invalid outcome
    assert set(OP_TAGS) | {f"invalid_op/{n}" for n in OP_TAGS} | {"invalid_turn"} <= set(seen), seen


# ---------------------------------------------------------------- episodes


DOCS = [(f"Title {i}", f"Fact number {i} says that item {i} is colour {i * 7}.") for i in range(8)]
SAMPLE = make_sample(DOCS, [("What colour is item 3?", "21"), ("What colour is item 5?", "35")])


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def env_config(rng: random.Random) -> EnvConfig:
    """Every switch: scratchpad and store on or off, store_all, disabled ops, the query limit, top_k."""
    use_store = rng.random() < 0.8
    return EnvConfig(
        chunk_tokens=rng.choice([24, 40, 80]),
        chunk_overlap=rng.choice([0, 4]),
        top_k=rng.randint(1, 4),
        query_limit=rng.randint(0, 3),
        max_turns=rng.randint(1, 14),
        use_scratchpad=rng.random() < 0.8,
        use_store=use_store,
        store_all=use_store and rng.random() < 0.2,
        disabled_ops=rng.sample(STORE_OPS, rng.randint(0, 2)) if rng.random() < 0.4 else [],
    )


def turn_response(rng: random.Random) -> str:
    pieces = [rng.choice([
        "<add_memory>item 3 is colour 21</add_memory>", "<add_memory> </add_memory>",
        "<update_query>colour</update_query>", "<update_query></update_query>",
        f"<modify_memory>Memory {rng.randint(0, 5)}: changed</modify_memory>",
        f"<delete_memory>Memory {rng.randint(0, 5)}</delete_memory>",
        "<update_memory>pad note</update_memory>", "<update_memory></update_memory>",
        f"<final_answer>\\boxed{{{rng.choice(['21', '35', ''])}}}</final_answer>",
        "<final_answer>no box</final_answer>", "<add_memory>unclosed", "junk",
    ]) if rng.random() < 0.8 else fragment(rng) for _ in range(rng.randint(0, 6))]
    return " ".join(pieces)


class EnvModel:
    """What one turn must do, from the config and the reference parse alone."""

    def __init__(self, cfg: EnvConfig, num_chunks: int):
        self.cfg = cfg
        self.enabled = {"answer"} | ({"scratchpad"} if cfg.use_scratchpad else set())
        if cfg.use_store:
            self.enabled |= set(STORE_OPS) - set(cfg.disabled_ops) - ({"create"} if cfg.store_all else set())
        advancing = {"create", "update"} if cfg.use_store else {"scratchpad"}
        self.advancing = advancing & self.enabled
        self.store_size = num_chunks if cfg.store_all else 0
        self.scratchpad = ""
        self.reads = 0  # query changes since the last write


def check_turn(model: EnvModel, ep: Episode, record, phase: str, chunk_before: int, shown: int, text: str):
    ops, parser_invalid = reference_parse(text)
    executed = [op["name"] for op in record.ops]
    # every executed op was parsed, enabled, and allowed in this phase
    assert set(executed) <= model.enabled
    assert all(record.invalid.get(k, 0) >= v for k, v in parser_invalid.items())
    disabled = Counter(f"disabled/{name}" for name, _, _ in ops if name not in model.enabled)
    if phase == "read":
        assert "answer" not in executed
        # each parsed op is executed, ignored or (for a bad index / empty text) invalid: none is lost
        extra_invalid = sum(record.invalid.values()) - sum(parser_invalid.values())
        assert len(executed) + sum(record.ignored.values()) + extra_invalid == len(ops)
        assert {k: v for k, v in record.ignored.items() if k.startswith("disabled/")} == dict(disabled)
    else:
        assert not set(executed) & {"create", "update", "delete", "scratchpad"}
    for name, op in zip(executed, record.ops):
        if name == "create":
            model.store_size += 1
            model.reads = 0
        elif name == "delete":
            assert 1 <= op["index"] <= shown
            model.store_size -= 1
            model.reads = 0
        elif name == "update":
            assert 1 <= op["index"] <= shown
            model.reads = 0
        elif name == "scratchpad":
            model.scratchpad = op["text"]
            model.reads = 0
        elif name == "read":
            assert op["text"]
            model.reads += 1
            assert model.reads <= model.cfg.query_limit, "more query changes than the limit allows"
    assert len(ep.store) == model.store_size == record.store_size
    assert ep.scratchpad == model.scratchpad
    if phase == "read":
        moved = bool(set(executed) & model.advancing) or not model.advancing
        assert ep.chunk_index == chunk_before + moved
        if moved and ep.chunk_index == len(ep.chunks):
            model.reads = 0  # the answer phase starts with a fresh query budget
    elif "answer" in executed or record.question_index != ep.question_index:
        model.reads = 0  # a settled question resets the budget


def test_episodes_follow_the_reference_rules(tokenizer):
    from atommem.memory.embedders import HashingEmbedder

    rng = random.Random(SEED + 1)
    embedder = HashingEmbedder(dim=32)
    turns = 0
    for case in range(EPISODE_CASES):
        cfg = env_config(rng)
        ep = Episode(SAMPLE, cfg, embedder, tokenizer)
        model = EnvModel(cfg, len(ep.chunks))
        assert len(ep.store) == model.store_size
        while not ep.done:
            ep.observe()
            phase, chunk_before, shown, question = ep.phase, ep.chunk_index, len(ep.shown), ep.question_index
            assert shown <= cfg.top_k
            text = turn_response(rng)
            record = ep.step(generation(text))
            turns += 1
            try:
                check_turn(model, ep, record, phase, chunk_before, shown, text)
            except AssertionError as err:
                raise AssertionError(f"episode case {case} (seed {SEED}), turn {record.turn}, {cfg}: {text!r}") from err
            if phase == "answer" and "answer" in {op["name"] for op in record.ops}:
                assert ep.answer_status[question] == "answered"
        assert len(ep.turns) <= cfg.max_turns
        assert ep.truncated == (len(ep.turns) == cfg.max_turns and "turn_cap" in ep.answer_status)
    assert turns >= EPISODE_CASES  # every episode played at least one turn
