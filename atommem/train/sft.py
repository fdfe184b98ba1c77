"""SFT with TRL's SFTTrainer on prompt-completion examples: the loss covers the completion tokens only.

Examples are tokenized here exactly as the agent's prompts are at generation time (chat template and its
arguments, e.g. Qwen3's thinking switch, and the over-long prompt rule), so the student is trained on the
exact prompts it will see.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from accelerate import PartialState
from datasets import Dataset
from transformers import AutoModelForCausalLM, TrainerCallback
from trl import SFTConfig, SFTTrainer

from atommem.errors import InputError, Preempted
from atommem.fingerprint import claim_output_dir
from atommem.io import read_jsonl_lines, replace_dir, write_jsonl_atomic, writing
from atommem.llm.base import fit_chat_prompt
from atommem.llm.models import load_tokenizer, resolve_model
from atommem.tracking import tracked_run
from atommem.train import cpu_fsdp
from atommem.train.preemption import StopRequest

if TYPE_CHECKING:
    from atommem.train.sft_config import SFTRecipeConfig

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"  # TRL's checkpoint-<step>/ folders, under out_dir
# transformers writes trainer_state.json last into a checkpoint: a folder without a readable one was cut
_CHECKPOINT_DIR = re.compile(r"checkpoint-(\d+)")

# recipe fields passed to trl.SFTConfig under the same name
TRAINER_FIELDS = (
    "num_train_epochs", "max_steps", "learning_rate", "lr_scheduler_type", "warmup_steps", "weight_decay",
    "per_device_train_batch_size", "gradient_accumulation_steps", "max_length", "gradient_checkpointing",
    "bf16", "logging_steps", "save_steps", "save_total_limit", "seed",
)


def load_examples(path: str | os.PathLike, tokenizer, max_length: int | None) -> Dataset:
    """Rows tokenized as the agent generates and as RL trains (atommem.train.grpo.build_rows): the chat-template
    prompt with its generation prompt, then the response and EOS, the loss on the completion only. A prompt
    over `max_length` minus its completion keeps its system message and its end (atommem.llm.base.fit_prompt,
    the rule of the rollouts); the completion is never cut."""
    rows = []
    for line_no, row in read_jsonl_lines(path):
        completion = tokenizer(row["completion"][0]["content"], add_special_tokens=False)["input_ids"]
        completion.append(tokenizer.eos_token_id)
        budget = max_length - len(completion) if max_length is not None else sys.maxsize
        if budget < 1:
            raise InputError(f"{path}: line {line_no}: a completion of {len(completion)} tokens leaves no room for "
                             f"its prompt within max_length ({max_length})")
        prompt = fit_chat_prompt(tokenizer, row["prompt"], budget)
        rows.append({"input_ids": prompt + completion, "completion_mask": [0] * len(prompt) + [1] * len(completion)})
    if not rows:
        raise InputError(f"{path}: no examples (did every trajectory fail the filter?)")
    return Dataset.from_list(rows)


def trainer_config(cfg: SFTRecipeConfig) -> SFTConfig:
    values = {name: getattr(cfg, name) for name in TRAINER_FIELDS}
    return SFTConfig(
        output_dir=str(Path(cfg.out_dir) / CHECKPOINTS),
        completion_only_loss=True,
        report_to=["mlflow"] if cfg.tracking.enabled else [],
        save_strategy="steps",
        # every parameter gets a gradient: DDP's search for unused ones is an extra pass over the graph
        ddp_find_unused_parameters=False,
        # without an accelerator, bf16 means CPU autocast, which transformers only allows with use_cpu
        use_cpu=not torch.cuda.is_available(),
        **{**values, **cfg.trainer_args},
    )


class Trainer(SFTTrainer):
    """SFTTrainer whose failed checkpoint write (disk full, file size limit) is a WriteError naming the
    folder: the cut folder is removed (the disk has room again) and, since transformers prunes old
    checkpoints only after a save completes, the earlier ones stay for a rerun to resume from. The CPU
    processes of an FSDP launch train under accelerate's FSDP2, as GPUs do (atommem.train.cpu_fsdp)."""

    def create_accelerator_and_postprocess(self) -> None:
        super().create_accelerator_and_postprocess()
        if cpu_fsdp.enable(self.accelerator):
            self.is_fsdp_enabled = True  # what transformers sets when accelerate starts as FSDP

    def _save_checkpoint(self, model, trial) -> None:
        folder = Path(self._get_output_dir(trial=trial)) / f"checkpoint-{self.state.global_step}"
        main = self.is_world_process_zero()
        with writing(folder, cleanup=lambda: main and shutil.rmtree(folder, ignore_errors=True)):
            super()._save_checkpoint(model, trial)


class StopAfterStep(TrainerCallback):
    """On SIGTERM or SIGUSR1 (atommem.train.preemption): save a checkpoint after the current optimizer step
    and end training there."""

    def __init__(self, stop: StopRequest):
        self.stop = stop

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step < state.max_steps and self.stop.requested():
            control.should_save = True
            control.should_training_stop = True
        return control


def train_sft(cfg: SFTRecipeConfig) -> Path:
    stop = StopRequest().install()  # from here on, SIGTERM and SIGUSR1 stop training after a step
    out_dir = Path(cfg.out_dir)
    state = PartialState()  # the processes of an accelerate launch (one without it)
    path = resolve_model(cfg.model.name)
    tokenizer = load_tokenizer(cfg.model.tokenizer or cfg.model.name)
    # an example that cannot fit fails before anything is written or the model loads
    examples = load_examples(cfg.examples, tokenizer, cfg.max_length)
    if state.is_main_process:
        claim_output_dir(out_dir, dataclasses.asdict(cfg), {"model": cfg.model.name, "examples": cfg.examples},
                         resumable=[CHECKPOINTS, "metrics.jsonl"])
    state.wait_for_everyone()
    # fp32 master weights whatever model.dtype (the inference dtype): `bf16` trains under autocast, and bf16
    # weights updated in place would round small updates away
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    args = trainer_config(cfg)
    peft_config = None
    if cfg.lora:
        from peft import LoraConfig

        peft_config = LoraConfig(task_type="CAUSAL_LM", **cfg.lora)
    trainer = Trainer(model=model, args=args, train_dataset=examples, processing_class=tokenizer,
                      peft_config=peft_config, callbacks=[StopAfterStep(stop)])
    resume = last_complete_checkpoint(Path(args.output_dir), remove_cut=trainer.is_world_process_zero())
    trainer.accelerator.wait_for_everyone()
    if resume:
        log.info("resuming SFT from %s", resume)
    log.info("training on %d process(es), %s", state.num_processes, trainer.accelerator.distributed_type.value)
    # TRL logs from the main process only, into this active run
    with tracked_run(cfg.tracking, params=dataclasses.asdict(cfg), main_process=state.is_main_process):
        trainer.train(resume_from_checkpoint=resume)
    if stop.signal is not None and trainer.state.global_step < trainer.state.max_steps:
        checkpoint = Path(args.output_dir) / f"checkpoint-{trainer.state.global_step}"
        raise Preempted(f"{stop.signal} after step {trainer.state.global_step} of {trainer.state.max_steps}; "
                        f"checkpoint {checkpoint} written, a rerun resumes from it")
    if trainer.is_world_process_zero():
        write_jsonl_atomic(out_dir / "metrics.jsonl", trainer.state.log_history)
    return save_plain_model(trainer, tokenizer, out_dir, path, merge_lora=peft_config is not None)


def last_complete_checkpoint(folder: Path, remove_cut: bool) -> str | None:
    """The newest checkpoint whose trainer_state.json reads; newer cut ones are deleted if `remove_cut`
    (TRL would otherwise save into them again, mixing old and new files)."""
    found = sorted((int(m.group(1)), p) for p in folder.glob("checkpoint-*")
                   if (m := _CHECKPOINT_DIR.fullmatch(p.name)) and p.is_dir()) if folder.is_dir() else []
    for _, path in reversed(found):
        try:
            json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
            return str(path)
        except (OSError, ValueError):
            if remove_cut:
                log.warning("removing %s: cut by a kill while it was saved", path)
                shutil.rmtree(path, ignore_errors=True)
    return None


def save_plain_model(trainer, tokenizer, out_dir: Path, base_path: str, merge_lora: bool) -> Path:
    """`out_dir/final/`: a plain HF folder (LoRA merged into the base), written aside and renamed."""
    final, tmp = out_dir / "final", out_dir / ".final.tmp"
    if trainer.is_world_process_zero():
        shutil.rmtree(tmp, ignore_errors=True)
    main = trainer.is_world_process_zero()
    # a failed write (disk full) is a WriteError naming final/; the temp folder goes, an older final/ stays
    discard = lambda: main and shutil.rmtree(tmp, ignore_errors=True)  # noqa: E731
    with writing(final, cleanup=discard):
        trainer.save_model(str(tmp))  # gathers sharded weights (FSDP/ZeRO-3) on every process
    if main:
        with writing(final, cleanup=discard):
            if merge_lora:
                # merge from the saved adapter onto a fresh full-precision base: works whatever the sharding was
                from peft import PeftModel

                base = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
                merged = PeftModel.from_pretrained(base, str(tmp)).merge_and_unload()
                shutil.rmtree(tmp)
                merged.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
        replace_dir(tmp, final)
    trainer.accelerator.wait_for_everyone()
    return final
