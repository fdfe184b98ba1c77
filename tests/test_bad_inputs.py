"""Every input mistake ends in exit status 2 and one line naming the file and line, or the key, and what
was expected; never a traceback, and never after a model has loaded.

Most cases run in-process through `atommem.cli.main(argv)` (fast); `test_real_processes` runs a few
through the installed `atommem` command and checks the whole of stderr.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from atommem.cli import main as cli

REPO = Path(__file__).resolve().parents[1]
ATOMMEM = str(Path(sys.executable).with_name("atommem"))
HOTPOT = REPO / "data/benchmarks/hotpotqa/hotpot_dev_distractor_v1.sample.json"

QUESTION = {"id": "q1", "question": "Who?", "answers": ["Ann"], "supporting_facts": ["Ann did."],
            "gold_doc_positions": [1]}
DOCUMENT = {"title": "T", "sentences": ["Ann did."]}
SAMPLE = {"id": "s1", "benchmark": "hotpotqa", "num_docs": 1, "questions": [QUESTION], "documents": [DOCUMENT],
          "context": "Document 1:\nT\nAnn did."}
EXAMPLE = {"prompt": [{"role": "system", "content": "rules"}, {"role": "user", "content": "chunk"}],
           "completion": [{"role": "assistant", "content": "<add_memory>x</add_memory>"}]}
# what a wrongly typed field gets instead: something JSON can hold that the field's type is not
WRONG = {str: 7, int: "7", list: "x", dict: [1]}
SAMPLE_TYPES = {"id": str, "benchmark": str, "num_docs": int, "questions": list, "documents": list, "context": str}
QUESTION_TYPES = {"id": str, "question": str, "answers": list, "supporting_facts": list, "gold_doc_positions": list}
DOCUMENT_TYPES = {"title": str, "sentences": list}
FAST = ["--set", "model.name=tiny-random", "--set", "embedder.kind=hashing"]


def run(argv: list[str], capsys) -> str:
    """Run the CLI in-process; assert exit 2 and a single clean line on stderr, and return that line."""
    try:
        code = cli(argv)
    except SystemExit as exit_:  # argparse's own errors (unknown stage or flag) exit from parse_args
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2, f"exit {code} for {argv}: {err}"
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def write_rows(path: Path, rows: list) -> Path:
    """A valid first row, then the rows under test: errors must name line 2."""
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def with_field(row: dict, name: str, value) -> dict:
    return {**row, name: value}


def without(row: dict, name: str) -> dict:
    return {k: v for k, v in row.items() if k != name}


# ---------------------------------------------------------------- samples files (evaluate, rl, synthesize)


def sample_cases() -> list[tuple[str, object, str]]:
    """(case id, the bad second row or raw text, what the message must say)."""
    cases = []
    for name, kind in SAMPLE_TYPES.items():
        cases.append((f"sample-{name}-missing", without(SAMPLE, name), f"field {name!r} missing"))
        cases.append((f"sample-{name}-type", with_field(SAMPLE, name, WRONG[kind]), f"field {name!r} must be"))
    for name, kind in QUESTION_TYPES.items():
        cases.append((f"question-{name}-missing", with_field(SAMPLE, "questions", [without(QUESTION, name)]),
                      f"field {name!r} missing"))
        cases.append((f"question-{name}-type", with_field(SAMPLE, "questions", [with_field(QUESTION, name, WRONG[kind])]),
                      f"field {name!r} must be"))
    for name, kind in DOCUMENT_TYPES.items():
        cases.append((f"document-{name}-missing", with_field(SAMPLE, "documents", [without(DOCUMENT, name)]),
                      f"field {name!r} missing"))
        cases.append((f"document-{name}-type", with_field(SAMPLE, "documents", [with_field(DOCUMENT, name, WRONG[kind])]),
                      f"field {name!r} must be"))
    cases += [
        ("answers-item-type", with_field(SAMPLE, "questions", [with_field(QUESTION, "answers", [1])]), "'answers'[0]"),
        ("positions-item-type", with_field(SAMPLE, "questions", [with_field(QUESTION, "gold_doc_positions", ["1"])]),
               "'gold_doc_positions'[0]"),
        ("positions-item-bool", with_field(SAMPLE, "questions", [with_field(QUESTION, "gold_doc_positions", [True])]),
               "'gold_doc_positions'[0]"),
        ("question-not-object", with_field(SAMPLE, "questions", ["q"]), "expected a JSON object"),
        ("document-not-object", with_field(SAMPLE, "documents", [3]), "expected a JSON object"),
        ("row-list", [SAMPLE], "expected a JSON object, got list"),
        ("row-string", "sample", "expected a JSON object, got str"),
        ("row-number", 3, "expected a JSON object, got int"),
        ("row-null", None, "expected a JSON object, got NoneType"),
    ]
    return cases


SAMPLE_CASES = sample_cases()


@pytest.mark.parametrize(("row", "expected"), [c[1:] for c in SAMPLE_CASES], ids=[c[0] for c in SAMPLE_CASES])
def test_bad_sample_row(tmp_path, capsys, row, expected):
    path = write_rows(tmp_path / "samples.jsonl", [SAMPLE, row])
    line = run(["evaluate", *FAST, "--set", f"samples={path}", "--set", f"out_dir={tmp_path / 'out'}"], capsys)
    assert f"{path}: line 2" in line and expected in line, line


def cut_file(tmp_path: Path) -> Path:
    text = json.dumps(SAMPLE) + "\n" + json.dumps(SAMPLE)[:57]  # a kill in the middle of a write
    (tmp_path / "cut.jsonl").write_text(text, encoding="utf-8")
    return tmp_path / "cut.jsonl"


def not_utf8_file(tmp_path: Path) -> Path:
    (tmp_path / "latin1.jsonl").write_bytes((json.dumps(SAMPLE) + "\n").encode() + '{"id": "caf\xe9"}\n'.encode("latin-1"))
    return tmp_path / "latin1.jsonl"


FILE_CASES = {
    "cut-line": (cut_file, "line 2: not valid JSON"),
    "not-utf8": (not_utf8_file, "line 2: not UTF-8"),
    "missing": (lambda tmp: tmp / "nope.jsonl", "not found"),
    "unreadable": (lambda tmp: tmp, "cannot read: Is a directory"),  # root reads any file; nobody reads a folder
}


@pytest.mark.parametrize("stage", ["evaluate", "rl", "synthesize"])
@pytest.mark.parametrize("case", list(FILE_CASES))
def test_bad_samples_file_in_every_stage_that_reads_one(tmp_path, capsys, stage, case):
    make, expected = FILE_CASES[case]
    path = make(tmp_path)
    out = {"evaluate": "out_dir", "rl": "out_dir", "synthesize": "out"}[stage]
    line = run([stage, *FAST, "--set", f"samples={path}", "--set", f"{out}={tmp_path / 'out'}"], capsys)
    assert str(path) in line and expected in line, line


def test_bad_validation_samples_fail_before_rl_loads_a_model(tmp_path, capsys):
    good = write_rows(tmp_path / "train.jsonl", [SAMPLE])
    bad = write_rows(tmp_path / "val.jsonl", [SAMPLE, with_field(SAMPLE, "num_docs", "1")])
    line = run(["rl", *FAST, "--set", f"samples={good}", "--set", f"val_samples={bad}", "--set", "probe_samples=0",
                "--set", f"out_dir={tmp_path / 'out'}"], capsys)
    assert f"{bad}: line 2" in line and "num_docs" in line


# ---------------------------------------------------------------- SFT examples


EXAMPLE_CASES = {
    "prompt-missing": without(EXAMPLE, "prompt"),
    "completion-missing": without(EXAMPLE, "completion"),
    "prompt-type": with_field(EXAMPLE, "prompt", "text"),
    "completion-empty": with_field(EXAMPLE, "completion", []),
    "message-not-object": with_field(EXAMPLE, "prompt", ["hi"]),
    "message-without-role": with_field(EXAMPLE, "completion", [{"content": "x"}]),
    "content-type": with_field(EXAMPLE, "completion", [{"role": "assistant", "content": 3}]),
    "row-list": [EXAMPLE],
}


@pytest.mark.parametrize("case", list(EXAMPLE_CASES))
def test_bad_sft_example_row(tmp_path, capsys, case):
    path = write_rows(tmp_path / "examples.jsonl", [EXAMPLE, EXAMPLE_CASES[case]])
    line = run(["sft", "--set", "model.name=tiny-random", "--set", f"examples={path}",
                "--set", f"out_dir={tmp_path / 'out'}"], capsys)
    assert f"{path}: line 2" in line, line


@pytest.mark.parametrize("case", list(FILE_CASES))
def test_bad_sft_examples_file(tmp_path, capsys, case):
    make, expected = FILE_CASES[case]
    path = make(tmp_path)
    if case in ("cut-line", "not-utf8"):  # the same damage, on an examples file
        text = path.read_bytes().replace(json.dumps(SAMPLE).encode(), json.dumps(EXAMPLE).encode(), 1)
        path.write_bytes(text)
    line = run(["sft", "--set", "model.name=tiny-random", "--set", f"examples={path}",
                "--set", f"out_dir={tmp_path / 'out'}"], capsys)
    assert str(path) in line and expected in line, line


def test_empty_sft_examples(tmp_path, capsys):
    path = tmp_path / "examples.jsonl"
    path.write_text("\n", encoding="utf-8")
    assert "no examples" in run(["sft", "--set", "model.name=tiny-random", "--set", f"examples={path}",
                                 "--set", f"out_dir={tmp_path / 'out'}"], capsys)


# ---------------------------------------------------------------- benchmark files (prepare)


def hotpot_cases() -> dict[str, tuple[object, str]]:
    record = json.loads(HOTPOT.read_text(encoding="utf-8"))[0]
    cases = {}
    for name, kind in {"_id": str, "question": str, "answer": str, "context": list, "supporting_facts": list}.items():
        cases[f"{name}-missing"] = ([record, without(record, name)], f"field {name!r} missing")
        cases[f"{name}-type"] = ([record, with_field(record, name, WRONG[kind])], f"field {name!r} must be")
    cases["record-not-object"] = ([record, "x"], "expected a JSON object")
    cases["not-a-list"] = (record, "expected a JSON list")
    return cases


HOTPOT_CASES = hotpot_cases()


@pytest.mark.parametrize("case", list(HOTPOT_CASES))
def test_bad_benchmark_record(tmp_path, capsys, case):
    data, expected = HOTPOT_CASES[case]
    path = tmp_path / "hotpot.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    line = run(["prepare", "--set", f"path={path}", "--set", f"out={tmp_path / 's.jsonl'}", "--set", "num_docs=4"],
               capsys)
    assert str(path) in line and expected in line, line


@pytest.mark.parametrize("damage", ["cut", "not-utf8", "missing"])
def test_bad_benchmark_file(tmp_path, capsys, damage):
    path = tmp_path / "hotpot.json"
    raw = HOTPOT.read_bytes()
    if damage == "cut":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "not-utf8":
        path.write_bytes(raw[:100] + b"\xff" + raw[100:])
    line = run(["prepare", "--set", f"path={path}", "--set", f"out={tmp_path / 's.jsonl'}"], capsys)
    assert str(path) in line, line


# ---------------------------------------------------------------- summaries and metrics (compare, plot)


SUMMARY_CASES = [  # (content, what compare says, what plot says)
    (b'{"method": "rag", "groups": {', "not valid JSON", "not valid JSON"),
    (b'{"method": "rag"}', "no key 'groups'", "no 'groups' mapping"),
    (b'{"method": "caf\xe9"}', "not UTF-8", "not UTF-8"),
    (b'{"method": "rag", "groups": {"hotpotqa": {}}}', "not '<benchmark>_<num_docs>'", "not '<benchmark>_<num_docs>'"),
    (b'[1, 2]', "expected a JSON object, got list", "expected a JSON object, got list"),
    (b'{"method": "rag", "groups": [1]}', "'groups' must map group names to objects", "'groups' must map"),
    (b'{"method": "rag", "groups": {"hotpotqa_10": 0.5}}', "'groups' must map group names to objects", "'groups' must map"),
]


@pytest.mark.parametrize("stage", ["compare", "plot"])
@pytest.mark.parametrize("case", range(len(SUMMARY_CASES)))
def test_bad_summary(tmp_path, capsys, case, stage):
    content, for_compare, for_plot = SUMMARY_CASES[case]
    path = tmp_path / "summary.json"
    path.write_bytes(content)
    argv = (["compare", "--set", f"out_csv={tmp_path / 't.csv'}", "--set", f"out_md={tmp_path / 't.md'}"]
            if stage == "compare" else ["plot", "--set", "figure=em_by_length", "--set", f"out={tmp_path / 'f.pdf'}"])
    line = run([*argv, "--set", f"inputs=[{path}]"], capsys)
    expected = for_compare if stage == "compare" else for_plot
    assert str(path) in line and expected in line, line


def test_score_that_is_not_a_number(tmp_path, capsys):
    path = tmp_path / "summary.json"
    path.write_text('{"method": "rag", "groups": {"hotpotqa_10": {"em_macro": "high"}}}', encoding="utf-8")
    line = run(["plot", "--set", "figure=em_by_length", "--set", f"inputs=[{path}]",
                "--set", f"out={tmp_path / 'f.pdf'}"], capsys)
    assert str(path) in line and "'em_macro' must be a number" in line


@pytest.mark.parametrize(("content", "expected"), [
    (b'{"step": 1, "reward/mean": 0.5}\n{"step": 2, "rew', "line 2: not valid JSON"),
    (b'{"step": 1, "reward/mean": 0.5}\n{"reward/mean": 0.5}\n', "line 2 has no key 'step'"),
    (b'{"step": 1, "reward/mean": 0.5}\n[1]\n', "line 2: expected a JSON object"),
    (b'{"step": 1, "reward/mean": 0.5}\n{"step": "\xff"}\n', "line 2: not UTF-8"),
    (b'{"step": 1, "reward/mean": 0.5}\n{"step": 2, "reward/mean": "high"}\n', "line 2: 'step' and 'reward/mean' must be numbers"),
])
def test_bad_metrics_for_plot(tmp_path, capsys, content, expected):
    path = tmp_path / "run" / "metrics.jsonl"
    path.parent.mkdir()
    path.write_bytes(content)
    line = run(["plot", "--set", "figure=train_reward", "--set", f"inputs=[{path}]",
                "--set", f"out={tmp_path / 'f.pdf'}"], capsys)
    assert str(path) in line and expected in line, line


# ---------------------------------------------------------------- config values out of range


SECTION_RANGES = {  # nested sections, shared by several stages
    "env": {"chunk_tokens": 0, "chunk_overlap": -1, "max_chunks": 0, "top_k": 0, "retrieval_token_budget": 0,
            "query_limit": -1, "max_turns": 0},
    "sampling": {"temperature": -0.5, "top_p": 0.0, "top_k": -1, "max_new_tokens": 0},
    "model": {"max_batch_size": 0, "max_model_len": 0, "request_timeout": 0, "max_retries": -1,
              "tensor_parallel_size": 0, "gpu_memory_utilization": 1.5},
    "embedder": {"batch_size": 0, "dim": 0},
}
STAGE_RANGES = {
    "prepare": {"num_docs": 0, "max_group_size": 0, "max_questions": 0, "max_samples": 0, "skip_questions": -1},
    "evaluate": {"batch_size": 0, "max_samples": 0, "judge.max_workers": 0, "judge.max_tokens": 0,
                 "judge.timeout_s": 0, "judge.max_attempts": 0},
    "synthesize": {"min_fraction_correct": 1.5, "batch_size": 0, "max_samples": 0},
    "sft": {"num_train_epochs": 0, "max_steps": 0, "learning_rate": 0, "warmup_steps": -1, "weight_decay": -0.1,
            "per_device_train_batch_size": 0, "gradient_accumulation_steps": 0, "max_length": 0,
            "logging_steps": 0, "save_steps": 0, "save_total_limit": 0},
    "rl": {"steps": -1, "prompts_per_step": 0, "group_size": 0, "micro_batch_size": 0, "checkpoint_every": 0,
           "keep_checkpoints": 0, "val_max_samples": 0, "learning_rate": 0, "warmup_steps": -1, "kl_coef": -1,
           "clip_low": 1.0, "clip_high": -0.1, "max_grad_norm": 0, "validate_every": -1},
    "plot": {"smoothing": 1.0},
}
SECTIONS_OF = {"evaluate": ["env", "sampling", "model", "embedder"], "synthesize": ["env", "sampling", "model", "embedder"],
               "rl": ["env", "sampling", "model", "embedder"], "sft": ["model"]}


def range_cases() -> list[tuple[str, str, object]]:
    cases = [(stage, key, value) for stage, keys in STAGE_RANGES.items() for key, value in keys.items()]
    for stage, sections in SECTIONS_OF.items():
        cases += [(stage, f"{s}.{key}", value) for s in sections for key, value in SECTION_RANGES[s].items()]
    return cases


RANGE_CASES = range_cases()


@pytest.mark.parametrize(("stage", "key", "value"), RANGE_CASES, ids=[f"{s}-{k}" for s, k, _ in RANGE_CASES])
def test_value_out_of_range(capsys, stage, key, value):
    line = run([stage, "--set", f"{key}={value}", "--print-config"], capsys)
    assert f"{key}: expected" in line, line


@pytest.mark.parametrize("overlap", [4000, 5000])
def test_chunk_overlap_must_be_below_chunk_tokens(capsys, overlap):
    line = run(["evaluate", "--set", f"env.chunk_overlap={overlap}"], capsys)
    assert "env.chunk_overlap: expected >= 0 and < chunk_tokens (4000)" in line


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("env.top_k", "three", "env.top_k: expected int"),
    ("batch_size", "1.5", "batch_size: expected int"),
    ("progress", "maybe", "progress: expected true/false"),
    ("env", "3", "env: expected a mapping"),
    ("env.disabled_ops", "update", "env.disabled_ops: expected a list"),
    ("sampling.top_p", "[1]", "sampling.top_p: expected float"),
    ("env.top_kk", "3", "unknown key env.top_kk"),
    ("judge", "{enabled: true}", "judge.base_url and judge.model are required"),
])
def test_wrong_type_or_key(tmp_path, capsys, key, value, expected):
    line = run(["evaluate", "--set", f"samples={tmp_path / 'x.jsonl'}", "--set", f"out_dir={tmp_path}",
                "--set", f"{key}={value}"], capsys)
    assert expected in line, line


# ---------------------------------------------------------------- unknown names and missing paths


@pytest.mark.parametrize(("argv", "expected"), [
    (["prepare", "--set", "benchmark=triviaqa", "--set", "out=x.jsonl"], "benchmark: unknown 'triviaqa'"),
    (["evaluate", "--set", "method=magic", "--set", "samples=x", "--set", "out_dir=o"], "method: unknown 'magic'"),
    (["evaluate", "--set", "ablation=no-brain", "--set", "samples=x", "--set", "out_dir=o"], "ablation: unknown 'no-brain'"),
    (["evaluate", "--set", "model.name=no-such-model", "--set", "samples=x", "--set", "out_dir=o"],
     "model.name: no model folder no-such-model"),
    (["evaluate", "--set", "model.backend=tgi"], "model.backend: expected one of hf, openai, vllm"),
    (["evaluate", "--set", "model.dtype=float8"], "model.dtype: expected one of"),
    (["evaluate", "--set", "embedder.kind=word2vec"], "embedder.kind: expected one of"),
    (["evaluate", "--set", "embedder.name=./no-embedder", "--set", "samples=x", "--set", "out_dir=o"],
     "embedder.name: no model folder ./no-embedder"),
    (["evaluate", "--set", "env.disabled_ops=[teleport]"], "env.disabled_ops: expected ops among"),
    (["synthesize", "--set", "teacher=human"], "teacher: expected oracle or llm"),
    (["rl", "--set", "rollout=sglang"], "rollout: expected hf or vllm"),
    (["rl", "--set", "mixed_precision=fp8"], "mixed_precision: expected no, bf16 or fp16"),
    (["plot", "--set", "figure=pie"], "figure: expected one of"),
    (["convert-model", "--set", "name=./missing-folder"], "name: no model folder ./missing-folder"),
    (["evaluat"], "invalid choice: 'evaluat'"),
    (["evaluate", "--sett", "x=1"], "unrecognized arguments: --sett"),
])
def test_unknown_name(capsys, argv, expected):
    assert expected in run(argv, capsys)


def test_model_folders_that_do_not_exist(tmp_path, capsys):
    samples = write_rows(tmp_path / "s.jsonl", [SAMPLE])
    examples = write_rows(tmp_path / "e.jsonl", [EXAMPLE])
    missing = tmp_path / "results/train/sft/final"
    for argv in (
        ["rl", "--set", f"model.name={missing}", "--set", f"samples={samples}", "--set", f"out_dir={tmp_path}"],
        ["rl", "--set", f"ref_model={missing}", "--set", f"samples={samples}", "--set", f"out_dir={tmp_path}"],
        ["sft", "--set", f"model.name={missing}", "--set", f"examples={examples}", "--set", f"out_dir={tmp_path}"],
        ["evaluate", "--set", f"model.name={missing}", "--set", f"samples={samples}", "--set", f"out_dir={tmp_path}"],
        ["evaluate", "--set", f"model.tokenizer={tmp_path}", "--set", f"samples={samples}", "--set", f"out_dir={tmp_path}"],
        ["synthesize", "--set", f"model.name={missing}", "--set", f"samples={samples}", "--set", f"out={tmp_path}/x"],
    ):
        line = run(argv, capsys)
        assert (str(missing) in line or f"{tmp_path} is a folder but not a model" in line), line


@pytest.mark.parametrize("argv", [
    ["compare", "--set", "inputs=[/nonexistent/summary.json]"],
    ["plot", "--set", "figure=train_reward", "--set", "inputs=[/nonexistent/metrics.jsonl]"],
    ["gains", "--set", "inputs=[/nonexistent/a/predictions.jsonl,/nonexistent/b/predictions.jsonl]"],
    ["prepare", "--set", "path=/nonexistent/hotpot.json", "--set", "out=x.jsonl"],
    ["evaluate", "--config", "/nonexistent/config.yaml"],
])
def test_paths_that_do_not_exist(capsys, argv):
    assert "/nonexistent/" in run(argv, capsys)


# ---------------------------------------------------------------- config files


@pytest.mark.parametrize(("content", "expected"), [
    (b"env:\n  top_k: [3\n", "not valid YAML"),
    (b"- 1\n- 2\n", "top level must be a mapping"),
    (b"run: caf\xe9\n", "line 1: not UTF-8"),
])
def test_bad_config_file(tmp_path, capsys, content, expected):
    path = tmp_path / "config.yaml"
    path.write_bytes(content)
    line = run(["evaluate", "--config", str(path)], capsys)
    assert str(path) in line and expected in line, line


@pytest.mark.parametrize(("argv", "expected"), [
    (["--config", "{env: {top_k: [}"], "inline --config is not valid"),
    (["--config", "{}", "--set", "env.top_k=[1"], "override env.top_k: value is not valid YAML"),
    (["--set", "nonsense"], "must look like key.sub=value"),
    (["--set", "run.x=1"], "run: expected str"),
    (["--set", "env.top_k=1", "--set", "env.top_k.x=1"], "'top_k' is not a section"),
])
def test_bad_inline_config_or_override(capsys, argv, expected):
    assert expected in run(["evaluate", *argv], capsys)


# ---------------------------------------------------------------- real processes


def test_real_processes(tmp_path):
    """Through the installed command: exit 2, stderr is exactly one line, and no torch was imported."""
    cut = cut_file(tmp_path)
    bad_config = tmp_path / "bad.yaml"
    bad_config.write_bytes(b"run: caf\xe9\n")
    cases = [
        ["evaluate", *FAST, "--set", f"samples={cut}", "--set", f"out_dir={tmp_path / 'o'}"],
        ["rl", "--set", f"samples={cut}", "--set", f"out_dir={tmp_path / 'o'}"],
        ["evaluate", "--set", "env.top_k=0"],
        ["evaluate", "--set", "env.chunk_overlap=4000"],
        ["evaluate", "--config", str(bad_config)],
        ["sft", "--set", f"model.name={tmp_path / 'missing'}", "--set", f"examples={cut}", "--set", "out_dir=o"],
        ["evaluat"],
    ]
    for argv in cases:
        result = subprocess.run([ATOMMEM, *argv], capture_output=True, text=True, timeout=120)
        assert result.returncode == 2, (argv, result.stderr)
        assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr, (argv, result.stderr)
    code = "import sys; from atommem.cli import main; main(sys.argv[1:]); print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code, "rl", "--set", f"samples={cut}", "--set", "out_dir=o"],
                            capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "False", "a bad input should fail before torch is imported"


# ---------------------------------------------------------------- degenerate inputs, as real processes
# Well-formed input that leaves nothing to do is an error too: exit 2, one line naming the file and line
# (or the key of the filter), nothing written, and no model loaded.


def run_process(argv: list[str], cwd: Path, alone: bool = True) -> str:
    """Run the installed `atommem` command; assert exit 2 and a clean last stderr line; return it. `alone`:
    that line is all of stderr (the input failed before anything ran, logged or loaded)."""
    result = subprocess.run([ATOMMEM, *argv], capture_output=True, text=True, timeout=300, cwd=cwd)
    assert result.returncode == 2, (argv, result.returncode, result.stderr[-3000:])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 or not alone, (argv, result.stderr[-3000:])
    assert "Traceback" not in result.stderr and lines[-1].startswith(f"atommem {argv[0]}: error: "), result.stderr
    return lines[-1]


def stage_argv(stage: str, samples: Path, out: Path) -> list[str]:
    target = {"evaluate": "out_dir", "rl": "out_dir", "synthesize": "out"}[stage]
    return [stage, *FAST, "--set", f"samples={samples}", "--set", f"{target}={out}"]


def sample(sample_id: str, **fields) -> dict:
    return {**SAMPLE, "id": sample_id, **fields}


DEGENERATE_SAMPLES = {  # case -> (file text, what the line must say after the path)
    "empty-file": ("", ": no samples (the file is empty or holds only blank lines)"),
    "blank-lines": ("\n   \n\t\n", ": no samples (the file is empty or holds only blank lines)"),
    "no-questions": ([SAMPLE, sample("s2", questions=[])],
                     ": line 2: sample 's2' has no questions (field 'questions' is empty)"),
    "no-documents": ([SAMPLE, sample("s2", documents=[])],
                     ": line 2: sample 's2' has no documents (field 'documents' is empty)"),
    "no-answers": ([SAMPLE, sample("s2", questions=[with_field(QUESTION, "answers", [])])],
                   ": line 2: question 'q1' of sample 's2' has no answers"),
    # a blank line between: the message names file lines, not row numbers
    "duplicate-id": ([SAMPLE, sample("s2"), "", sample("s1")], ": lines 1 and 4: duplicate sample id 's1'"),
}


def write_lines(path: Path, content) -> Path:
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_text("".join((json.dumps(r) if r != "" else "") + "\n" for r in content), encoding="utf-8")
    return path


@pytest.mark.parametrize("stage", ["evaluate", "rl", "synthesize"])
@pytest.mark.parametrize("case", list(DEGENERATE_SAMPLES))
def test_degenerate_samples_file(tmp_path, stage, case):
    content, expected = DEGENERATE_SAMPLES[case]
    path = write_lines(tmp_path / "samples.jsonl", content)
    line = run_process(stage_argv(stage, path, tmp_path / "out"), tmp_path)
    assert f"{path}{expected}" in line, line
    assert not (tmp_path / "out").exists()


def test_degenerate_validation_samples(tmp_path):
    good = write_rows(tmp_path / "train.jsonl", [sample(f"s{i}") for i in range(10)])  # more than a probe takes
    empty = write_lines(tmp_path / "val.jsonl", "\n")
    line = run_process(["rl", *FAST, "--set", f"samples={good}", "--set", f"val_samples={empty}",
                        "--set", f"out_dir={tmp_path / 'out'}"], tmp_path)
    assert f"{empty}: no samples" in line
    assert not (tmp_path / "out").exists()


def test_the_same_sample_id_in_two_files(tmp_path):
    a = write_rows(tmp_path / "a.jsonl", [SAMPLE])
    b = write_rows(tmp_path / "b.jsonl", [sample("s2"), SAMPLE])
    line = run_process(["evaluate", *FAST, "--set", f"samples=[{a},{b}]", "--set", f"out_dir={tmp_path / 'out'}"],
                       tmp_path)
    assert f"sample id 's1' occurs twice, in {a} line 1 and in {b} line 2; give each file once" in line, line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("argv", "expected"), [
    (["evaluate", "--set", "max_samples=0"], "max_samples: expected >= 1 or null, got 0"),
    (["synthesize", "--set", "max_samples=0"], "max_samples: expected >= 1 or null, got 0"),
    (["rl", "--set", "val_max_samples=0"], "val_max_samples: expected >= 1 or null, got 0"),
])
def test_a_sample_filter_that_keeps_nothing(tmp_path, argv, expected):
    """The filters over samples (max_samples, val_max_samples) can only keep 0 when set to 0: refused."""
    samples = write_rows(tmp_path / "s.jsonl", [SAMPLE])
    out = "out" if argv[0] == "synthesize" else "out_dir"
    line = run_process([*argv, *FAST, "--set", f"samples={samples}", "--set", f"{out}={tmp_path / 'out'}"], tmp_path)
    assert expected in line, line
    assert not (tmp_path / "out").exists()


# ---- model folders: what from_pretrained needs is checked before anything loads


def model_folder(tmp_path: Path, source: str, keep: set[str], name: str = "model") -> Path:
    """A copy of the tiny model's folder with only the files in `keep`."""
    import shutil

    folder = tmp_path / name
    folder.mkdir()
    for file in Path(source).iterdir():
        if file.name in keep:
            shutil.copy(file, folder / file.name)
    return folder


TOKENIZER = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"}
WEIGHTS = {"config.json", "generation_config.json", "model.safetensors"}


def cut_weights(folder: Path) -> str:
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    return f"{folder / 'model.safetensors'}: unreadable weights (cut: {len(data) // 2} bytes, its header says {len(data)})"


def garbage_weights(folder: Path) -> str:
    (folder / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!" + b"\0" * 64)
    return f"{folder / 'model.safetensors'}: unreadable weights (not a safetensors file (its header does not parse))"


def index_without_shard(folder: Path) -> str:
    (folder / "model.safetensors").unlink()
    (folder / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"lm_head.weight": "model-00001-of-00002.safetensors"}}))
    return f"{folder / 'model-00001-of-00002.safetensors'}: unreadable weights (No such file or directory)"


MODEL_CASES = {  # case -> (files kept, damage, expected message after the key)
    "no-tokenizer": (WEIGHTS, None, "{folder} has no tokenizer (none of tokenizer.json, tokenizer.model, vocab.json, "
                                    "vocab.txt, spiece.model); copy the base model's tokenizer files in, or set "
                                    "model.tokenizer"),
    "no-weights": (TOKENIZER | {"config.json"}, None,
                   "{folder} has no weights (none of model.safetensors, model.safetensors.index.json, "
                   "pytorch_model.bin, pytorch_model.bin.index.json)"),
    "no-config": (TOKENIZER | {"model.safetensors"}, None, "{folder} has no config.json (a tokenizer folder, not a model)"),
    "cut-weights": (WEIGHTS | TOKENIZER, cut_weights, None),
    "garbage-weights": (WEIGHTS | TOKENIZER, garbage_weights, None),
    "missing-shard": (WEIGHTS | TOKENIZER, index_without_shard, None),
}


def model_argv(stage: str, tmp_path: Path, folder: Path) -> list[str]:
    samples = write_rows(tmp_path / "s.jsonl", [SAMPLE])
    if stage == "sft":
        examples = write_rows(tmp_path / "e.jsonl", [EXAMPLE])
        return ["sft", "--set", f"model.name={folder}", "--set", f"examples={examples}",
                "--set", f"out_dir={tmp_path / 'out'}"]
    out = "out" if stage == "synthesize" else "out_dir"
    extra = ["--set", "teacher=llm"] if stage == "synthesize" else []
    return [stage, "--set", "embedder.kind=hashing", "--set", f"model.name={folder}", "--set", f"samples={samples}",
            "--set", f"{out}={tmp_path / 'out'}", *extra]


@pytest.mark.parametrize("stage", ["evaluate", "rl", "sft", "synthesize"])
@pytest.mark.parametrize("case", list(MODEL_CASES))
def test_incomplete_model_folder(tmp_path, tiny_model_dir, stage, case):
    keep, damage, expected = MODEL_CASES[case]
    folder = model_folder(tmp_path, tiny_model_dir, keep)
    if damage is not None:
        expected = damage(folder)
    line = run_process(model_argv(stage, tmp_path, folder), tmp_path)
    assert f"model.name: {expected.format(folder=folder)}" in line, line
    assert not (tmp_path / "out").exists()


def test_what_each_model_key_needs(tmp_path, tiny_model_dir):
    """model.tokenizer needs only a tokenizer, ref_model and a model with its own tokenizer only weights,
    the oracle teacher only a tokenizer; convert-model a whole model."""
    weights_only = model_folder(tmp_path, tiny_model_dir, WEIGHTS, "weights")
    tokenizer_only = model_folder(tmp_path, tiny_model_dir, TOKENIZER, "tokenizer")
    samples = write_rows(tmp_path / "s.jsonl", [SAMPLE])
    line = run_process(["rl", *FAST, "--set", f"ref_model={tokenizer_only}", "--set", f"samples={samples}",
                        "--set", f"out_dir={tmp_path / 'out'}"], tmp_path)
    assert f"ref_model: {tokenizer_only} has no config.json" in line, line
    line = run_process(["evaluate", *FAST, "--set", f"model.tokenizer={weights_only}", "--set", f"samples={samples}",
                        "--set", f"out_dir={tmp_path / 'out'}"], tmp_path)
    assert f"model.tokenizer: {weights_only} has no tokenizer" in line and "set model.tokenizer" not in line, line
    line = run_process(["convert-model", "--set", f"name={weights_only}"], tmp_path)
    assert f"name: {weights_only} has no tokenizer" in line, line
    # the oracle reads only the tokenizer: a tokenizer folder is enough (it fails later, on the empty file)
    empty = write_lines(tmp_path / "empty.jsonl", "")
    line = run_process(["synthesize", "--set", "embedder.kind=hashing", "--set", f"model.name={tokenizer_only}",
                        "--set", f"samples={empty}", "--set", f"out={tmp_path / 'out'}"], tmp_path)
    assert f"{empty}: no samples" in line, line
    assert not (tmp_path / "out").exists()


# ---- other stages: inputs that leave nothing to do


def test_prepare_filters_that_leave_no_question(tmp_path):
    records = json.loads(HOTPOT.read_text(encoding="utf-8"))
    line = run_process(["prepare", "--set", f"path={HOTPOT}", "--set", f"skip_questions={len(records)}",
                        "--set", f"out={tmp_path / 's.jsonl'}"], tmp_path)
    assert f"skip_questions: {len(records)} skips all {len(records)} questions of {HOTPOT}; no sample is left" in line
    empty = tmp_path / "hotpot.json"
    empty.write_text("[]", encoding="utf-8")
    line = run_process(["prepare", "--set", f"path={empty}", "--set", f"out={tmp_path / 's.jsonl'}"], tmp_path)
    assert f"{empty}: no questions (the file holds an empty list)" in line, line
    assert not (tmp_path / "s.jsonl").exists()


def test_compare_filters_that_keep_no_row(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text(json.dumps({"method": "rag", "run": "rag-zs", "groups": {
        "hotpotqa_10": {"em_macro": 0.5, "em_micro": 0.5, "f1_macro": 0.5}}}), encoding="utf-8")
    tables = ["--set", f"out_csv={tmp_path / 't.csv'}", "--set", f"out_md={tmp_path / 't.md'}"]
    line = run_process(["compare", *tables, "--set", f"inputs=[{path}]", "--set", "rows=[memagent]"], tmp_path)
    assert "rows: the filter ['memagent'] keeps none of the inputs' runs and methods (rag, rag-zs)" in line, line
    line = run_process(["compare", *tables, "--set", f"inputs=[{path}]", "--set", "groups=[musique_10]"], tmp_path)
    assert "groups: the filter ['musique_10'] keeps none of the inputs' groups (hotpotqa_10)" in line, line
    path.write_text(json.dumps({"method": "rag", "groups": {}}), encoding="utf-8")
    line = run_process(["compare", *tables, "--set", f"inputs=[{path}]"], tmp_path)
    assert f"{path}: no '<benchmark>_<num_docs>' groups (nothing scored)" in line, line
    assert not list(tmp_path.glob("t.*"))


def test_synthesis_whose_filter_keeps_no_trajectory(tmp_path, tiny_model_dir):
    """The one case found only after a model ran: a random teacher answers nothing right."""
    samples = write_rows(tmp_path / "s.jsonl", [SAMPLE])
    out = tmp_path / "out"
    line = run_process(["synthesize", *FAST, "--set", "teacher=llm", "--set", "min_fraction_correct=1.0",
                        "--set", "sampling.max_new_tokens=4", "--set", "env.max_turns=2",
                        "--set", "tracking.enabled=false", "--set", f"samples={samples}",
                        "--set", f"out={out / 'examples.jsonl'}", "--set", f"stats_out={out / 'stats.json'}"],
                       tmp_path, alone=False)
    assert ("min_fraction_correct: the filter (1) keeps none of the 1 trajectories (best 0.00 of its questions "
            "right); no examples, nothing written") in line, line
    assert not out.exists()


def test_sft_example_that_cannot_fit_max_length(tmp_path):
    """Found by tokenizing, so after the tokenizer loads, but before the model does and before any write."""
    examples = write_rows(tmp_path / "e.jsonl", [EXAMPLE, EXAMPLE])
    line = run_process(["sft", "--set", "model.name=tiny-random", "--set", f"examples={examples}", "--set", "max_length=4",
                        "--set", "tracking.enabled=false", "--set", f"out_dir={tmp_path / 'out'}"], tmp_path, alone=False)
    assert f"{examples}: line 1: a completion of " in line and "leaves no room for its prompt within max_length (4)" in line
    assert not (tmp_path / "out").exists()
