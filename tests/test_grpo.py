"""GRPO: advantages, per-turn rows, the clipped token loss and one policy update on the tiny model."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from transformers import AutoModelForCausalLM, AutoTokenizer

from atommem.agent.env import Trajectory, TurnRecord
from atommem.llm.base import ModelConfig, SamplingConfig, chat_prompt_ids
from atommem.llm.hf import HFBackend
from atommem.train import grpo
from atommem.train.grpo import (
    LossConfig,
    SelectedLogprobs,
    TurnRow,
    build_rows,
    collate,
    completion_logprobs,
    group_advantages,
    policy_update,
    token_loss,
)
from atommem.train.rl_loop import frac_zero_std, rollout_sums, step_metrics


def test_group_advantages_subtract_group_mean():
    assert group_advantages([1.0, 0.0, 0.5, 0.5], group_size=2) == pytest.approx([0.5, -0.5, 0.0, 0.0])
    normalised = group_advantages([1.0, 0.0, 0.0, 1.0], group_size=4, std_normalize=True)
    scale = 0.5 / (math.sqrt(1 / 3) + 1e-4)  # unbiased std of [1, 0, 0, 1]
    assert normalised == pytest.approx([scale, -scale, -scale, scale])
    with pytest.raises(ValueError):
        group_advantages([1.0, 0.0, 1.0], group_size=2)


def test_frac_zero_std_counts_groups_without_signal():
    # groups of 3: [1, 1, 1] and [0, 0, 0] carry no signal, [0, 1, 0] does
    assert frac_zero_std([1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0], group_size=3) == pytest.approx(2 / 3)
    assert frac_zero_std([0.5, 0.0], group_size=1) == 1.0


NO_UPDATE = {"loss": 0.0, "kl": 0.0, "clip_frac": 0.0, "entropy": 0.0, "grad_norm": 0.0, "tokens_skipped_frac": 0.0}  # step_metrics' update inputs, for tests of the rollout metrics


def test_step_metrics_report_the_share_of_reward_that_memory_did_not_back():
    from atommem.agent.runner import RolloutTimer

    def rows(*pairs):
        return [{"em": em, "memory_backed": backed} for em, backed in pairs]

    scored = [rows((1.0, True), (1.0, False)), rows((0.0, False), (1.0, True)), rows((0.0, None))]

    def metrics(scored):
        sums = rollout_sums([], scored, [], RolloutTimer())
        return step_metrics(1, {**sums, "episodes": 3}, [0.5, 0.5, 0.0], NO_UPDATE, 1e-5, {}, group_size=3)

    found = metrics(scored)
    assert found["answers/backed_frac"] == pytest.approx(2 / 4)  # the unanswered question is not judged
    assert found["reward/not_backed_frac"] == pytest.approx(1 / 3)
    # benchmarks other than statetrack have no memory_backed column: the metrics are left out, not 0
    assert "answers/backed_frac" not in metrics([[{"em": 1.0}]])


def test_op_advantage_says_which_ops_the_update_favours():
    from atommem.agent.runner import RolloutTimer

    def episode(*op_names):
        turn = _turn([], "")
        turn.ops = [{"name": name} for name in op_names]
        return _trajectory([turn])

    # one group of 3: the rewarded episode Created twice, the others Updated
    trajectories = [episode("create", "create"), episode("update"), episode("update", "create")]
    rewards = [1.0, 0.0, 0.5]
    advantages = group_advantages(rewards, group_size=3)  # [0.5, -0.5, 0.0]
    scored = [[{"em": r}] for r in rewards]
    sums = rollout_sums(trajectories, scored, advantages, RolloutTimer())
    found = step_metrics(1, sums, rewards, NO_UPDATE, 1e-5, {}, group_size=3)
    assert found["ops/create_advantage"] == pytest.approx((2 * 0.5 + 0.0) / 3)
    assert found["ops/update_advantage"] == pytest.approx((-0.5 + 0.0) / 3)
    assert found["ops/delete_advantage"] == 0.0
    assert found["ops/create_per_turn"] == pytest.approx(3 / 3)


def test_write_advantage_says_whether_the_update_favours_writes_that_break_the_memory():
    from dataclasses import replace

    from atommem.agent.prompts import user_message
    from atommem.agent.runner import RolloutTimer

    content = user_message(questions=["Where is Mary?"], scratchpad=None, query=None,
                           memories=["Mary is in the kitchen.", "John carries the apple."], chunk="text",
                           chunk_position=(0, 2), reads_left=3)["content"]

    def episode(*ops):
        turn = _turn([{"role": "user", "content": content}], "")
        turn.ops = [{"name": name, "text": text, "index": index} for name, text, index in ops]
        return replace(_trajectory([turn]), benchmark="statetrack")

    # the rewarded episode repeats Mary's place in a new entry; the other rewrites John's apple into Mary
    repeat = ("create", "Mary is in the hall.", None)
    trajectories = [episode(repeat), episode(("update", "Mary is in the hall.", 2)), episode(repeat)]
    rewards = [1.0, 0.0, 0.5]
    advantages = group_advantages(rewards, group_size=3)  # [0.5, -0.5, 0.0]
    sums = rollout_sums(trajectories, [[{"em": r}] for r in rewards], advantages, RolloutTimer())
    found = step_metrics(1, sums, rewards, NO_UPDATE, 1e-5, {}, group_size=3)
    assert found["writes/create_repeat_frac"] == 1.0 and found["writes/update_other_fact_frac"] == 1.0
    assert found["writes/create_repeat_advantage"] == pytest.approx((0.5 + 0.0) / 3)
    assert found["writes/update_other_fact_advantage"] == pytest.approx(-0.5 / 3)
    # no statetrack episodes: nothing judged, no write metrics
    other = [_trajectory(t.turns) for t in trajectories]
    assert not any(k.startswith("writes/") for k in step_metrics(
        1, rollout_sums(other, [[{"em": r}] for r in rewards], advantages, RolloutTimer()), rewards, NO_UPDATE,
        1e-5, {}, group_size=3))


def test_truncation_counters_say_what_the_turn_and_token_caps_cut():
    from dataclasses import replace

    from atommem.agent.runner import RolloutTimer

    def turns(*reasons):
        return [replace(_turn([], ""), finish_reason=reason) for reason in reasons]

    # 3 episodes, 6 turns (2 cut at max_new_tokens), 5 questions (3 unanswered), 1 episode ended by the turn cap
    trajectories = [replace(_trajectory(turns("length", "stop")), answers=["a", None], truncated=True),
                    replace(_trajectory(turns("stop", "stop", "length")), answers=[None, None]),
                    replace(_trajectory(turns("stop")), answers=["b"])]
    sums = rollout_sums(trajectories, [[{"em": 0.0}]] * 3, [0.0] * 3, RolloutTimer())
    found = step_metrics(1, sums, [0.0] * 3, NO_UPDATE, 1e-5, {}, group_size=3)
    assert found["episodes/turn_cap_frac"] == pytest.approx(1 / 3)
    assert found["turns/length_cut_frac"] == pytest.approx(2 / 6)
    assert found["questions/unanswered_frac"] == pytest.approx(3 / 5)


def test_token_loss_is_the_hand_computed_clipped_objective():
    ratios = torch.tensor([[1.5, 0.5], [1.1, 0.7]])
    new = torch.log(ratios).requires_grad_()
    old = torch.zeros(2, 2)
    advantages = torch.tensor([2.0, -1.0])
    ref = new.detach() + torch.tensor([[0.5, 0.0], [-0.5, 0.0]])
    terms = token_loss(new, old, advantages, clip_low=0.2, clip_high=0.28, ref_logprobs=ref, kl_coef=0.1)

    # row 0 (A=+2): 1.5 -> min(3.0, 1.28*2) = 2.56; 0.5 -> min(1.0, 0.8*2) = 1.0
    # row 1 (A=-1): 1.1 -> min(-1.1, -1.1) = -1.1; 0.7 -> min(-0.7, -0.8) = -0.8
    surrogate = torch.tensor([[2.56, 1.0], [-1.1, -0.8]])
    k3 = lambda d: math.exp(d) - d - 1  # noqa: E731
    kl = torch.tensor([[k3(0.5), 0.0], [k3(-0.5), 0.0]])
    assert torch.allclose(terms.kl, kl, atol=1e-6)
    assert torch.allclose(terms.loss, -surrogate + 0.1 * kl, atol=1e-6)
    assert terms.clipped.tolist() == [[True, False], [False, True]]

    # clipped tokens carry no policy gradient, only the KL gradient
    terms.loss.sum().backward()
    kl_grad = 0.1 * -(torch.exp(torch.tensor(-0.5)) - 1)  # d/dnew of k3(ref - new) at delta = -0.5
    assert new.grad[0, 0].item() == pytest.approx(0.1 * -(math.exp(0.5) - 1), abs=1e-6)
    assert new.grad[1, 1].item() == pytest.approx(0.0, abs=1e-7)
    assert new.grad[1, 0].item() == pytest.approx(1.1 + kl_grad.item(), abs=1e-6)  # -(-1 * ratio)
    assert new.grad[0, 1].item() == pytest.approx(-2 * 0.5, abs=1e-6)


def _turn(messages, response, ids=None):
    prompt_ids, completion_ids, logprobs = ids or (None, None, None)
    return TurnRecord(turn=0, phase="read", chunk_index=0, question_index=None, messages=messages,
                      response=response, ops=[], invalid={}, ignored={}, store_size=0, prompt_tokens=0,
                      completion_tokens=0, prompt_ids=prompt_ids, completion_ids=completion_ids,
                      logprobs=logprobs)


def _trajectory(turns):
    return Trajectory(sample_id="s", benchmark="hotpotqa", num_docs=2, turns=turns, answers=[None],
                      answer_status=["turn_cap"], truncated=False, num_chunks=1, context_tokens=10,
                      peak_store_size=0)


def test_build_rows_take_the_rollout_ids_and_refuse_a_turn_without_them():
    messages = [{"role": "system", "content": "sys"}, {"role": "user", "content": "hello"}]
    sampled = _turn(messages, "x", ([1, 2, 3], [7, 8], [-0.1, -0.2]))
    rows = build_rows([_trajectory([sampled])], [0.5], use_sampler_logprobs=True)
    assert rows == [TurnRow([1, 2, 3], [7, 8], [-0.1, -0.2], 0.5, sampler_logprobs=[-0.1, -0.2])]

    no_sampler = build_rows([_trajectory([sampled])], [0.5], use_sampler_logprobs=False)
    assert no_sampler[0].old_logprobs is None
    assert no_sampler[0].sampler_logprobs == [-0.1, -0.2]  # still kept for the sampler/trainer gap

    text_only = _turn(messages, "<add_memory>fact</add_memory>")  # e.g. from an HTTP backend
    with pytest.raises(ValueError, match="turn 0 has no token ids"):
        build_rows([_trajectory([text_only])], [0.5], use_sampler_logprobs=True)


def _rows(tokenizer):
    prompt = chat_prompt_ids(tokenizer, [{"role": "user", "content": "Where is Paris?"}])
    good = tokenizer("<add_memory>Paris is in France.</add_memory>", add_special_tokens=False)["input_ids"]
    bad = tokenizer("blah blah", add_special_tokens=False)["input_ids"]
    return [TurnRow(prompt, good, None, 1.0), TurnRow(prompt[:-2], bad, None, -1.0)]


def _sequence_logprobs(model, rows):
    with torch.no_grad():
        logprobs, _ = completion_logprobs(model, collate(rows))
    return (logprobs * collate(rows).completion_mask).sum(-1)


def test_one_grpo_step_moves_logprobs_with_the_advantage(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    ref_model = copy.deepcopy(model).eval()
    rows = _rows(tokenizer)
    before = _sequence_logprobs(model, rows)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    stats = policy_update(model, ref_model, rows, optimizer, scheduler, Accelerator(cpu=True),
                          LossConfig(micro_batch_size=1, kl_coef=0.001))
    after = _sequence_logprobs(model, rows)
    assert after[0] > before[0]  # positive advantage: more likely
    assert after[1] < before[1]  # negative advantage: less likely
    # on-policy first step: ratio 1, nothing clipped, zero KL to an identical reference
    assert stats["clip_frac"] == 0.0 and stats["kl"] == pytest.approx(0.0, abs=1e-7)
    assert stats["tokens"] == sum(len(r.completion_ids) for r in rows)
    assert stats["entropy"] > 0


def test_token_mean_does_not_depend_on_micro_batch_size(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    rows = _rows(tokenizer)
    results = []
    for micro_batch_size in (1, 2):
        model = copy.deepcopy(base)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
        stats = policy_update(model, None, rows, optimizer, scheduler, Accelerator(cpu=True),
                              LossConfig(micro_batch_size=micro_batch_size, kl_coef=0.0, max_grad_norm=1e9))
        results.append((stats, torch.cat([p.detach().flatten() for p in model.parameters()])))
    assert results[0][0]["loss"] == pytest.approx(results[1][0]["loss"], abs=1e-6)
    assert torch.allclose(results[0][1], results[1][1], atol=1e-6)


def test_without_kl_rows_of_zero_advantage_are_skipped_with_the_same_update(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    rows = _rows(tokenizer)
    rows.append(TurnRow(rows[0].prompt_ids, rows[1].completion_ids, None, 0.0))
    results = []
    # kl_coef 0 skips the zero-advantage row; a KL coefficient with no reference model computes the same
    # loss on every row (no KL term) and runs it
    for kl_coef in (0.0, 1e-12):
        model = copy.deepcopy(base)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
        stats = policy_update(model, None, rows, optimizer, scheduler, Accelerator(cpu=True),
                              LossConfig(micro_batch_size=1, kl_coef=kl_coef, max_grad_norm=1e9))
        results.append((stats, torch.cat([p.detach().flatten() for p in model.parameters()])))
    (skipped, skipped_weights), (ran, ran_weights) = results
    assert skipped["tokens"] == ran["tokens"] == sum(len(r.completion_ids) for r in rows)
    assert skipped["tokens_skipped_frac"] == pytest.approx(len(rows[2].completion_ids) / ran["tokens"])
    assert ran["tokens_skipped_frac"] == 0.0
    assert skipped["loss"] == pytest.approx(ran["loss"], abs=1e-6)
    assert torch.allclose(skipped_weights, ran_weights, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_chunked_logprobs_and_entropy_equal_the_full_log_softmax(monkeypatch, dtype):
    """Several chunks (the last one partial): the same values and the same gradient as one fp32 log-softmax."""
    positions, vocab, temperature = 7, 50, 0.7
    monkeypatch.setattr(grpo, "CHUNK_ELEMENTS", 3 * vocab)
    generator = torch.Generator().manual_seed(0)
    logits = (3 * torch.randn(positions, vocab, generator=generator)).to(dtype).requires_grad_()
    ids = torch.randint(vocab, (positions,), generator=generator)
    upstream = torch.randn(positions, generator=generator)

    logprobs, entropy = SelectedLogprobs.apply(logits, ids, temperature)
    (grad,) = torch.autograd.grad((logprobs * upstream).sum(), logits)

    full = F.log_softmax(logits.float() / temperature, dim=-1)
    expected = full.gather(-1, ids[:, None]).squeeze(-1)
    (expected_grad,) = torch.autograd.grad((expected * upstream).sum(), logits)
    assert torch.allclose(logprobs, expected, atol=1e-5)
    assert torch.allclose(entropy, -(full.exp() * full).sum(-1).detach(), atol=1e-5)
    tolerance = 1e-6 if dtype == torch.float32 else 1e-2  # the gradient is returned in the logits' dtype
    assert grad.dtype == dtype and torch.allclose(grad.float(), expected_grad.float(), atol=tolerance)
    assert not entropy.requires_grad


def test_completion_logprobs_match_the_models_full_logits(tiny_model_dir, monkeypatch):
    monkeypatch.setattr(grpo, "CHUNK_ELEMENTS", 1)  # one position per chunk
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    batch = collate(_rows(tokenizer))
    with torch.no_grad():
        logprobs, entropy = completion_logprobs(model, batch)
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                       position_ids=batch.position_ids).logits
    completion_len = batch.completion_ids.shape[1]
    full = F.log_softmax(logits[:, -completion_len - 1 : -1].float(), dim=-1)
    expected = full.gather(-1, batch.completion_ids[..., None]).squeeze(-1)
    assert logprobs.shape == entropy.shape == batch.completion_ids.shape
    assert torch.allclose(logprobs, expected, atol=1e-5)
    assert torch.allclose(entropy, -(full.exp() * full).sum(-1), atol=1e-5)


def test_logprob_gap_is_the_mean_and_max_distance_to_the_sampler(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    rows = _rows(tokenizer)
    with torch.no_grad():
        trainer, _ = completion_logprobs(model, collate(rows[:1]))
    exact = trainer[0].tolist()
    # a sampler that agrees exactly on row 0 and is off by 0.5 on every token of row 1
    rows[0].sampler_logprobs = exact
    with torch.no_grad():
        trainer1, _ = completion_logprobs(model, collate(rows[1:]))
    rows[1].sampler_logprobs = [x + 0.5 for x in trainer1[0].tolist()]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    stats = policy_update(model, None, rows, optimizer, scheduler, Accelerator(cpu=True),
                          LossConfig(micro_batch_size=1, kl_coef=0.0))
    tokens = [len(r.completion_ids) for r in rows]
    assert stats["logprob_gap/max"] == pytest.approx(0.5, abs=1e-4)
    assert stats["logprob_gap/mean"] == pytest.approx(0.5 * tokens[1] / sum(tokens), abs=1e-4)

    rows[1].sampler_logprobs = None  # a row without sampler log-probs (re-tokenised): no gap reported
    stats = policy_update(model, None, rows[1:], optimizer, scheduler, Accelerator(cpu=True),
                          LossConfig(micro_batch_size=1, kl_coef=0.0))
    assert "logprob_gap/mean" not in stats


def test_wrapped_parameter_names_map_to_checkpoint_names():
    from atommem.train.rl_loop import unwrapped_name

    assert unwrapped_name("module.model.layers.0.mlp.up_proj.weight") == "model.layers.0.mlp.up_proj.weight"  # DDP
    assert (unwrapped_name("_fsdp_wrapped_module.model.layers.0._fsdp_wrapped_module._checkpoint_wrapped_module"
                           ".self_attn.q_proj.weight") == "model.layers.0.self_attn.q_proj.weight")  # FSDP1 + ckpt
    assert unwrapped_name("lm_head.weight") == "lm_head.weight"
    assert unwrapped_name("model.submodule.weight") == "model.submodule.weight"  # only a leading `module.`


CONVERSATIONS = [
    [{"role": "user", "content": "hi"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is the capital of France?"}],
    [{"role": "user", "content": "x y z"}],
]


@pytest.mark.parametrize("sampling", [SamplingConfig(max_new_tokens=12),
                                      SamplingConfig(temperature=0.8, top_p=0.95, top_k=50, max_new_tokens=12, seed=7)],
                         ids=["greedy", "sampled"])
def test_sampler_logprobs_are_the_teacher_forced_training_logprobs(tiny_model_dir, sampling):
    """What the HF engine reports per sampled token is what the update computes for it: one log-prob
    function (completion_logprobs) for training, the reference and the logprob gap."""
    llm = HFBackend(ModelConfig(name=tiny_model_dir, max_batch_size=3))
    gens = llm.generate(CONVERSATIONS, sampling)
    rows = [TurnRow(g.prompt_ids, g.completion_ids, None, 0.0) for g in gens]
    with torch.no_grad():
        forced, _ = completion_logprobs(llm.model, collate(rows, llm.device, llm.pad_id), sampling.temperature)
    for i, gen in enumerate(gens):
        assert torch.allclose(torch.tensor(gen.logprobs), forced[i, : len(gen.completion_ids)], atol=1e-4)


def test_a_rows_logprobs_do_not_depend_on_its_batch(tiny_model_dir):
    """Rows of uneven prompt and completion lengths, padded together, score as they do alone, with grad."""
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    prompts = [chat_prompt_ids(tokenizer, c) for c in CONVERSATIONS]
    rows = [TurnRow(p, c, None, 0.0) for p, c in zip(prompts, [[11, 12, 13], [14], [15, 16]], strict=True)]
    together, _ = completion_logprobs(model, collate(rows))
    assert together.requires_grad
    for i, row in enumerate(rows):
        with torch.no_grad():
            alone, _ = completion_logprobs(model, collate([row]))
        n = len(row.completion_ids)
        assert torch.allclose(alone[0], together[i, :n].detach(), atol=1e-4)


def test_both_scores_are_logged_whatever_the_reward():
    from atommem.agent.runner import RolloutTimer

    # 2 episodes: answer scores 1/2 and 1/4; state F1 0.6 for the first, none for the second (no true state)
    trajectories = [_trajectory([_turn([], "")]), _trajectory([_turn([], "")])]
    with_state = [[{"em": 1.0, "state_f1": 0.6}, {"em": 0.0, "state_f1": 0.6}],
                  [{"em": 1.0}, {"em": 0.0}, {"em": 0.0}, {"em": 0.0}]]
    scored = [[{"em": r["em"]} for r in rows] for rows in with_state]
    sums = rollout_sums(trajectories, with_state, [0.0, 0.0], RolloutTimer())
    found = step_metrics(1, sums, [0.6, 0.0], NO_UPDATE, 1e-5, {}, group_size=2)
    assert found["episode/em_mean"] == pytest.approx((0.5 + 0.25) / 2)
    assert found["episode/state_f1_mean"] == pytest.approx(0.6)  # over the episodes that have a state
    # no true state anywhere: no state metric rather than a 0
    sums = rollout_sums(trajectories, scored, [0.0, 0.0], RolloutTimer())
    assert "episode/state_f1_mean" not in step_metrics(1, sums, [0.5, 0.25], NO_UPDATE, 1e-5, {}, group_size=2)



@pytest.mark.parametrize("sign", [1, -1])
def test_sampling_then_updating_moves_a_reward_the_policy_controls(tiny_model_dir, sign):
    """The loop's algebra end to end (sample, reward, group advantage, update, sample again) on a bandit the
    tiny model can learn: reward = share of a completion's tokens with an even id, sampled from the top 4 so
    that the choice is among few tokens. Advantages as computed raise the reward to about 1; negated, they
    lower it to about 0: a wrong sign, mask or grouping between sampling and the optimizer would not."""
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    prompt = chat_prompt_ids(tokenizer, [{"role": "user", "content": "Say something."}])
    rewarded = torch.zeros(model.config.vocab_size, dtype=torch.bool)
    rewarded[::2] = True
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    episodes, group_size = 32, 8

    def sample_and_score():
        with torch.no_grad():
            out = model.generate(torch.tensor([prompt] * episodes), do_sample=True, top_k=4, max_new_tokens=6,
                                 min_new_tokens=6, pad_token_id=0)
        completions = out[:, len(prompt):]
        return completions, rewarded[completions].float().mean(-1).tolist()

    means = []
    for _ in range(5):
        completions, rewards = sample_and_score()
        means.append(sum(rewards) / episodes)
        advantages = [sign * a for a in group_advantages(rewards, group_size)]
        rows = [TurnRow(prompt, c.tolist(), None, a) for c, a in zip(completions, advantages, strict=True)]
        policy_update(model, None, rows, optimizer, scheduler, Accelerator(cpu=True), LossConfig(micro_batch_size=8))
    means.append(sum(sample_and_score()[1]) / episodes)
    assert 0.3 < means[0] < 0.7, means  # before any update: about half
    assert (means[-1] > 0.9) if sign > 0 else (means[-1] < 0.1), means
