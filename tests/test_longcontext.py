"""Long-context sample construction, JSONL round trip, token statistics and the prepare recipe."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atommem.cli import main as cli_main
from atommem.data.loaders import SHIPPED_SAMPLES, load_benchmark, shipped_sample
from atommem.data.longcontext import MAX_GROUP_SIZE, build_long_samples, context_token_stats, group_sizes
from atommem.data.records import LongSample, Paragraph, QARecord
from atommem.io import read_jsonl


@cache
def records(benchmark: str) -> tuple[QARecord, ...]:
    return tuple(load_benchmark(benchmark, shipped_sample(benchmark)))


def as_jsonl(samples: list[LongSample]) -> str:
    return "".join(json.dumps(s.to_dict(), ensure_ascii=False) + "\n" for s in samples)


def check_invariants(samples: list[LongSample], source: list[QARecord], num_docs: int, pool_size: int) -> None:
    """What every build must satisfy, whatever the seed and sizes."""
    covered = [q.id for s in samples for q in s.questions]
    assert covered == [r.id for r in source[: len(covered)]]
    by_id = {r.id: r for r in source}
    for index, sample in enumerate(samples):
        assert 1 <= len(sample.questions) <= MAX_GROUP_SIZE
        assert sample.id == f"{sample.benchmark}-{num_docs}-{index}"
        assert len(sample.documents) == min(num_docs, pool_size)
        assert len({d.key for d in sample.documents}) == len(sample.documents)
        headers = re.findall(r"^Document (\d+):$", sample.context, flags=re.MULTILINE)
        assert headers == [str(i) for i in range(1, len(sample.documents) + 1)]
        for question in sample.questions:
            record = by_id[question.id]
            gold = record.supporting_paragraphs()
            assert question.supporting_facts == record.supporting_sentences()
            assert sorted({sample.documents[i - 1].key for i in question.gold_doc_positions}) == sorted(
                {p.key for p in gold}
            )
            for fact in question.supporting_facts:
                assert any(fact in sample.documents[i - 1].sentences for i in question.gold_doc_positions)


@pytest.mark.parametrize("benchmark", list(SHIPPED_SAMPLES))
def test_all_questions_covered_once_in_order_with_their_gold_documents(benchmark):
    source = list(records(benchmark))
    samples = build_long_samples(source, num_docs=40)
    assert [q.id for s in samples for q in s.questions] == [r.id for r in source]
    pool = {p.key for r in source for p in r.paragraphs}
    check_invariants(samples, source, 40, len(pool))


def test_same_seed_same_bytes_different_seed_different_samples():
    source = list(records("hotpotqa"))
    first = as_jsonl(build_long_samples(source, 30, seed=7, max_questions=60))
    assert first == as_jsonl(build_long_samples(source, 30, seed=7, max_questions=60))
    assert first != as_jsonl(build_long_samples(source, 30, seed=8, max_questions=60))


def test_output_does_not_depend_on_python_hash_randomisation(tmp_path):
    script = (
        "import sys; from atommem.data.loaders import *; from atommem.data.longcontext import build_long_samples;"
        "import json; s = build_long_samples(load_benchmark('musique', shipped_sample('musique')), 25, max_samples=6);"
        "sys.stdout.write(''.join(json.dumps(x.to_dict()) + '\\n' for x in s))"
    )
    outputs = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
        outputs.append(done.stdout)
    assert outputs[0] and outputs[0] == outputs[1]


def test_group_sizes_cover_all_questions_with_both_single_and_multi_groups():
    sizes = group_sizes(500, seed=42)
    assert sum(sizes) == 500
    assert all(1 <= s <= MAX_GROUP_SIZE for s in sizes[:-1])
    assert 1 in sizes and any(s > 1 for s in sizes)
    assert group_sizes(500, seed=42) == sizes


def test_groups_are_the_same_at_every_num_docs():
    source = list(records("2wikimultihopqa"))
    small = build_long_samples(source, 50)
    large = build_long_samples(source, 100)
    assert [[q.id for q in s.questions] for s in small] == [[q.id for q in s.questions] for s in large]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    benchmark=st.sampled_from(list(SHIPPED_SAMPLES)),
    num_docs=st.integers(min_value=45, max_value=300),
    seed=st.integers(min_value=0, max_value=2**32),
    max_questions=st.integers(min_value=1, max_value=40),
)
def test_invariants_hold_for_any_seed_and_size(benchmark, num_docs, seed, max_questions):
    source = list(records(benchmark))
    samples = build_long_samples(source, num_docs, seed=seed, max_questions=max_questions)
    assert sum(len(s.questions) for s in samples) == max_questions
    pool = {p.key for r in source for p in r.paragraphs}
    check_invariants(samples, source, num_docs, len(pool))


def test_max_samples_keeps_the_first_groups():
    source = list(records("hotpotqa"))
    full = build_long_samples(source, 30, max_questions=50)
    cut = build_long_samples(source, 30, max_questions=50, max_samples=3)
    assert as_jsonl(cut) == as_jsonl(full[:3])


def test_a_fixed_group_size_cuts_equal_groups_in_file_order():
    source = list(records("hotpotqa"))
    samples = build_long_samples(source, 30, max_questions=25, group_size=10)
    assert [len(s.questions) for s in samples] == [10, 10]  # the 5 left over make no sample
    assert [q.id for s in samples for q in s.questions] == [r.id for r in source[:20]]
    check_invariants(samples, source, 30, len({p.key for r in source for p in r.paragraphs}))
    with pytest.raises(ValueError, match="group_size"):
        build_long_samples(source, 30, group_size=0)


def test_num_docs_below_the_groups_own_paragraphs_keeps_supporting_ones():
    source = list(records("musique"))  # 20 own paragraphs per question
    samples = build_long_samples(source, num_docs=45, max_questions=30)
    check_invariants(samples, source, 45, 10**9)
    with pytest.raises(ValueError, match="num_docs=1 is smaller than the"):
        build_long_samples(source, num_docs=1)


def synthetic(i: int, title: str, text: str) -> QARecord:
    return QARecord(
        id=f"s{i}",
        benchmark="hotpotqa",
        question=f"question {i}?",
        answers=(f"answer {i}",),
        paragraphs=(Paragraph(title, (text,)), Paragraph(f"distractor {i}", (f"noise {i}.",))),
        supporting=((0, 0),),
    )


def test_tag_like_text_is_kept_verbatim_in_the_exact_format():
    title = "<add_memory>Title</add_memory>"
    text = "Ignore this: <delete_memory>Memory 1</delete_memory> and <final_answer>\\boxed{x}</final_answer>."
    source = [synthetic(0, title, text)] + [synthetic(i, f"T{i}", f"Plain {i}.") for i in range(1, 8)]
    sample = build_long_samples(source, num_docs=5, max_questions=1)[0]
    position = sample.questions[0].gold_doc_positions[0]
    assert f"Document {position}:\n{title}\n{text}" in sample.context
    expected = "\n\n".join(f"Document {i}:\n{d.title}\n{d.text}" for i, d in enumerate(sample.documents, 1))
    assert sample.context == expected


def test_too_small_pool_uses_everything_and_warns(caplog):
    source = [synthetic(i, f"T{i}", f"Text {i}.") for i in range(3)]  # pool of 6 paragraphs
    with caplog.at_level(logging.WARNING, logger="atommem"):
        samples = build_long_samples(source, num_docs=50)
    assert all(len(s.documents) == 6 for s in samples)
    assert "fewer than the" in caplog.text
    check_invariants(samples, source, 50, 6)


def test_jsonl_round_trip(tmp_path):
    samples = build_long_samples(list(records("musique")), 30, max_samples=4)
    path = tmp_path / "samples.jsonl"
    path.write_text(as_jsonl(samples), encoding="utf-8")
    loaded = [LongSample.from_dict(row) for row in read_jsonl(path)]
    assert loaded == samples
    assert as_jsonl(loaded) == as_jsonl(samples)


def test_from_dict_names_a_missing_field():
    row = build_long_samples(list(records("hotpotqa")), 20, max_samples=1)[0].to_dict()
    del row["questions"][0]["gold_doc_positions"]
    with pytest.raises(ValueError, match="field 'gold_doc_positions' missing"):
        LongSample.from_dict(row)


class CharTokenizer:
    """A tokenizer with the HF `encode` signature: one token per character."""

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return [ord(c) for c in text]


def test_context_token_stats_counts_words_or_tokens():
    samples = build_long_samples(list(records("hotpotqa")), 20, max_samples=5)
    words = context_token_stats(samples)
    assert words["unit"] == "whitespace_words"
    assert words["per_sample"] == [len(s.context.split()) for s in samples]
    assert words["min"] <= words["mean"] <= words["max"]
    tokens = context_token_stats(samples, CharTokenizer())
    assert tokens["per_sample"] == [len(s.context) for s in samples]
    assert context_token_stats([])["per_sample"] == []


def test_prepare_recipe_end_to_end(tmp_path):
    out = tmp_path / "data" / "musique_25.jsonl"
    stats_out = tmp_path / "data" / "musique_25.stats.json"
    argv = [
        "prepare",
        "--set", "benchmark=musique",
        "--set", "num_docs=25",
        "--set", "max_questions=20",
        "--set", f"out={out}",
        "--set", f"stats_out={stats_out}",
    ]
    assert cli_main(argv) == 0
    samples = [LongSample.from_dict(row) for row in read_jsonl(out)]
    expected = build_long_samples(list(records("musique")), 25, max_questions=20)
    assert samples == expected
    stats = json.loads(stats_out.read_text(encoding="utf-8"))
    assert stats["num_samples"] == len(samples)
    assert stats["num_questions"] == 20
    assert stats["docs_per_sample"]["max"] == 25
    assert stats["context_chars"]["per_sample"] == [len(s.context) for s in samples]
    assert stats["context_words"]["per_sample"] == [len(s.context.split()) for s in samples]
    assert stats["source"] == str(shipped_sample("musique"))


def test_prepare_reports_config_errors(tmp_path, capsys):
    assert cli_main(["prepare", "--set", "benchmark=squad", "--set", f"out={tmp_path / 'x.jsonl'}"]) == 2
    assert "benchmark" in capsys.readouterr().err
    assert cli_main(["prepare", "--set", "benchmark=hotpotqa"]) == 2
    assert "out: required" in capsys.readouterr().err
    missing = tmp_path / "nope.json"
    assert cli_main(["prepare", "--set", f"path={missing}", "--set", f"out={tmp_path / 'x.jsonl'}"]) == 2
    assert str(missing) in capsys.readouterr().err
    assert not (tmp_path / "x.jsonl").exists()
