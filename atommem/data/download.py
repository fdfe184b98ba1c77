"""Download a benchmark file (e.g. the full official dev set) with checksum verification, or one file
out of a release archive (2WikiMultihopQA and MuSiQue ship their dev sets inside zip files)."""

from __future__ import annotations

import fcntl
import hashlib
import logging
import shutil
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path

import requests
from tqdm import tqdm

from atommem.errors import InputError
from atommem.io import atomic_path

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20


class ChecksumError(InputError):
    """A file's SHA-256 differs from the expected one."""


class ArchiveError(InputError):
    """A downloaded archive is no zip file or lacks the member asked for."""


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def _exclusive(dest: Path):
    """Hold a lock on `dest`: the workflow's prepare jobs of one benchmark (one per document count) start
    together, and the first downloads while the others wait and then find the file there. The lock file
    lives in the temporary folder, so nothing but `dest` appears beside it; jobs on other hosts do not
    share it and download side by side, each renaming a whole file onto `dest`."""
    key = hashlib.sha256(str(dest.resolve()).encode()).hexdigest()[:16]
    with open(Path(tempfile.gettempdir()) / f"atommem-fetch-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def fetch(url: str, dest: str | Path, sha256: str | None = None, timeout: float = 60.0) -> Path:
    """Download `url` to `dest` and return `dest`.

    Streams into a temporary file next to `dest`, checks the SHA-256 if given and only then renames it
    onto `dest`, so an interrupted or corrupt download never leaves a file at `dest`. If `dest` already
    exists it is kept when its checksum matches (or when no checksum is given); a mismatch is an error
    rather than a silent re-download, since it means the file was changed by hand. Without a checksum
    the download is unverified: a warning says so and gives the file's sha256 to pin.
    """
    dest = Path(dest)
    with _exclusive(dest):
        return _fetch(url, dest, sha256, timeout)


def _fetch(url: str, dest: Path, sha256: str | None, timeout: float) -> Path:
    expected = sha256.lower() if sha256 else None
    if dest.exists():
        if expected is None:
            log.info("%s exists and no sha256 is configured; not downloading again", dest)
            return dest
        got = sha256_of(dest)
        if got != expected:
            raise ChecksumError(f"{dest}: exists with sha256 {got}, expected {expected}; delete it to download again")
        log.info("%s exists with the expected sha256; skipping download", dest)
        return dest

    log.info("downloading %s -> %s", url, dest)
    digest = hashlib.sha256()
    with requests.get(url, stream=True, timeout=timeout) as response:
        response.raise_for_status()
        total = int(response.headers.get("Content-Length", 0)) or None
        with atomic_path(dest) as tmp:
            with open(tmp, "wb") as f, tqdm(total=total, unit="B", unit_scale=True, desc=dest.name) as bar:
                for block in response.iter_content(CHUNK_BYTES):
                    f.write(block)
                    digest.update(block)
                    bar.update(len(block))
            got = digest.hexdigest()
            if expected is not None and got != expected:
                raise ChecksumError(f"{dest}: downloaded from {url} has sha256 {got}, expected {expected}")
    if expected is None:
        log.warning("%s: downloaded from %s without a sha256 to check it against; it has sha256 %s: "
                    "set it in the config to pin this file", dest, url, got)
    log.info("wrote %s (sha256 %s)", dest, got)
    return dest


def fetch_member(url: str, archive: str | Path, member: str, dest: str | Path, sha256: str | None = None,
                 timeout: float = 60.0) -> Path:
    """Download the zip archive at `url` to `archive` (as `fetch`, `sha256` being the archive's), then
    extract its file `member` to `dest` and return `dest`. `member` is the file's path inside the archive,
    or its name when exactly one file of the archive has that name (releases nest their files in a
    folder). An existing `dest` is kept: it was extracted whole (the rename is atomic) from a verified
    archive, which may since have been deleted to save space."""
    dest = Path(dest)
    with _exclusive(dest):
        if dest.exists():
            log.info("%s exists; not extracting it again from %s", dest, archive)
            return dest
        fetch(url, archive, sha256, timeout)
        extract_member(archive, member, dest)
    return dest


def extract_member(archive: str | Path, member: str, dest: str | Path) -> Path:
    try:
        with zipfile.ZipFile(archive) as zf:
            name = _member_name(zf.namelist(), member, archive)
            with zf.open(name) as source, atomic_path(dest) as tmp, open(tmp, "wb") as out:
                shutil.copyfileobj(source, out, CHUNK_BYTES)
    except zipfile.BadZipFile as err:
        raise ArchiveError(f"{archive}: not a zip archive ({err}); delete it to download again") from None
    log.info("extracted %s from %s to %s", member, archive, dest)
    return Path(dest)


def _member_name(names: list[str], member: str, archive: str | Path) -> str:
    if member in names:
        return member
    matches = [n for n in names if n.endswith("/" + member)]
    if len(matches) == 1:
        return matches[0]
    found = f"{len(matches)} files end with /{member}" if matches else f"it holds {', '.join(names[:8])}"
    raise ArchiveError(f"{archive}: no single member {member!r} ({found})")
