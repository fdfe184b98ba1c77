"""Benchmark records and long-context samples: the data every later stage reads.

`QARecord` is one benchmark question with its own paragraphs (as in the official files);
`LongSample` is one long-context episode input: several questions over one rendered document list.
Samples are stored as JSONL, one `LongSample.to_dict()` per line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# A sentence ends at . ! or ? (optionally followed by a closing quote or bracket), then whitespace,
# then something that can start a sentence. Simple and deterministic; good enough to point
# supporting facts at sentences.
_SENTENCE_BREAK = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"'\u201d\u2019)\]]))\s+(?=[A-Z0-9\"'\u201c\u2018(\[])")
# Pieces ending like these are abbreviations or initials ("J. R. R. Tolkien", "St. Louis", "U.S. Army"),
# not sentence ends, so they are glued back to the next piece.
_NOT_A_SENTENCE_END = re.compile(r"(?:\b[A-Z]|\b(?:Mr|Mrs|Ms|Dr|St|Jr|Sr|Mt|No|vs|Gen|Col|Lt|Capt|Rev|Prof|Inc|Co|Ltd))\.$")


def split_sentences(text: str) -> tuple[str, ...]:
    """Split a paragraph into sentences; joining them with a space gives the text back up to whitespace."""
    pieces = [p for p in _SENTENCE_BREAK.split(text.strip()) if p]
    sentences: list[str] = []
    for piece in pieces:
        if sentences and _NOT_A_SENTENCE_END.search(sentences[-1]):
            sentences[-1] = f"{sentences[-1]} {piece}"
        else:
            sentences.append(piece)
    return tuple(sentences)


@dataclass(frozen=True)
class Paragraph:
    title: str
    sentences: tuple[str, ...]

    @property
    def text(self) -> str:
        # empty sentences (a few exist in HotpotQA) would leave double spaces
        return " ".join(s for s in self.sentences if s).strip()

    @property
    def key(self) -> tuple[str, str]:
        """Identity used for de-duplication: the same title and text is the same document."""
        return (self.title, self.text)

    def to_dict(self) -> dict:
        return {"title": self.title, "sentences": list(self.sentences)}

    @classmethod
    def from_dict(cls, data: dict) -> Paragraph:
        what = f"document {data.get('title', '?')!r}" if isinstance(data, dict) else "document"
        return cls(title=_require(data, "title", what, str), sentences=tuple(_require(data, "sentences", what, list, str)))


@dataclass(frozen=True)
class QARecord:
    """One benchmark question with its own context paragraphs."""

    id: str
    benchmark: str  # "hotpotqa" | "2wikimultihopqa" | "musique"
    question: str
    answers: tuple[str, ...]  # gold answer first, then aliases
    paragraphs: tuple[Paragraph, ...]
    # (index into `paragraphs`, sentence index). An index, not a title: MuSiQue records hold several
    # paragraphs with the same title, only one of which supports the answer.
    supporting: tuple[tuple[int, int], ...]

    def supporting_paragraphs(self) -> list[Paragraph]:
        """The paragraphs holding supporting facts, in order of first mention, without repeats."""
        indices = list(dict.fromkeys(p for p, _ in self.supporting))
        return [self.paragraphs[i] for i in indices]

    def supporting_sentences(self) -> list[str]:
        return [self.paragraphs[p].sentences[s] for p, s in self.supporting]


def _require(data: dict, name: str, what: str, kind: type = object, items: type | None = None):
    """data[name], checked: present, of type `kind`, and (for lists) every item of type `items`."""
    if not isinstance(data, dict):
        raise ValueError(f"{what}: expected a JSON object, got {type(data).__name__}")
    if name not in data:
        raise ValueError(f"{what}: field {name!r} missing")
    value = data[name]
    if not _is(value, kind):
        raise ValueError(f"{what}: field {name!r} must be {_kind_name(kind)}, got {type(value).__name__}")
    if items is not None:
        for i, item in enumerate(value):
            if not _is(item, items):
                raise ValueError(f"{what}: field {name!r}[{i}] must be {_kind_name(items)}, got {type(item).__name__}")
    return value


def _is(value, kind: type) -> bool:
    # JSON true/false are Python bools, which are ints: never accept them as numbers
    return isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool and kind is not object)


def _kind_name(kind: type) -> str:
    return {str: "a string", int: "an integer", list: "a list", dict: "an object"}.get(kind, kind.__name__)


@dataclass
class Question:
    """A question inside a long-context sample."""

    id: str
    question: str
    answers: list[str]
    supporting_facts: list[str]  # the supporting sentence texts (the oracle teacher uses them)
    gold_doc_positions: list[int]  # 1-based "Document i" numbers holding its supporting paragraphs

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "question": self.question,
            "answers": list(self.answers),
            "supporting_facts": list(self.supporting_facts),
            "gold_doc_positions": list(self.gold_doc_positions),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Question:
        what = f"question {data.get('id', '?')!r}" if isinstance(data, dict) else "question"
        return cls(
            id=_require(data, "id", what, str),
            question=_require(data, "question", what, str),
            answers=list(_require(data, "answers", what, list, str)),
            supporting_facts=list(_require(data, "supporting_facts", what, list, str)),
            gold_doc_positions=list(_require(data, "gold_doc_positions", what, list, int)),
        )


@dataclass
class LongSample:
    """Several questions over one long document list, rendered as `context`."""

    id: str  # f"{benchmark}-{num_docs}-{group index}"
    benchmark: str
    num_docs: int
    questions: list[Question]
    documents: list[Paragraph]  # in rendered order
    context: str  # "Document 1:\n{title}\n{text}\n\nDocument 2:\n..."
    # statetrack only: the world's true final state, subject -> relation -> value (a str, or a list for
    # `carries`), from the generator (atommem.data.statetrack.final_state); None for the benchmarks
    final_state: dict | None = None

    def to_dict(self) -> dict:
        row = {
            "id": self.id,
            "benchmark": self.benchmark,
            "num_docs": self.num_docs,
            "questions": [q.to_dict() for q in self.questions],
            "documents": [d.to_dict() for d in self.documents],
            "context": self.context,
        }
        if self.final_state is not None:
            row["final_state"] = self.final_state
        return row

    @classmethod
    def from_dict(cls, data: dict) -> LongSample:
        what = f"sample {data.get('id', '?')!r}" if isinstance(data, dict) else "sample"
        return cls(
            id=_require(data, "id", what, str),
            benchmark=_require(data, "benchmark", what, str),
            num_docs=_require(data, "num_docs", what, int),
            questions=[Question.from_dict(q) for q in _require(data, "questions", what, list)],
            documents=[Paragraph.from_dict(d) for d in _require(data, "documents", what, list)],
            context=_require(data, "context", what, str),
            final_state=_final_state(data.get("final_state"), what),
        )


def _final_state(value, what: str) -> dict | None:
    """None, or subject -> {relation: str or list of str} (statetrack's ground truth)."""
    if value is None:
        return None
    if not (isinstance(value, dict) and all(
            isinstance(relations, dict) and all(isinstance(v, str) or (isinstance(v, list) and all(
                isinstance(x, str) for x in v)) for v in relations.values()) for relations in value.values())):
        raise ValueError(f"{what}: 'final_state' must map subject -> relation -> a string or a list of strings")
    return value


def read_samples(path, max_samples: int | None = None) -> list[LongSample]:
    """Long-context samples from a JSONL file written by `atommem prepare`."""
    return [sample for _, sample in read_samples_lines(path, max_samples)]


def read_samples_lines(path, max_samples: int | None = None) -> list[tuple[int, LongSample]]:
    """(line number, sample) of each sample of a JSONL file, checked: a file without samples, a sample
    without questions, documents or gold answers, and an id given twice are InputErrors naming the line(s)."""
    from pathlib import Path

    from atommem.errors import InputError
    from atommem.io import read_jsonl_lines

    if not Path(path).exists():
        raise InputError(f"samples file not found: {path} (build it with `atommem prepare`)")
    rows = read_jsonl_lines(path)
    if not rows:
        raise InputError(f"{path}: no samples (the file is empty or holds only blank lines)")
    if max_samples is not None:
        rows = rows[:max_samples]
    samples, first_line = [], {}
    for line_no, row in rows:
        try:
            sample = LongSample.from_dict(row)
        except (ValueError, TypeError, KeyError) as err:
            raise InputError(f"{path}: line {line_no}: {err}") from None
        if not sample.questions:
            raise InputError(f"{path}: line {line_no}: sample {sample.id!r} has no questions (field 'questions' is empty)")
        if not sample.documents:
            raise InputError(f"{path}: line {line_no}: sample {sample.id!r} has no documents (field 'documents' is empty)")
        for question in sample.questions:
            if not question.answers:
                raise InputError(f"{path}: line {line_no}: question {question.id!r} of sample {sample.id!r} has no "
                                 "answers (field 'answers' is empty; nothing could score it)")
        if sample.id in first_line:
            raise InputError(f"{path}: lines {first_line[sample.id]} and {line_no}: duplicate sample id {sample.id!r}")
        first_line[sample.id] = line_no
        samples.append((line_no, sample))
    return samples
