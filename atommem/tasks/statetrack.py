"""statetrack as a task: a changing world's facts among distractor paragraphs, questions on its final state.

Its pieces: the world generator and its knobs (atommem.data.statetrack), the oracle that keeps one
entry per current fact (atommem.tasks.statetrack_oracle), the memory's entry forms that the write audit
judges (atommem.data.statetrack_entries), whether an answer was in the memory shown (memory_backs) and the
F1 of the final memory against the true final state (atommem.tasks.state_f1).
"""

from __future__ import annotations

from atommem.data import statetrack
from atommem.data.statetrack_entries import entry_key
from atommem.tasks import statetrack_oracle
from atommem.tasks.base import Task
from atommem.tasks.state_f1 import state_f1

STATETRACK = Task(
    name=statetrack.BENCHMARK,
    knobs=statetrack.StateTrackConfig,
    distractor_pool=statetrack.distractor_pool,
    generate=statetrack.build_statetrack_samples,
    default_samples=100,
    oracle=statetrack_oracle.respond,
    memory_backs=statetrack.memory_backs,
    entry_key=entry_key,
    state_f1=state_f1,
)
