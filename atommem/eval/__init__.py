"""Evaluation: answer metrics, the LLM judge and trajectory scoring."""
