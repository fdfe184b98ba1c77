"""Full-context baseline: the whole context in one prompt per question.

The context is centre-truncated (head and tail kept, the middle dropped, as chunking does) so that the
prompt plus `sampling.max_new_tokens` fit in the model's window (model.max_model_len). One LLM call per
question; all questions of a batch go in one generate call.
"""

from __future__ import annotations

from atommem.data.records import LongSample
from atommem.methods import baseline_prompts as bp
from atommem.methods.base import MethodContext
from atommem.methods.fixed_workflow import FixedWorkflow, Ledger, prompt_tokens, window

GAP = "\n...\n"  # marks where the middle of a truncated context was dropped
MARGIN = 16  # tokens of slack: decoding and re-encoding a cut text may shift its token count a little


def centre_truncate(text: str, tokenizer, max_tokens: int) -> str:
    """`text` if it has at most `max_tokens` tokens, else its first and last max_tokens/2 tokens."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    if len(ids) <= max_tokens:
        return text
    if max_tokens <= 0:
        return ""
    head = max_tokens // 2
    return (tokenizer.decode(ids[:head], skip_special_tokens=True) + GAP
            + tokenizer.decode(ids[len(ids) - (max_tokens - head):], skip_special_tokens=True))


class FullContextMethod(FixedWorkflow):
    name = "full-context"

    def answer_requests(self, samples: list[LongSample], ctx: MethodContext, ledger: Ledger, options: dict):
        tokenizer = ctx.llm.tokenizer
        requests = []
        for i, sample in enumerate(samples):
            with ledger.timed(i):
                # one truncation per sample, sized for its longest question prompt
                overhead = max((prompt_tokens(tokenizer, bp.full_context_answer(q.question, ""))
                                for q in sample.questions), default=0)
                room = window(ctx) - ctx.sampling.max_new_tokens - overhead - MARGIN
                context = centre_truncate(sample.context, tokenizer, room)
                requests += [(i, bp.full_context_answer(q.question, context)) for q in sample.questions]
        return requests
