"""RAG baseline: chunk-level retrieval with the same embedder, one prompt per question.

The context is chunked as the agent reads it (env.chunk_tokens, env.chunk_overlap, env.max_chunks);
every chunk is embedded into a store; each question retrieves its env.top_k most similar chunks (best
first), keeping only as many as fit in the model's window. One LLM call per question, all questions of
a batch in one generate call. peak_store = chunks indexed.
"""

from __future__ import annotations

from atommem.data.records import LongSample
from atommem.memory.store import MemoryStore
from atommem.methods import baseline_prompts as bp
from atommem.methods.base import MethodContext
from atommem.methods.fixed_workflow import FixedWorkflow, Ledger, chunks_of, count_tokens, prompt_tokens, window

PASSAGE_OVERHEAD = 16  # tokens of the <chunk>/Passage i wrapper around each retrieved chunk


def fit_chunks(chunks: list[str], tokenizer, room: int) -> list[str]:
    """The longest prefix of `chunks` (best first) whose tokens fit in `room`; at least the first."""
    kept, used = [], 0
    for chunk in chunks:
        cost = count_tokens(tokenizer, chunk) + PASSAGE_OVERHEAD
        if kept and used + cost > room:
            break
        kept.append(chunk)
        used += cost
    return kept


class RAGMethod(FixedWorkflow):
    name = "rag"

    def answer_requests(self, samples: list[LongSample], ctx: MethodContext, ledger: Ledger, options: dict):
        tokenizer = ctx.llm.tokenizer
        requests = []
        for i, sample in enumerate(samples):
            with ledger.timed(i):
                store = MemoryStore(ctx.embedder)
                store.add(chunks_of(sample, ctx), turn=0)
                ledger.note_store(i, len(store))
                questions = [q.question for q in sample.questions]
                vectors = ctx.embedder.embed_queries(questions) if questions else []
                for question, vector in zip(questions, vectors):
                    ranked = [e.text for e in store.search(vector, ctx.env.top_k)]
                    overhead = prompt_tokens(tokenizer, bp.rag_answer(question, []))
                    room = window(ctx) - ctx.sampling.max_new_tokens - overhead
                    requests.append((i, bp.rag_answer(question, fit_chunks(ranked, tokenizer, room))))
        return requests
