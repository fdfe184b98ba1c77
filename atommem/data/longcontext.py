"""Long-context multi-question samples built from benchmark records, as the paper builds them: groups of
1..10 questions, their own paragraphs plus random ones up to N documents.

Questions are taken in file order and cut into consecutive groups of 1..10; each group becomes one
sample whose documents are its questions' own paragraphs plus random paragraphs from the split's pool,
shuffled and rendered as "Document i:\\n{title}\\n{text}" separated by blank lines.

Everything is seeded with `random.Random`; orderings never depend on `hash()` or set iteration, so the
same records and seed give byte-identical samples in any process.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence

from atommem.data.records import LongSample, Paragraph, QARecord, Question
from atommem.errors import InputError

log = logging.getLogger(__name__)

MAX_GROUP_SIZE = 10
SINGLE_QUESTION_PROBABILITY = 0.5


def group_sizes(num_questions: int, seed: int, max_group_size: int = MAX_GROUP_SIZE) -> list[int]:
    """Sizes of consecutive question groups covering `num_questions`: 1 with probability 0.5, else
    uniform in 2..max_group_size (10 in the paper).

    The last group is cut short to what is left. Depends only on the seed and the count, so every
    `num_docs` setting groups the same questions together.
    """
    rng = random.Random(seed)
    sizes, covered = [], 0
    while covered < num_questions:
        single = max_group_size == 1 or rng.random() < SINGLE_QUESTION_PROBABILITY
        size = 1 if single else rng.randint(2, max_group_size)
        size = min(size, num_questions - covered)
        sizes.append(size)
        covered += size
    return sizes


def paragraph_pool(records: Sequence[QARecord]) -> list[Paragraph]:
    """Every distinct (title, text) paragraph of the split, in order of first appearance."""
    pool: dict[tuple[str, str], Paragraph] = {}
    for record in records:
        for paragraph in record.paragraphs:
            pool.setdefault(paragraph.key, paragraph)
    return list(pool.values())


def render_context(documents: Sequence[Paragraph]) -> str:
    # Titles and texts are kept verbatim, tag-like strings included: the agent layer keeps them inert.
    return "\n\n".join(f"Document {i}:\n{doc.title}\n{doc.text}" for i, doc in enumerate(documents, 1))


def _own_documents(group: Sequence[QARecord], num_docs: int, group_index: int) -> list[Paragraph]:
    """The group's own paragraphs (deduplicated); if they exceed num_docs, supporting ones are kept first."""
    own: dict[tuple[str, str], Paragraph] = {}
    gold: dict[tuple[str, str], Paragraph] = {}
    for record in group:
        for paragraph in record.paragraphs:
            own.setdefault(paragraph.key, paragraph)
        for paragraph in record.supporting_paragraphs():
            gold.setdefault(paragraph.key, paragraph)
    if len(own) <= num_docs:
        return list(own.values())
    if len(gold) > num_docs:
        raise InputError(
            f"num_docs={num_docs} is smaller than the {len(gold)} supporting paragraphs of group {group_index}: "
            "raise num_docs or lower max_group_size"
        )
    distractors = [p for key, p in own.items() if key not in gold]
    return list(gold.values()) + distractors[: num_docs - len(gold)]


def _pool_fill(
    pool: list[Paragraph], exclude: set[tuple[str, str]], need: int, rng: random.Random, group_index: int
) -> list[Paragraph]:
    """`need` random pool paragraphs not in `exclude` (all of them, with a warning, if too few)."""
    if need + len(exclude) >= len(pool):
        outside = [p for p in pool if p.key not in exclude]
        if len(outside) < need:
            log.warning(
                "group %d: the pool has only %d paragraphs outside the group, fewer than the %d needed; using all",
                group_index, len(outside), need,
            )
            return outside
        return rng.sample(outside, need)
    # Sampling need + len(exclude) indices leaves at least `need` after dropping excluded ones,
    # without scanning the whole pool for every group.
    picks = rng.sample(range(len(pool)), need + len(exclude))
    return [pool[i] for i in picks if pool[i].key not in exclude][:need]


def _question(record: QARecord, positions: dict[tuple[str, str], int]) -> Question:
    return Question(
        id=record.id,
        question=record.question,
        answers=list(record.answers),
        supporting_facts=record.supporting_sentences(),
        gold_doc_positions=sorted({positions[p.key] for p in record.supporting_paragraphs()}),
    )


def build_long_samples(
    records: Sequence[QARecord],
    num_docs: int,
    seed: int = 42,
    benchmark: str | None = None,
    max_questions: int | None = None,
    max_samples: int | None = None,
    skip_questions: int = 0,
    max_group_size: int = MAX_GROUP_SIZE,
    group_size: int | None = None,
) -> list[LongSample]:
    """Cut `records` (file order) into question groups and build one `LongSample` per group.

    The random pool is every distinct paragraph of `records` (the whole split), even when
    `max_questions` keeps only the first questions after skipping `skip_questions` (so one file gives a
    train and a held-out split). `max_samples` keeps only the first groups.
    `benchmark` defaults to the records' own benchmark name (used in sample ids). `group_size` makes every
    group exactly that many questions (the last ones, too few, are left out): benchmarks/scaling.py sizes
    samples by it, where the paper's random 1..max_group_size would mix the sizes it compares.
    """
    if num_docs < 1:
        raise ValueError(f"num_docs must be at least 1, got {num_docs}")
    if max_group_size < 1:
        raise ValueError(f"max_group_size must be at least 1, got {max_group_size}")
    if group_size is not None and group_size < 1:
        raise ValueError(f"group_size must be at least 1, got {group_size}")
    if not records:
        raise ValueError("no records to build samples from")
    names = list(dict.fromkeys(r.benchmark for r in records))
    if benchmark is None:
        if len(names) > 1:
            raise ValueError(f"records mix benchmarks {names}; pass benchmark=")
        benchmark = names[0]

    pool = paragraph_pool(records)
    questions = list(records[skip_questions:])
    if max_questions is not None:
        questions = questions[:max_questions]
    samples: list[LongSample] = []
    start = 0
    sizes = ([group_size] * (len(questions) // group_size) if group_size is not None
             else group_sizes(len(questions), seed, max_group_size))
    for group_index, size in enumerate(sizes):
        if max_samples is not None and group_index >= max_samples:
            break
        group = questions[start : start + size]
        start += size
        rng = random.Random(f"{seed}:{group_index}")  # str seeds are hashed with SHA-512: stable everywhere
        own = _own_documents(group, num_docs, group_index)
        own_keys = {p.key for p in own}
        documents = own + _pool_fill(pool, own_keys, num_docs - len(own), rng, group_index)
        rng.shuffle(documents)
        positions = {doc.key: i for i, doc in enumerate(documents, 1)}
        samples.append(
            LongSample(
                id=f"{benchmark}-{num_docs}-{group_index}",
                benchmark=benchmark,
                num_docs=num_docs,
                questions=[_question(r, positions) for r in group],
                documents=documents,
                context=render_context(documents),
            )
        )
    log.info(
        "built %d %s samples (%d questions, %d docs each) from a pool of %d paragraphs",
        len(samples), benchmark, sum(len(s.questions) for s in samples), num_docs, len(pool),
    )
    return samples


def summarize_counts(counts: Sequence[int]) -> dict:
    """{per_sample, mean, min, max, total} of a list of counts (zeros when empty)."""
    return {
        "per_sample": list(counts),
        "mean": sum(counts) / len(counts) if counts else 0.0,
        "min": min(counts, default=0),
        "max": max(counts, default=0),
        "total": sum(counts),
    }


def context_token_stats(samples: Sequence[LongSample], tokenizer=None) -> dict:
    """Context length per sample in tokenizer tokens (any object with HF-style `encode`), else whitespace words."""
    if tokenizer is None:
        counts = [len(s.context.split()) for s in samples]
        unit = "whitespace_words"
    else:
        counts = [len(tokenizer.encode(s.context, add_special_tokens=False)) for s in samples]
        unit = "tokens"
    return {"unit": unit, **summarize_counts(counts)}
