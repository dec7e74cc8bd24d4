"""A tracker failing mid-run is a warning, never the end of the run; logging costs the loop ~nothing.

``GuardedLogger`` starts the tracker on the caller's thread (so configuration mistakes raise
``UserError`` at once) and then hands every call to one background thread, so a slow tracker
(a database, a network) does not slow the training step. The first exception the tracker raises
is logged as one warning and the tracker is turned off for the rest of the run.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mtl_cli.errors import UserError, one_line
from mtl_cli.loggers.base import RunInfo, Scalar, TrackerLogger

log = logging.getLogger("mtl_cli")

_STOP = object()


class GuardedLogger(TrackerLogger):
    """Wraps a ``TrackerLogger``: calls run in order on a worker thread; failures become one warning.

    ``close_timeout_s`` bounds how long ``close`` waits for a stuck tracker before giving up on it.
    """

    def __init__(self, inner: TrackerLogger, close_timeout_s: float = 120.0) -> None:
        self.inner = inner
        self.name = inner.name
        self.close_timeout_s = close_timeout_s
        self.failed = False
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread: threading.Thread | None = None

    def start(self, run: RunInfo) -> None:
        try:
            self.inner.start(run)
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001 - a tracker that cannot start must not stop the run
            self._fail("start", exc)
            return
        self._thread = threading.Thread(target=self._work, name=f"mtl-logger-{self.name}", daemon=True)
        self._thread.start()

    def log_scalars(self, values: Mapping[str, float], step: int) -> None:
        self._submit(self.inner.log_scalars, dict(values), step)

    def log_hparams(self, params: Mapping[str, Scalar], final_metrics: Mapping[str, float]) -> None:
        self._submit(self.inner.log_hparams, dict(params), dict(final_metrics))

    def log_artifact(self, path: Path, step: int | None = None) -> None:
        self._submit(self.inner.log_artifact, Path(path), step)

    def state(self) -> dict[str, Any]:
        return {} if self.failed else self.inner.state()

    def flush(self) -> None:
        """Wait until every call made so far has been handled (or dropped after a failure)."""
        if self._thread is not None:
            self._queue.join()

    def close(self, failed: bool = False) -> None:
        if self._thread is None:
            return
        self._queue.put((self._close_inner, (failed,)))
        self._queue.put(_STOP)
        self._thread.join(self.close_timeout_s)
        if self._thread.is_alive():
            log.warning("%s logger did not finish within %.0fs; leaving it", self.name, self.close_timeout_s)
        self._thread = None

    def _submit(self, method: Callable[..., None], *args: Any) -> None:
        if self._thread is not None and not self.failed:
            self._queue.put((method, args))

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is _STOP:
                    return
                method, args = item
                if not self.failed or method == self._close_inner:
                    method(*args)
            except Exception as exc:  # noqa: BLE001 - see the module docstring
                self._fail(item[0].__name__, exc)
            finally:
                self._queue.task_done()

    def _close_inner(self, failed: bool) -> None:
        """Close the tracker; after a failure, try once quietly so it keeps what it has."""
        if not self.failed:
            self.inner.close(failed)
            return
        try:
            self.inner.close(True)
        except Exception as exc:  # noqa: BLE001 - already reported as failed
            log.debug("%s logger: closing after its failure also failed: %s", self.name, exc)

    def _fail(self, what: str, exc: BaseException) -> None:
        self.failed = True
        log.warning(
            "%s logger failed in %s and is off for the rest of the run (the run goes on): %s: %s",
            self.name,
            what,
            type(exc).__name__,
            one_line(str(exc)),
        )
