"""One GRPO update under `accelerate launch`, for tests/test_multiprocess.py: fixed rollouts, so runs with
1 and 2 processes see the same rows of the step, shared out by sample as the RL loop shares them.

    accelerate launch --config_file config/accelerate/cpu.yaml --num_processes N tests/multiprocess_rl_step.py MODEL OUT

tests/test_cuda.py launches it on a GPU too, plain and under FSDP2.

Rank 0 writes OUT/result.pt: the update's metrics, the updated weights and the samples of each rank.
"""

import random
import sys
from pathlib import Path

import torch
from accelerate import Accelerator
from transformers import AutoModelForCausalLM

from atommem.train.grpo import LossConfig, TurnRow, group_advantages, policy_update
from atommem.train.rl_loop import process_share

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


def main(model_dir: str, out: str) -> None:
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    ref_model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval().requires_grad_(False)
    with torch.no_grad():  # a reference that differs from the policy, so the KL term has a gradient
        for param in ref_model.parameters():
            param.add_(0.01 * torch.randn_like(param))
    ref_model.to(accelerator.device)
    vocab = model.config.vocab_size
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    model, optimizer = accelerator.prepare(model, optimizer)

    mine = process_share(list(range(SAMPLES)), accelerator)
    rows = [row for sample in mine for row in sample_rows(sample, vocab)]
    stats = policy_update(model, ref_model, rows, optimizer, scheduler, accelerator,
                          LossConfig(kl_coef=0.1, micro_batch_size=2))
    shares = accelerator.gather_for_metrics([mine], use_gather_object=True)
    # FSDP2 parameters are DTensors: full_tensor() gathers the shards (collective, so every rank calls it)
    weights = {name: (param.full_tensor() if hasattr(param, "full_tensor") else param).detach().cpu().clone()
               for name, param in accelerator.unwrap_model(model).named_parameters()}
    if accelerator.is_main_process:
        Path(out).mkdir(parents=True, exist_ok=True)
        torch.save({"stats": stats, "weights": weights, "shares": shares,
                    "processes": accelerator.num_processes, "type": str(accelerator.distributed_type)},
                   Path(out) / "result.pt")
    accelerator.wait_for_everyone()


if __name__ == "__main__":
    main(*sys.argv[1:3])
