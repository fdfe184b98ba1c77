"""Method names -> implementations. A new baseline is one module plus one line in METHODS: the workflow
checks `evaluate.baselines` against BASELINES (check_baselines), and tables and figures take method names
from the summaries they read."""

from __future__ import annotations

import importlib
from collections.abc import Iterable

from atommem.config import ConfigError

# name -> "module:Class"; the agent methods take `ablation` (atommem.methods.ablations)
METHODS = {
    "atommem": "atommem.methods.atommem_agent:AtomMemMethod",
    "memagent": "atommem.methods.memagent:MemAgentMethod",
    "full-context": "atommem.methods.full_context:FullContextMethod",
    "rag": "atommem.methods.rag:RAGMethod",
    "store-all": "atommem.methods.store_all:StoreAllMethod",
    "static-crud": "atommem.methods.static_crud:StaticCRUDMethod",
}
POLICY_METHOD = "atommem"  # the trained policy's method; every other method is a baseline
AGENT_METHODS = ("atommem", "store-all")  # methods whose behaviour the EnvConfig switches change


def get_method(name: str):
    if name not in METHODS:
        raise ConfigError(f"method: unknown {name!r}; valid methods: {', '.join(sorted(METHODS))}")
    module, cls = METHODS[name].split(":")
    return getattr(importlib.import_module(module), cls)()


def baselines() -> list[str]:
    """The methods the workflow may run as baselines on the zero-shot base model."""
    return [name for name in METHODS if name != POLICY_METHOD]


def check_baselines(names: Iterable[str], key: str = "evaluate.baselines") -> None:
    """Fail on a name that is not a baseline in METHODS, naming the config key and the valid names."""
    unknown = sorted(set(names) - set(baselines()))
    if unknown:
        raise ConfigError(f"config {key}: {unknown} are not baselines in atommem/methods/registry.py "
                          f"(valid: {', '.join(baselines())})")
