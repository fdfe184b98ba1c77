"""The stale-lock check that lets a killed workflow run again with the same command."""

import json
import os
import socket
import subprocess
import sys

from atommem.workflow_lock import OWNER_FILE, record_lock_owner, remove_stale_lock


def snakemake_lock(lock_dir, owner):
    lock_dir.mkdir(parents=True)
    (lock_dir / "0.input.lock").write_text("results/data/hotpotqa_10.jsonl\n")
    (lock_dir / OWNER_FILE).write_text(json.dumps(owner))


def finished_pid():
    """The pid of a process that has exited (and was reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_lock_of_a_dead_process_on_this_host_is_removed(tmp_path):
    lock_dir = tmp_path / "locks"
    snakemake_lock(lock_dir, {"host": socket.gethostname(), "pid": finished_pid()})
    message = remove_stale_lock(lock_dir)
    assert "no longer running" in message
    assert not lock_dir.exists()


def test_lock_of_a_running_snakemake_is_kept(tmp_path):
    lock_dir = tmp_path / "locks"
    # a live process whose command line names snakemake, as the real owner's does
    code = "import time; print('ready', flush=True); time.sleep(30)"
    proc = subprocess.Popen([sys.executable, "-c", code, "snakemake"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"  # exec'd: its command line is the new one
        snakemake_lock(lock_dir, {"host": socket.gethostname(), "pid": proc.pid})
        assert remove_stale_lock(lock_dir) is None
        assert (lock_dir / "0.input.lock").exists()
    finally:
        proc.kill()
        proc.wait()


def test_a_reused_pid_does_not_keep_the_lock(tmp_path):
    """On Linux a live pid whose command line is not snakemake's belongs to another program."""
    lock_dir = tmp_path / "locks"
    snakemake_lock(lock_dir, {"host": socket.gethostname(), "pid": os.getpid()})  # pytest, not snakemake
    expected_kept = not os.path.exists(f"/proc/{os.getpid()}/cmdline")
    assert (remove_stale_lock(lock_dir) is None) == expected_kept


def test_lock_of_another_host_or_without_owner_is_kept(tmp_path):
    lock_dir = tmp_path / "locks"
    snakemake_lock(lock_dir, {"host": "another-node", "pid": finished_pid()})
    assert remove_stale_lock(lock_dir) is None
    (lock_dir / OWNER_FILE).unlink()
    assert remove_stale_lock(lock_dir) is None
    (lock_dir / OWNER_FILE).write_text("{not json")
    assert remove_stale_lock(lock_dir) is None
    assert (lock_dir / "0.input.lock").exists()


def test_record_lock_owner_names_this_process(tmp_path):
    record_lock_owner(tmp_path / "locks")
    owner = json.loads((tmp_path / "locks" / OWNER_FILE).read_text())
    assert owner == {"host": socket.gethostname(), "pid": os.getpid()}
