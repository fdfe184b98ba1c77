"""One episode's memory store: free-text entries with embeddings and exact cosine top-k search.

Entries are identified by object identity (fix 3 of docs/method-fixes.md): Update/Delete act on the entry object
shown to the agent, never on "any entry with the same text", and a store refuses entries it does not
hold. Vectors live in one preallocated float32 matrix updated in place, so a search is a single
matrix-vector product (about a millisecond for 20k x 384) instead of a rebuild.
"""

from __future__ import annotations

import numpy as np

from atommem.memory.embedders import Embedder, l2_normalize


class MemoryEntry:
    """A stored memory. Compared by identity (no __eq__): two entries with equal text are distinct."""

    __slots__ = ("text", "vector", "created_turn", "updated_turn", "_seq")

    def __init__(self, text: str, vector: np.ndarray, created_turn: int, seq: int):
        self.text = text
        self.vector = vector
        self.created_turn = created_turn
        self.updated_turn = created_turn  # turn of the last replace()
        self._seq = seq  # insertion order within the store; breaks score ties (older first)

    def __repr__(self) -> str:
        return f"MemoryEntry({self.text!r}, created_turn={self.created_turn})"


class MemoryStore:
    def __init__(self, embedder: Embedder, initial_capacity: int = 64):
        self.embedder = embedder
        self._matrix = np.zeros((initial_capacity, embedder.dim), dtype=np.float32)
        self._seqs = np.zeros(initial_capacity, dtype=np.int64)
        self._entries: list[MemoryEntry] = []  # row i of _matrix belongs to _entries[i]
        self._rows: dict[int, int] = {}  # id(entry) -> row; only live entries, so ids are never reused
        self._next_seq = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def entries(self) -> list[MemoryEntry]:
        """All entries, oldest first (a copy: mutating it does not change the store)."""
        return sorted(self._entries, key=lambda e: e._seq)

    def add(self, texts: list[str], turn: int) -> list[MemoryEntry]:
        """Embed the non-blank texts in one embedder call and insert them; returns the new entries."""
        texts = [t.strip() for t in texts if t and t.strip()]
        if not texts:
            return []
        vectors = self._check_vectors(self.embedder.embed_documents(texts), len(texts))
        self._reserve(len(self._entries) + len(texts))
        added = []
        for text, vector in zip(texts, vectors):
            row = len(self._entries)
            entry = MemoryEntry(text, vector, turn, self._next_seq)
            self._next_seq += 1
            self._matrix[row] = vector
            self._seqs[row] = entry._seq
            self._entries.append(entry)
            self._rows[id(entry)] = row
            added.append(entry)
        return added

    def replace(self, entry: MemoryEntry, text: str, turn: int) -> None:
        """Give `entry` new text and a new embedding; it keeps its identity and its age for tie-breaking."""
        row = self._row_of(entry, "replace")
        text = text.strip() if text else ""
        if not text:
            raise ValueError("MemoryStore.replace: new text is empty (use remove to delete an entry)")
        vector = self._check_vectors(self.embedder.embed_documents([text]), 1)[0]
        entry.text, entry.vector, entry.updated_turn = text, vector, turn
        self._matrix[row] = vector

    def remove(self, entry: MemoryEntry) -> None:
        row = self._row_of(entry, "remove")
        last = len(self._entries) - 1
        # move the last row into the hole: O(dim) instead of shifting the whole matrix
        if row != last:
            moved = self._entries[last]
            self._entries[row] = moved
            self._matrix[row] = self._matrix[last]
            self._seqs[row] = self._seqs[last]
            self._rows[id(moved)] = row
        self._entries.pop()
        del self._rows[id(entry)]

    def search(self, query_vector: np.ndarray, k: int) -> list[MemoryEntry]:
        """Top-k entries by cosine similarity, best first; equal scores: older entries first."""
        n = len(self._entries)
        if n == 0 or k <= 0:
            return []
        query = l2_normalize(np.asarray(query_vector, dtype=np.float32).reshape(1, -1))[0]
        if query.shape[0] != self._matrix.shape[1]:
            raise ValueError(f"MemoryStore.search: query has dim {query.shape[0]}, store has {self._matrix.shape[1]}")
        neg_scores = -(self._matrix[:n] @ query)
        if k < n:
            # keep every row scoring at least the k-th best, ties included, so the seq tie-break is exact
            kth = np.partition(neg_scores, k - 1)[k - 1]
            candidates = np.flatnonzero(neg_scores <= kth)
        else:
            candidates = np.arange(n)
        order = candidates[np.lexsort((self._seqs[candidates], neg_scores[candidates]))]
        return [self._entries[i] for i in order[:k]]

    def _row_of(self, entry: MemoryEntry, action: str) -> int:
        row = self._rows.get(id(entry))
        if row is None or self._entries[row] is not entry:
            raise ValueError(f"MemoryStore.{action}: {entry!r} is not in this store (removed, or from another episode)")
        return row

    def _check_vectors(self, vectors: np.ndarray, count: int) -> np.ndarray:
        vectors = l2_normalize(vectors)  # cosine = dot product only for unit vectors
        if vectors.shape != (count, self._matrix.shape[1]):
            raise ValueError(
                f"embedder returned shape {vectors.shape}, expected ({count}, {self._matrix.shape[1]})"
            )
        return vectors

    def _reserve(self, size: int) -> None:
        if size <= self._matrix.shape[0]:
            return
        capacity = max(size, 2 * self._matrix.shape[0])
        matrix = np.zeros((capacity, self._matrix.shape[1]), dtype=np.float32)
        matrix[: len(self._entries)] = self._matrix[: len(self._entries)]
        seqs = np.zeros(capacity, dtype=np.int64)
        seqs[: len(self._entries)] = self._seqs[: len(self._entries)]
        self._matrix, self._seqs = matrix, seqs
