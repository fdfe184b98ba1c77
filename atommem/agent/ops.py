"""The operation grammar: paired XML-like tags in the model's free text, parsed in textual order.

Only the model's response is ever parsed (fix 8 of docs/method-fixes.md). The parser never raises: a
malformed tag is skipped and counted as `invalid_op/<name>`, the rest of the response still executes
(fix 2), and a response without any valid tag is counted as `invalid_turn` (fix 1).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

# op name -> tag; op names are the metric names used everywhere
OP_TAGS = {
    "create": "add_memory",
    "read": "update_query",
    "update": "modify_memory",
    "delete": "delete_memory",
    "scratchpad": "update_memory",
    "answer": "final_answer",
}
TAG_TO_OP = {tag: op for op, tag in OP_TAGS.items()}
OP_NAMES = tuple(OP_TAGS)
STORE_OPS = ("create", "read", "update", "delete")  # act on the vector store; env.disabled_ops may switch them off
WRITE_OPS = ("create", "update", "delete", "scratchpad")  # change the memory
COUNTED_OPS = tuple(op for op in OP_NAMES if op != "answer")  # counted per turn in RL metrics and figures
# Every other list of operations (prompts.OP_HELP, env.WRITE_OPS, rl_loop.OP_NAMES, plots.OPS, the workflow
# schema's env.disabled_ops) derives from these or is checked against them in tests/test_ops.py.

_OPEN_TAG = re.compile(r"<(" + "|".join(OP_TAGS.values()) + r")>")
_UPDATE_BODY = re.compile(r"\s*Memory\s+(\d+)\s*:\s*(.*?)\s*", re.DOTALL)
_DELETE_BODY = re.compile(r"\s*Memory\s+(\d+)\s*", re.DOTALL)
_BOXED = re.compile(r"\\boxed\s*\{")


@dataclass
class Op:
    name: str
    text: str = ""
    index: int | None = None  # "Memory i" as shown in this turn's prompt (1-based)

    def to_dict(self) -> dict:
        return {"name": self.name, "text": self.text, "index": self.index}


@dataclass
class ParsedResponse:
    ops: list[Op] = field(default_factory=list)
    invalid: Counter = field(default_factory=Counter)  # "invalid_op/<name>" | "invalid_turn" -> count


def parse_response(text: str) -> ParsedResponse:
    parsed = ParsedResponse()
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    pos = 0
    while True:
        opening = _OPEN_TAG.search(text, pos)
        if opening is None:
            break
        tag = opening.group(1)
        name = TAG_TO_OP[tag]
        close_at = text.find(f"</{tag}>", opening.end())
        if close_at < 0:
            parsed.invalid[f"invalid_op/{name}"] += 1
            pos = opening.end()
            continue
        op = _make_op(name, text[opening.end() : close_at])
        if op is None:
            parsed.invalid[f"invalid_op/{name}"] += 1
        else:
            parsed.ops.append(op)
        pos = close_at + len(tag) + 3
    if not parsed.ops:
        parsed.invalid["invalid_turn"] += 1
    return parsed


def _make_op(name: str, body: str) -> Op | None:
    """Turn a tag body into an Op, or None when the body is malformed for that op."""
    if name == "update":
        match = _UPDATE_BODY.fullmatch(body)
        if match is None or int(match.group(1)) < 1 or not match.group(2).strip():
            return None
        return Op(name, match.group(2).strip(), int(match.group(1)))
    if name == "delete":
        match = _DELETE_BODY.fullmatch(body)
        if match is None or int(match.group(1)) < 1:
            return None
        return Op(name, "", int(match.group(1)))
    if name == "answer":
        answer = extract_boxed(body, require_box=True)  # an unboxed answer is invalid and earns no reward
        return None if answer is None else Op(name, answer)
    return Op(name, body.strip())


def extract_boxed(text: str | None, require_box: bool = False) -> str | None:
    """Content of the last complete \\boxed{...} (nested braces allowed), else the stripped text, or None
    with `require_box`.

    The agent's <final_answer> (and so the RL reward) requires the box, the format the policy is taught
    (the paper's <final_answer>\boxed{...}): crediting bare text would reward answers in a format it was never meant to learn. The
    prompted baselines' free-form replies are read leniently (their best score, a conservative comparison).
    Returns None for an empty text, or when a \\boxed{ is present but none is closed (a truncated
    answer): guessing where it ends would credit half-written answers.
    """
    if text is None or not text.strip():
        return None
    starts = [m.end() for m in _BOXED.finditer(text)]
    if not starts:
        return None if require_box else text.strip()
    for start in reversed(starts):
        content = _balanced(text, start)
        if content is not None:
            return content.strip()
    return None


def _balanced(text: str, start: int) -> str | None:
    """Text from `start` up to the brace closing the one just before it, or None if never closed."""
    depth = 1
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start:i]
    return None
