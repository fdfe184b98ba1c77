"""A server the workflow runs for its jobs (paper.yaml's Qwen3 embedding server, `embedder.serve`): started by
the Snakefile's onstart before the first job that calls it, on a GPU of its own, and stopped when the run ends.

Not a Snakemake `service` job: Snakemake runs a service in one group with all its consumers at once, and this
DAG's consumers (synthesize, rl, the evaluations) depend on one another; nor does a service job wait for a
server that takes minutes to load (snakemake/snakemake#2816). The process is stopped three ways: by the
workflow's onsuccess and onerror, at interpreter exit (a Snakemake stopped with Ctrl-C), and by the kernel
when the Snakemake process dies outright (SIGKILL; PR_SET_PDEATHSIG, Linux).
"""

from __future__ import annotations

import atexit
import ctypes
import logging
import os
import signal
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import requests

from atommem.errors import InputError

log = logging.getLogger(__name__)

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
STOP_GRACE_S = 30.0  # a vLLM server exits on SIGTERM within seconds; then SIGKILL
POLL_S = 1.0
LOG_TAIL_CHARS = 2000
_PR_SET_PDEATHSIG = 1


class ServiceError(InputError):
    """A configured server did not come up; the message names its config key and the tail of its log."""


def local_port(base_url: str, key: str) -> int:
    """The port of a server this machine runs: `base_url` must name 127.0.0.1 or localhost and a port."""
    parts = urlsplit(base_url or "")
    if parts.hostname not in LOCAL_HOSTS or not parts.port:
        raise ServiceError(f"config {key}: a server the workflow starts is reached on this machine: the base_url "
                           f"must name 127.0.0.1 or localhost and a port, got {base_url!r}")
    return parts.port


def _die_with_parent():
    """A function for the child to run before exec, after which the kernel sends it SIGTERM when the process
    that started it dies. prctl is looked up here, in the parent: the child, forked from a process with
    threads, only calls it (no loading, no locks)."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    return lambda: prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _answers(base_url: str) -> bool:
    """Whether the server is ready: GET {base_url}/models answers 200 (vLLM answers once the model is loaded)."""
    try:
        return requests.get(base_url.rstrip("/") + "/models", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def _tail(path: Path) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return text[-LOG_TAIL_CHARS:].strip().replace("\n", " | ")


class Service:
    """One server process: `start` returns once it answers at `base_url`; `stop` ends its process group."""

    def __init__(self, key: str, argv: list[str], base_url: str, log_path: str | Path, ready_timeout: float):
        self.key, self.argv, self.base_url = key, argv, base_url
        self.log_path, self.ready_timeout = Path(log_path), ready_timeout
        self.process: subprocess.Popen | None = None

    def start(self) -> Service:
        if _answers(self.base_url):
            raise ServiceError(f"config {self.key}: something already answers at {self.base_url}; stop it, or "
                               "leave serve out to use it")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as out:
            # its own session: stop() signals the whole group (a vLLM server's engine processes too), and the
            # terminal's Ctrl-C reaches Snakemake alone, which then stops it in order
            self.process = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True, preexec_fn=_die_with_parent())
        atexit.register(self.stop)
        log.info("started %s (pid %d): %s; log %s", self.key, self.process.pid, " ".join(self.argv), self.log_path)
        deadline = time.monotonic() + self.ready_timeout
        while not _answers(self.base_url):
            if self.process.poll() is not None:
                raise ServiceError(f"config {self.key}: the server exited with status {self.process.returncode} "
                                   f"before answering at {self.base_url} ({self.log_path}: {_tail(self.log_path)})")
            if time.monotonic() > deadline:
                self.stop()
                raise ServiceError(f"config {self.key}: no answer at {self.base_url} after {self.ready_timeout:.0f} "
                                   f"s (ready_timeout); stopped it ({self.log_path}: {_tail(self.log_path)})")
            time.sleep(POLL_S)
        log.info("%s answers at %s", self.key, self.base_url)
        return self

    def stop(self) -> None:
        """SIGTERM to the server's process group, SIGKILL after STOP_GRACE_S; a no-op once it is gone."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        except ProcessLookupError:
            return
        try:  # whatever of its group outlived it
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        log.info("stopped %s (pid %d)", self.key, process.pid)
