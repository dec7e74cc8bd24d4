"""Checkpoints: written atomically, loaded without executing pickled code."""

from __future__ import annotations

import errno
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from mtl_cli.errors import UserError
from mtl_cli.utils.files import atomic_write

CHECKPOINT_FORMAT = "mtl_cli-checkpoint"
CHECKPOINT_VERSION = 1


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` via a temp file in the same folder and an atomic rename.

    A crash while saving leaves the previous file intact. ``state`` must hold only
    tensors and plain Python values (the config as a YAML string), so that it loads with
    ``weights_only=True``.
    """
    path = Path(path)
    payload = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **state}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, "wb", fsync=True) as handle:
            torch.save(payload, handle)
    except OSError as exc:
        raise UserError(_write_failure(path, exc.errno, exc.strerror or str(exc))) from exc
    except RuntimeError as exc:  # torch's zip writer reports a failed write as a RuntimeError
        if "inline_container" not in str(exc) and "unexpected pos" not in str(exc):
            raise
        raise UserError(_write_failure(path, errno.ENOSPC, "")) from exc


def _write_failure(path: Path, code: int | None, reason: str) -> str:
    """The one-line message for a checkpoint that could not be written, naming only files that exist."""
    if code == errno.ENOSPC:
        what = f"disk full: could not write {path}"
    elif code in (errno.EACCES, errno.EPERM, errno.EROFS):
        what = f"permission denied: could not write {path}"
    else:
        what = f"could not write {path} ({reason})"
    intact = f"the last complete checkpoint {path} is intact" if path.is_file() else "no earlier checkpoint was written"
    return f"{what}; {intact}; free space or choose a writable run directory and resume"


def remove_partial_files(folder: str | Path) -> list[Path]:
    """Delete the temp files an interrupted save left in ``folder`` (a process killed mid-write); return them."""
    removed = sorted(Path(folder).glob(".*.pt.*.tmp"))
    for partial in removed:
        partial.unlink(missing_ok=True)
    return removed


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by ``save_checkpoint``; refuse anything else with a clear error."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UserError(
            f"checkpoint {path} holds objects other than tensors and plain values and was refused "
            f"(it may be malicious or from another tool); only mtl_cli checkpoints are loaded"
        ) from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as exc:
        raise UserError(
            f"checkpoint {path} is truncated or corrupt and cannot be read; use another checkpoint"
        ) from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"checkpoint {path} is not an mtl_cli checkpoint")
    version = state.get("version")
    if not isinstance(version, int):
        raise UserError(f"checkpoint {path} has no format version; it is not a checkpoint this mtl_cli can read")
    if version > CHECKPOINT_VERSION:
        raise UserError(f"checkpoint {path} was written by a newer mtl_cli (format {version}); upgrade mtl_cli")
    if version < CHECKPOINT_VERSION:
        raise UserError(
            f"checkpoint {path} has format version {version}, which this mtl_cli "
            f"(format {CHECKPOINT_VERSION}) cannot read"
        )
    return state
