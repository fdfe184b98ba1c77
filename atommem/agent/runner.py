"""Lock-step rollout: all active episodes advance together with one batched LLM call per turn."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

from tqdm.auto import tqdm

from atommem.agent.env import Episode, Trajectory
from atommem.llm.base import LLM, SamplingConfig


@dataclass
class RolloutTimer:
    """Where rollout time goes: the LLM call versus everything else (retrieval, prompts, parsing)."""

    llm_s: float = 0.0
    env_s: float = 0.0
    turns: int = 0
    active_per_turn: list[int] = field(default_factory=list)

    @property
    def env_share(self) -> float:
        total = self.llm_s + self.env_s
        return self.env_s / total if total else 0.0


def run_lockstep(
    episodes: list[Episode],
    llm: LLM,
    sampling: SamplingConfig,
    progress: bool = True,
    timer: RolloutTimer | None = None,
    desc: str = "episodes",
) -> list[Trajectory]:
    timer = timer or RolloutTimer()
    # wall time of a turn is shared out among the episodes active in it, so per-episode times add up
    wall_s = {id(e): 0.0 for e in episodes}
    bar = tqdm(total=len(episodes), desc=desc, unit="ep", disable=not progress, leave=False)
    while True:
        active = [e for e in episodes if not e.done]
        if not active:
            break
        t0 = time.perf_counter()
        conversations = [e.observe() for e in active]
        t1 = time.perf_counter()
        # a fresh seed per turn: the same seed every turn would replay one random stream
        turn_sampling = dataclasses.replace(sampling, seed=sampling.seed + 7919 * timer.turns)
        generations = llm.generate(conversations, turn_sampling)
        t2 = time.perf_counter()
        for episode, generation in zip(active, generations, strict=True):
            episode.step(generation)
            if episode.done:
                bar.update(1)
        t3 = time.perf_counter()
        for episode in active:
            wall_s[id(episode)] += (t3 - t0) / len(active)
        timer.llm_s += t2 - t1
        timer.env_s += (t1 - t0) + (t3 - t2)
        timer.turns += 1
        timer.active_per_turn.append(len(active))
        bar.set_postfix(turn=timer.turns, active=len(active))
    bar.close()
    trajectories = []
    for episode in episodes:
        trajectory = episode.result()
        trajectory.wall_s = wall_s[id(episode)]
        trajectories.append(trajectory)
    return trajectories
