"""`statetrack`: a generated long-context state-tracking task (in the spirit of BABILong).

A seeded world simulation: people move between places, take, hand over and drop objects, and a move can
be corrected later ("Correction: Mary actually went to the garden, not the kitchen."). Its fact sentences
are inserted, in order, between the sentences of distractor paragraphs drawn from a shipped benchmark
file. Questions ask about the final state (where is a person, what does a person carry, where is an
object). Each world becomes one `LongSample`, exactly like a benchmark sample, so every later stage
(builder, environment, methods, scoring, tables) treats it like any other benchmark.

Everything is seeded with `random.Random`; nothing depends on `hash()` or set order, so the same
distractor file, config and seed give byte-identical samples in any process.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from atommem.data.longcontext import paragraph_pool, render_context
from atommem.data.records import LongSample, Paragraph, QARecord, Question

BENCHMARK = "statetrack"
NAMES = ("Mary", "John", "Sandra", "Daniel", "Alice", "Peter", "Emma", "Oscar", "Grace", "Henry", "Irene", "Victor")
PLACES = ("kitchen", "garden", "hallway", "bathroom", "office", "bedroom", "cellar", "attic", "garage",
          "balcony", "library", "pantry")
OBJECTS = ("apple", "football", "key", "book", "umbrella", "lamp", "hat", "cup", "letter", "candle")
QUESTION_TYPES = ("where_person", "carrying", "where_object")
NOTHING = "nothing"
# relative weights of the event kinds among those possible at a step (a correction has its own knob)
EVENT_WEIGHTS = {"move": 3.0, "take": 2.0, "give": 2.0, "drop": 2.0}
# a carrying question is asked only when its answer lists few enough objects to write in a short answer
MAX_CARRIED_IN_ANSWER = 2


@dataclass
class StateTrackConfig:
    people: int = 3  # people in each world (at most len(NAMES))
    places: int = 4
    objects: int = 2
    events: int = 8  # fact sentences per world (corrections included)
    questions: int = 2  # questions per sample (fewer when the final state offers fewer distinct ones)
    question_types: list[str] = field(default_factory=lambda: list(QUESTION_TYPES))
    correction_weight: float = 1.0  # weight of a correction among the possible events (0 = none)

    def check(self) -> None:
        """Raise ValueError naming the knob when the world cannot be built."""
        limits = {"people": len(NAMES), "places": len(PLACES), "objects": len(OBJECTS)}
        for name, most in limits.items():
            value = getattr(self, name)
            if not 1 <= value <= most:
                raise ValueError(f"statetrack.{name}: must be in 1..{most}, got {value}")
        if self.places < 2:
            raise ValueError("statetrack.places: at least 2 places are needed for anyone to move")
        if self.events < 1 or self.questions < 1:
            raise ValueError("statetrack.events and statetrack.questions must be at least 1")
        unknown = sorted(set(self.question_types) - set(QUESTION_TYPES))
        if unknown or not self.question_types:
            raise ValueError(f"statetrack.question_types: must be a non-empty subset of {list(QUESTION_TYPES)}")
        if self.correction_weight < 0:
            raise ValueError("statetrack.correction_weight: must be >= 0")


# ---- events and their sentences ---------------------------------------------------------------------
@dataclass(frozen=True)
class Event:
    kind: str  # move | take | give | drop | correction
    person: str
    place: str | None = None  # move / correction: the (corrected) destination
    wrong_place: str | None = None  # correction: the destination it replaces
    obj: str | None = None  # take / give / drop
    receiver: str | None = None  # give

    def sentence(self) -> str:
        if self.kind == "move":
            return f"{self.person} went to the {self.place}."
        if self.kind == "correction":
            return f"Correction: {self.person} actually went to the {self.place}, not the {self.wrong_place}."
        if self.kind == "take":
            return f"{self.person} picked up the {self.obj}."
        if self.kind == "give":
            return f"{self.person} gave the {self.obj} to {self.receiver}."
        return f"{self.person} dropped the {self.obj}."


@dataclass
class WorldState:
    """The state after some events, with the indices of the events that set each part of it."""

    location: dict[str, str] = field(default_factory=dict)  # person -> place
    location_src: dict[str, list[int]] = field(default_factory=dict)  # last move (+ its correction)
    holder: dict[str, str] = field(default_factory=dict)  # object -> person carrying it
    lying: dict[str, str] = field(default_factory=dict)  # object -> place where it was dropped
    object_src: dict[str, list[int]] = field(default_factory=dict)  # events that put it where it is
    released: dict[str, int] = field(default_factory=dict)  # person -> their last drop or give
    ever_held: set[str] = field(default_factory=set)  # people who carried something at some point
    last_involved: dict[str, int] = field(default_factory=dict)  # person -> last event naming them
    last_move: dict[str, int] = field(default_factory=dict)  # person -> index of their last move
    corrected: set[int] = field(default_factory=set)  # moves already corrected

    def carried(self, person: str) -> list[str]:
        return sorted(o for o, p in self.holder.items() if p == person)

    def object_place(self, obj: str) -> str:
        return self.location[self.holder[obj]] if obj in self.holder else self.lying[obj]

    def apply(self, index: int, event: Event) -> None:
        person = event.person
        self.last_involved[person] = index
        if event.kind == "move":
            self.location[person] = event.place
            self.location_src[person] = [index]
            self.last_move[person] = index
        elif event.kind == "correction":
            self.location[person] = event.place
            self.location_src[person] = [self.last_move[person], index]
            self.corrected.add(self.last_move[person])
        elif event.kind == "take":
            self.holder[event.obj] = person
            self.lying.pop(event.obj, None)
            self.object_src[event.obj] = [index]
            self.ever_held.add(person)
        elif event.kind == "give":
            self.holder[event.obj] = event.receiver
            self.object_src[event.obj] = [index]
            self.released[person] = index
            self.last_involved[event.receiver] = index
            self.ever_held.add(event.receiver)
        elif event.kind == "drop":
            del self.holder[event.obj]
            self.lying[event.obj] = self.location[person]
            # the drop sentence does not name the place: where the person was then does
            self.object_src[event.obj] = sorted({*self.location_src[person], index})
            self.released[person] = index


def possible_events(state: WorldState, people: Sequence[str], places: Sequence[str], objects: Sequence[str],
                    correction_weight: float) -> list[tuple[float, Event]]:
    """Every event that is consistent with `state`, with its weight, in a fixed order."""
    options: list[tuple[float, Event]] = []
    for person in people:
        here = state.location.get(person)
        for place in places:
            if place != here:
                options.append((EVENT_WEIGHTS["move"], Event("move", person, place=place)))
        if here is None:
            continue  # a person enters the story by going somewhere
        for obj in objects:
            free_here = obj not in state.holder and state.lying.get(obj, here) == here
            if free_here:
                options.append((EVENT_WEIGHTS["take"], Event("take", person, obj=obj)))
        for obj in state.carried(person):
            options.append((EVENT_WEIGHTS["drop"], Event("drop", person, obj=obj)))
            for other in people:
                if other != person and state.location.get(other) == here:
                    options.append((EVENT_WEIGHTS["give"], Event("give", person, obj=obj, receiver=other)))
        # a move can be corrected while nothing else has happened to the person since (so no later
        # event depended on where they were)
        move = state.last_move.get(person)
        if correction_weight > 0 and move is not None and state.last_involved[person] == move \
                and move not in state.corrected:
            for place in places:
                if place != here:
                    options.append((correction_weight, Event("correction", person, place=place, wrong_place=here)))
    return options


def simulate(cfg: StateTrackConfig, rng: random.Random) -> tuple[list[str], list[Event]]:
    """The people of one world and its events."""
    people = rng.sample(NAMES, cfg.people)
    places = rng.sample(PLACES, cfg.places)
    objects = rng.sample(OBJECTS, cfg.objects)
    state, events = WorldState(), []
    for index in range(cfg.events):
        options = possible_events(state, people, places, objects, cfg.correction_weight)
        event = rng.choices([e for _, e in options], weights=[w for w, _ in options])[0]
        state.apply(index, event)
        events.append(event)
    return people, events


def replay(events: Sequence[Event]) -> WorldState:
    state = WorldState()
    for index, event in enumerate(events):
        state.apply(index, event)
    return state


def final_state(state: WorldState) -> dict[str, dict[str, str | list[str]]]:
    """The world's true final state, keyed by subject and relation: each person's `location` (a place) and,
    when they carry anything, `carries` (the sorted objects); each object lying somewhere, its `location`.
    These are the facts the oracle's memory states ("Mary is in the kitchen.", "Mary carries the apple.",
    "The apple is in the hallway."); a carried object's place follows from its holder's and is not listed.
    Written into every statetrack sample as `final_state`; `state_f1` scores memory against it."""
    out: dict[str, dict[str, str | list[str]]] = {}
    for person in sorted(state.location):
        out[person] = {"location": state.location[person]}
        if state.carried(person):
            out[person]["carries"] = state.carried(person)
    for obj in sorted(state.lying):
        out[obj] = {"location": state.lying[obj]}
    return out


# ---- questions ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WorldQuestion:
    kind: str
    subject: str  # the person or object asked about
    text: str
    answers: tuple[str, ...]
    support: tuple[int, ...]  # event indices


def question_text(kind: str, subject: str) -> str:
    if kind == "where_person":
        return f"Where is {subject}?"
    if kind == "carrying":
        return f"What is {subject} carrying?"
    return f"Where is the {subject}?"


def candidate_questions(state: WorldState, people: Sequence[str], kinds: Sequence[str]) -> dict[str, list[WorldQuestion]]:
    """Per question kind, every question the final state answers, in a fixed order."""
    found: dict[str, list[WorldQuestion]] = {kind: [] for kind in kinds}
    for person in people:
        if person not in state.location:
            continue
        if "where_person" in found:
            found["where_person"].append(WorldQuestion(
                "where_person", person, question_text("where_person", person), (state.location[person],),
                tuple(state.location_src[person])))
        carried = state.carried(person)
        # "nothing" is only asked of someone the text shows carrying something before
        if "carrying" in found and person in state.ever_held and len(carried) <= MAX_CARRIED_IN_ANSWER:
            if carried:
                answers = (" and ".join(carried), " and ".join(reversed(carried))) if len(carried) > 1 else (carried[0],)
                support = sorted({i for obj in carried for i in state.object_src[obj]})
            else:
                answers, support = (NOTHING,), [state.released[person]]
            found["carrying"].append(WorldQuestion(
                "carrying", person, question_text("carrying", person), tuple(dict.fromkeys(answers)), tuple(support)))
    if "where_object" in found:
        for obj in sorted({*state.holder, *state.lying}):
            support = set(state.object_src[obj])
            if obj in state.holder:
                support |= set(state.location_src[state.holder[obj]])
            found["where_object"].append(WorldQuestion(
                "where_object", obj, question_text("where_object", obj), (state.object_place(obj),),
                tuple(sorted(support))))
    return found


def pick_questions(found: dict[str, list[WorldQuestion]], count: int, rng: random.Random) -> list[WorldQuestion]:
    """Up to `count` distinct questions: a kind uniformly among those with questions left, then one of them."""
    left = {kind: list(questions) for kind, questions in found.items() if questions}
    picked = []
    while left and len(picked) < count:
        kind = rng.choice(sorted(left))
        picked.append(left[kind].pop(rng.randrange(len(left[kind]))))
        if not left[kind]:
            del left[kind]
    return picked


# ---- distractors and rendering -------------------------------------------------------------------------
_NAME_WORD = re.compile(r"\b(?:" + "|".join(NAMES) + r")\b")


def distractor_pool(records: Sequence[QARecord], parts: int = 1, part: int = 0) -> list[Paragraph]:
    """The distinct paragraphs of `records` that name none of our people (so every mention of a person
    comes from a fact), keeping every `parts`-th one from position `part`: disjoint parts of one file
    give training and held-aside samples different distractors."""
    if not 0 <= part < parts:
        raise ValueError(f"distractor_part must be in 0..{parts - 1}, got {part}")
    clean = [p for p in paragraph_pool(records) if not _NAME_WORD.search(f"{p.title} {p.text}")]
    return clean[part::parts]


def scatter(facts: Sequence[str], documents: Sequence[Paragraph], rng: random.Random
            ) -> tuple[list[Paragraph], list[int]]:
    """Insert the facts, in order, at random sentence boundaries of the documents.

    Returns the new documents and, per fact, the 1-based number of the document holding it."""
    slots = [(d, s) for d, doc in enumerate(documents) for s in range(len(doc.sentences) + 1)]
    chosen = sorted(rng.choices(range(len(slots)), k=len(facts)))
    inserts: dict[tuple[int, int], list[str]] = {}
    positions = []
    for fact, slot in zip(facts, chosen, strict=True):
        inserts.setdefault(slots[slot], []).append(fact)
        positions.append(slots[slot][0] + 1)
    out = []
    for d, doc in enumerate(documents):
        sentences: list[str] = []
        for s in range(len(doc.sentences) + 1):
            sentences += inserts.get((d, s), [])
            if s < len(doc.sentences):
                sentences.append(doc.sentences[s])
        out.append(Paragraph(doc.title, tuple(sentences)))
    return out, positions


def build_statetrack_samples(pool: Sequence[Paragraph], cfg: StateTrackConfig, num_docs: int, num_samples: int,
                             seed: int) -> list[LongSample]:
    """`num_samples` worlds, each rendered over `num_docs` distractor paragraphs of `pool`."""
    cfg.check()
    if num_docs < 1 or num_samples < 1:
        raise ValueError(f"num_docs and the number of samples must be at least 1, got {num_docs}, {num_samples}")
    if len(pool) < num_docs:
        raise ValueError(f"the distractor pool has {len(pool)} usable paragraphs, fewer than num_docs={num_docs}")
    samples = []
    for index in range(num_samples):
        rng = random.Random(f"{BENCHMARK}:{seed}:{index}")  # str seeds are hashed with SHA-512: stable
        people, events = simulate(cfg, rng)
        state = replay(events)
        questions = pick_questions(candidate_questions(state, people, cfg.question_types), cfg.questions, rng)
        facts = [e.sentence() for e in events]
        documents, fact_docs = scatter(facts, rng.sample(list(pool), num_docs), rng)
        samples.append(LongSample(
            id=f"{BENCHMARK}-{num_docs}-{index}",
            benchmark=BENCHMARK,
            num_docs=num_docs,
            questions=[
                Question(
                    id=f"{BENCHMARK}-s{seed}-{index}-q{j}",
                    question=q.text,
                    answers=list(q.answers),
                    supporting_facts=[facts[i] for i in q.support],
                    gold_doc_positions=sorted({fact_docs[i] for i in q.support}),
                )
                for j, q in enumerate(questions)
            ],
            documents=documents,
            context=render_context(documents),
            final_state=final_state(state),
        ))
    return samples


# ---- reading the text back (the oracle teacher tracks the world from the chunks it is shown) ------------
_WHO = "(" + "|".join(NAMES) + ")"
_FACT_PATTERNS = (
    ("correction", re.compile(rf"Correction: {_WHO} actually went to the (\w+), not the (\w+)\.")),
    ("move", re.compile(rf"{_WHO} went to the (\w+)\.")),
    ("take", re.compile(rf"{_WHO} picked up the (\w+)\.")),
    ("give", re.compile(rf"{_WHO} gave the (\w+) to {_WHO}\.")),
    ("drop", re.compile(rf"{_WHO} dropped the (\w+)\.")),
)
_ANY_FACT = re.compile("|".join(f"(?:{p.pattern})" for _, p in _FACT_PATTERNS))
_QUESTION_SUBJECT = re.compile(r"(?:Where is (?:the )?|What is )(\w+)(?: carrying)?\?")


def parse_fact(sentence: str) -> Event | None:
    """The event a fact sentence states, or None when it is not one."""
    for kind, pattern in _FACT_PATTERNS:
        m = pattern.fullmatch(sentence)
        if not m:
            continue
        g = m.groups()
        if kind == "correction":
            return Event(kind, g[0], place=g[1], wrong_place=g[2])
        if kind == "move":
            return Event(kind, g[0], place=g[1])
        if kind == "give":
            return Event(kind, g[0], obj=g[1], receiver=g[2])
        return Event(kind, g[0], obj=g[1])
    return None


def facts_in(text: str) -> list[str]:
    """The fact sentences of `text`, in order."""
    return [m.group(0) for m in _ANY_FACT.finditer(text)]


def question_subject(question: str) -> str | None:
    """The person or object a statetrack question asks about."""
    m = _QUESTION_SUBJECT.fullmatch(question.strip())
    return m.group(1) if m else None


_NAME_WORDS = {name.lower() for name in NAMES}
_OBJECT_WORDS = set(OBJECTS)


def _names(entry: str) -> set[str]:
    return {word.lower() for word in re.findall(r"[A-Za-z]+", entry)}


def memory_backs(question: str, answers: Sequence[str], entries: Sequence[str]) -> bool | None:
    """Whether the memory entries shown when a question was answered hold its gold answer; None when the
    question is not a statetrack one. An answer that memory does not back was guessed (right or not):
    with few places a world, guesses earn reward that no memory operation did
    (docs/experiments/2026-12-01-why-rl-does-not-help.md).

    Matching is by words, not sentences, so any phrasing counts: "Where is Mary?" is backed by an entry
    naming Mary and the gold place; "Where is the apple?" also by "X carries the apple" with "X ... garden";
    "What is Mary carrying?" by entries naming Mary and, between them, every gold object, or, for "nothing",
    by entries naming Mary and no object.
    """
    subject = question_subject(question)
    if subject is None or not answers:
        return None
    subject = subject.lower()
    shown = [_names(e) for e in entries]
    about = [words for words in shown if subject in words]
    gold = _names(answers[0]) - {"and"}
    if question.startswith("What is"):
        if answers[0] == NOTHING:
            return bool(about) and not any(words & _OBJECT_WORDS for words in about)
        return bool(about) and gold <= set().union(*about)  # the objects may sit in one entry each
    if any(gold <= words for words in about):
        return True
    holders = {word for words in about for word in words & _NAME_WORDS} - {subject}
    return any(holder in words and gold <= words for holder in holders for words in shown)
