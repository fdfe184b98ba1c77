import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atommem.memory import (
    EmbedderConfig,
    HashingEmbedder,
    MemoryStore,
    OpenAIEmbedder,
    build_embedder,
)

# ---------- embedders ----------

def test_hashing_embedder_is_deterministic_across_instances_and_processes():
    texts = ["The Eiffel Tower is in Paris.", "Marie Curie won two Nobel prizes."]
    a = HashingEmbedder(dim=64).embed_documents(texts)
    b = HashingEmbedder(dim=64).embed_documents(texts)
    np.testing.assert_array_equal(a, b)
    # a fresh interpreter has a different str-hash salt; hashlib-based features must not care
    code = (
        "import json; from atommem.memory import HashingEmbedder; "
        f"print(json.dumps(HashingEmbedder(dim=64).embed_documents({texts!r}).tolist()))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    np.testing.assert_allclose(np.array(json.loads(out), dtype=np.float32), a)


def test_hashing_embedder_ranks_similar_text_above_unrelated():
    emb = HashingEmbedder(dim=256)
    query = emb.embed_queries(["Where was the director of Jaws born?"])[0]
    docs = emb.embed_documents([
        "The director of Jaws, Steven Spielberg, was born in Cincinnati.",
        "Photosynthesis converts light into chemical energy in plants.",
    ])
    assert docs[0] @ query > docs[1] @ query


def test_hashing_embedder_shapes_and_norms():
    emb = HashingEmbedder(dim=32)
    out = emb.embed_documents(["alpha beta", "gamma"])
    assert out.shape == (2, 32) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-6)
    assert emb.embed_documents([]).shape == (0, 32)
    assert emb.embed_queries([]).shape == (0, 32)


def test_build_embedder_rejects_unknown_kind_listing_valid_ones():
    with pytest.raises(ValueError, match="hashing"):
        build_embedder(EmbedderConfig(kind="faiss"))
    assert isinstance(build_embedder(EmbedderConfig(kind="hashing", dim=16)), HashingEmbedder)


# ---------- store ----------

class TableEmbedder:
    """Texts "t0".."t9" -> fixed vectors with four entries of +-0.5 (unit norm, exact float dot products),
    so ties in the reference model are exact and ordering is unambiguous. Counts calls."""

    dim = 8

    def __init__(self):
        rng = np.random.default_rng(0)
        self.table = {}
        for i in range(10):
            v = np.zeros(self.dim, dtype=np.float32)
            idx = rng.choice(self.dim, size=4, replace=False)
            v[idx] = rng.choice([-0.5, 0.5], size=4)
            self.table[f"t{i}"] = v
        self.calls = []

    def embed_documents(self, texts):
        self.calls.append(list(texts))
        return np.stack([self.table[t] for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    embed_queries = embed_documents


def brute_force_top_k(model, query, k):
    # model: list of (seq, entry, vector) in insertion order
    ranked = sorted(model, key=lambda item: (-float(item[2] @ query), item[0]))
    return [entry for _, entry, _ in ranked[:k]]


ops = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.lists(st.sampled_from([f"t{i}" for i in range(10)] + ["", "  "]), max_size=4)),
        st.tuples(st.just("replace"), st.integers(0, 50), st.sampled_from([f"t{i}" for i in range(10)])),
        st.tuples(st.just("remove"), st.integers(0, 50)),
        st.tuples(st.just("search"), st.sampled_from([f"t{i}" for i in range(10)]), st.integers(0, 12)),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(ops)
def test_store_matches_reference_model(sequence):
    emb = TableEmbedder()
    store = MemoryStore(emb, initial_capacity=2)  # small capacity: growth is exercised too
    model = []  # (seq, entry, vector)
    seq = 0
    for turn, op in enumerate(sequence):
        if op[0] == "add":
            added = store.add(op[1], turn)
            kept = [t for t in op[1] if t.strip()]
            assert [e.text for e in added] == kept
            for entry in added:
                assert entry.created_turn == turn
                model.append((seq, entry, emb.table[entry.text]))
                seq += 1
        elif op[0] == "replace" and model:
            i = op[1] % len(model)
            s, entry, _ = model[i]
            store.replace(entry, op[2], turn)
            model[i] = (s, entry, emb.table[op[2]])
            assert entry.text == op[2] and entry.updated_turn == turn
        elif op[0] == "remove" and model:
            _, entry, _ = model.pop(op[1] % len(model))
            store.remove(entry)
        elif op[0] == "search":
            query = emb.table[op[1]]
            got = store.search(query, op[2])
            want = brute_force_top_k(model, query, op[2])
            assert [id(e) for e in got] == [id(e) for e in want]
        assert len(store) == len(model)
        assert [id(e) for e in store.entries] == [id(e) for _, e, _ in model]


def test_store_add_embeds_a_batch_in_one_call_and_skips_blank_texts():
    emb = TableEmbedder()
    store = MemoryStore(emb)
    added = store.add(["t1", "", "   ", "t2", "t3"], turn=4)
    assert emb.calls == [["t1", "t2", "t3"]]
    assert [e.text for e in added] == ["t1", "t2", "t3"]
    assert store.add(["", " \n"], turn=5) == [] and len(emb.calls) == 1


def test_entries_with_equal_text_are_distinct_and_ties_go_to_older_entries():
    store = MemoryStore(TableEmbedder())
    first, second = store.add(["t1", "t1"], turn=0)
    assert first != second
    assert store.search(store.embedder.table["t1"], 2) == [first, second]
    store.remove(first)
    assert store.search(store.embedder.table["t1"], 5) == [second]


def test_store_rejects_foreign_and_removed_entries():
    mine, other = MemoryStore(TableEmbedder()), MemoryStore(TableEmbedder())
    (entry,) = mine.add(["t1"], 0)
    (foreign,) = other.add(["t1"], 0)  # same text, other episode
    with pytest.raises(ValueError, match="not in this store"):
        mine.remove(foreign)
    with pytest.raises(ValueError, match="not in this store"):
        mine.replace(foreign, "t2", 1)
    assert foreign.text == "t1" and len(other) == 1
    mine.remove(entry)
    with pytest.raises(ValueError, match="not in this store"):
        mine.remove(entry)
    with pytest.raises(ValueError, match="empty"):
        other.replace(foreign, "  ", 1)


def test_search_over_20k_entries_returns_the_best_k():
    """Correctness at scale; the speed of this search is measured by benchmarks/memory_search.py."""
    rng = np.random.default_rng(1)

    class RandomEmbedder:
        dim = 384

        def embed_documents(self, texts):
            return rng.standard_normal((len(texts), self.dim)).astype(np.float32)

    store = MemoryStore(RandomEmbedder())
    store.add([f"entry {i}" for i in range(20_000)], turn=0)
    query = rng.standard_normal(384).astype(np.float32)
    result = store.search(query, 6)
    entries = store.entries
    best = np.argsort(-(np.stack([e.vector for e in entries]) @ query), kind="stable")[:6]
    assert [e.text for e in result] == [entries[i].text for i in best]


# ---------- slow: real models / servers ----------

@pytest.mark.slow
def test_minilm_ranks_paraphrase_above_unrelated():
    emb = build_embedder(EmbedderConfig(kind="sentence-transformers", name="all-minilm-l6-v2"))
    assert emb.dim == 384
    store = MemoryStore(emb)
    paraphrase, unrelated = store.add(
        ["The film was directed by a man born in Ohio.", "Bananas are rich in potassium."], turn=0
    )
    query = emb.embed_queries(["Which state is the movie's director from?"])[0]
    assert store.search(query, 2) == [paraphrase, unrelated]


class _EmbeddingHandler(BaseHTTPRequestHandler):
    requests_seen: list = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests_seen.append((self.path, body))
        # embedding = [len(text), 1.0, 0.0]; returned in reverse order to check the client sorts by index
        data = [{"index": i, "embedding": [float(len(t)), 1.0, 0.0]} for i, t in enumerate(body["input"])]
        payload = json.dumps({"data": data[::-1], "model": body["model"]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.mark.slow
def test_openai_embedder_protocol_against_local_stub():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EmbeddingHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        cfg = EmbedderConfig(kind="openai", name="Qwen/Qwen3-Embedding-0.6B",
                             base_url=f"http://127.0.0.1:{server.server_port}/v1/", query_instruction="Q: ",
                             batch_size=2)
        emb = build_embedder(cfg)
        _EmbeddingHandler.requests_seen.clear()
        docs = emb.embed_documents(["a", "bb", "ccc"])
        assert [len(b["input"]) for _, b in _EmbeddingHandler.requests_seen] == [2, 1]  # batched
        assert all(path == "/v1/embeddings" for path, _ in _EmbeddingHandler.requests_seen)
        assert _EmbeddingHandler.requests_seen[0][1]["input"] == ["a", "bb"]  # documents raw
        expected = np.array([[1, 1, 0], [2, 1, 0], [3, 1, 0]], dtype=np.float32)
        np.testing.assert_allclose(docs, expected / np.linalg.norm(expected, axis=1, keepdims=True), rtol=1e-6)
        _EmbeddingHandler.requests_seen.clear()
        emb.embed_queries(["x"])
        assert _EmbeddingHandler.requests_seen[0][1]["input"] == ["Q: x"]  # instruction on queries only
        assert emb.dim == 3 and emb.embed_documents([]).shape == (0, 3)
    finally:
        server.shutdown()
        server.server_close()


def test_openai_embedder_error_names_base_url():
    emb = OpenAIEmbedder(EmbedderConfig(kind="openai", base_url="http://127.0.0.1:9/v1"))
    emb.max_attempts = 1
    with pytest.raises(RuntimeError, match="127.0.0.1:9/v1/embeddings.*embedder.base_url"):
        emb.embed_documents(["hello"])
    with pytest.raises(ValueError, match="base_url"):
        OpenAIEmbedder(EmbedderConfig(kind="openai"))
