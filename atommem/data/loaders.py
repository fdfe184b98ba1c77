"""Readers for the official release files of HotpotQA (distractor), 2WikiMultihopQA and MuSiQue-Ans.

Each loader returns `QARecord`s in file order. A malformed file fails with `DataError` naming the file,
the record index (0-based, file order) and the field, e.g. "x.json: record 12: field 'supporting_facts' missing".
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from atommem.data.records import Paragraph, QARecord, split_sentences
from atommem.errors import InputError
from atommem.io import read_text

REPO_ROOT = Path(__file__).resolve().parents[2]

# The development samples shipped with the project (repo-root data/benchmarks/, with licence notes).
SHIPPED_SAMPLES = {
    "hotpotqa": "data/benchmarks/hotpotqa/hotpot_dev_distractor_v1.sample.json",
    "2wikimultihopqa": "data/benchmarks/2wikimultihopqa/dev.sample.json",
    "musique": "data/benchmarks/musique/musique_ans_v1.0_dev.sample.jsonl",
}


class DataError(InputError):
    """A benchmark file is malformed; the message names the file, record and field."""


# in every shipped sample's file name, and in none of the release files: data.allow_sample: false refuses it
SAMPLE_MARK = ".sample."


def is_sample(path: str | Path) -> bool:
    """Whether `path` names a development sample rather than a full release file."""
    return SAMPLE_MARK in Path(path).name


def shipped_sample(benchmark: str) -> Path:
    """Path of the shipped development sample for `benchmark`."""
    _check_name(benchmark)
    return REPO_ROOT / SHIPPED_SAMPLES[benchmark]


def _check_name(benchmark: str) -> None:
    if benchmark not in LOADERS:
        raise DataError(f"unknown benchmark {benchmark!r}; valid names: {', '.join(LOADERS)}")


def _field(raw: Any, name: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(raw, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(raw).__name__}")
    if name not in raw:
        raise DataError(f"{where}: field {name!r} missing")
    value = raw[name]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise DataError(f"{where}: field {name!r} must be {names}, got {type(value).__name__}")
    return value


def _read_json_list(path: Path) -> list:
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON: {err}") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of records, got {type(data).__name__}")
    return data


def _read_jsonl_records(path: Path) -> list:
    records = []
    for line_no, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise DataError(f"{path}: record {len(records)} (line {line_no}): not valid JSON: {err}") from None
    return records


def _parse_titled_context(raw: dict, where: str) -> tuple[Paragraph, ...]:
    """HotpotQA / 2Wiki `context`: [[title, [sentence, ...]], ...]."""
    paragraphs = []
    for j, item in enumerate(_field(raw, "context", list, where)):
        if (
            not isinstance(item, list)
            or len(item) != 2
            or not isinstance(item[0], str)
            or not isinstance(item[1], list)
            or not all(isinstance(s, str) for s in item[1])
        ):
            raise DataError(f"{where}: field 'context[{j}]' must be [title, [sentences]]")
        # HotpotQA keeps a leading space on sentences after the first; Paragraph.text re-joins with one space
        paragraphs.append(Paragraph(title=item[0], sentences=tuple(s.strip() for s in item[1])))
    return tuple(paragraphs)


def _parse_titled_support(raw: dict, paragraphs: tuple[Paragraph, ...], where: str) -> tuple[tuple[int, int], ...]:
    """`supporting_facts`: [[title, sentence index], ...] -> (paragraph index, sentence index)."""
    # first paragraph with a title wins: repeated titles in these files are identical copies
    index_of_title: dict[str, int] = {}
    for i, paragraph in enumerate(paragraphs):
        index_of_title.setdefault(paragraph.title, i)
    support = []
    for j, fact in enumerate(_field(raw, "supporting_facts", list, where)):
        name = f"supporting_facts[{j}]"
        if not (isinstance(fact, list) and len(fact) == 2 and isinstance(fact[0], str) and type(fact[1]) is int):
            raise DataError(f"{where}: field {name!r} must be [title, sentence index]")
        title, sentence = fact
        if title not in index_of_title:
            raise DataError(f"{where}: field {name!r}: title {title!r} is not in 'context'")
        paragraph = index_of_title[title]
        if not 0 <= sentence < len(paragraphs[paragraph].sentences):
            raise DataError(
                f"{where}: field {name!r}: sentence {sentence} out of range for {title!r} "
                f"({len(paragraphs[paragraph].sentences)} sentences)"
            )
        support.append((paragraph, sentence))
    return tuple(support)


def _load_titled(path: str | Path, benchmark: str) -> list[QARecord]:
    """HotpotQA and 2WikiMultihopQA share the layout: _id, question, answer, context, supporting_facts."""
    path = Path(path)
    records = []
    for i, raw in enumerate(_read_json_list(path)):
        where = f"{path}: record {i}"
        paragraphs = _parse_titled_context(raw, where)
        records.append(
            QARecord(
                id=_field(raw, "_id", str, where),
                benchmark=benchmark,
                question=_field(raw, "question", str, where),
                # the 2Wiki release has no answer aliases: the gold answer is the only one
                answers=(_field(raw, "answer", str, where),),
                paragraphs=paragraphs,
                supporting=_parse_titled_support(raw, paragraphs, where),
            )
        )
    return records


def load_hotpotqa(path: str | Path) -> list[QARecord]:
    """HotpotQA distractor file (e.g. hotpot_dev_distractor_v1.json): a JSON list."""
    return _load_titled(path, "hotpotqa")


def load_2wiki(path: str | Path) -> list[QARecord]:
    """2WikiMultihopQA dev/train file (release with Wikidata ids): a JSON list."""
    return _load_titled(path, "2wikimultihopqa")


def load_musique(path: str | Path) -> list[QARecord]:
    """MuSiQue answerable file (e.g. musique_ans_v1.0_dev.jsonl): JSON Lines.

    Paragraph texts are split into sentences; every sentence of an `is_supporting` paragraph is a
    supporting fact.
    """
    path = Path(path)
    records = []
    for i, raw in enumerate(_read_jsonl_records(path)):
        where = f"{path}: record {i}"
        paragraphs, support = [], []
        for j, item in enumerate(_field(raw, "paragraphs", list, where)):
            item_where = f"{where}: paragraphs[{j}]"
            sentences = split_sentences(_field(item, "paragraph_text", str, item_where))
            paragraphs.append(Paragraph(title=_field(item, "title", str, item_where), sentences=sentences))
            if _field(item, "is_supporting", bool, item_where):
                support.extend((j, s) for s in range(len(sentences)))
        answer = _field(raw, "answer", str, where)
        aliases = _field(raw, "answer_aliases", list, where)
        if not all(isinstance(a, str) for a in aliases):
            raise DataError(f"{where}: field 'answer_aliases' must be a list of str")
        records.append(
            QARecord(
                id=_field(raw, "id", str, where),
                benchmark="musique",
                question=_field(raw, "question", str, where),
                answers=tuple(dict.fromkeys([answer, *aliases])),
                paragraphs=tuple(paragraphs),
                supporting=tuple(support),
            )
        )
    return records


LOADERS: dict[str, Callable[[str | Path], list[QARecord]]] = {
    "hotpotqa": load_hotpotqa,
    "2wikimultihopqa": load_2wiki,
    "musique": load_musique,
}


def load_benchmark(name: str, path: str | Path) -> list[QARecord]:
    """Load benchmark `name` ("hotpotqa" | "2wikimultihopqa" | "musique") from its official file."""
    _check_name(name)
    return LOADERS[name](path)
