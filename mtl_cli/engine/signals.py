"""Stopping cleanly on Ctrl-C or SIGTERM: finish the step, save, exit non-zero."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(BaseException):
    """Training stopped on a signal after finishing a step; ``checkpoint`` holds the state to resume from.

    A ``BaseException`` (like ``KeyboardInterrupt``), so generic ``except Exception`` blocks
    and Hydra's per-job error handling do not swallow it and a sweep stops as a whole.
    """

    def __init__(self, signum: int, checkpoint: Path | None, where: str = "") -> None:
        self.signum = signum
        self.checkpoint = checkpoint
        self.signal_name = signal.Signals(signum).name
        self.where = where
        message = f"stopped by {self.signal_name}" + (f" {where}" if where else "")
        super().__init__(message + (f"; state saved to {checkpoint}" if checkpoint else ""))

    @property
    def exit_code(self) -> int:
        """The shell convention for a process ended by a signal: 128 + signal number."""
        return 128 + self.signum


class StopOnSignal:
    """While active, SIGINT/SIGTERM only record a stop request in ``signum``; a second one aborts.

    The training loop polls ``signum`` once per step (a plain attribute read, no system
    call). Outside the main thread, where Python cannot install handlers, it does nothing.
    Under torchrun the agent passes the signal it receives on to every worker, which then
    gets it twice (a Ctrl-C reaches the whole process group); there the agent escalates
    (SIGKILL after its timeout) and a repeated signal does not abort. ``on_signal`` is
    called with the first signal's number.
    """

    def __init__(self, on_signal: Callable[[int], None] | None = None) -> None:
        self.signum: int | None = None
        self.on_signal = on_signal
        self.second_aborts = "TORCHELASTIC_RUN_ID" not in os.environ
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        self._restore()

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:  # the second signal: give up waiting, behave as without us
            if self.second_aborts:
                self._restore()
                os.kill(os.getpid(), signum)
            return
        self.signum = signum
        if self.on_signal is not None:
            self.on_signal(signum)
        print(
            f"\n{signal.Signals(signum).name} received: finishing the current step and saving a checkpoint "
            f"(send it again to stop at once)",
            file=sys.stderr,
            flush=True,
        )
