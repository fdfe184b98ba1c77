"""Store-all: the AtomMem agent with every chunk inserted into its store up front (Create disabled, no
reading turns); the agent only queries and answers. The same switch as the `store-all` ablation."""

from __future__ import annotations

import dataclasses

from atommem.data.records import LongSample
from atommem.methods.ablations import apply_ablation
from atommem.methods.atommem_agent import AtomMemMethod
from atommem.methods.base import MethodContext, MethodResult


class StoreAllMethod(AtomMemMethod):
    name = "store-all"

    def run(self, samples: list[LongSample], ctx: MethodContext) -> list[MethodResult]:
        return super().run(samples, dataclasses.replace(ctx, env=apply_ablation(ctx.env, "store-all")))
