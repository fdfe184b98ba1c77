"""What a run needs before its first job, checked before any job starts, one line each naming the config key:
benchmark files present (the full dev sets where data.allow_sample is false) at parse time; servers that
answer and the GPUs the jobs ask for once the DAG is known (onstart, never in dry-runs); the embedding server
the workflow starts itself (embedder.serve), served to the jobs and stopped at the end."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from test_workflow import ENV, REPO, SNAKEMAKE, snakemake, workdir

from atommem.workflow_checks import gpu_error, server_errors, unreachable, visible_gpus
from atommem.workflow_services import Service, ServiceError

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


SERVER = REPO / "tests" / "embedding_server.py"


def served_embedder(port: int, *, delay: float = 0.0, command: str | None = None, timeout: int = 60) -> dict:
    """An overlay: an openai embedder the workflow starts itself, on CPU (tests/embedding_server.py)."""
    command = command or f"{sys.executable} {SERVER} --port {{port}} --name {{name}} --startup-delay {delay}"
    return {"embedder": {"kind": "openai", "name": "test-embedder", "base_url": f"http://127.0.0.1:{port}/v1",
                         "serve": {"command": command, "gpu": 0, "ready_timeout": timeout}}}


def server_pid(log: Path) -> int:
    return int(re.search(r"^pid (\d+)$", log.read_text(), re.M).group(1))


def gone(pid: int, within: float = 30.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


@pytest.mark.slow
def test_the_workflow_serves_the_embedder_to_its_jobs_and_stops_it(tmp_path):
    """A real run of the CI config's synthesis (oracle episodes over the memory store) with the embedder
    served over HTTP by a server the workflow starts (slow to come up: 2 s) and stops once the run is done."""
    port = closed_port()
    run = workdir(tmp_path / "run")
    result = snakemake("results/sft_data/examples.jsonl", "--cores", "1", "--configfile", "config/test.yaml",
                       overlay(tmp_path, served_embedder(port, delay=2)), cwd=run)
    assert result.returncode == 0, result.stdout + result.stderr
    log = run / "results/logs/embedder_server.log"
    assert "starting the embedding server" in result.stderr and "stopped the embedding server" in result.stderr
    assert re.search(r"^embeddings: \d+ inputs$", log.read_text(), re.M), log.read_text()  # the job embedded
    assert gone(server_pid(log)) and unreachable(f"http://127.0.0.1:{port}/v1")

    # nothing left to run: no server either
    result = snakemake("results/sft_data/examples.jsonl", "--cores", "1", "--configfile", "config/test.yaml",
                       overlay(tmp_path, served_embedder(port)), cwd=run)
    assert result.returncode == 0 and "starting the embedding server" not in result.stderr, result.stderr


def test_a_server_that_dies_at_start_stops_the_run_with_its_log(tmp_path):
    crash = f"{sys.executable} -c \"print('no model at {{name}}'); raise SystemExit(3)\""
    run = workdir(tmp_path / "run")
    result = snakemake("--cores", "1", "--configfile", "config/test.yaml",
                       overlay(tmp_path, served_embedder(closed_port(), command=crash)), cwd=run)
    message = result.stdout + result.stderr
    assert result.returncode != 0
    assert "config embedder.serve: the server exited with status 3 before answering" in message, message
    assert "no model at test-embedder" in message, message
    assert not (run / "results/data").exists(), "a job ran"


def test_the_server_dies_with_a_killed_snakemake(tmp_path):
    """SIGKILL leaves Snakemake no handler to run: the kernel ends the server it started (PR_SET_PDEATHSIG)."""
    run = workdir(tmp_path / "run")
    process = subprocess.Popen(
        [SNAKEMAKE, "--cores", "1", "--configfile", "config/test.yaml",
         overlay(tmp_path, served_embedder(closed_port(), delay=120, timeout=300))],
        cwd=run, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = run / "results/logs/embedder_server.log"
    try:
        deadline = time.monotonic() + 120
        while not (log.exists() and "pid" in log.read_text()):
            assert time.monotonic() < deadline and process.poll() is None, "the server never started"
            time.sleep(0.5)
        process.kill()  # while it waits for the server to answer: no job has started
        process.wait()
        assert gone(server_pid(log))
    finally:
        if process.poll() is None:
            process.kill()


def test_a_served_embedder_is_checked_at_parse_time(tmp_path):
    remote = served_embedder(8001)
    remote["embedder"]["base_url"] = "http://gpu-node:8001/v1"
    result = snakemake("-n", "--cores", "1", "--configfile", overlay(tmp_path, remote), cwd=workdir(tmp_path / "run"))
    assert "config embedder.base_url: a server the workflow starts is reached on this machine" in failure_lines(result)


def test_a_service_waits_for_its_server_and_stops_its_whole_group(tmp_path):
    port = closed_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    argv = [sys.executable, str(SERVER), "--port", str(port), "--name", "e", "--startup-delay", "1"]
    service = Service("embedder.serve", argv, base_url, tmp_path / "server.log", ready_timeout=60).start()
    assert unreachable(base_url) is None  # start() returned once it answered
    pid = server_pid(tmp_path / "server.log")
    service.stop()
    assert gone(pid, within=5) and unreachable(base_url)
    service.stop()  # a second stop (onerror, then atexit) does nothing

    slow = [sys.executable, str(SERVER), "--port", str(port), "--name", "e", "--startup-delay", "60"]
    with pytest.raises(ServiceError, match=r"config embedder\.serve: no answer at .* after 2 s \(ready_timeout\)"):
        Service("embedder.serve", slow, base_url, tmp_path / "slow.log", ready_timeout=2).start()
    assert gone(server_pid(tmp_path / "slow.log"), within=5)
