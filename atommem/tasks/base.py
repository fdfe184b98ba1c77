"""The task interface: a generated task is its samples' generator, its oracle, and its extra scoring and
audits, and every stage reaches them through its `Task` (atommem.tasks.TASKS), keyed by the samples'
`benchmark`. A benchmark read from a release file needs none of this: it is a loader
(atommem.data.loaders.LOADERS), its oracle is the supporting-fact one (atommem.train.oracle) and its
scoring is the answer metrics every sample gets.

This package sits above the agent and below evaluation, so scoring, the write audit, the oracle and
`atommem prepare` all import it, and a task's pieces may import the agent, memory, llm and data layers.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from atommem.agent.env import Episode
from atommem.data.records import LongSample, Paragraph, QARecord


@dataclass(frozen=True)
class Task:
    name: str  # the `benchmark` of its samples, a config name (lower-case letters and digits)
    # `atommem prepare`: its knobs are PrepareConfig.<name>, a dataclass of this type with a .check();
    # samples are generated over distractor paragraphs drawn from a benchmark file
    knobs: type
    distractor_pool: Callable[[Sequence[QARecord], int, int], list[Paragraph]]  # (records, parts, part)
    generate: Callable[[Sequence[Paragraph], Any, int, int, int], list[LongSample]]  # (pool, knobs, docs, n, seed)
    default_samples: int  # samples generated when max_samples is unset
    # the SFT teacher on its samples: the response to the episode's current turn (valid after observe())
    oracle: Callable[[Episode], str]
    # scoring: whether the memory shown when a question was answered held its gold answer (a row's
    # `memory_backed`; None: not judged)
    memory_backs: Callable[[str, Sequence[str], Sequence[str]], bool | None] | None = None
    # the write audit (atommem.eval.write_audit): the fact an entry states, None for other text
    entry_key: Callable[[str], Hashable | None] | None = None
    # the memory an episode ends with against the sample's `final_state`: scoring's `state_f1` column and
    # the `state` RL reward (atommem.train.reward)
    state_f1: Callable[[Iterable[str], dict], float] | None = None
