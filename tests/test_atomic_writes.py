"""Writes are atomic (temporary file, fsync, rename): a writer killed at any moment leaves the old file or the
new one, never a part; an append cut by a kill is trimmed back to its last complete row."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from atommem import io
from atommem.io import STALL_ENV, append_jsonl, read_json, truncate_jsonl, write_json_atomic, write_text_atomic

WRITER = """
import sys
from atommem.io import write_json_atomic
path, size = sys.argv[1], int(sys.argv[2])
version = 0
while True:
    version += 1
    write_json_atomic(path, {"version": version, "payload": str(version) * size})
"""
APPENDER = """
import sys
from atommem.io import append_jsonl
append_jsonl(sys.argv[1], [{"row": i, "payload": "x" * 5000} for i in range(int(sys.argv[2]))])
"""


def wait_for(condition, process: subprocess.Popen, timeout: float = 60) -> None:
    """Poll until `condition()`; fail if the process ends first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"process ended before the awaited state: {process.stderr.read().decode()[-2000:]}")
        assert time.monotonic() < deadline, "state not reached in time"
        time.sleep(0.02)


def python(code: str, *args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stderr=subprocess.PIPE,
                            env={**os.environ, **(env or {})})


def test_a_write_is_synced_before_its_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(io.os, "fsync", lambda fd: (events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"))),
                                                    real_fsync(fd)))
    monkeypatch.setattr(io.os, "replace", lambda a, b: (events.append(("replace", str(a))), real_replace(a, b)))
    target = tmp_path / "out.json"
    write_json_atomic(target, {"a": 1})
    (fsync_file, tmp), (rename, renamed), (fsync_dir, folder) = events
    assert (fsync_file, rename, fsync_dir) == ("fsync", "replace", "fsync")
    assert tmp == renamed and Path(tmp).parent == tmp_path and tmp != str(target)  # the temp file is synced,
    assert folder == str(tmp_path)  # then renamed, then the rename itself synced
    assert read_json(target) == {"a": 1}


def test_a_writer_killed_mid_write_leaves_the_old_file(tmp_path):
    target = tmp_path / "summary.json"
    write_json_atomic(target, {"version": "old"})
    marker = tmp_path / "stalled"
    writer = python("from atommem.io import write_json_atomic; import sys; "
                    "write_json_atomic(sys.argv[1], {'version': 'new', 'payload': 'y' * 100000})", target,
                    env={STALL_ENV: f"summary.json:1:{marker}"})
    wait_for(marker.exists, writer)  # half of the new text is on disk, in the temporary file
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert read_json(target) == {"version": "old"}
    leftovers = list(tmp_path.glob(".summary.json.*.tmp"))
    assert len(leftovers) == 1 and leftovers[0].stat().st_size > 0  # the cut text never had the real name
    write_json_atomic(target, {"version": "new"})
    assert read_json(target) == {"version": "new"}


@pytest.mark.parametrize("seed", range(5))
def test_a_writer_killed_at_a_random_moment_leaves_a_whole_file(tmp_path, seed):
    target = tmp_path / "state.json"
    writer = python(WRITER, target, 200_000)
    rng = random.Random(seed)
    versions_seen = rng.randint(1, 20)
    wait_for(lambda: target.exists() and read_json(target)["version"] >= versions_seen, writer)
    time.sleep(rng.uniform(0, 0.05))  # a random point of a later write; any point must be safe
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    data = read_json(target)  # parses: the old or the new file
    assert data["payload"] == str(data["version"]) * 200_000


def test_an_append_cut_by_a_kill_is_trimmed_to_its_last_complete_row(tmp_path):
    path = tmp_path / "partial.jsonl"
    append_jsonl(path, [{"row": "before"}])
    marker = tmp_path / "stalled"
    appender = python(APPENDER, path, 3, env={STALL_ENV: f"partial.jsonl:1:{marker}"})
    wait_for(marker.exists, appender)
    appender.send_signal(signal.SIGKILL)
    appender.wait()
    written = path.read_text()
    assert not written.endswith("\n")  # the kill did cut a row
    complete = written.count("\n")
    rows = truncate_jsonl(path)
    assert len(rows) == complete and rows[0] == {"row": "before"}
    assert path.read_text() == "".join(json.dumps(r) + "\n" for r in rows)
    append_jsonl(path, [{"row": "after"}])  # rows appended after a resume are read again
    assert truncate_jsonl(path)[-1] == {"row": "after"}


def test_truncate_keeps_the_rows_before_a_cut_line_in_the_middle(tmp_path):
    """A file written by the old append-after-a-cut-line code: rows after the cut line go with it."""
    path = tmp_path / "partial.jsonl"
    path.write_text('{"a": 1}\n{"a": 2\n{"a": 3}\n')
    assert truncate_jsonl(path) == [{"a": 1}]
    assert path.read_text() == '{"a": 1}\n'
    assert truncate_jsonl(tmp_path / "missing.jsonl") == []


def test_text_writes_are_atomic_too(tmp_path):
    write_text_atomic(tmp_path / "a.md", "table")
    assert (tmp_path / "a.md").read_text() == "table" and len(list(tmp_path.iterdir())) == 1
