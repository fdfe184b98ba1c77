"""A second, deliberately plain implementation of the operation grammar (the paper's operation tags; docs/method-fixes.md fixes 1, 2, 8), written
without regular expressions, for tests/test_fuzz.py to compare atommem.agent.ops against.

The rules, as the method states them: ops are paired tags found left to right; a tag's body runs to the
first closing tag of the same name (tags inside are text); an unclosed tag is invalid and scanning
continues right after it; `Memory i: text` bodies need i >= 1 and non-blank text, `Memory i` bodies
i >= 1; an answer is the last balanced `\\boxed{...}` (no box: invalid, so it earns no reward); a turn
without any valid op is invalid.
"""

from __future__ import annotations

from collections import Counter

TAGS = {
    "create": "add_memory",
    "read": "update_query",
    "update": "modify_memory",
    "delete": "delete_memory",
    "scratchpad": "update_memory",
    "answer": "final_answer",
}


def reference_parse(text: str) -> tuple[list[tuple[str, str, int | None]], Counter]:
    """([(op name, text, index)], Counter of "invalid_op/<name>" and "invalid_turn")."""
    ops: list[tuple[str, str, int | None]] = []
    invalid: Counter = Counter()
    pos = 0
    while True:
        found = [(text.find(f"<{tag}>", pos), name, tag) for name, tag in TAGS.items()]
        found = [f for f in found if f[0] >= 0]
        if not found:
            break
        at, name, tag = min(found)
        body_start = at + len(tag) + 2
        close = text.find(f"</{tag}>", body_start)
        if close < 0:
            invalid[f"invalid_op/{name}"] += 1
            pos = body_start
            continue
        op = _body(name, text[body_start:close])
        if op is None:
            invalid[f"invalid_op/{name}"] += 1
        else:
            ops.append(op)
        pos = close + len(tag) + 3
    if not ops:
        invalid["invalid_turn"] += 1
    return ops, invalid


def _body(name: str, body: str) -> tuple[str, str, int | None] | None:
    if name in ("update", "delete"):
        parsed = _memory_ref(body.strip(), with_text=name == "update")
        if parsed is None:
            return None
        index, rest = parsed
        return (name, rest, index)
    if name == "answer":
        answer = _last_boxed(body)
        return None if answer is None else (name, answer, None)
    return (name, body.strip(), None)


def _memory_ref(body: str, with_text: bool) -> tuple[int, str] | None:
    """'Memory 12: text' -> (12, 'text'); 'Memory 12' -> (12, '') when not with_text."""
    if not body.startswith("Memory") or len(body) == 6 or not body[6].isspace():
        return None
    rest = body[6:].lstrip()
    digits = 0
    while digits < len(rest) and rest[digits].isdecimal():
        digits += 1
    if digits == 0:
        return None
    index, rest = int(rest[:digits]), rest[digits:]
    if index < 1:
        return None
    if not with_text:
        return (index, "") if rest.strip() == "" else None
    rest = rest.lstrip()
    if not rest.startswith(":") or not rest[1:].strip():
        return None
    return (index, rest[1:].strip())


def _last_boxed(body: str) -> str | None:
    if not body.strip():
        return None
    opens = []
    i = body.find("\\boxed")
    while i >= 0:
        j = i + len("\\boxed")
        while j < len(body) and body[j].isspace():
            j += 1
        if j < len(body) and body[j] == "{":
            opens.append(j + 1)
        i = body.find("\\boxed", i + 1)
    if not opens:
        return None
    for start in reversed(opens):
        depth = 1
        for k in range(start, len(body)):
            depth += {"{": 1, "}": -1}.get(body[k], 0)
            if depth == 0:
                return body[start:k].strip()
    return None
