"""SFT trajectory synthesis: a teacher plays the agent loop, good trajectories become per-turn examples.

The teacher (the oracle, or any LLM backend) runs through the same Episode / run_lockstep / prompt path
as evaluation and RL, so the examples are in exactly the format the policy later sees. A trajectory is
kept when at least `min_fraction_correct` of its questions are answered with exact match; every turn of
a kept trajectory becomes one example in TRL's conversational prompt-completion format:

    {"prompt": [system, user], "completion": [{"role": "assistant", "content": response}],
     "sample_id": ..., "turn": ...}

(SFTTrainer trains on the completion tokens only for prompt-completion data.)
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from atommem.agent.env import EnvConfig, Episode, Trajectory
from atommem.agent.ops import OP_NAMES
from atommem.agent.runner import run_lockstep
from atommem.data.records import LongSample
from atommem.eval.scoring import score_trajectory
from atommem.llm.base import LLM, SamplingConfig
from atommem.train.oracle import OracleTeacher

log = logging.getLogger(__name__)



@dataclass
class Scored:
    trajectory: Trajectory
    fraction_correct: float
    kept: bool


def play(samples: Sequence[LongSample], env: EnvConfig, embedder, tokenizer, teacher: LLM | None,
         sampling: SamplingConfig, batch_size: int, progress: bool = True) -> list[Trajectory]:
    """Trajectories of the teacher on every sample, `batch_size` episodes in lock-step at a time.

    `teacher=None` plays the oracle (it needs the episodes themselves, so it is built per batch)."""
    trajectories = []
    for start in range(0, len(samples), batch_size):
        episodes = [Episode(s, env, embedder, tokenizer) for s in samples[start : start + batch_size]]
        llm = teacher if teacher is not None else OracleTeacher(episodes, tokenizer)
        batch_sampling = replace(sampling, seed=sampling.seed + start)  # fresh streams per batch
        trajectories += run_lockstep(episodes, llm, batch_sampling, progress=progress)
    return trajectories


def score_and_filter(trajectories: Sequence[Trajectory], samples: Sequence[LongSample],
                     min_fraction_correct: float,
                     scorer: Callable[[Trajectory, LongSample], list[dict]] = score_trajectory) -> list[Scored]:
    scored = []
    for trajectory, sample in zip(trajectories, samples, strict=True):
        rows = scorer(trajectory, sample)
        fraction = sum(r["em"] for r in rows) / len(rows)
        scored.append(Scored(trajectory, fraction, fraction >= min_fraction_correct))
    return scored


def examples_from(scored: Sequence[Scored]) -> list[dict]:
    """One prompt-completion example per turn of every kept trajectory."""
    return [
        {
            "prompt": turn.messages,
            "completion": [{"role": "assistant", "content": turn.response}],
            "sample_id": item.trajectory.sample_id,
            "turn": turn.turn,
        }
        for item in scored
        if item.kept
        for turn in item.trajectory.turns
    ]


def synthesis_stats(scored: Sequence[Scored]) -> dict:
    """Kept fraction, turn counts and the op mix (per turn, like the RL metrics) of all and kept trajectories."""

    def describe(items: Sequence[Scored]) -> dict:
        turns = [t for item in items for t in item.trajectory.turns]
        ops = Counter(op["name"] for t in turns for op in t.ops)
        n_turns = max(len(turns), 1)
        return {
            "trajectories": len(items),
            "turns": len(turns),
            "turns_per_trajectory": len(turns) / max(len(items), 1),
            "fraction_correct_mean": sum(i.fraction_correct for i in items) / max(len(items), 1),
            "ops": {name: ops[name] for name in OP_NAMES},
            "ops_per_turn": {name: ops[name] / n_turns for name in OP_NAMES},
            "invalid_per_turn": sum(sum(t.invalid.values()) for t in turns) / n_turns,
            "truncated": sum(i.trajectory.truncated for i in items),
        }

    kept = [item for item in scored if item.kept]
    return {
        "kept_fraction": len(kept) / max(len(scored), 1),
        "examples": sum(len(item.trajectory.turns) for item in kept),
        "all": describe(scored),
        "kept": describe(kept),
    }
