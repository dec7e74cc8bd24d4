"""Files written whole or not at all: a temp file in the same folder, then an atomic rename."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", *, newline: str | None = None, fsync: bool = False) -> Iterator[IO]:
    """Open a temp file beside ``path`` for writing; on success it replaces ``path`` in one rename.

    A failure (or interrupt) inside the block removes the temp file and leaves any earlier
    ``path`` intact. ``fsync`` flushes the data to disk before the rename. The folder must exist.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, newline=newline) as handle:
            yield handle
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_copy(source: str | Path, target: str | Path) -> None:
    """Copy ``source`` to ``target`` atomically, creating ``target``'s folder."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(target, "wb") as handle, Path(source).open("rb") as src:
        shutil.copyfileobj(src, handle)


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON with a final newline, atomically."""
    with atomic_write(path) as handle:
        json.dump(data, handle, indent=2, sort_keys=False)
        handle.write("\n")


class MetricsLog:
    """Appends one row per call to a CSV file (``metrics.csv``, ``weights.csv``); the first row fixes the header.

    An existing file is continued with its own header (a resumed run); floats are written
    with 6 significant digits and keys outside the header are dropped.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.columns: list[str] | None = None
        if self.path.is_file():
            with self.path.open(newline="") as handle:
                self.columns = next(csv.reader(handle), None)

    def append(self, row: Mapping[str, Any]) -> None:
        """Append ``row`` (writing the header first when the file is new)."""
        if self.columns is None:
            self.columns = list(row.keys())
            with self.path.open("w", newline="") as handle:
                csv.writer(handle).writerow(self.columns)
        with self.path.open("a", newline="") as handle:
            csv.DictWriter(handle, fieldnames=self.columns, extrasaction="ignore").writerow(
                {k: _fmt(v) for k, v in row.items()}
            )


def _fmt(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value
