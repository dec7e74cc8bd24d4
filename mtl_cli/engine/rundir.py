"""Run directories are never reused: a new run or sweep claims an empty directory atomically."""

from __future__ import annotations

import os
from pathlib import Path

from mtl_cli.errors import UserError


def claim_directory(path: Path, key: str, marker: str | None = None, content: str | None = None) -> None:
    """Create ``path`` (or accept it empty) and reserve it by creating ``marker`` inside.

    ``marker`` is a folder (``content is None``) or a file holding ``content``; creating it
    is atomic, so of two processes racing for one directory exactly one wins. A directory
    that already has anything in it belongs to an earlier run: ``UserError`` naming ``key``,
    the setting that chose it.
    """
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UserError(
            f"{key}={path}: a file is in the way (the path or a folder above it is a file); choose a directory"
        ) from None
    except OSError as exc:
        raise UserError(
            f"{key}={path}: cannot create the directory ({exc.strerror or exc}); choose another one"
        ) from None
    try:
        if any(path.iterdir()):
            raise FileExistsError(path)
        if marker is not None and content is None:
            (path / marker).mkdir()
        elif marker is not None:
            fd = os.open(path / marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            with os.fdopen(fd, "w") as handle:
                handle.write(content if content.endswith("\n") else content + "\n")
    except FileExistsError:
        raise UserError(
            f"{key}={path} already holds an earlier run, which is left untouched; choose another directory "
            f"(e.g. drop the {key}= override) or remove it"
        ) from None
