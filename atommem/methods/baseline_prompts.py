"""Prompts of the fixed-workflow baselines (MemAgent, full context, RAG, static CRUD), in our own words.

The AtomMem agent's prompt lives in atommem/agent/prompts.py; these reuse its section tags and its
`escape_untrusted`, so document text (and memory the model wrote) can never open or close a section.
Every function returns one chat conversation: a system message and a user message.
"""

from __future__ import annotations

import re

from atommem.agent.prompts import escape_untrusted, one_line
from atommem.llm.base import Conversation

ANSWER_RULE = "Answer with a short phrase (a name, a date, a number, yes or no) inside \\boxed{}, e.g. \\boxed{Paris}."


def _conversation(system: str, sections: list[tuple[str, str]], instruction: str) -> Conversation:
    body = [f"<{tag}>\n{text}\n</{tag}>" for tag, text in sections]
    body.append(f"<status>\n{instruction}\n</status>")
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n\n".join(body)}]


def _questions(questions: list[str]) -> str:
    return "\n".join(f"{i}. {escape_untrusted(one_line(q))}" for i, q in enumerate(questions, 1))


def _question(question: str) -> str:
    return escape_untrusted(one_line(question))


# -- MemAgent: overwrite one memory block per chunk ---------------------------------------------------
MEMAGENT_READ_SYSTEM = (
    "You read a long text one chunk at a time to answer some questions later. You keep one memory: a "
    "short note that you rewrite completely after every chunk. Keep what the questions need from the old "
    "memory, add what the new chunk tells you about them, and leave out everything else."
)
MEMAGENT_ANSWER_SYSTEM = "You answer a question from the notes you took while reading a long text. " + ANSWER_RULE


def memagent_read(questions: list[str], memory: str, chunk: str, index: int, total: int) -> Conversation:
    return _conversation(
        MEMAGENT_READ_SYSTEM,
        [
            ("questions", _questions(questions)),
            ("memories", escape_untrusted(memory) or "(empty)"),
            ("chunk", f"Chunk {index + 1} of {total}:\n{escape_untrusted(chunk)}"),
        ],
        "Write the new memory: the full note, nothing else.",
    )


def memagent_answer(question: str, memory: str) -> Conversation:
    return _conversation(
        MEMAGENT_ANSWER_SYSTEM,
        [("question", _question(question)), ("memories", escape_untrusted(memory) or "(empty)")],
        "Answer the question from the memory.",
    )


# -- Full context and RAG: answer from the text itself --------------------------------------------------
CONTEXT_ANSWER_SYSTEM = "You answer a question about the text you are given. " + ANSWER_RULE


def full_context_answer(question: str, context: str) -> Conversation:
    return _conversation(
        CONTEXT_ANSWER_SYSTEM,
        [("question", _question(question)), ("chunk", escape_untrusted(context))],
        "Answer the question from the text.",
    )


def rag_answer(question: str, chunks: list[str]) -> Conversation:
    sections = [("question", _question(question))]
    sections += [("chunk", f"Passage {i}:\n{escape_untrusted(c)}") for i, c in enumerate(chunks, 1)]
    return _conversation(CONTEXT_ANSWER_SYSTEM, sections, "Answer the question from the passages.")


# -- Static CRUD (Mem0 style): extract facts, decide per fact, answer from retrieved entries -------------
EXTRACT_SYSTEM = (
    "You read a long text one chunk at a time and pick out facts that could help answer some questions. "
    "Write each fact as one short, self-contained sentence that names who or what it is about, one fact "
    "per line, with no numbering. If the chunk holds nothing useful, write NONE."
)
DECIDE_SYSTEM = (
    "You maintain a memory of facts. You get a new fact and the stored entries most similar to it. Reply "
    "with exactly one line:\n"
    "ADD  - the fact is new: store it;\n"
    "UPDATE i: text  - the fact corrects or completes Memory i: replace it with the text;\n"
    "DELETE i  - the fact shows Memory i is wrong: remove it;\n"
    "NOOP  - the fact is already stored or useless."
)
MEMORY_ANSWER_SYSTEM = "You answer a question from the facts in your memory. " + ANSWER_RULE
NONE_FACT = "NONE"


def extract_facts(questions: list[str], chunk: str, index: int, total: int) -> Conversation:
    return _conversation(
        EXTRACT_SYSTEM,
        [("questions", _questions(questions)), ("chunk", f"Chunk {index + 1} of {total}:\n{escape_untrusted(chunk)}")],
        "List the facts, one per line.",
    )


def _render_entries(entries: list[str]) -> str:
    if not entries:
        return "(no entries)"
    return "\n".join(f"Memory {i}: {escape_untrusted(one_line(e))}" for i, e in enumerate(entries, 1))


def decide_fact(fact: str, entries: list[str]) -> Conversation:
    return _conversation(
        DECIDE_SYSTEM,
        [("query", escape_untrusted(one_line(fact))), ("memories", _render_entries(entries))],
        "The new fact is in <query>. Reply with ADD, UPDATE i: text, DELETE i or NOOP.",
    )


def memory_answer(question: str, entries: list[str]) -> Conversation:
    return _conversation(
        MEMORY_ANSWER_SYSTEM,
        [("question", _question(question)), ("memories", _render_entries(entries))],
        "Answer the question from the memories.",
    )


_BULLET = re.compile(r"^\s*(?:[-*\u2022]+|\d+[.)])\s*")


def parse_facts(text: str, limit: int) -> list[str]:
    """One fact per non-empty line (bullets and numbering stripped, NONE and duplicates dropped), at most
    `limit`."""
    facts: list[str] = []
    for line in text.splitlines():
        fact = _BULLET.sub("", line).strip()
        if fact and fact.upper().rstrip(".") != NONE_FACT and fact not in facts:
            facts.append(fact)
    return facts[:limit]


_DECISION = re.compile(r"\b(ADD|NOOP|UPDATE|DELETE)\b(?:\s*(?:Memory\s*)?(\d+))?\s*:?\s*(.*)", re.IGNORECASE)


def parse_decision(text: str, shown: int) -> tuple[str, int | None, str] | None:
    """(action, 1-based entry index or None, new text) of the first decision in `text`, or None when
    there is none or its index is not one of the `shown` entries. UPDATE without text keeps ''."""
    match = _DECISION.search(text)
    if match is None:
        return None
    action = match.group(1).lower()
    if action in ("add", "noop"):
        return action, None, ""
    if match.group(2) is None or not 1 <= int(match.group(2)) <= shown:
        return None
    new_text = match.group(3).strip().splitlines()[0].strip() if match.group(3).strip() else ""
    return action, int(match.group(2)), new_text
