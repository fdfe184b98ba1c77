"""What produced a resumable output, so a resume never continues someone else's work.

A recipe that resumes (evaluation partials, SFT and RL checkpoints) calls `claim_output_dir` before it
looks for earlier work. The fingerprint is the resolved config minus output paths and tracking (they do
not change the work), plus the identity of every input: a file's content hash, a folder's file names,
sizes and hashes (large weight files by size and modification time, which a rewrite changes). When the
folder's recorded fingerprint differs, its earlier work is renamed to `<name>.stale-<time>` (kept for
inspection, never mixed in) and the run starts afresh. The resolved config is written as `config.yaml`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import yaml

from atommem.io import read_json, write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)

FINGERPRINT_FILE = "fingerprint.json"
CONFIG_FILE = "config.yaml"
# config keys that never change the work: where results go, how they are tracked, progress bars
NOT_THE_WORK = ("out_dir", "tracking", "progress")
# files above this size are identified by size and mtime: hashing model weights on every start is slow
HASH_LIMIT_BYTES = 64 * 2**20


def file_identity(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    stat = path.stat()
    if stat.st_size > HASH_LIMIT_BYTES:
        return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    return {"size": stat.st_size, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def input_identity(path: str | os.PathLike | None) -> Any:
    """A file's identity, a folder's (every file in it), or the name itself when it is no local path
    (a hub model id: its revision is the hub's business)."""
    if path is None:
        return None
    path = Path(path)
    if path.is_file():
        return file_identity(path)
    if path.is_dir():
        return {str(p.relative_to(path)): file_identity(p) for p in sorted(path.rglob("*")) if p.is_file()}
    return {"name": str(path)}


def fingerprint(config: dict, inputs: dict[str, str | os.PathLike | list | None]) -> dict:
    """{"config": config without NOT_THE_WORK keys, "inputs": {name: identity}}."""
    work = {key: value for key, value in config.items() if key not in NOT_THE_WORK}
    identities = {
        name: [input_identity(p) for p in paths] if isinstance(paths, (list, tuple)) else input_identity(paths)
        for name, paths in inputs.items()
    }
    # through JSON so tuples and lists compare equal after a round trip through the file
    return json.loads(json.dumps({"config": work, "inputs": identities}, sort_keys=True, default=str))


def claim_output_dir(out_dir: str | os.PathLike, config: dict, inputs: dict, resumable: list[str]) -> bool:
    """Make `out_dir` hold only work of this fingerprint; return True if earlier work was moved aside.

    `resumable` names the entries of `out_dir` a resume would continue from (e.g. "partial.jsonl",
    "checkpoints"). Call it on one process only (the main one) before any process looks for them.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    current = fingerprint(config, inputs)
    recorded_path = out_dir / FINGERPRINT_FILE
    recorded = read_json(recorded_path) if recorded_path.exists() else None
    existing = [name for name in resumable if _holds_work(out_dir / name)]
    moved = False
    if existing and recorded != current:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for name in existing:
            os.replace(out_dir / name, _unused(out_dir / f"{name}.stale-{stamp}"))
        why = "no fingerprint" if recorded is None else f"changed: {', '.join(_changed_keys(recorded, current))}"
        log.warning("%s: earlier work (%s) is from another config or inputs (%s); moved aside as *.stale-%s, "
                    "starting afresh", out_dir, ", ".join(existing), why, stamp)
        moved = True
    write_json_atomic(recorded_path, current)
    plain = json.loads(json.dumps(config, default=str))  # tuples to lists: safe YAML
    write_text_atomic(out_dir / CONFIG_FILE, yaml.safe_dump(plain, sort_keys=False, allow_unicode=True))
    return moved


def _unused(path: Path) -> Path:
    """`path`, or `path-1`, `path-2`, ... if taken (two restarts within one second)."""
    candidate, n = path, 0
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}-{n}")
    return candidate


def _holds_work(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0 or path.is_dir() and any(path.iterdir())


def _changed_keys(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted names of the leaves that differ (at most a few, for the log line)."""
    changed = []
    for key in sorted(set(old) | set(new), key=str):
        a, b = old.get(key), new.get(key)
        if (key in old) != (key in new):  # a key added or removed, even one whose value is None
            changed.append(f"{prefix}{key}")
        elif isinstance(a, dict) and isinstance(b, dict) and prefix.count(".") < 2:
            changed += _changed_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            changed.append(f"{prefix}{key}")
    return changed[:5]
