"""Atomic file writes and JSONL helpers: a crashed job never leaves a half-written output.

A file is written to a temporary name beside it, flushed to the disk (fsync), and renamed onto its
name; the folder is then synced so the rename itself survives a power cut. A reader therefore sees the
old file or the new one, never a part. Folders (model weights, checkpoints) go the same way through
`replace_dir`. Append-only logs (partial.jsonl, metrics.jsonl) append whole rows with `append_jsonl` and
are cut back to their last complete row by `truncate_jsonl` before a resume appends to them.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import resource
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from atommem.errors import InputError, WriteError

log = logging.getLogger(__name__)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp creates 0600; outputs should be as readable as any file
    try:
        with writing(path, cleanup=lambda: tmp_path.unlink(missing_ok=True)):
            yield tmp_path
            fsync_file(tmp_path)
            os.replace(tmp_path, path)
            fsync_dir(path.parent)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextmanager
def writing(path: str | os.PathLike, cleanup=None) -> Iterator[None]:
    """Turn a failed write inside the block into a WriteError naming `path` and the cause (disk full, file
    size limit, ...); `cleanup` (say, removing a temp folder) runs first, once the cause is known (a full
    disk has room again after it). Errors that are no write failure pass unchanged."""
    try:
        yield
    except WriteError:
        if cleanup is not None:
            cleanup()
        raise
    except Exception as err:
        cause = write_failure_cause(err, path)
        if cleanup is not None:
            cleanup()
        if cause is None:
            raise
        raise WriteError(f"{path}: write failed: {cause}") from err


_OS_ERROR_IN_TEXT = re.compile(r"\(os error (\d+)\)|\[Errno (\d+)\]")
# a disk with less than this free is called full when a library's error does not say why it failed
FULL_BELOW_BYTES = 16 * 2**20


def write_failure_cause(err: BaseException, path: str | os.PathLike) -> str | None:
    """Why a write failed, in words, or None when `err` is not a failed write. Python's OSError carries its
    errno; safetensors puts "(os error N)" in its text; torch.save only says "unexpected pos", so a full
    disk or a file size limit is then found by looking at the disk and the limit."""
    if isinstance(err, OSError) and err.errno:
        return os.strerror(err.errno)
    match = _OS_ERROR_IN_TEXT.search(str(err))
    if match:
        return os.strerror(int(match.group(1) or match.group(2)))
    if not isinstance(err, RuntimeError | OSError) and type(err).__name__ != "SafetensorError":
        return None
    folder = Path(path)
    while not folder.is_dir() and folder != folder.parent:
        folder = folder.parent
    try:
        stats = os.statvfs(folder)
        free = stats.f_bavail * stats.f_frsize
    except OSError:
        free = None
    if free is not None and free < FULL_BELOW_BYTES:
        return f"{os.strerror(errno.ENOSPC)} ({free} bytes free under {folder})"
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit != resource.RLIM_INFINITY:
        return f"{os.strerror(errno.EFBIG)} (files are limited to {limit} bytes: ulimit -f)"
    return None


def replace_dir(tmp: str | os.PathLike, final: str | os.PathLike) -> None:
    """Publish a fully written folder `tmp` as `final` (replacing it), its files synced to disk first. The
    old `final` is renamed aside and deleted only once the new one has its name."""
    tmp, final = Path(tmp), Path(final)
    with writing(final, cleanup=lambda: shutil.rmtree(tmp, ignore_errors=True)):
        fsync_tree(tmp)
    old = final.with_name(f".{final.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    fsync_dir(final.parent)
    shutil.rmtree(old, ignore_errors=True)


def sync(handle) -> None:
    """Push an open file's writes to the disk (a durable append: it survives a crash of the machine)."""
    handle.flush()
    os.fsync(handle.fileno())


def fsync_file(path: str | os.PathLike) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def fsync_dir(folder: str | os.PathLike) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(folder: str | os.PathLike) -> None:
    for path in Path(folder).rglob("*"):
        if path.is_file():
            fsync_file(path)
    fsync_dir(folder)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        _stall_if_asked(path, handle, text)
        handle.write(text)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def write_jsonl_atomic(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for i, row in enumerate(rows):
            line = json.dumps(row, ensure_ascii=False) + "\n"
            if i == 0:
                _stall_if_asked(path, f, line)
            f.write(line)


def append_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    """Append whole rows and sync them; a kill mid-write can cut only the last line (see truncate_jsonl)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        handle = _Unbuffered(fd)
        size = os.fstat(fd).st_size
        # a failed append is cut back to the rows before it: the file stays as it was
        with writing(path, cleanup=lambda: os.ftruncate(fd, size)):
            _stall_if_asked(path, handle, text)
            handle.write(text)
            sync(handle)
    finally:
        os.close(fd)


class _Unbuffered:
    """Text writes straight to a file descriptor: after a failed write no buffered rest is flushed later."""

    def __init__(self, fd: int):
        self.fd = fd

    def write(self, text: str) -> None:
        view = memoryview(text.encode("utf-8"))
        while view:
            view = view[os.write(self.fd, view):]

    def flush(self) -> None:
        pass

    def fileno(self) -> int:
        return self.fd


def truncate_jsonl(path: str | os.PathLike) -> list[dict]:
    """Cut an append-only JSONL file back to its last complete row (atomically) and return its rows.

    A kill during `append_jsonl` can leave a cut last line; rows appended after it would be hidden from
    every later reader, so it goes before a resume appends. A missing file has no rows.
    """
    path = Path(path)
    if not path.exists():
        return []
    rows, kept = [], 0
    data = path.read_bytes()
    for line in data.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            break
        try:
            row = json.loads(line) if line.strip() else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            break
        if row is not None:
            rows.append(row)
        kept += len(line)
    if kept < len(data):
        log.warning("%s: dropped %d bytes after its last complete row", path, len(data) - kept)
        with atomic_path(path) as tmp:
            tmp.write_bytes(data[:kept])
    return rows


def read_text(path: str | os.PathLike) -> str:
    """A UTF-8 file's text; a missing, unreadable or non-UTF-8 file is an InputError naming it."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except OSError as err:  # a folder, no permission, an I/O error
        raise InputError(f"{path}: cannot read: {err.strerror or err}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line_no = raw.count(b"\n", 0, err.start) + 1
        raise InputError(f"{path}: line {line_no}: not UTF-8 text (byte {err.start})") from None


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """The JSON objects of a JSONL file (blank lines skipped); a bad line is an InputError naming it."""
    return [row for _, row in read_jsonl_lines(path)]


def read_jsonl_lines(path: str | os.PathLike) -> list[tuple[int, dict]]:
    """(line number, JSON object) of each non-blank line of a JSONL file, so later checks can name the line."""
    rows = []
    for line_no, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise InputError(f"{path}: line {line_no}: not valid JSON (a cut or corrupt line?): {err.msg}") from None
        if not isinstance(row, dict):
            raise InputError(f"{path}: line {line_no}: expected a JSON object, got {type(row).__name__}")
        rows.append((line_no, row))
    return rows


def read_json(path: str | os.PathLike) -> Any:
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: line {err.lineno}: not valid JSON: {err.msg}") from None


def read_summary(path: str | os.PathLike) -> dict:
    """An evaluation's summary.json: an object whose `groups` are objects of scores."""
    summary = read_json(path)
    if not isinstance(summary, dict):
        raise InputError(f"{path}: expected a JSON object, got {type(summary).__name__}")
    groups = summary.get("groups", {})
    if not isinstance(groups, dict) or not all(isinstance(g, dict) for g in groups.values()):
        raise InputError(f"{path}: 'groups' must map group names to objects of scores")
    return summary


# Kill tests stop a writer in the middle of its data, at a moment they can wait for instead of guessing it
# with a sleep: ATOMMEM_TEST_STALL_WRITE=NAME:N:MARKER makes the N-th write to a file named NAME write
# half of its text, sync it, create the file MARKER and wait there to be killed.
STALL_ENV = "ATOMMEM_TEST_STALL_WRITE"
_writes: Counter[str] = Counter()


def _stall_if_asked(path: str | os.PathLike, handle, text: str) -> None:
    spec = os.environ.get(STALL_ENV)
    if not spec:
        return
    name, nth, marker = spec.split(":", 2)
    if Path(path).name != name:
        return
    _writes[name] += 1
    if _writes[name] != int(nth):
        return
    handle.write(text[: len(text) // 2])
    sync(handle)
    Path(marker).touch()
    while True:
        time.sleep(1)
