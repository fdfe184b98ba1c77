"""What a run needs before its first job, checked before any job starts, one line each naming the config key:
benchmark files present (the full dev sets where data.allow_sample is false)."""

from __future__ import annotations

import pytest
import yaml
from test_workflow import snakemake, workdir

SAMPLE_2WIKI = "data/benchmarks/2wikimultihopqa/dev.sample.json"
NO_DOWNLOAD = {"url": None, "sha256": None, "archive": None, "member": None}


def overlay(tmp_path, content: dict) -> str:
    path = tmp_path / "overlay.yaml"
    path.write_text(yaml.safe_dump(content))
    return str(path)


def failure_lines(result) -> str:
    assert result.returncode != 0, result.stdout + result.stderr
    message = result.stdout + result.stderr
    assert "Job stats" not in message, message  # no job was planned, let alone run
    return message


def test_paper_config_refuses_a_shipped_sample(tmp_path):
    """paper.yaml asks for the full dev sets (data.allow_sample: false): pointing a benchmark back at the
    shipped sample is a parse-time error naming the key, the file and the config that forbids samples."""
    back_to_sample = {"data": {"sources": {"2wikimultihopqa": {"path": SAMPLE_2WIKI, **NO_DOWNLOAD}}}}
    result = snakemake("-n", "--cores", "1", "--configfile", "config/paper.yaml", overlay(tmp_path, back_to_sample),
                       cwd=workdir(tmp_path / "run"))
    message = failure_lines(result)
    assert (f"config data.sources.2wikimultihopqa.path: {SAMPLE_2WIKI} is a shipped sample, but "
            "data.allow_sample is false (in config/paper.yaml)") in message, message


def test_samples_run_where_the_config_allows_them(tmp_path):
    """The same overlay with data.allow_sample: true plans the DAG (what paper-cpu.yaml does for CI)."""
    allowed = {"data": {"allow_sample": True, "sources": {"2wikimultihopqa": {"path": SAMPLE_2WIKI, **NO_DOWNLOAD}}}}
    result = snakemake("-n", "--cores", "1", "--resources", "gpu=8", "--configfile", "config/paper.yaml",
                       overlay(tmp_path, allowed), cwd=workdir(tmp_path / "run"))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "source, line",
    [
        ({"path": "data/none.jsonl"}, "config data.sources.musique.path: no file data/none.jsonl, and no "
                                      "data.sources.musique.url to download it from"),
        ({"path": "data/none.jsonl", "url": "http://127.0.0.1:9/musique.zip", "member": "dev.jsonl"},
         "config data.sources.musique: archive and member go together, with a url"),
        ({"path": "data/none.jsonl", "url": "http://127.0.0.1:9/dev.jsonl", "sha256": "abc"}, "sha256"),
    ],
)
def test_an_unreadable_data_source_fails_before_any_job(tmp_path, source, line):
    result = snakemake("-n", "--cores", "1", "--configfile", overlay(tmp_path, {"data": {"sources": {"musique": source}}}),
                       cwd=workdir(tmp_path / "run"))
    assert line in failure_lines(result)
