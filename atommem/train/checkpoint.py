"""Training checkpoints that are either complete or invisible.

A checkpoint is `checkpoints/step_{N}/`: accelerate's `save_state` files (model, optimizer, every object
registered for checkpointing such as the LR scheduler, and the python/numpy/torch RNG states of each
process) plus `trainer_state.json` (step, data position). It is written into a hidden temp folder that is
renamed into place only once everything is on disk, so a run killed at any moment leaves either the
previous checkpoints or the new one, never a half-written folder that `latest_checkpoint` would pick.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

from atommem.io import fsync_dir, fsync_tree, read_json, write_json_atomic, writing

log = logging.getLogger(__name__)

STATE_FILE = "trainer_state.json"
_STEP_DIR = re.compile(r"step_(\d+)")


def checkpoint_steps(root: str | os.PathLike) -> list[tuple[int, Path]]:
    """Complete checkpoints under `root`, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = _STEP_DIR.fullmatch(path.name)
        if match and path.is_dir() and (path / STATE_FILE).is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(root: str | os.PathLike) -> Path | None:
    steps = checkpoint_steps(root)
    return steps[-1][1] if steps else None


def save_checkpoint(accelerator, root: str | os.PathLike, step: int, state: dict, keep_last: int) -> Path:
    """Save on every process (sharded states need all of them); the main process publishes and prunes."""
    root = Path(root)
    final = root / f"step_{step}"
    tmp = root / f".tmp_step_{step}"
    # a failed write (disk full, file size limit) removes the temp folder, so the disk has room again, and
    # leaves every earlier checkpoint as it was: they are pruned only once the new one is complete
    discard = lambda: shutil.rmtree(tmp, ignore_errors=True)  # noqa: E731
    if accelerator.is_main_process:
        discard()  # left by a run killed while saving
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    with writing(final, cleanup=discard):
        accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        with writing(final, cleanup=discard):
            # the state file is the completeness marker: written last, after the other files reach the disk
            fsync_tree(tmp)
            write_json_atomic(tmp / STATE_FILE, {"step": step, **state})
        old = root / f".old_step_{step}"
        if final.exists():  # a re-run of this step after a resume replaces it, once the new one is complete
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
        os.replace(tmp, final)
        fsync_dir(root)
        shutil.rmtree(old, ignore_errors=True)
        if keep_last > 0:
            for _, older in checkpoint_steps(root)[:-keep_last]:
                shutil.rmtree(older)
        log.info("checkpoint %s", final)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator, path: str | os.PathLike) -> dict:
    """Restore model, optimizer, registered objects and RNG states; return the trainer state."""
    path = Path(path)
    accelerator.load_state(str(path))
    return read_json(path / STATE_FILE)


def remove_incomplete(root: str | os.PathLike) -> None:
    """Delete temp folders of saves that never finished (main process, before training starts)."""
    root = Path(root)
    if root.is_dir():
        for old in root.glob(".old_step_*"):  # killed while replacing a checkpoint of the same step
            if not (root / old.name.removeprefix(".old_")).exists():
                os.replace(old, root / old.name.removeprefix(".old_"))
            else:
                shutil.rmtree(old, ignore_errors=True)
        for path in root.glob(".tmp_step_*"):
            shutil.rmtree(path, ignore_errors=True)
