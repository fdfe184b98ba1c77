"""One GRPO update under `accelerate launch`, for tests/test_multiprocess.py and tests/test_cpu_fsdp.py:
fixed rollouts, so runs with 1, 2 or 4 processes see the same rows of the step, shared out by sample as the
RL loop shares them, and the policy, reference and optimizer prepared as the RL loop prepares them.

    accelerate launch --config_file config/accelerate/cpu.yaml --num_processes N tests/multiprocess_rl_step.py MODEL OUT [--checkpoint]

tests/test_cuda.py launches it on a GPU too, plain and under FSDP2.

Rank 0 writes OUT/result.pt: the update's metrics, the updated weights as the rollout engine receives them
(rl_loop.vllm_named_weights), the samples of each rank and the reference's bytes on each rank. With
--checkpoint the step is also checkpointed (OUT/checkpoints), the policy's weights and optimizer state are
zeroed and the checkpoint loaded back (the weights it restored, and whether every optimizer state tensor came
back equal, go into result.pt), and the policy is saved as a plain HF folder (OUT/final).
"""

import random
import sys
from pathlib import Path

import torch
from accelerate import Accelerator
from transformers import AutoModelForCausalLM, AutoTokenizer

from atommem.train import cpu_fsdp
from atommem.train.checkpoint import load_checkpoint, save_checkpoint
from atommem.train.grpo import LossConfig, TurnRow, group_advantages, policy_update
from atommem.train.rl_loop import place_reference, prepare_policy, process_share, save_final, vllm_named_weights

SAMPLES, GROUP_SIZE = 4, 2


def sample_rows(sample: int, vocab: int) -> list[TurnRow]:
    """The rows of one sample's group: 1-2 turns per episode, lengths and rewards fixed by the sample id."""
    rng = random.Random(sample)
    rewards = [rng.random() for _ in range(GROUP_SIZE)]
    rows = []
    for advantage in group_advantages(rewards, GROUP_SIZE):
        for _ in range(rng.randint(1, 2)):
            prompt = [rng.randrange(vocab) for _ in range(rng.randint(4, 12))]
            completion = [rng.randrange(vocab) for _ in range(rng.randint(1, 6))]
            rows.append(TurnRow(prompt, completion, None, advantage))
    return rows


def engine_weights(model) -> dict[str, torch.Tensor]:
    """The full weights the rollout engine would receive (collective under FSDP: every rank calls it)."""
    return {name: tensor.cpu().clone() for name, tensor in vllm_named_weights(model)}


def optimizer_states(optimizer) -> list[torch.Tensor]:
    """This rank's optimizer state tensors (their shards under FSDP), in parameter order."""
    return [value.to_local() if hasattr(value, "to_local") else value
            for group in optimizer.param_groups for p in group["params"] for value in optimizer.state[p].values()]


def main(model_dir: str, out: str, checkpoint: bool = False) -> None:
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    cpu_fsdp.enable(accelerator)  # as the RL loop: an FSDP launch on CPU processes runs accelerate's FSDP2
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    ref_model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval().requires_grad_(False)
    with torch.no_grad():  # a reference that differs from the policy, so the KL term has a gradient
        for param in ref_model.parameters():
            param.add_(0.01 * torch.randn_like(param))
    ref_model = place_reference(accelerator, ref_model)
    ref_bytes = accelerator.gather_for_metrics([cpu_fsdp.local_bytes(ref_model)], use_gather_object=True)
    vocab = model.config.vocab_size
    model, optimizer, scheduler = prepare_policy(accelerator, model, 1e-4, lambda step: 1.0)

    mine = process_share(list(range(SAMPLES)), accelerator)
    rows = [row for sample in mine for row in sample_rows(sample, vocab)]
    stats = policy_update(model, ref_model, rows, optimizer, scheduler, accelerator,
                          LossConfig(kl_coef=0.1, micro_batch_size=2))
    shares = accelerator.gather_for_metrics([mine], use_gather_object=True)
    result = {"stats": stats, "weights": engine_weights(model), "shares": shares, "ref_bytes": ref_bytes,
              "processes": accelerator.num_processes, "type": str(accelerator.distributed_type)}
    if checkpoint:
        saved = save_checkpoint(accelerator, Path(out) / "checkpoints", 1, {"data_position": SAMPLES}, 1)
        before = [state.clone() for state in optimizer_states(optimizer)]
        with torch.no_grad():  # what the checkpoint must bring back
            for param in model.parameters():
                param.zero_()
            for state in optimizer_states(optimizer):
                state.zero_()
        trainer_state = load_checkpoint(accelerator, saved)
        after = optimizer_states(optimizer)
        same = len(before) == len(after) > 0 and all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
        result |= {"resumed_weights": engine_weights(model), "resumed_step": trainer_state["step"],
                   "optimizer_state_equal": accelerator.gather_for_metrics([same], use_gather_object=True)}
        save_final(accelerator, model, AutoTokenizer.from_pretrained(model_dir), Path(out))
    if accelerator.is_main_process:
        Path(out).mkdir(parents=True, exist_ok=True)
        torch.save(result, Path(out) / "result.pt")
    accelerator.wait_for_everyone()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], checkpoint="--checkpoint" in sys.argv[3:])
