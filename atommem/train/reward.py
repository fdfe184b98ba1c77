"""The RL reward of one episode: the one file to change, or extend, to give GRPO another reward.

`rl.reward` chooses:
  answer        the paper's: the fraction of the sample's questions answered with exact match (no format
                reward, no operation cost);
  state         statetrack only, departs from the paper: `state_f1` of the memory the episode ends with
                (store entries and scratchpad) against the world's true final state (its task's, atommem.tasks.state_f1);
                it scores every fact memory holds, not two answers a world, so it has far more resolution;
  answer+state  the mean of the two, in [0, 1] like each.
A reward is a number per episode; the advantage is then reward - group mean (atommem.train.grpo). To add a
reward: a name in REWARDS, a branch in `episode_reward`, and a check in `check_reward` for what it needs.
"""

from __future__ import annotations

from atommem.config import ConfigError
from atommem.eval.scoring import score_trajectory
from atommem.tasks import task_of

REWARDS = ("answer", "state", "answer+state")
STATE_REWARDS = ("state", "answer+state")


def answer_reward(rows: list[dict]) -> float:
    """Fraction of a sample's questions answered with exact match (`rows`: score_trajectory's)."""
    return sum(r["em"] for r in rows) / len(rows)


def state_reward(trajectory, sample) -> float:
    """state_f1 of the memory the episode ended with against the sample's true final state."""
    if not _has_state(sample):
        raise ValueError(f"sample {sample.id!r} has no final_state: the state reward needs statetrack samples")
    if trajectory.final_memory is None:
        raise ValueError(f"trajectory {trajectory.sample_id!r} does not record the memory it ended with")
    return task_of(sample.benchmark).state_f1(trajectory.final_memory, sample.final_state)


def _has_state(sample) -> bool:
    """Whether the sample carries a true final state and its task scores memory against it."""
    task = task_of(sample.benchmark)
    return sample.final_state is not None and task is not None and task.state_f1 is not None


def episode_reward(trajectory, sample, kind: str = "answer", rows: list[dict] | None = None) -> float:
    """The `kind` reward of one episode; `rows` are its scored questions when the caller has them."""
    if kind not in REWARDS:
        raise ValueError(f"reward: {kind!r} is not one of {', '.join(REWARDS)}")
    if kind == "state":
        return state_reward(trajectory, sample)
    answer = answer_reward(rows if rows is not None else score_trajectory(trajectory, sample))
    if kind == "answer":
        return answer
    return (answer + state_reward(trajectory, sample)) / 2


def check_reward(kind: str, samples, what: str = "samples") -> None:
    """Fail before training when a reward cannot be computed on these samples."""
    if kind in STATE_REWARDS:
        lacking = [s.id for s in samples if not _has_state(s)]
        if lacking:
            raise ConfigError(f"reward: {kind!r} needs statetrack samples with their true final state "
                              f"('final_state', which `atommem prepare` writes into statetrack samples; prepare older files again); {what} has "
                              f"{len(lacking)} without, e.g. {lacking[0]!r}")
