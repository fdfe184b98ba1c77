"""FSDP2 across CPU processes, through accelerate's own FSDP2 code.

accelerate (1.15) picks FSDP only for accelerator devices: under an FSDP launch (config/accelerate/
fsdp-cpu.yaml: distributed_type FSDP, fsdp_version 2) on CPU, `Accelerator(cpu=True)` comes up as MULTI_CPU,
drops the FSDP plugin without a word, and `prepare` wraps the model in DDP (`Accelerator()` without cpu=True
comes up as NO: every process trains alone). Everything beneath that choice works on CPU: accelerate's FSDP2
preparation calls torch's `fully_shard` without a mesh, torch's default mesh is the CPU one over the gloo
group, and the FSDP2 state dicts, checkpoints and gradient clipping run as on GPUs. So `enable` sets the
state the launch asked for, and the recipes then take the very paths they take on 8 GPUs
(tests/test_cpu_fsdp.py).
"""

from __future__ import annotations

import os

import torch
from accelerate import PartialState
from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin


def requested(accelerator) -> bool:
    """Whether this is an FSDP launch whose processes run on CPU, which accelerate made MULTI_CPU."""
    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() != "true":
        return False
    if accelerator.distributed_type != DistributedType.MULTI_CPU:
        return False  # GPUs (accelerate's own FSDP) or one process (nothing to shard over)
    if os.environ.get("FSDP_VERSION", "1") != "2":
        raise ValueError("accelerate config: FSDP on CPU processes runs as FSDP2 only; set fsdp_config.fsdp_version: 2")
    return True


def enable(accelerator) -> bool:
    """Give the CPU processes of an FSDP launch the FSDP2 state it asked for; True if it did. The state is
    process-wide: every Accelerator of the process (TRL's Trainer's too) is then FSDP2."""
    if not requested(accelerator):
        return False
    plugin = FullyShardedDataParallelPlugin()  # from the launch's FSDP_* variables, as accelerate builds it
    if accelerator.mixed_precision != "no":
        plugin.set_mixed_precision(accelerator.mixed_precision)
    accelerator.state.fsdp_plugin = plugin
    # both shared states: a later AcceleratorState() copies PartialState's distributed_type over its own
    accelerator.state.distributed_type = DistributedType.FSDP
    PartialState().distributed_type = DistributedType.FSDP
    return True


def local_bytes(model: torch.nn.Module) -> int:
    """Bytes of `model`'s parameters this process holds: its shards under FSDP2, else all of them."""
    total = 0
    for param in model.parameters():
        local = param.to_local() if hasattr(param, "to_local") else param
        total += local.numel() * local.element_size()
    return total
