"""Download a benchmark file (e.g. the full official dev set) with checksum verification."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import requests
from tqdm import tqdm

from atommem.io import atomic_path

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20


class ChecksumError(ValueError):
    """A file's SHA-256 differs from the expected one."""


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(url: str, dest: str | Path, sha256: str | None = None, timeout: float = 60.0) -> Path:
    """Download `url` to `dest` and return `dest`.

    Streams into a temporary file next to `dest`, checks the SHA-256 if given and only then renames it
    onto `dest`, so an interrupted or corrupt download never leaves a file at `dest`. If `dest` already
    exists it is kept when its checksum matches (or when no checksum is given); a mismatch is an error
    rather than a silent re-download, since it means the file was changed by hand.
    """
    dest = Path(dest)
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
    log.info("wrote %s (sha256 %s)", dest, got)
    return dest
