"""Token-based chunking of the long context (method section 3)."""

from __future__ import annotations


def chunk_text(text: str, tokenizer, chunk_tokens: int, overlap: int, max_chunks: int) -> list[str]:
    """Split `text` into chunks of `chunk_tokens` tokens, each widened by `overlap` tokens on both sides.

    Inputs longer than `max_chunks` chunks are centre-truncated: the head and tail are kept, the middle
    is dropped, so the first and last documents are always read.
    """
    return chunk_ids(tokenizer.encode(text, add_special_tokens=False), tokenizer, chunk_tokens, overlap, max_chunks)


def chunk_ids(ids: list[int], tokenizer, chunk_tokens: int, overlap: int, max_chunks: int) -> list[str]:
    """`chunk_text` of a text already tokenized: at 800 documents (120k tokens) encoding is most of an
    episode's setup, so an episode encodes its context once for the chunks and its token count."""
    if chunk_tokens <= 0:
        raise ValueError(f"env.chunk_tokens must be positive, got {chunk_tokens}")
    if overlap < 0 or overlap >= chunk_tokens:
        raise ValueError(f"env.chunk_overlap must be in [0, chunk_tokens), got {overlap}")
    budget = chunk_tokens * max_chunks
    if len(ids) > budget:
        head = budget // 2
        ids = ids[:head] + ids[len(ids) - (budget - head) :]
    chunks = []
    for start in range(0, len(ids), chunk_tokens):
        window = ids[max(0, start - overlap) : start + chunk_tokens + overlap]
        chunks.append(tokenizer.decode(window, skip_special_tokens=True))
    return chunks
