"""The AtomMem agent (the paper's memory state, operations and episode loop): the policy chooses its own memory operations.

Ablations (no scratchpad, no store, no Update, ..., store-everything, top-k) are `EnvConfig` switches,
not separate code.
"""

from __future__ import annotations

from atommem.agent.env import Episode
from atommem.agent.runner import run_lockstep
from atommem.data.records import LongSample
from atommem.methods.base import MethodContext, MethodResult, result_from_trajectory


class AtomMemMethod:
    name = "atommem"

    def run(self, samples: list[LongSample], ctx: MethodContext) -> list[MethodResult]:
        if ctx.options:
            raise ValueError(f"method_options: atommem takes none (got {sorted(ctx.options)}); use env.* keys")
        results = []
        for start in range(0, len(samples), ctx.batch_size):
            batch = samples[start : start + ctx.batch_size]
            episodes = [Episode(s, ctx.env, ctx.embedder, ctx.llm.tokenizer) for s in batch]
            for trajectory in run_lockstep(episodes, ctx.llm, ctx.sampling, progress=ctx.progress):
                results.append(result_from_trajectory(trajectory))
        return results
