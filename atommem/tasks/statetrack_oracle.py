"""The oracle teacher on `statetrack` samples: it keeps the world's current state in the store.

Memory holds one short entry per fact about the present:
    "Mary is in the kitchen."        one per person who has gone somewhere
    "Mary carries the apple."        one per object someone carries
    "The apple is in the kitchen."   one per object lying where it was dropped
so each event touches at most two entries. Per reading turn the oracle reads the fact sentences of the
chunk that it has not applied yet (chunks overlap), replays them on the state so far, and writes the
difference:
  - Create an entry when a person or object first matters (or an object is dropped somewhere);
  - Update (modify_memory) the shown entry whose fact changed: a move or correction rewrites where the
    person is, a hand-over rewrites who carries the object;
  - Delete the shown entry of a fact that stopped being true: a dropped object is carried no more, a
    picked-up object lies there no more.
`Memory i` points into this turn's shown list, so when an entry to rewrite is not shown, the oracle first
Reads: it sets the query to the names of every entry to rewrite and writes nothing, so the same chunk
comes back with those entries shown. Should retrieval still miss one, the new fact is created afresh (a
stale entry then stays). A chunk with no new fact gets the one-line note any oracle writes to move on.
Answer phase: unless every entry about the question's subject is already shown, Read the name it asks
about; for an object someone carries, Read that person next (where they are is where the object is);
then answer.
"""

from __future__ import annotations

import re

from atommem.agent.env import Episode
from atommem.agent.prompts import one_line
from atommem.data.statetrack import WorldState, facts_in, parse_fact, question_subject


def respond(episode: Episode) -> str:
    if episode.phase == "answer":
        return _answer(episode)
    return _read(episode)


def _answer(episode: Episode) -> str:
    question = episode.sample.questions[episode.question_index]
    subject = question_subject(question.question)
    if "read" in episode.enabled and episode.cfg.use_store and subject:
        final = _final_state(episode)
        holder = final.holder.get(subject)  # None unless the subject is a carried object
        # everything memory says about the subject (and, for a carried object, where its holder is)
        needed = [text for text in entries(final).values()
                  if re.search(rf"\b{subject}\b", text) or (holder and text.startswith(f"{holder} is in"))]
        shown = {e.text for e in episode.shown}
        if not all(text in shown for text in needed):
            if episode.query not in (subject, holder):
                return f"<update_query>{subject}</update_query>"
            if holder and episode.query == subject:
                return f"<update_query>{holder}</update_query>"
    return f"<final_answer>\\boxed{{{one_line(question.answers[0])}}}</final_answer>"


def _final_state(episode: Episode) -> WorldState:
    return world_after(facts_in(one_line(episode.sample.context)))


def entries(state: WorldState) -> dict[tuple[str, str], str]:
    """The memory the state calls for: (kind, name) -> entry text, in a fixed order."""
    out = {}
    for person in sorted(state.location):
        out[("person", person)] = f"{person} is in the {state.location[person]}."
    for obj in sorted(state.holder):
        out[("carries", obj)] = f"{state.holder[obj]} carries the {obj}."
    for obj in sorted(state.lying):
        out[("lying", obj)] = f"The {obj} is in the {state.lying[obj]}."
    return out


def new_facts(chunk: str, facts: list[str], start: int) -> int:
    """How many of `facts[start:]` the chunk holds, in order, from the first one on."""
    position, end = 0, start
    while end < len(facts):
        found = chunk.find(facts[end], position)
        if found < 0:
            break
        position = found + len(facts[end])
        end += 1
    return end


def applied_before(episode: Episode, facts: list[str]) -> int:
    """Facts applied by the turns on earlier chunks (recomputed: the oracle keeps no state of its own)."""
    applied = 0
    for chunk in episode.chunks[: episode.chunk_index]:
        applied = new_facts(one_line(chunk), facts, applied)
    return applied


def world_after(facts: list[str]) -> WorldState:
    state = WorldState()
    for index, fact in enumerate(facts):
        state.apply(index, parse_fact(fact))
    return state


def _read(episode: Episode) -> str:
    facts = facts_in(one_line(episode.sample.context))
    start = applied_before(episode, facts)
    end = new_facts(one_line(episode.current_chunk or ""), facts, start)
    before, after = entries(world_after(facts[:start])), entries(world_after(facts[:end]))
    changed = [key for key in after if key in before and after[key] != before[key]]
    gone = [key for key in before if key not in after]
    created = [key for key in after if key not in before]
    if not episode.cfg.use_store:
        return _scratchpad_only(episode, after)

    shown = [e.text for e in episode.shown]
    missing = [key for key in changed + gone if before[key] not in shown]
    seen_again = bool(episode.turns) and episode.turns[-1].chunk_index == episode.chunk_index
    if missing and "read" in episode.enabled and not seen_again:
        # every entry to rewrite must be shown at once, not only those missing now
        names = list(dict.fromkeys(name for _, name in changed + gone))
        return f"<update_query>{' '.join(names)}</update_query>"

    ops = []
    for key in changed:
        if before[key] in shown and "update" in episode.enabled:
            ops.append(f"<modify_memory>Memory {shown.index(before[key]) + 1}: {after[key]}</modify_memory>")
        else:
            if before[key] in shown and "delete" in episode.enabled:
                ops.append(f"<delete_memory>Memory {shown.index(before[key]) + 1}</delete_memory>")
            created.append(key)
    for key in gone:
        if before[key] in shown and "delete" in episode.enabled:
            ops.append(f"<delete_memory>Memory {shown.index(before[key]) + 1}</delete_memory>")
    if "create" in episode.enabled:
        ops += [f"<add_memory>{after[key]}</add_memory>" for key in created]
    if not any(op.startswith(("<add_memory>", "<modify_memory>")) for op in ops) and "create" in episode.enabled:
        k, n = episode.chunk_index + 1, len(episode.chunks)
        ops.append(f"<add_memory>Chunk {k} of {n}: nothing relevant to the questions.</add_memory>")
    return "\n".join(ops)


def _scratchpad_only(episode: Episode, after: dict[tuple[str, str], str]) -> str:
    """Without a store the whole state lives in the scratchpad, rewritten every chunk (which moves on)."""
    if "scratchpad" not in episode.enabled:
        return ""
    note = " ".join(after.values()) or "Nothing known yet."
    return f"<update_memory>{note}</update_memory>"
