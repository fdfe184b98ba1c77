"""Stale Snakemake locks. A killed `snakemake` leaves `.snakemake/locks/` behind, and the next run
refuses to start until `snakemake --unlock`. The workflow records which process holds the lock when a
run starts; the next run on the same host removes the lock if that process is gone, so running the same
command again is all a user does after a kill. Locks of live processes and of other hosts (a shared
file system) are left alone.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

from atommem.io import write_json_atomic

LOCK_DIR = Path(".snakemake/locks")
OWNER_FILE = "atommem-owner.json"  # beside Snakemake's own lock files, removed with them


def record_lock_owner(lock_dir: Path = LOCK_DIR) -> None:
    """Call once the lock is held (the workflow's onstart): this process owns it."""
    write_json_atomic(Path(lock_dir) / OWNER_FILE, {"host": socket.gethostname(), "pid": os.getpid()})


def remove_stale_lock(lock_dir: Path = LOCK_DIR) -> str | None:
    """Remove the lock if its recorded owner ran on this host and is gone; say what was removed."""
    owner_file = Path(lock_dir) / OWNER_FILE
    try:
        owner = json.loads(owner_file.read_text(encoding="utf-8"))
        host, pid = owner["host"], int(owner["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # no owner recorded (or unreadable): leave it to `snakemake --unlock`
    if host != socket.gethostname() or _is_snakemake_running(pid):
        return None
    shutil.rmtree(lock_dir, ignore_errors=True)
    return f"removed the stale lock of snakemake process {pid}, which is no longer running"


def _is_snakemake_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():  # Linux: a reused pid belongs to another program
        return b"snakemake" in cmdline.read_bytes()
    return True
