"""The interface every memory method implements: feed the context, answer the questions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from atommem.agent.env import EnvConfig, Trajectory
from atommem.data.records import LongSample
from atommem.llm.base import LLM, SamplingConfig
from atommem.memory.embedders import Embedder


@dataclass
class MethodContext:
    """What every method gets: the same model, sampling, embedder and environment constants."""

    llm: LLM
    sampling: SamplingConfig
    embedder: Embedder
    env: EnvConfig
    batch_size: int = 8  # samples processed together (lock-step episodes or batched prompts)
    options: dict = field(default_factory=dict)  # method-specific keys (evaluate's `method_options`)
    progress: bool = True


@dataclass
class MethodResult:
    """One sample's answers with its cost. `trajectory` is set by methods that run agent turns."""

    sample_id: str
    benchmark: str
    num_docs: int
    answers: list[str | None]
    llm_calls: int
    input_tokens: int
    output_tokens: int
    wall_s: float
    peak_store: int
    context_tokens: int
    trajectory: Trajectory | None = None
    # the memory the method ended with (store entries, scratchpad or memory block); [] for a method that
    # writes none (full-context, and RAG, whose index holds the raw chunks); scored by tasks.state_f1
    final_memory: list[str] | None = None

    def cost(self) -> dict[str, float]:
        """Cost columns of every scored row of this sample (means are taken over samples)."""
        return {
            "cost_llm_calls": self.llm_calls,
            "cost_input_tokens": self.input_tokens,
            "cost_output_tokens": self.output_tokens,
            "cost_wall_s": self.wall_s,
            "cost_peak_store": self.peak_store,
            "cost_context_tokens": self.context_tokens,
            "cost_amplification": self.input_tokens / max(1, self.context_tokens),
        }


    def to_dict(self) -> dict:
        row = {k: v for k, v in self.__dict__.items() if k != "trajectory"}
        row["trajectory"] = self.trajectory.to_dict() if self.trajectory is not None else None
        return row

    @classmethod
    def from_dict(cls, row: dict) -> MethodResult:
        trajectory = row.get("trajectory")
        return cls(**{**row, "trajectory": Trajectory.from_dict(trajectory) if trajectory else None})


class Method(Protocol):
    name: str

    def run(self, samples: list[LongSample], ctx: MethodContext) -> list[MethodResult]: ...


def result_from_trajectory(trajectory: Trajectory) -> MethodResult:
    return MethodResult(
        sample_id=trajectory.sample_id,
        benchmark=trajectory.benchmark,
        num_docs=trajectory.num_docs,
        answers=list(trajectory.answers),
        llm_calls=len(trajectory.turns),
        input_tokens=sum(t.prompt_tokens for t in trajectory.turns),
        output_tokens=sum(t.completion_tokens for t in trajectory.turns),
        wall_s=trajectory.wall_s,
        peak_store=trajectory.peak_store_size,
        context_tokens=trajectory.context_tokens,
        trajectory=trajectory,
        final_memory=trajectory.final_memory,
    )
