"""How well a policy keeps a task's one-entry-per-fact memory (statetrack's), judged write by write.

The oracle keeps one entry per fact (`atommem.tasks.statetrack_oracle.entries`) and rewrites it when the
fact changes. Two kinds of write break that layout:
  - an Update that rewrites a shown entry into one about another fact ("Mary is in the kitchen." ->
    "The apple is in the garden."): the old fact is lost from memory;
  - a Create of a fact that a shown entry already states: two entries about one fact, and after the next
    change of that fact at least one of them is stale.
The counts say whether sampled Updates destroy facts and whether an RL update rewards repeated Creates
(docs/experiments/2026-12-05-write-audit-advantages.md).

Only writes in the oracle's entry forms are judged (the task's `entry_key`, statetrack's in
`atommem.data.statetrack_entries`); other text counts in neither column.
"""

from __future__ import annotations

from atommem.agent.env import Trajectory
from atommem.agent.prompts import shown_entries
from atommem.tasks import task_of

WRITE_COLUMNS = ("writes_update_judged", "writes_update_other_fact", "writes_create_judged",
                 "writes_create_repeat")


def audit_writes(trajectory: Trajectory) -> dict[str, int]:
    """Per episode: Updates judged and those that rewrote another fact's entry; Creates judged and those
    that repeat a fact a shown entry already states. {} for a benchmark without a task's `entry_key`."""
    task = task_of(trajectory.benchmark)
    if task is None or task.entry_key is None:
        return {}
    entry_key = task.entry_key
    counts = dict.fromkeys(WRITE_COLUMNS, 0)
    for turn in trajectory.turns:
        shown = [entry_key(text) for text in shown_entries(turn.messages[-1]["content"])]
        for op in turn.ops:
            key = entry_key(op["text"]) if op["name"] in ("create", "update") else None
            if key is None:
                continue
            if op["name"] == "create":
                counts["writes_create_judged"] += 1
                counts["writes_create_repeat"] += key in shown
                continue
            old = shown[op["index"] - 1]  # an executed Update points at a shown entry
            if old is not None:
                counts["writes_update_judged"] += 1
                counts["writes_update_other_fact"] += key != old
    return counts
