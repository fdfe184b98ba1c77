"""Method names -> implementations. A new method is one module plus one line here."""

from __future__ import annotations

import importlib

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


def get_method(name: str):
    if name not in METHODS:
        raise ConfigError(f"method: unknown {name!r}; valid methods: {', '.join(sorted(METHODS))}")
    module, cls = METHODS[name].split(":")
    return getattr(importlib.import_module(module), cls)()


AGENT_METHODS = ("atommem", "store-all")  # methods whose behaviour the EnvConfig switches change
