"""What a run needs before its first job, checked before any job starts, one line each naming the config key:
benchmark files present (the full dev sets where data.allow_sample is false) at parse time; servers that
answer and the GPUs the jobs ask for once the DAG is known (onstart, never in dry-runs)."""

from __future__ import annotations

import socket
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml
from test_workflow import ENV, SNAKEMAKE, snakemake, workdir

from atommem.workflow_checks import gpu_error, server_errors, unreachable, visible_gpus

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


def snakemake_with(env: dict, *args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**ENV, **env})


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Answers(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(404)  # any answer means a server is there
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_server_counts_as_reachable_when_it_answers_at_all():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert unreachable(f"http://127.0.0.1:{server.server_port}/v1") is None
        assert server_errors({"model.base_url": f"http://127.0.0.1:{server.server_port}/v1"}) == []
    finally:
        server.shutdown()
        server.server_close()
    url = f"http://127.0.0.1:{closed_port()}/v1"
    assert server_errors({"embedder.base_url": url}) == [
        f"config embedder.base_url: no server answers at {url} (GET {url}/models: ConnectionError); "
        "start it, or fix the URL"]


def test_gpus_are_counted_as_launch_sh_claims_them(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,3")
    assert visible_gpus() == (2, "CUDA_VISIBLE_DEVICES='0,3'")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus()[0] == 0
    assert gpu_error({"resources.rl.gpu": 8}, 8, "nvidia-smi -L") is None
    line = gpu_error({"resources.rl.gpu": 8, "embedder.serve.gpu": 1}, 8, "nvidia-smi -L")
    assert line.startswith("config resources.rl.gpu: 8 + embedder.serve.gpu: 1 GPUs at once, but this machine "
                           "has 8 (nvidia-smi -L)")


def test_unmet_prerequisites_stop_a_run_before_its_first_job(tmp_path):
    """A real run (no dry-run) of the CI config with an embedder and a judge on closed ports and a GPU
    training job, on this CPU machine: one line per unmet need, and no job starts."""
    embedder, judge = (f"http://127.0.0.1:{closed_port()}/v1" for _ in range(2))
    needs = {"embedder": {"kind": "openai", "base_url": embedder},
             "evaluate": {"judge": {"enabled": True, "base_url": judge, "model": "judge"}},
             "resources": {"sft": {"gpu": 2}}}
    run = workdir(tmp_path / "run")
    no_gpu = {"CUDA_VISIBLE_DEVICES": ""}
    result = snakemake_with(no_gpu, "--cores", "1", "--configfile", "config/test.yaml", overlay(tmp_path, needs),
                            cwd=run)
    assert result.returncode != 0
    message = result.stdout + result.stderr
    assert f"config embedder.base_url: no server answers at {embedder}" in message, message
    assert f"config evaluate.judge.base_url: no server answers at {judge}" in message, message
    assert ("config resources.sft.gpu: 2 GPUs at once, but this machine has 0 (CUDA_VISIBLE_DEVICES='')"
            in message), message
    assert not (run / "results").exists(), "a job ran"
    assert not list((run / ".snakemake").glob("locks/*")), "the failed run left its lock"

    # CPU mode (--resources gpu=0 caps every job's gpu at 0): only the servers are missing
    result = snakemake_with(no_gpu, "--cores", "1", "--resources", "gpu=0", "--configfile", "config/test.yaml",
                            overlay(tmp_path, needs), cwd=run)
    message = result.stdout + result.stderr
    assert result.returncode != 0 and "embedder.base_url" in message and "GPUs at once" not in message, message
