"""The statetrack write audit: which Updates rewrite another fact's entry and which Creates repeat one."""

import random

from atommem.agent.env import Trajectory, TurnRecord
from atommem.agent.prompts import user_message
from atommem.data.statetrack import StateTrackConfig, simulate
from atommem.data.statetrack_entries import entry_key
from atommem.eval.write_audit import audit_writes
from atommem.tasks.statetrack_oracle import entries, world_after


def test_entry_key_reads_back_every_entry_the_oracle_writes():
    for seed in range(20):
        _, events = simulate(StateTrackConfig(events=16), random.Random(seed))
        state = world_after([event.sentence() for event in events])
        for key, text in entries(state).items():
            assert entry_key(text) == key
    assert entry_key("Mary is in the kitchen") == ("person", "Mary")  # the final period is optional
    assert entry_key("Chunk 2 of 3: nothing relevant to the questions.") is None
    assert entry_key("Mary went to the kitchen and John carries the apple.") is None


def _turn(shown: list[str], ops: list[dict]) -> TurnRecord:
    content = user_message(questions=["Where is Mary?"], scratchpad=None, query=None, memories=shown,
                           chunk="text", chunk_position=(0, 2), reads_left=3)["content"]
    return TurnRecord(turn=0, phase="read", chunk_index=0, question_index=None,
                      messages=[{"role": "system", "content": "sys"}, {"role": "user", "content": content}],
                      response="", ops=ops, invalid={}, ignored={}, store_size=len(shown), prompt_tokens=0,
                      completion_tokens=0)


def _trajectory(turns: list[TurnRecord], benchmark: str = "statetrack") -> Trajectory:
    return Trajectory(sample_id="s", benchmark=benchmark, num_docs=4, turns=turns, answers=[None],
                      answer_status=["turn_cap"], truncated=False, num_chunks=2, context_tokens=10,
                      peak_store_size=0)


def _op(name: str, text: str = "", index: int | None = None) -> dict:
    return {"name": name, "text": text, "index": index}


def test_audit_counts_updates_that_lose_a_fact_and_creates_that_repeat_one():
    shown = ["Mary is in the kitchen.", "John carries the apple.", "Chunk 1 of 2: nothing relevant."]
    turn = _turn(shown, [
        _op("update", "Mary is in the garden.", 1),      # the same fact, changed: right
        _op("update", "The ball is in the hall.", 2),    # John's apple is gone from memory
        _op("update", "Bill is in the hall.", 3),        # the old entry states no fact: not judged
        _op("create", "John is in the hall."),           # a new fact
        _op("create", "Mary is in the office."),         # Mary's place already has an entry
        _op("create", "Nothing happened yet."),          # not in an entry form: not judged
        _op("delete", index=1),
        _op("scratchpad", "Mary is in the kitchen."),
    ])
    assert audit_writes(_trajectory([turn, _turn([], [_op("create", "Mary is in the hall.")])])) == {
        "writes_update_judged": 2, "writes_update_other_fact": 1,
        "writes_create_judged": 3, "writes_create_repeat": 1,
    }
    # the entry forms are statetrack's: another benchmark's writes are not judged at all
    assert audit_writes(_trajectory([turn], benchmark="hotpotqa")) == {}

