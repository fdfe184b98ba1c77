"""LLM backends behind one contract (see base.py); heavy libraries load only when a backend is built."""

from atommem.llm.base import LLM, Conversation, Generation, ModelConfig, SamplingConfig, build_llm
from atommem.llm.models import resolve_model

__all__ = ["LLM", "Conversation", "Generation", "ModelConfig", "SamplingConfig", "build_llm", "resolve_model"]
