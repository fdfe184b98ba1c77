"""Benchmark data: official-file loaders, records and long-context sample construction."""

from atommem.data.loaders import DataError, load_2wiki, load_benchmark, load_hotpotqa, load_musique, shipped_sample
from atommem.data.longcontext import build_long_samples, context_token_stats
from atommem.data.records import LongSample, Paragraph, QARecord, Question

__all__ = [
    "DataError",
    "LongSample",
    "Paragraph",
    "QARecord",
    "Question",
    "build_long_samples",
    "context_token_stats",
    "load_2wiki",
    "load_benchmark",
    "load_hotpotqa",
    "load_musique",
    "shipped_sample",
]
