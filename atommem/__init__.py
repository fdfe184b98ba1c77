"""atommem: LLM agents that manage their own memory with atomic operations (AtomMem, arXiv 2601.08323)."""

import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())
