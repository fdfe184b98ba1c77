"""Search latency of the memory store over 20,000 random 384-d entries (MiniLM's width).

    .venv/bin/python benchmarks/memory_search.py

Prints milliseconds per top-6 search; target < 20 ms on one CPU core. A benchmark, not a test: wall
time on a shared or loaded machine says nothing about correctness.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from atommem.memory.store import MemoryStore

TARGET_MS = 20.0


class RandomEmbedder:
    dim = 384

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)

    def embed_documents(self, texts):
        return self.rng.standard_normal((len(texts), self.dim)).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=20_000)
    parser.add_argument("--searches", type=int, default=20)
    parser.add_argument("--top-k", type=int, default=6)
    args = parser.parse_args()

    embedder = RandomEmbedder(seed=1)
    store = MemoryStore(embedder)
    store.add([f"entry {i}" for i in range(args.entries)], turn=0)
    query = embedder.rng.standard_normal(embedder.dim).astype(np.float32)
    store.search(query, args.top_k)  # warm-up
    start = time.perf_counter()
    for _ in range(args.searches):
        store.search(query, args.top_k)
    per_search_ms = (time.perf_counter() - start) / args.searches * 1000
    verdict = "ok" if per_search_ms < TARGET_MS else "SLOWER than target"
    print(f"{args.entries} entries: {per_search_ms:.2f} ms per top-{args.top_k} search "
          f"(target < {TARGET_MS:.0f} ms): {verdict}")


if __name__ == "__main__":
    main()
