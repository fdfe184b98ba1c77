"""The memory agent: operation grammar, prompt format, episode environment and lock-step runner."""
