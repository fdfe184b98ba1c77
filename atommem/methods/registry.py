"""Method names -> implementations. A new method is one module plus one line here."""

from __future__ import annotations

import importlib

from atommem.config import ConfigError

# name -> "module:Class"
METHODS = {
    "atommem": "atommem.methods.atommem_agent:AtomMemMethod",
}


def get_method(name: str):
    if name not in METHODS:
        raise ConfigError(f"method: unknown {name!r}; valid methods: {', '.join(sorted(METHODS))}")
    module, cls = METHODS[name].split(":")
    return getattr(importlib.import_module(module), cls)()
