"""Generated tasks by name (the `benchmark` of their samples); the interface is atommem.tasks.base.Task.
A new task is its module here and one entry in TASKS."""

from __future__ import annotations

from atommem.tasks.base import Task
from atommem.tasks.statetrack import STATETRACK

TASKS: dict[str, Task] = {task.name: task for task in (STATETRACK,)}


def task_of(benchmark: str) -> Task | None:
    """The task whose samples carry this `benchmark`; None for a benchmark read from a release file."""
    return TASKS.get(benchmark)
