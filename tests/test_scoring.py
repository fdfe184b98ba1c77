import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from atommem.eval.judge import JudgeConfig, judge, parse_verdict
from atommem.eval.scoring import (
    add_judgements,
    score_trajectories,
    score_trajectory,
    summarize,
    write_results,
)
from atommem.io import read_json, read_jsonl


@dataclass
class Q:
    id: str
    question: str
    answers: list[str]


@dataclass
class Sample:
    id: str
    questions: list[Q]


@dataclass
class Turn:
    prompt_tokens: int
    completion_tokens: int


@dataclass
class Traj:
    sample_id: str
    answers: list
    benchmark: str = "hotpotqa"
    num_docs: int = 200
    turns: list = field(default_factory=list)


def test_each_answer_is_scored_against_its_own_question_only():
    # docs/method-fixes.md fix 7: answer 1 equals question 2's gold; the reference bug credited it
    sample = Sample("s", [Q("q1", "Capital of France?", ["Paris"]), Q("q2", "Capital of Italy?", ["Rome"])])
    rows = score_trajectory(Traj("s", ["Rome", None]), sample)
    assert [(r["question_id"], r["em"], r["f1"]) for r in rows] == [("q1", 0.0, 0.0), ("q2", 0.0, 0.0)]
    rows = score_trajectory(Traj("s", ["Paris", "rome"]), sample)
    assert [r["em"] for r in rows] == [1.0, 1.0]


def test_mismatched_trajectory_is_rejected():
    sample = Sample("s", [Q("q1", "?", ["a"])])
    with pytest.raises(ValueError, match="1 questions"):
        score_trajectory(Traj("s", ["a", "b"]), sample)
    with pytest.raises(ValueError, match="'t'"):
        score_trajectory(Traj("t", ["a"]), sample)


def test_every_sample_is_scored():
    samples = [Sample(f"s{i}", [Q(f"q{i}", "?", ["a"])]) for i in range(3)]
    trajs = [Traj(f"s{i}", ["a"]) for i in (2, 0, 1)]
    rows = score_trajectories(trajs, samples)
    assert [r["sample_id"] for r in rows] == ["s0", "s1", "s2"]
    with pytest.raises(ValueError, match=r"missing \[.s0.\]"):
        score_trajectories(trajs[:1] + trajs[2:], samples)
    with pytest.raises(ValueError, match="two trajectories"):
        score_trajectories(trajs + trajs[:1], samples)


def test_macro_and_micro_differ_on_unbalanced_samples(tmp_path):
    # sample A: 1 question, correct. sample B: 3 questions, 1 correct (hotpotqa/400).
    a = Sample("A", [Q("a1", "?", ["x"])])
    b = Sample("B", [Q("b1", "?", ["x"]), Q("b2", "?", ["y"]), Q("b3", "?", ["z"])])
    rows = score_trajectory(Traj("A", ["x"], turns=[Turn(10, 2), Turn(20, 4)]), a)
    rows += score_trajectory(Traj("B", ["x", "no", "no"], num_docs=400, turns=[Turn(5, 1)] * 4), b)
    rows[1]["judge"], rows[2]["judge"], rows[3]["judge"] = True, None, False  # A unjudged, B: 1 of 2 decided
    summary = summarize(rows)
    overall = summary["overall"]
    assert overall["n_samples"] == 2 and overall["n_questions"] == 4
    assert overall["em_macro"] == pytest.approx((1 + 1 / 3) / 2)  # 2/3
    assert overall["em_micro"] == pytest.approx(2 / 4)
    assert overall["judge_macro"] == pytest.approx(0.5) and overall["judge_micro"] == pytest.approx(0.5)
    # costs are per sample: A has 2 turns / 30 prompt tokens, B has 4 turns / 20 prompt tokens
    assert overall["cost_turns"] == pytest.approx(3.0)
    assert overall["cost_prompt_tokens"] == pytest.approx(25.0)
    assert set(summary["groups"]) == {"hotpotqa_200", "hotpotqa_400"}
    assert summary["groups"]["hotpotqa_400"]["em_macro"] == pytest.approx(1 / 3)
    assert "judge_macro" not in summary["groups"]["hotpotqa_200"]

    write_results(rows, summary, tmp_path / "eval")
    assert read_jsonl(tmp_path / "eval" / "predictions.jsonl") == rows
    assert read_json(tmp_path / "eval" / "summary.json") == summary


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        ("PASS", True),
        ("fail.", False),
        ("<think>it could PASS... no</think>\nVerdict: FAIL", False),
        ("Not a FAIL at all: PASS", True),  # the last verdict word is the conclusion
        ("I am not sure", None),
        ("", None),
        ("PASSWORD", None),
    ],
)
def test_parse_verdict(reply, verdict):
    assert parse_verdict(reply) is verdict


class _ChatHandler(BaseHTTPRequestHandler):
    """Canned judge: PASS when the predicted answer appears among the listed gold lines, 'maybe' for '???'."""

    seen: list = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append((self.path, body))
        prompt = body["messages"][-1]["content"]
        prediction = prompt.split("Predicted answer: ")[1].split("\n")[0]
        golds = prompt.split("Gold answers:\n")[1].split("\nPredicted")[0]
        reply = "maybe" if prediction == "???" else ("PASS" if f"- {prediction}" in golds else "FAIL")
        payload = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": reply}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def judge_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ChatHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _ChatHandler.seen.clear()
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()
    server.server_close()


def test_judge_protocol_against_local_server(judge_server):
    cfg = JudgeConfig(base_url=judge_server, model="judge-model", max_workers=2, enabled=True)
    verdicts = judge(cfg, ["q1", "q2", "q3", "q4"], ["Paris", "Lyon", "???", None],
                     [["Paris"], ["Paris"], ["Paris"], ["Paris"]])
    assert verdicts == [True, False, None, False]
    assert len(_ChatHandler.seen) == 3  # a missing prediction is not sent
    path, body = _ChatHandler.seen[0]
    assert path == "/v1/chat/completions"
    assert body["temperature"] == 0.0 and body["model"] == "judge-model"
    assert [m["role"] for m in body["messages"]] == ["system", "user"]

    sample = Sample("s", [Q("q1", "Capital?", ["Paris", "City of Light"]), Q("q2", "River?", ["Seine"])])
    rows = score_trajectory(Traj("s", ["City of Light", "Loire"]), sample)
    add_judgements(rows, cfg)
    assert [r["judge"] for r in rows] == [True, False]


def test_judge_errors_name_the_setting():
    with pytest.raises(ValueError, match="judge.base_url"):
        judge(JudgeConfig(), ["q"], ["a"], [["a"]])
    with pytest.raises(RuntimeError, match="judge.base_url"):
        judge(JudgeConfig(base_url="http://127.0.0.1:9/v1", max_attempts=1), ["q"], ["a"], [["a"]])
    with pytest.raises(ValueError, match="lengths must match"):
        judge(JudgeConfig(base_url="http://x"), ["q"], [], [["a"]])


def test_summary_splits_em_by_whether_memory_backed_the_answer():
    rows = [{"sample_id": "s", "benchmark": "statetrack", "num_docs": 4, "em": em, "f1": em, "memory_backed": backed}
            for em, backed in [(1.0, True), (1.0, True), (0.0, True), (1.0, False), (0.0, False), (0.0, None)]]
    overall = summarize(rows)["overall"]
    assert overall["memory_backed_frac"] == pytest.approx(3 / 5)  # the unanswered question is left out
    assert overall["em_backed"] == pytest.approx(2 / 3) and overall["em_not_backed"] == pytest.approx(1 / 2)
    assert "memory_backed_frac" not in summarize([{**r, "memory_backed": None} for r in rows])["overall"]


def test_summary_averages_the_write_audit_over_samples_not_questions():
    rows = [{"sample_id": sid, "benchmark": "statetrack", "num_docs": 4, "em": 1.0, "f1": 1.0,
             "writes_create_repeat": repeats} for sid, repeats, questions in [("a", 2, 3), ("b", 0, 1)]
            for _ in range(questions)]
    assert summarize(rows)["overall"]["writes_create_repeat"] == pytest.approx(1.0)
