"""What a workflow run needs from the machine, checked once before its first job (the Snakefile's onstart,
after the DAG is known, never in dry-runs): the servers its jobs call answer, and the machine has the GPUs its
jobs ask for. Each failure is one line naming the config key; `PrerequisiteError` carries them all.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import requests

from atommem.errors import InputError

# long enough for a loaded server on another host, short enough that a run with three servers down
# reports within a minute
PROBE_TIMEOUT_S = 10.0


class PrerequisiteError(InputError):
    """The machine lacks what the run's jobs need; one line per missing thing, each naming its config key."""


def unreachable(base_url: str, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """None when an HTTP server answers at `base_url` (any status: it is there, and a job's own request says
    what it thinks of it), else why nothing answered."""
    url = base_url.rstrip("/") + "/models"
    try:
        requests.get(url, timeout=timeout)
    except requests.RequestException as err:
        return f"GET {url}: {type(err).__name__}"
    return None


def server_errors(servers: dict[str, str]) -> list[str]:
    """One line per config key (e.g. 'embedder.base_url') whose server does not answer."""
    lines = []
    for key, url in servers.items():
        why = unreachable(url)
        if why:
            lines.append(f"config {key}: no server answers at {url} ({why}); start it, or fix the URL")
    return lines


def visible_gpus() -> tuple[int, str]:
    """How many GPUs this machine's jobs can claim, and how that was counted: CUDA_VISIBLE_DEVICES when set
    (a scheduler's allocation), else the devices `nvidia-smi -L` lists, as workflow/scripts/launch.sh does."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return len([d for d in env.split(",") if d.strip()]), f"CUDA_VISIBLE_DEVICES={env!r}"
    if shutil.which("nvidia-smi") is None:
        return 0, "no nvidia-smi on PATH"
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return 0, "nvidia-smi -L did not answer in 60 s"
    if listing.returncode != 0:
        return 0, f"nvidia-smi -L failed: {(listing.stderr or listing.stdout).strip()[:200]}"
    return sum(line.startswith("GPU ") for line in listing.stdout.splitlines()), "nvidia-smi -L"


def gpu_error(needed: dict[str, int], available: int, counted_by: str) -> str | None:
    """`needed`: config key -> GPUs it holds at once (the largest job's resources.<group>.gpu, the embedder
    server's embedder.serve.gpu); None when `available` covers their sum."""
    total = sum(needed.values())
    if total <= available:
        return None
    asked = " + ".join(f"{key}: {n}" for key, n in needed.items() if n)
    return (f"config {asked} GPUs at once, but this machine has {available} ({counted_by}); run on a node with "
            f"{total}, or cap the jobs with --resources gpu=N (gpu=0: CPU mode)")


def check(servers: dict[str, str], gpus_needed: dict[str, int]) -> None:
    """Raise PrerequisiteError with one line per failed check (servers first); GPUs are counted only when a
    job needs one."""
    lines = server_errors(servers)
    if sum(gpus_needed.values()) > 0:
        available, counted_by = visible_gpus()
        line = gpu_error(gpus_needed, available, counted_by)
        if line:
            lines.append(line)
    if lines:
        raise PrerequisiteError("\n".join(lines))
