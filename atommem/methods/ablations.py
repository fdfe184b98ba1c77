"""Named ablations of the AtomMem agent (the paper's ablation study) as EnvConfig overrides, not code copies.

`apply_ablation(env, name)` returns a new EnvConfig; `disabled_ops` overrides add to the ops already
disabled. Unknown names fail with the list of valid ones. A custom ablation (the workflow's
`ablations.custom`) passes its own `switches` under its own name, through the same function.
"""

from __future__ import annotations

import dataclasses

from atommem.agent.env import EnvConfig
from atommem.config import ConfigError, from_dict

ABLATIONS: dict[str, dict] = {
    "no-scratchpad": {"use_scratchpad": False},
    "no-store": {"use_store": False},
    "no-memory": {"use_scratchpad": False, "use_store": False},
    "no-update": {"disabled_ops": ["update"]},
    "no-delete": {"disabled_ops": ["delete"]},
    "store-all": {"store_all": True},
    "topk-3": {"top_k": 3},
    "topk-6": {"top_k": 6},
    "topk-12": {"top_k": 12},
}


def check_ablation(name: str) -> None:
    if name not in ABLATIONS:
        raise ConfigError(f"ablation: unknown {name!r}; valid ablations: {', '.join(ABLATIONS)}")


def apply_ablation(env: EnvConfig, name: str, switches: dict | None = None) -> EnvConfig:
    """`env` with ablation `name` applied: the named ablation's switches, or `switches` when given."""
    if switches is None:
        check_ablation(name)
        switches = ABLATIONS[name]
    unknown = sorted(set(switches) - {f.name for f in dataclasses.fields(EnvConfig)})
    if unknown:
        raise ConfigError(f"ablation {name!r}: unknown env switch {unknown[0]!r}")
    overrides = dict(switches)
    if "disabled_ops" in overrides:
        overrides["disabled_ops"] = sorted(set(env.disabled_ops) | set(overrides["disabled_ops"]))
    try:
        # from_dict checks the switches' types, __post_init__ the combination
        return from_dict(EnvConfig, {**dataclasses.asdict(env), **overrides}, prefix="env.")
    except ConfigError as err:
        raise ConfigError(f"ablation {name!r}: {err}") from None
