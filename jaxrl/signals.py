"""What SIGINT (Ctrl-C) and SIGTERM (a scheduler's stop) do to long work."""

from __future__ import annotations

import contextlib
import os
import signal

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def sigterm_as_interrupt():
    """A scheduler's SIGTERM stops the work the way Ctrl-C does (KeyboardInterrupt where it lands).

    For work that is safe to stop anywhere, such as `jaxrl collect`, which writes whole demos only.
    """
    def handler(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class StopRequests:
    """SIGINT and SIGTERM ask a loop to stop at its next safe point, not where they land.

    A training call's record is made of several steps (the call, an evaluation,
    a checkpoint, a video); stopped between them, the state would be ahead of the
    record. With this, the first signal sets `requested` and the loop stops after
    its current unit of work is complete; a second one raises KeyboardInterrupt
    at once, for a user who will not wait (the run then resumes from its last
    checkpoint). Installed whatever the signals' previous handlers, so a job that
    a shell started in the background (SIGINT ignored) stops the same way.
    """

    def __init__(self):
        self.requested = False
        self._previous = {}

    def request(self) -> None:
        self.requested = True

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        # os.write, not print: a handler that prints could re-enter a print it interrupted.
        os.write(2, f"\n{signal.Signals(signum).name}: stopping once this step is saved (again: at once)\n"
                 .encode())

    def __enter__(self) -> StopRequests:
        try:
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        except ValueError:  # not the main thread: signals stay as they are
            pass
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
