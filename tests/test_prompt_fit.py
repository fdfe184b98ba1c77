"""One rule for an over-long prompt, in generation (RL rollouts, evaluation) and in SFT: keep the system
message and the end of the prompt; SFT never cuts the completion."""

from transformers import AutoTokenizer

from atommem.io import write_jsonl_atomic
from atommem.llm.base import chat_prompt_ids, generation_prompt_ids, system_prefix_len
from atommem.train.sft import load_examples

CONVERSATION = [
    {"role": "system", "content": "You keep notes in a memory store."},
    {"role": "user", "content": " ".join(f"fact{i}" for i in range(300))},
]


def test_generation_and_sft_keep_the_system_message_and_the_end(tiny_model_dir, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    full = chat_prompt_ids(tokenizer, CONVERSATION)
    head = system_prefix_len(tokenizer, CONVERSATION, full)
    assert 0 < head < 30
    budget = len(full) // 2
    expected = full[:head] + full[len(full) - (budget - head) :]

    assert generation_prompt_ids(tokenizer, CONVERSATION, max_model_len=budget + 16, max_new_tokens=16) == expected

    response = "<final_answer>\\boxed{Paris}</final_answer>"
    completion = tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    examples = tmp_path / "examples.jsonl"
    write_jsonl_atomic(examples, [{"prompt": CONVERSATION, "completion": [{"role": "assistant", "content": response}]}])
    (row,) = load_examples(examples, tokenizer, max_length=budget + len(completion))
    assert row["input_ids"] == expected + completion
    assert row["completion_mask"] == [0] * budget + [1] * len(completion)


def test_a_prompt_that_fits_is_untouched(tiny_model_dir, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    full = chat_prompt_ids(tokenizer, CONVERSATION)
    assert generation_prompt_ids(tokenizer, CONVERSATION, max_model_len=len(full) + 8, max_new_tokens=8) == full
