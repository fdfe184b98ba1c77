"""Score trajectories against their samples: one row per question, then macro/micro summaries.

Fix 5 of docs/method-fixes.md: every sample is scored (score_trajectories refuses a missing or duplicate one).
Fix 7: each answer is compared with its own question's gold answers only.
Macro = mean over samples of the per-sample mean (the paper's "fraction of questions correct per
sample"); micro = mean over all questions.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

from atommem.agent.prompts import shown_memory
from atommem.eval.judge import JudgeConfig, judge
from atommem.eval.metrics import exact_match, f1_score
from atommem.io import write_json_atomic, write_jsonl_atomic
from atommem.tasks import task_of

METRICS = ("em", "f1", "judge")


def score_trajectory(traj, sample) -> list[dict]:
    """Rows {sample_id, benchmark, num_docs, question_id, question, prediction, answers, em, f1, cost_*}; on
    a generated task's samples also what its hooks score (atommem.tasks.base.Task): memory_backed and, when
    the sample has its `final_state` and `traj` its `final_memory`, state_f1.

    `traj` needs .sample_id, .benchmark, .num_docs, .answers (one extracted answer or None per
    question); if it has .turns (TurnRecords), its turn and token counts become cost_* columns.
    `sample` needs .id and .questions (each with .id, .question, .answers).
    """
    if traj.sample_id != sample.id:
        raise ValueError(f"trajectory {traj.sample_id!r} scored against sample {sample.id!r}")
    if len(traj.answers) != len(sample.questions):
        raise ValueError(
            f"trajectory {traj.sample_id!r}: {len(traj.answers)} answers for {len(sample.questions)} questions"
        )
    costs = _costs(traj)
    task = task_of(traj.benchmark)
    # the F1 of the memory the episode ended with against the world's true final state, a property of the
    # sample repeated on each of its rows (as the costs)
    final_memory = getattr(traj, "final_memory", None)
    if task and task.state_f1 and getattr(sample, "final_state", None) is not None and final_memory is not None:
        costs["state_f1"] = task.state_f1(final_memory, sample.final_state)
    memories = _answer_turn_memories(traj) if task and task.memory_backs else None
    rows = []
    for index, (prediction, question) in enumerate(zip(traj.answers, sample.questions)):
        golds = list(question.answers)
        if not golds:
            raise ValueError(f"sample {sample.id!r}, question {question.id!r}: no gold answers")
        rows.append({
            "sample_id": traj.sample_id,
            "benchmark": traj.benchmark,
            "num_docs": traj.num_docs,
            "question_id": question.id,
            "question": question.question,
            "prediction": prediction,
            "answers": golds,
            "em": exact_match(prediction, golds),
            "f1": f1_score(prediction, golds),
            **costs,
        })
        if memories is not None:
            shown = memories.get(index)
            rows[-1]["memory_backed"] = None if shown is None else task.memory_backs(question.question, golds, shown)
    return rows


def _answer_turn_memories(traj) -> dict[int, list[str]] | None:
    """Question index -> the memory shown in the turn that answered it; None without turns (a method's
    result holds them in its .trajectory)."""
    turns = getattr(traj, "turns", None)
    if turns is None:
        turns = getattr(getattr(traj, "trajectory", None), "turns", None)
    if turns is None:
        return None
    return {t.question_index: shown_memory(t.messages[-1]["content"]) for t in turns
            if t.phase == "answer" and any(op["name"] == "answer" for op in t.ops)}


def _costs(traj) -> dict[str, float]:
    turns = getattr(traj, "turns", None)
    if turns is None:
        return {}
    return {
        "cost_turns": len(turns),
        "cost_prompt_tokens": sum(t.prompt_tokens for t in turns),
        "cost_completion_tokens": sum(t.completion_tokens for t in turns),
    }


def score_trajectories(trajectories, samples) -> list[dict]:
    """Rows for every sample, in sample order; a sample without exactly one trajectory is an error."""
    by_id = {}
    for traj in trajectories:
        if traj.sample_id in by_id:
            raise ValueError(f"two trajectories for sample {traj.sample_id!r}")
        by_id[traj.sample_id] = traj
    sample_ids = [s.id for s in samples]
    missing = [sid for sid in sample_ids if sid not in by_id]
    extra = sorted(set(by_id) - set(sample_ids))
    if missing or extra:
        raise ValueError(f"trajectories do not match samples: missing {missing[:5]}, unknown {extra[:5]}")
    return [row for sample in samples for row in score_trajectory(by_id[sample.id], sample)]


def add_judgements(rows: list[dict], cfg: JudgeConfig) -> None:
    """Set row["judge"] (True/False/None) on every row with one judge call per question."""
    verdicts = judge(cfg, [r["question"] for r in rows], [r["prediction"] for r in rows], [r["answers"] for r in rows])
    for row, verdict in zip(rows, verdicts):
        row["judge"] = verdict


def summarize(rows: list[dict]) -> dict:
    """{"overall": stats, "groups": {"<benchmark>_<num_docs>": stats}}; see _stats for the keys."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups[f"{row['benchmark']}_{row['num_docs']}"].append(row)
    return {"overall": _stats(rows), "groups": {key: _stats(groups[key]) for key in sorted(groups)}}


def _stats(rows: list[dict]) -> dict:
    by_sample: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_sample[row["sample_id"]].append(row)
    stats: dict = {"n_samples": len(by_sample), "n_questions": len(rows)}
    for metric in METRICS:
        # None (judge could not decide) and absent keys are left out, never counted as wrong
        per_sample = [[r[metric] for r in sample_rows if r.get(metric) is not None] for sample_rows in by_sample.values()]
        per_sample = [[float(v) for v in values] for values in per_sample if values]
        if not per_sample:
            continue
        stats[f"{metric}_macro"] = _mean([_mean(values) for values in per_sample])
        stats[f"{metric}_micro"] = _mean([v for values in per_sample for v in values])
    # a task's memory_backed: how many answers the shown memory held, and EM with and without it (guessing)
    backed = [r for r in rows if r.get("memory_backed") is not None]
    if backed:
        held = [r for r in backed if r["memory_backed"]]
        guessed = [r for r in backed if not r["memory_backed"]]
        stats["memory_backed_frac"] = len(held) / len(backed)
        stats["em_backed"] = _mean([float(r["em"]) for r in held]) if held else None
        stats["em_not_backed"] = _mean([float(r["em"]) for r in guessed]) if guessed else None
    # costs, the write audit and state_f1 belong to the sample (repeated on each of its rows): average over samples
    first_rows = [sample_rows[0] for sample_rows in by_sample.values()]
    per_sample_keys = sorted({k for row in first_rows for k in row
                              if k.startswith(("cost_", "writes_")) or k == "state_f1"})
    for key in per_sample_keys:
        values = [row[key] for row in first_rows if isinstance(row.get(key), (int, float))]
        if values:
            stats[key] = _mean(values)
    return stats


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def write_results(rows: list[dict], summary: dict, out_dir: str | os.PathLike) -> None:
    """predictions.jsonl (one row per question) and summary.json, each written atomically."""
    out_dir = Path(out_dir)
    write_jsonl_atomic(out_dir / "predictions.jsonl", rows)
    write_json_atomic(out_dir / "summary.json", summary)
