"""Which process wrote a record, and whether that process is still alive (stale ``running`` runs)."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Any


def _start_ticks(pid: int) -> int | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux), ``None`` where unknown."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return int(fields[19])  # field 22 of stat; the first two (pid, comm) are cut off
    except (OSError, IndexError, ValueError):
        return None


def process_identity() -> dict[str, Any]:
    """This process: ``pid``, ``host`` and ``start_ticks`` (to tell a reused pid from the same process)."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "start_ticks": _start_ticks(os.getpid())}


def process_alive(identity: Mapping[str, Any]) -> bool | None:
    """Whether the process ``identity`` describes is still running; ``None`` when it cannot be told.

    Only a process on this host can be checked; a pid now used by a process that started
    at another time counts as gone.
    """
    pid = identity.get("pid")
    if not isinstance(pid, int) or identity.get("host") != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        pass
    except OSError:
        return None
    recorded, now = identity.get("start_ticks"), _start_ticks(pid)
    if recorded is not None and now is not None:
        return recorded == now
    return True
