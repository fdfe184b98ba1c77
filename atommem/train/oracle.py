"""The oracle teacher: a scripted policy that knows each question's supporting facts and gold answer.

It writes the operations a good policy would write, through the same Episode/runner/prompt path as any
LLM, so its trajectories are SFT examples in exactly the evaluation format. Per reading turn:
  - the supporting facts of a question found in the current chunk and not yet in memory are saved in one
    Create, each prefixed with its document title (facts often say "He" or "The band"), joined by " | ";
    when an entry holding part of that question's evidence is shown this turn, the new facts are appended
    to it with an Update instead (new evidence refining an entry: one entry per reasoning chain);
  - an exact duplicate among the shown entries is Deleted;
  - the scratchpad keeps one compact line per question: which documents were found, and the answer once
    all of its facts are in memory;
  - after saving facts for a question, the query is set to that question's keywords (a Read), so the
    next turn shows its entries, ready to be refined;
  - a chunk with nothing relevant still needs a Create or Update to move on (the environment's rule): the
    oracle then stores a one-line note "Chunk k of n: nothing relevant to the questions." This is the
    cheapest honest write; the note never ranks above facts for a question's keywords.
Answer phase: `<final_answer>\\boxed{gold answer}</final_answer>`.

A generated task's samples are played by its own oracle (atommem.tasks; statetrack's keeps memory that
tracks a changing world).

Ablations are respected: only enabled operations are written (without a store, facts go into the
scratchpad; without Update, refinements become Creates). With Create disabled but a store in use, an
empty store offers nothing to Update, so such an episode can only end at the turn cap.
"""

from __future__ import annotations

import re

from atommem.agent.env import Episode
from atommem.agent.ops import OP_TAGS
from atommem.agent.prompts import escape_untrusted, one_line
from atommem.llm.base import Conversation, Generation, SamplingConfig, chat_prompt_ids
from atommem.tasks import task_of

STOPWORDS = frozenset(
    "a an the of in on at to for from by with and or is was were are be been which who whom whose what when "
    "where why how did does do that this these those it its as than same both".split()
)


def question_keywords(question: str, limit: int = 8) -> str:
    words = [w for w in re.findall(r"[\w'-]+", question) if w.lower() not in STOPWORDS]
    return " ".join(words[:limit])


def _clean(text: str) -> str:
    # our own tags must not be closed early by a fact's text
    return escape_untrusted(one_line(text))


class OracleTeacher:
    """Drop-in for an LLM in `run_lockstep`: built on the episodes it plays, answers their prompts.

    run_lockstep calls `generate` with the prompts of the still-active episodes, in episode order; the
    teacher looks those episodes up the same way and writes each one's ideal response.
    """

    def __init__(self, episodes: list[Episode], tokenizer):
        self.episodes = episodes
        self.tokenizer = tokenizer

    def generate(self, conversations: list[Conversation], sampling: SamplingConfig) -> list[Generation]:
        active = [e for e in self.episodes if not e.done]
        if len(active) != len(conversations):
            raise RuntimeError(f"oracle: {len(conversations)} prompts for {len(active)} active episodes")
        generations = []
        for episode, conversation in zip(active, conversations, strict=True):
            text = respond(episode)
            generations.append(Generation(
                text=text,
                prompt_tokens=len(chat_prompt_ids(self.tokenizer, conversation)),
                completion_tokens=len(self.tokenizer.encode(text, add_special_tokens=False)),
            ))
        return generations


def respond(episode: Episode) -> str:
    """The oracle's response to the episode's current turn (valid after `observe()`)."""
    task = task_of(episode.sample.benchmark)
    if task is not None:
        return task.oracle(episode)
    if episode.phase == "answer":
        gold = episode.sample.questions[episode.question_index].answers[0]
        return f"<final_answer>\\boxed{{{one_line(gold)}}}</final_answer>"
    return _reading_response(episode)


def _titled_facts(episode: Episode, question) -> list[str]:
    """The question's supporting facts as "Title: sentence", in document order."""
    titled = []
    for fact in question.supporting_facts:
        title = next((episode.sample.documents[p - 1].title for p in question.gold_doc_positions
                      if fact in episode.sample.documents[p - 1].sentences), None)
        titled.append(f"{title}: {one_line(fact)}" if title else one_line(fact))
    return titled


def _reading_response(episode: Episode) -> str:
    enabled = episode.enabled
    # texts are compared whitespace-normalised: entries are stored one-lined, documents are not
    chunk = one_line(episode.current_chunk or "")
    # what memory already holds: the store, or the scratchpad when it is the only memory
    known = [e.text for e in episode.store.entries] if episode.cfg.use_store else [episode.scratchpad]
    shown = [e.text for e in episode.shown]
    ops: list[str] = []
    focus_question = None

    for qi, question in enumerate(episode.sample.questions):
        facts = [one_line(f) for f in question.supporting_facts]
        fresh = [titled for fact, titled in zip(facts, _titled_facts(episode, question), strict=True)
                 if fact in chunk and not any(fact in text for text in known)]
        if not fresh:
            continue
        known += fresh
        focus_question = qi if focus_question is None else focus_question
        evidence = " | ".join(fresh)
        # an entry already holding part of this question's evidence chain is refined rather than duplicated
        target = next((i for i, text in enumerate(shown, 1)
                       if any(fact in text for fact in facts)), None)
        if target is not None and "update" in enabled:
            shown[target - 1] = f"{shown[target - 1]} | {evidence}"
            ops.append(f"<modify_memory>Memory {target}: {_clean(shown[target - 1])}</modify_memory>")
        elif "create" in enabled:
            ops.append(f"<add_memory>{_clean(evidence)}</add_memory>")

    if "delete" in enabled:
        seen = set()
        for i, text in enumerate(shown, 1):
            if text in seen:
                ops.append(f"<delete_memory>Memory {i}</delete_memory>")
            seen.add(text)

    note = _scratchpad(episode, known) if "scratchpad" in enabled else None
    if note is not None and note != episode.scratchpad:
        ops.append(f"<update_memory>{note}</update_memory>")

    advancing_tags = tuple(f"<{OP_TAGS[name]}>" for name in episode.advancing)
    if advancing_tags and not any(op.startswith(advancing_tags) for op in ops):
        if "create" in episode.advancing:
            k, n = episode.chunk_index + 1, len(episode.chunks)
            ops.append(f"<add_memory>Chunk {k} of {n}: nothing relevant to the questions.</add_memory>")
        elif note is not None:  # scratchpad-only memory: rewriting the unchanged note moves on
            ops.append(f"<update_memory>{note}</update_memory>")

    if focus_question is not None and "read" in enabled:
        keywords = question_keywords(episode.sample.questions[focus_question].question)
        if keywords and keywords != episode.query:
            ops.append(f"<update_query>{_clean(keywords)}</update_query>")
    return "\n".join(ops)


def _scratchpad(episode: Episode, known: list[str]) -> str:
    """One line per question: documents found so far, and the answer once all its facts are known.

    Without a store the facts themselves live here (they are the only memory)."""
    lines = []
    for qi, question in enumerate(episode.sample.questions, 1):
        titled = _titled_facts(episode, question)
        found = [t for t, fact in zip(titled, question.supporting_facts, strict=True)
                 if any(one_line(fact) in text for text in known)]
        if not episode.cfg.use_store:
            body = " ".join(_clean(t) for t in found) or "nothing yet"
        else:
            titles = list(dict.fromkeys(t.split(": ", 1)[0] for t in found))
            body = ("found " + "; ".join(_clean(t) for t in titles)) if titles else "nothing yet"
        if found and len(found) == len(titled):
            body += f" -> answer: {_clean(question.answers[0])}"
        lines.append(f"Q{qi}: {body}")
    return "\n".join(lines)
