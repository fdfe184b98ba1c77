"""One AtomMem episode: the reading phase over chunks, then the answer phase, one question at a time.

An Episode is a small state machine. `observe()` retrieves from the store and builds this turn's chat
messages; `step(generation)` parses the model's response and executes its operations in textual order.
Every episode owns its scratchpad, store and counters (docs/method-fixes.md fix 3: nothing is shared across episodes).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass

from atommem.agent import prompts
from atommem.agent.chunking import chunk_ids
from atommem.agent.ops import STORE_OPS, Op, parse_response
from atommem.config import ConfigError, option, require, require_positive
from atommem.data.records import LongSample
from atommem.llm.base import Conversation, Generation
from atommem.memory.store import MemoryEntry, MemoryStore

WRITE_OPS = ("create", "update", "delete", "scratchpad")


@dataclass
class EnvConfig:
    chunk_tokens: int = option(4000, "tokens per context chunk (paper: 4000)")
    chunk_overlap: int = option(100, "overlap tokens on each side of a chunk (paper: 100)")
    max_chunks: int = option(40, "longer inputs are centre-truncated (paper: 40)")
    top_k: int = option(6, "memory entries retrieved per turn (paper: 6)")
    retrieval_token_budget: int = option(4096, "token cap of the retrieved block (paper: 4096)")
    query_limit: int = option(3, "Reads in a row allowed per question (paper: 3)")
    max_turns: int = option(41, "turn cap of an episode, both phases (reference: 41)")
    initial_query: str = option("No query yet", "the query before the first Read")
    use_scratchpad: bool = option(True, "show and allow the scratchpad")
    use_store: bool = option(True, "show and allow the memory store")
    disabled_ops: list[str] = option(list, "operations the environment ignores: any of create/read/update/delete")
    store_all: bool = option(False, "every chunk inserted into the store up front; Create and the reading turns go")

    def __post_init__(self) -> None:
        unknown = sorted(set(self.disabled_ops) - set(STORE_OPS))
        require(not unknown, "disabled_ops", f"ops among {', '.join(STORE_OPS)}", unknown[:1])
        require_positive(self, "chunk_tokens", "max_chunks", "top_k", "retrieval_token_budget", "max_turns")
        require(0 <= self.chunk_overlap < self.chunk_tokens, "chunk_overlap",
                f">= 0 and < chunk_tokens ({self.chunk_tokens})", self.chunk_overlap)
        require(self.query_limit >= 0, "query_limit", ">= 0", self.query_limit)
        if self.store_all and not self.use_store:
            raise ConfigError("store_all needs env.use_store: true")

    def enabled_ops(self) -> set[str]:
        ops = {"answer"}
        if self.use_scratchpad:
            ops.add("scratchpad")
        if self.use_store:
            ops |= set(STORE_OPS) - set(self.disabled_ops)
            if self.store_all:
                ops.discard("create")
        return ops

    def advancing_ops(self) -> set[str]:
        """Ops whose presence moves the reading pointer on. Without a store, the scratchpad write does;
        with no memory at all, every turn does (the empty set)."""
        enabled = self.enabled_ops()
        if self.use_store:
            return {"create", "update"} & enabled
        return {"scratchpad"} & enabled


@dataclass
class TurnRecord:
    turn: int
    phase: str  # "read" | "answer"
    chunk_index: int | None
    question_index: int | None
    messages: Conversation
    response: str
    ops: list[dict]  # executed ops
    invalid: dict[str, int]  # "invalid_op/<name>", "invalid_turn"
    ignored: dict[str, int]  # valid ops not executed by a rule, e.g. "read_over_limit", "disabled/update"
    store_size: int
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str = "stop"  # the generation's: "length" when max_new_tokens cut it
    # token ids and log-probs from local backends, kept in memory for RL and not written to disk
    prompt_ids: list[int] | None = None
    completion_ids: list[int] | None = None
    logprobs: list[float] | None = None

    def to_dict(self) -> dict:
        row = dataclasses.asdict(self)
        for key in ("prompt_ids", "completion_ids", "logprobs"):
            row.pop(key)
        return row

    @classmethod
    def from_dict(cls, row: dict) -> TurnRecord:
        return cls(**row)


@dataclass
class Trajectory:
    sample_id: str
    benchmark: str
    num_docs: int
    turns: list[TurnRecord]
    answers: list[str | None]  # one per question; None when never answered
    answer_status: list[str]  # "answered" | "read_limit" | "turn_cap"
    truncated: bool  # the turn cap ended the episode
    num_chunks: int
    context_tokens: int
    peak_store_size: int
    wall_s: float = 0.0
    # the memory the episode ended with: every store entry (oldest first), then the scratchpad if not empty
    final_memory: list[str] | None = None

    def to_dict(self) -> dict:
        row = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        row["turns"] = [t.to_dict() for t in self.turns]
        return row

    @classmethod
    def from_dict(cls, row: dict) -> Trajectory:
        return cls(**{**row, "turns": [TurnRecord.from_dict(t) for t in row["turns"]]})

    def op_counts(self) -> Counter:
        return Counter(op["name"] for turn in self.turns for op in turn.ops)


class Episode:
    def __init__(self, sample: LongSample, cfg: EnvConfig, embedder, tokenizer):
        self.sample = sample
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.enabled = cfg.enabled_ops()
        self.advancing = cfg.advancing_ops()
        self.system = prompts.system_message(self.enabled, self.advancing, cfg.query_limit)
        self.store = MemoryStore(embedder)
        self.embedder = embedder
        ids = tokenizer.encode(sample.context, add_special_tokens=False)
        self.chunks = chunk_ids(ids, tokenizer, cfg.chunk_tokens, cfg.chunk_overlap, cfg.max_chunks)
        self.context_tokens = len(ids)
        self.turn = 0
        self.chunk_index = 0
        self.question_index = 0
        self.scratchpad = ""
        self.query = cfg.initial_query
        self.reads_since_write = 0
        self.shown: list[MemoryEntry] = []
        self.turns: list[TurnRecord] = []
        self.answers: list[str | None] = [None] * len(sample.questions)
        self.answer_status = ["turn_cap"] * len(sample.questions)
        self.peak_store_size = 0
        self.truncated = False
        self._query_cache: tuple[str, object] | None = None
        self._messages: Conversation | None = None
        self.phase = "read"
        if cfg.store_all:
            self.store.add(self.chunks, turn=0)
            self.peak_store_size = len(self.store)
            self.phase = "answer"
        if not self.chunks:
            self.phase = "answer"
        self.done = not sample.questions or cfg.max_turns <= 0

    @property
    def current_chunk(self) -> str | None:
        return self.chunks[self.chunk_index] if self.phase == "read" else None

    # -- observe ---------------------------------------------------------------------------------
    def observe(self) -> Conversation:
        if self.done:
            raise RuntimeError(f"episode {self.sample.id} is done; observe() needs an active episode")
        self.shown = self._retrieve() if self.cfg.use_store else []
        answering = self.phase == "answer"
        reads_left = None
        if "read" in self.enabled:
            reads_left = max(0, self.cfg.query_limit - self.reads_since_write)
        user = prompts.user_message(
            questions=[q.question for q in self.sample.questions],
            scratchpad=self.scratchpad if self.cfg.use_scratchpad else None,
            query=self.query if self.cfg.use_store else None,
            memories=[e.text for e in self.shown] if self.cfg.use_store else None,
            chunk=None if answering else self.current_chunk,
            chunk_position=None if answering else (self.chunk_index, len(self.chunks)),
            reads_left=reads_left,
            answer_question=self.sample.questions[self.question_index].question if answering else None,
            store_empty=not answering and self.cfg.use_store and "create" in self.enabled and len(self.store) == 0,
        )
        self._messages = [self.system, user]
        return self._messages

    def _retrieve(self) -> list[MemoryEntry]:
        if len(self.store) == 0:
            return []
        if self._query_cache is None or self._query_cache[0] != self.query:
            self._query_cache = (self.query, self.embedder.embed_queries([self.query])[0])
        shown, used = [], 0
        for entry in self.store.search(self._query_cache[1], self.cfg.top_k):
            cost = len(self.tokenizer.encode(entry.text, add_special_tokens=False))
            if shown and used + cost > self.cfg.retrieval_token_budget:
                break
            shown.append(entry)
            used += cost
        return shown

    # -- step ------------------------------------------------------------------------------------
    def step(self, generation: Generation) -> TurnRecord:
        if self._messages is None:
            raise RuntimeError("step() called without observe()")
        parsed = parse_response(generation.text)
        invalid, ignored = Counter(parsed.invalid), Counter()
        executed: list[Op] = []
        phase, chunk_index, question_index = self.phase, self.chunk_index, self.question_index
        for op in parsed.ops:
            if op.name not in self.enabled:
                ignored[f"disabled/{op.name}"] += 1
            elif self.phase == "read":
                self._execute_reading(op, executed, invalid, ignored)
            elif self._execute_answering(op, executed, invalid, ignored):
                break  # the question was answered or failed: later ops belong to no question
        if phase == "read":
            wrote_advancing = any(op.name in self.advancing for op in executed)
            if wrote_advancing or not self.advancing:
                self._advance_chunk()
        self.peak_store_size = max(self.peak_store_size, len(self.store))
        record = TurnRecord(
            turn=self.turn,
            phase=phase,
            chunk_index=chunk_index if phase == "read" else None,
            question_index=question_index if phase == "answer" else None,
            messages=self._messages,
            response=generation.text,
            ops=[op.to_dict() for op in executed],
            invalid=dict(invalid),
            ignored=dict(ignored),
            store_size=len(self.store),
            prompt_tokens=generation.prompt_tokens,
            completion_tokens=generation.completion_tokens,
            finish_reason=generation.finish_reason,
            prompt_ids=generation.prompt_ids,
            completion_ids=generation.completion_ids,
            logprobs=generation.logprobs,
        )
        self.turns.append(record)
        self._messages = None
        self.turn += 1
        if not self.done and self.turn >= self.cfg.max_turns:
            self.truncated = True
            self.done = True
        return record

    def _execute_reading(self, op: Op, executed: list[Op], invalid: Counter, ignored: Counter) -> None:
        if op.name == "answer":
            ignored["answer_in_read_phase"] += 1
            return
        if op.name == "read":
            if self.reads_since_write >= self.cfg.query_limit:
                ignored["read_over_limit"] += 1  # fix 4 (docs/method-fixes.md): ignore in the reading phase, count it
                return
            self._set_query(op, executed, invalid)
            return
        if self._write(op, invalid):
            executed.append(op)
            self.reads_since_write = 0

    def _execute_answering(self, op: Op, executed: list[Op], invalid: Counter, ignored: Counter) -> bool:
        """Execute one op of the answer phase; True when the current question is settled."""
        if op.name == "answer":
            executed.append(op)
            self._settle_question(op.text, "answered")
            return True
        if op.name == "read":
            if self.reads_since_write >= self.cfg.query_limit:
                self._settle_question(None, "read_limit")  # fix 4 (docs/method-fixes.md): fails this question only
                return True
            self._set_query(op, executed, invalid)
            return False
        ignored[f"{op.name}_in_answer_phase"] += 1
        return False

    def _set_query(self, op: Op, executed: list[Op], invalid: Counter) -> None:
        if not op.text:
            invalid["invalid_op/read"] += 1
            return
        self.query = op.text
        self.reads_since_write += 1
        executed.append(op)

    def _write(self, op: Op, invalid: Counter) -> bool:
        """Apply a Create/Update/Delete/scratchpad write; False (and counted) when it cannot apply."""
        if op.name == "scratchpad":
            self.scratchpad = op.text
            return True
        if op.name == "create":
            if not op.text:
                invalid["invalid_op/create"] += 1
                return False
            self.store.add([op.text], turn=self.turn)
            return True
        entry = self._shown_entry(op.index)
        if entry is None:
            invalid[f"invalid_op/{op.name}"] += 1
            return False
        if op.name == "update":
            self.store.replace(entry, op.text, turn=self.turn)
        else:
            self.store.remove(entry)
        return True

    def _shown_entry(self, index: int | None) -> MemoryEntry | None:
        """The entry shown as `Memory index` this turn, if it is still in this episode's store."""
        if index is None or not 1 <= index <= len(self.shown):
            return None
        entry = self.shown[index - 1]
        return entry if any(e is entry for e in self.store.entries) else None

    def _advance_chunk(self) -> None:
        self.chunk_index += 1
        if self.chunk_index >= len(self.chunks):
            self.phase = "answer"
            self.reads_since_write = 0

    def _settle_question(self, answer: str | None, status: str) -> None:
        self.answers[self.question_index] = answer
        self.answer_status[self.question_index] = status
        self.question_index += 1
        self.reads_since_write = 0
        if self.question_index >= len(self.sample.questions):
            self.done = True

    def result(self) -> Trajectory:
        return Trajectory(
            sample_id=self.sample.id,
            benchmark=self.sample.benchmark,
            num_docs=self.sample.num_docs,
            turns=self.turns,
            answers=list(self.answers),
            answer_status=list(self.answer_status),
            truncated=self.truncated,
            num_chunks=len(self.chunks),
            context_tokens=self.context_tokens,
            peak_store_size=self.peak_store_size,
            final_memory=self.memory_texts(),
        )

    def memory_texts(self) -> list[str]:
        """What memory holds now: every store entry, oldest first, then the scratchpad if it is not empty."""
        return [e.text for e in self.store.entries] + ([self.scratchpad] if self.scratchpad.strip() else [])
