"""Small stand-ins shared by agent tests: a scripted policy behind the LLM interface and tiny samples."""

from __future__ import annotations

from collections.abc import Callable

from atommem.data.longcontext import render_context
from atommem.data.records import LongSample, Paragraph, Question
from atommem.llm.base import Generation


class ScriptedLLM:
    """An LLM whose reply is a function of the conversation (and how often it was called)."""

    def __init__(self, tokenizer, reply: Callable[[list[dict], int], str]):
        self.tokenizer = tokenizer
        self.reply = reply
        self.calls = 0
        self.batch_sizes: list[int] = []

    def generate(self, conversations, sampling):
        self.batch_sizes.append(len(conversations))
        out = []
        for conversation in conversations:
            text = self.reply(conversation, self.calls)
            self.calls += 1
            out.append(Generation(text=text, prompt_tokens=len(conversation[-1]["content"]), completion_tokens=len(text)))
        return out


def make_sample(documents: list[tuple[str, str]], questions: list[tuple[str, str]], sample_id: str = "s-0") -> LongSample:
    paragraphs = [Paragraph(title, (text,)) for title, text in documents]
    return LongSample(
        id=sample_id,
        benchmark="hotpotqa",
        num_docs=len(paragraphs),
        questions=[Question(f"q{i}", q, [a], [], []) for i, (q, a) in enumerate(questions)],
        documents=paragraphs,
        context=render_context(paragraphs),
    )


def generation(text: str) -> Generation:
    return Generation(text=text, prompt_tokens=1, completion_tokens=1)
