"""Per-episode memory: embedders and the exact-search store."""

from atommem.memory.embedders import (
    Embedder,
    EmbedderConfig,
    HashingEmbedder,
    OpenAIEmbedder,
    SentenceTransformerEmbedder,
    build_embedder,
)
from atommem.memory.store import MemoryEntry, MemoryStore

__all__ = [
    "Embedder",
    "EmbedderConfig",
    "HashingEmbedder",
    "MemoryEntry",
    "MemoryStore",
    "OpenAIEmbedder",
    "SentenceTransformerEmbedder",
    "build_embedder",
]
