"""Static-CRUD baseline: a fixed Mem0-style memory workflow; the workflow, not the policy, decides when
memory is written.

Per chunk: one call extracts facts (one per line, at most `method_options.max_facts`). Per fact: its
env.top_k most similar entries are retrieved and one call chooses ADD / UPDATE i / DELETE i / NOOP.
All facts of all samples at a chunk position go in one generate call, so each fact is decided against
the store as it was before that chunk; decisions are applied in fact order (an UPDATE or DELETE of an
entry an earlier decision removed does nothing). A reply with no valid decision adds the fact.
At the end each question retrieves top-k entries (within env.retrieval_token_budget, as the agent) and
one call answers. LLM calls per sample = chunks + facts + questions.
"""

from __future__ import annotations

import logging
from collections import Counter

from atommem.config import ConfigError
from atommem.data.records import LongSample
from atommem.memory.store import MemoryEntry, MemoryStore
from atommem.methods import baseline_prompts as bp
from atommem.methods.base import MethodContext
from atommem.methods.fixed_workflow import FixedWorkflow, Ledger, chunks_of, count_tokens

log = logging.getLogger(__name__)

class StaticCRUDMethod(FixedWorkflow):
    name = "static-crud"
    OPTIONS = {"max_facts": 8}  # facts kept per chunk (the rest of the extraction reply is dropped)

    def check(self, options: dict) -> None:
        if int(options["max_facts"]) < 1:
            raise ConfigError(f"method_options.max_facts must be >= 1, got {options['max_facts']}")

    def answer_requests(self, samples: list[LongSample], ctx: MethodContext, ledger: Ledger, options: dict):
        tokenizer = ctx.llm.tokenizer
        max_facts = int(options["max_facts"])
        stores = [MemoryStore(ctx.embedder) for _ in samples]
        chunks = []
        for i, sample in enumerate(samples):
            with ledger.timed(i):
                chunks.append(chunks_of(sample, ctx))
        decisions: Counter = Counter()
        for step in range(max((len(c) for c in chunks), default=0)):
            active = [i for i in range(len(samples)) if step < len(chunks[i])]
            questions = {i: [q.question for q in samples[i].questions] for i in active}
            requests = [(i, bp.extract_facts(questions[i], chunks[i][step], step, len(chunks[i]))) for i in active]
            replies = ledger.generate(ctx.llm, ctx.sampling, requests)
            facts = [(i, fact) for i, reply in zip(active, replies) for fact in bp.parse_facts(reply, max_facts)]
            shown = self._similar(facts, stores, ctx, ledger)
            requests = [(i, bp.decide_fact(fact, [e.text for e in entries]))
                        for (i, fact), entries in zip(facts, shown)]
            replies = ledger.generate(ctx.llm, ctx.sampling, requests)
            for (i, fact), entries, reply in zip(facts, shown, replies):
                with ledger.timed(i):
                    decisions[_apply(stores[i], fact, entries, bp.parse_decision(reply, len(entries)), step)] += 1
            for i in active:
                ledger.note_store(i, len(stores[i]))
                ledger.note_memory(i, [e.text for e in stores[i].entries])
        log.info("static-crud decisions over %d samples: %s", len(samples), dict(decisions))
        requests = []
        for i, sample in enumerate(samples):
            with ledger.timed(i):
                questions = [q.question for q in sample.questions]
                empty = not (questions and len(stores[i]))
                vectors = [None] * len(questions) if empty else ctx.embedder.embed_queries(questions)
                for question, vector in zip(questions, vectors):
                    entries = _within_budget(stores[i], vector, ctx, tokenizer)
                    requests.append((i, bp.memory_answer(question, [e.text for e in entries])))
        return requests

    @staticmethod
    def _similar(facts, stores, ctx: MethodContext, ledger: Ledger) -> list[list[MemoryEntry]]:
        """The top-k entries of its sample's store for every fact (one embedder call per sample)."""
        shown: list[list[MemoryEntry]] = [[] for _ in facts]
        for i in sorted({i for i, _ in facts}):
            positions = [n for n, (j, _) in enumerate(facts) if j == i]
            if not len(stores[i]):
                continue
            with ledger.timed(i):
                vectors = ctx.embedder.embed_documents([facts[n][1] for n in positions])
                for n, vector in zip(positions, vectors):
                    shown[n] = stores[i].search(vector, ctx.env.top_k)
        return shown


def _apply(store: MemoryStore, fact: str, entries: list[MemoryEntry], decision, turn: int) -> str:
    """Execute one decision; returns what was done (for the log): add, update, delete, noop, invalid_add,
    or stale (the entry was already removed by an earlier decision)."""
    if decision is None:
        store.add([fact], turn=turn)
        return "invalid_add"
    action, index, text = decision
    if action == "add":
        store.add([fact], turn=turn)
    elif action in ("update", "delete"):
        entry = entries[index - 1]
        if not any(e is entry for e in store.entries):
            return "stale"
        if action == "update":
            store.replace(entry, text or fact, turn=turn)
        else:
            store.remove(entry)
    return action


def _within_budget(store: MemoryStore, vector, ctx: MethodContext, tokenizer) -> list[MemoryEntry]:
    """Top-k entries, best first, stopping before env.retrieval_token_budget is exceeded (as the agent)."""
    if vector is None or not len(store):
        return []
    kept, used = [], 0
    for entry in store.search(vector, ctx.env.top_k):
        cost = count_tokens(tokenizer, entry.text)
        if kept and used + cost > ctx.env.retrieval_token_budget:
            break
        kept.append(entry)
        used += cost
    return kept
