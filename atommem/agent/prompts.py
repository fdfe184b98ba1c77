"""The one prompt format of the agent: a system message with the operation rules and a user message
with the memory state and the current input. Evaluation, trajectory synthesis and RL all call these
functions, so the policy is always trained and scored on the same layout (fix 6 of docs/method-fixes.md).

Untrusted text (documents, memory entries, the scratchpad, the query, questions) is escaped before it
enters the prompt: a document that contains `<add_memory>` or `</chunk>` can neither look like an
operation nor close a prompt section early (fix 8 of docs/method-fixes.md), and one with `<|im_end|>` shows no
chat-template control string even to a server that renders the template itself. (Local backends also
tokenize message contents without special tokens: atommem.llm.base.chat_prompt_ids.)
"""

from __future__ import annotations

import re

from atommem.agent.ops import OP_TAGS

SECTION_TAGS = ("questions", "question", "scratchpad", "query", "memories", "tips", "chunk", "status")
_RESERVED_TAG = re.compile(r"<(/?)(" + "|".join((*OP_TAGS.values(), *SECTION_TAGS)) + r")>")
# the control strings of ChatML, Llama 3, Phi and most other chat templates: <|im_end|>, <|eot_id|>, ...
_CONTROL_STRING = re.compile(r"<\|([^<>|\s]{1,64})\|>")

NO_MEMORY = "No previous memory"
# an Update or Delete on an empty store is refused and the chunk comes again: SFT'd SmolLM2 picked
# <modify_memory> as its first op there about half the time (docs/experiments/2026-11-30-statetrack-sft.md), so the status says so
EMPTY_STORE_STATUS = "The memory store is empty: there is no entry to modify or delete yet, so store facts with <add_memory>."

OP_HELP = {
    "create": "<add_memory>a new fact</add_memory>  store a new entry",
    "read": "<update_query>search words</update_query>  change the search query; results appear next turn",
    "update": "<modify_memory>Memory 2: corrected text</modify_memory>  rewrite the entry shown as Memory 2",
    "delete": "<delete_memory>Memory 3</delete_memory>  remove the entry shown as Memory 3",
    "scratchpad": "<update_memory>new scratchpad text</update_memory>  replace the whole scratchpad",
    "answer": "<final_answer>\\boxed{answer}</final_answer>  answer the question you are asked (answer phase only)",
}


def system_message(enabled_ops: set[str], advancing_ops: set[str], query_limit: int) -> dict:
    """The operation rules, listing only the operations this run allows (ablations drop some)."""
    memory = []
    if "scratchpad" in enabled_ops:
        memory.append("- a scratchpad: one free-text note, shown to you in full every turn;")
    if enabled_ops & {"create", "read", "update", "delete"}:
        memory.append(
            "- a memory store of short entries. Each turn you see the entries that best match your current "
            "search query, numbered Memory 1, Memory 2, ... (the numbers are only valid for this turn)."
        )
    ops = [OP_HELP[op] for op in OP_HELP if op in enabled_ops]
    names = {"create": "add an entry", "update": "modify an entry", "scratchpad": "update the scratchpad"}
    rules = []
    if advancing_ops:
        needed = " or ".join(names[op] for op in sorted(advancing_ops))
        rules.append(
            f"- While reading, you move on to the next chunk only after a turn in which you {needed}; "
            "otherwise you see the same chunk again."
        )
    if "read" in enabled_ops:
        rules.append(f"- You may change the query at most {query_limit} times in a row without writing to memory.")
    rules.append(
        "- When all chunks are read you are asked the questions one by one. Answer each with a short phrase "
        "inside \\boxed{}" + (", or change the query to look something up first." if "read" in enabled_ops else ".")
    )
    content = (
        "You answer questions about a long text that you can only read one chunk at a time. "
        "You keep your own memory while you read, using operations written as tags in your reply.\n\n"
        "Memory you have:\n" + "\n".join(memory or ["- none: answer from what you see."]) + "\n\n"
        "Operations (write any number of them, in the order you want them done):\n" + "\n".join(ops) + "\n\n"
        "Rules:\n" + "\n".join(rules)
    )
    return {"role": "system", "content": content}


READ_TIPS = (
    "Store facts that help answer the questions, with the names they are about. Rewrite an entry when "
    "the chunk corrects or completes it, and delete duplicates. Search for what you still miss."
)
ANSWER_TIPS = "Answer from your memory. If the shown entries do not cover the question, change the query."


def escape_untrusted(text: str) -> str:
    """Neutralise tags we use (operations and prompt sections) and chat-template control strings inside
    text we did not write."""
    text = _RESERVED_TAG.sub(lambda m: f"&lt;{m.group(1)}{m.group(2)}&gt;", text)
    return _CONTROL_STRING.sub(lambda m: f"&lt;|{m.group(1)}|&gt;", text)


def one_line(text: str) -> str:
    """Entries are shown one per line, so a newline inside an entry cannot fake a `Memory i:` line."""
    return " ".join(text.split())


def render_memories(entries: list[str]) -> str:
    if not entries:
        return NO_MEMORY
    return "\n".join(f"Memory {i}: {escape_untrusted(one_line(text))}" for i, text in enumerate(entries, 1))


_SECTION = {name: re.compile(rf"<{name}>\n(.*?)\n</{name}>", re.S) for name in ("memories", "scratchpad")}
_MEMORY_LINE = re.compile(r"^Memory \d+: (.*)$", re.M)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def shown_entries(user_content: str) -> list[str]:
    """The store entries a user message shows, in order (`Memory i` is item i - 1), as escaped text."""
    store = _SECTION["memories"].search(user_content)
    return _MEMORY_LINE.findall(store.group(1)) if store else []


def shown_memory(user_content: str) -> list[str]:
    """What a user message shows of the agent's memory, as (escaped) pieces of text: each store entry, and
    each sentence of the scratchpad. [] when it shows none."""
    pieces = shown_entries(user_content)
    scratchpad = _SECTION["scratchpad"].search(user_content)
    if scratchpad and scratchpad.group(1) != "(empty)":
        pieces += [s for s in _SENTENCE_END.split(scratchpad.group(1)) if s.strip()]
    return pieces


def user_message(
    *,
    questions: list[str],
    scratchpad: str | None,
    query: str | None,
    memories: list[str] | None,
    chunk: str | None,
    chunk_position: tuple[int, int] | None,
    reads_left: int | None,
    answer_question: str | None = None,
    store_empty: bool = False,
) -> dict:
    """The user turn. Sections set to None are left out (ablations without scratchpad or store).
    `store_empty`: a reading turn whose store has no entry yet (and whose run allows creating one)."""
    parts = []
    if answer_question is None:
        listed = "\n".join(f"{i}. {escape_untrusted(one_line(q))}" for i, q in enumerate(questions, 1))
        parts.append(f"<questions>\n{listed}\n</questions>")
    else:
        parts.append(f"<question>\n{escape_untrusted(one_line(answer_question))}\n</question>")
    if scratchpad is not None:
        parts.append(f"<scratchpad>\n{escape_untrusted(scratchpad) or '(empty)'}\n</scratchpad>")
    if query is not None:
        parts.append(f"<query>\n{escape_untrusted(one_line(query))}\n</query>")
    if memories is not None:
        parts.append(f"<memories>\n{render_memories(memories)}\n</memories>")
    parts.append(f"<tips>\n{READ_TIPS if answer_question is None else ANSWER_TIPS}\n</tips>")
    if chunk is not None and chunk_position is not None:
        index, total = chunk_position
        parts.append(f"<chunk>\nChunk {index + 1} of {total}:\n{escape_untrusted(chunk)}\n</chunk>")
    status = []
    if reads_left is not None:
        status.append(f"You can change the query {reads_left} more time(s) before writing to memory.")
    if answer_question is None:
        if store_empty:
            status.append(EMPTY_STORE_STATUS)
        status.append("Write your memory operations for this chunk.")
    else:
        status.append("Answer the question with <final_answer>\\boxed{...}</final_answer>.")
    parts.append("<status>\n" + " ".join(status) + "\n</status>")
    return {"role": "user", "content": "\n\n".join(parts)}
