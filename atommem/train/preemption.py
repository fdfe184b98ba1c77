"""Preemption-safe training: a signal asks the loop to stop after its current step, with a checkpoint.

SLURM preemption, a time limit, `scancel` and `scontrol requeue` send SIGTERM and, KillWait seconds later
(30 by default), SIGKILL; `--signal=B:USR1@<secs>` (profiles/slurm) sends SIGUSR1 that many seconds before
the time limit. `StopRequest` turns both into a flag that the RL and SFT loops read after every optimizer
step: they finish the step, write a checkpoint atomically and raise `atommem.errors.Preempted`, which the
CLI turns into exit status 75 (PREEMPTED). The requeued job starts the same command again, and it resumes
from that checkpoint by the usual fingerprint rules (atommem.fingerprint).
"""

from __future__ import annotations

import os
import signal
import threading

SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class StopRequest:
    """Catches SIGTERM and SIGUSR1 from `install()` on; `signal` names the first one received."""

    def __init__(self) -> None:
        self.signal: str | None = None
        self._previous: dict[int, object] = {}

    def install(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():  # Python only lets the main thread catch signals
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def restore(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    def _handle(self, signum: int, frame) -> None:
        if self.signal is None:
            self.signal = signal.Signals(signum).name
            # os.write, not logging: a handler may run while the logging lock is held
            os.write(2, f"atommem: {self.signal} received; stopping after the current step with a checkpoint\n"
                     .encode())

    def requested(self) -> bool:
        """True when this process or any other of a distributed run received a stop signal (every process
        must stop after the same step, so the flag is agreed on with one all-reduce when there are several)."""
        flag = self.signal is not None
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            import torch
            from accelerate import PartialState

            tensor = torch.tensor([float(flag)], device=PartialState().device)
            dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
            flag = bool(tensor.item())
            if flag and self.signal is None:
                self.signal = "a signal to another process"
        return flag
