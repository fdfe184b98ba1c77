"""rl.reward (atommem/train/reward.py): answer (the paper's), state (statetrack's state_f1 of the final
memory) and answer+state (their mean), each with the GRPO advantages it specifies."""

from __future__ import annotations

import re

import pytest

from atommem.agent.env import Trajectory
from atommem.config import ConfigError
from atommem.data.records import LongSample, Paragraph, Question
from atommem.train.grpo import group_advantages
from atommem.train.reward import REWARDS, check_reward, episode_reward
from atommem.train.rl_config import RLConfig

STATE = {"Mary": {"location": "kitchen", "carries": ["apple"]}, "John": {"location": "garden"}}
PERFECT = ["Mary is in the kitchen.", "Mary carries the apple.", "John is in the garden."]
SAMPLE = LongSample(
    id="statetrack-4-0", benchmark="statetrack", num_docs=4,
    questions=[Question("q0", "Where is Mary?", ["kitchen"], [], [1]),
               Question("q1", "Where is John?", ["garden"], [], [2])],
    documents=[Paragraph("Doc", ("Mary went to the kitchen.",))], context="Document 1:\nDoc\nMary went to the kitchen.",
    final_state=STATE)


def episode(answers: list[str | None], memory: list[str]) -> Trajectory:
    return Trajectory(sample_id=SAMPLE.id, benchmark="statetrack", num_docs=4, turns=[], answers=answers,
                      answer_status=["answered" if a else "turn_cap" for a in answers], truncated=False,
                      num_chunks=1, context_tokens=10, peak_store_size=len(memory), final_memory=memory)


# one group of four episodes: (both right, empty memory), (no answer, perfect memory),
# (one right, perfect memory), (one wrong answer, one of three facts right and one false)
GROUP = [episode(["kitchen", "garden"], []), episode([None, None], PERFECT),
         episode(["kitchen", None], PERFECT), episode(["hallway", None], ["Mary is in the kitchen.",
                                                                           "John is in the cellar."])]
PARTIAL_F1 = 2 * (1 / 2) * (1 / 3) / (1 / 2 + 1 / 3)  # 1 of 2 stated facts true, 1 of 3 true facts stated
EXPECTED = {
    "answer": [1.0, 0.0, 0.5, 0.0],
    "state": [0.0, 1.0, 1.0, PARTIAL_F1],
    "answer+state": [0.5, 0.5, 0.75, PARTIAL_F1 / 2],
}


@pytest.mark.parametrize("kind", REWARDS)
def test_each_reward_gives_the_advantages_it_specifies(kind):
    rewards = [episode_reward(t, SAMPLE, kind) for t in GROUP]
    assert rewards == pytest.approx(EXPECTED[kind])
    mean = sum(EXPECTED[kind]) / 4
    assert group_advantages(rewards, 4) == pytest.approx([r - mean for r in EXPECTED[kind]])
    # the paper's reward sees no memory: the best memory earns nothing without answers
    if kind == "answer":
        assert group_advantages(rewards, 4)[1] < 0


def test_the_state_rewards_need_samples_that_carry_their_true_final_state():
    benchmark = LongSample(**{**SAMPLE.__dict__, "benchmark": "hotpotqa", "final_state": None})
    check_reward("answer", [benchmark])
    for kind in ("state", "answer+state"):
        check_reward(kind, [SAMPLE])
        with pytest.raises(ConfigError, match=re.escape(f"reward: '{kind}' needs statetrack samples")):
            check_reward(kind, [SAMPLE, benchmark])
        with pytest.raises(ValueError, match="no final_state"):
            episode_reward(GROUP[0], benchmark, kind)
    with pytest.raises(ConfigError, match="reward"):
        RLConfig(reward="memory")
