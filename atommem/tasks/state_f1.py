"""`state_f1`: how well the memory an episode ends with states the world's true final state (statetrack).

The truth is the generator's (`LongSample.final_state`, atommem.data.statetrack.final_state): facts keyed by
subject and relation, e.g. (Mary, location) -> kitchen, (Mary, carries) -> {apple}, (apple, location) ->
hallway. The memory is every store entry and the scratchpad; its sentences are read the way the oracle
writes them (atommem.tasks.statetrack_oracle.entries), in any letter case, "the" optional:
    "Mary is in the kitchen."       (Mary, location, kitchen)      also "is at"
    "Mary carries the apple."       (Mary, carries, apple)         also "is carrying", "holds", "has";
                                                                   "the apple and the key" gives both
    "The apple is in the hallway."  (apple, location, hallway)
Only sentences about a statetrack name or object count; anything else ("Chunk 2 of 3: nothing relevant",
an event copied verbatim, "Mary carries nothing") states no fact and costs nothing. A stated fact that is
false, or stale (two places for Mary), lowers precision; a true fact not stated lowers recall. A carried
object's place, stated correctly, is implied by its holder's and neither counts for nor against.

F1 = 2PR / (P + R) over the (subject, relation, value) facts; an empty memory scores 0. This measures
memory management directly, question-free: it is an evaluation column on every statetrack sample and the
`state` RL reward (atommem.train.reward), which departs from the paper (docs/architecture.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from atommem.data.statetrack import NAMES, OBJECTS

Fact = tuple[str, str, str]  # (subject, relation, value), lower case

_SUBJECTS = {word.lower() for word in (*NAMES, *OBJECTS)}
_LOCATION = re.compile(r"(?:the )?(\w+) is (?:in|at) (?:the )?(\w+)")
_CARRIES = re.compile(r"(\w+) (?:carries|is carrying|holds|is holding|has) (.+)")
_SENTENCE_END = re.compile(r"[.!?;\n]+")


def true_facts(final_state: dict) -> set[Fact]:
    """The (subject, relation, value) facts of a sample's `final_state`."""
    facts = set()
    for subject, relations in final_state.items():
        for relation, value in relations.items():
            for item in [value] if isinstance(value, str) else value:
                facts.add((subject.lower(), relation, item.lower()))
    return facts


def implied_facts(final_state: dict) -> set[Fact]:
    """True facts the state implies without listing them: a carried object is where its holder is."""
    truth = true_facts(final_state)
    places = {s: v for s, r, v in truth if r == "location"}
    return {(obj, "location", places[holder]) for holder, r, obj in truth if r == "carries" and holder in places}


def memory_facts(texts: Iterable[str]) -> set[Fact]:
    """The facts stated by memory texts (store entries, the scratchpad), read as the module docstring says."""
    facts = set()
    for text in texts:
        for sentence in _SENTENCE_END.split(text or ""):
            sentence = " ".join(sentence.split()).lower().rstrip(",")
            if m := _LOCATION.fullmatch(sentence):
                subject, place = m.groups()
                if subject in _SUBJECTS:
                    facts.add((subject, "location", place))
            elif m := _CARRIES.fullmatch(sentence):
                subject, objects = m.groups()
                if subject in _SUBJECTS:
                    for obj in re.split(r",\s*|\s+and\s+", objects):
                        obj = obj.strip().removeprefix("the ").strip()
                        if re.fullmatch(r"\w+", obj) and obj not in ("nothing", "none"):
                            facts.add((subject, "carries", obj))
    return facts


def state_f1(memory: Iterable[str], final_state: dict) -> float:
    """F1 of the facts memory states against the true final state (the module docstring)."""
    truth = true_facts(final_state)
    stated = memory_facts(memory) - (implied_facts(final_state) - truth)
    if not truth:
        return float(not stated)
    right = len(stated & truth)
    if not right:
        return 0.0
    precision, recall = right / len(stated), right / len(truth)
    return 2 * precision * recall / (precision + recall)
