"""SIGTERM and SIGINT stop `segment run` as an exception, so that it cleans up on the way out:
Prefect marks the flow run Crashed, the staging folder is removed, the temporary server is
stopped by its exit handler, and the command prints one line."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

STOPPING_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Stopped(BaseException):
    """Raised in the main thread when a stopping signal arrives. A BaseException, like
    KeyboardInterrupt: Prefect's flow engine marks the flow run Crashed and passes it on, and
    no ``except Exception`` on the way takes it for a failure of the run."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.name = signal.Signals(signum).name
        super().__init__(self.name)

    @property
    def exit_code(self) -> int:
        """The shell's convention for a command ended by a signal: 128 + its number."""
        return 128 + self.signum


def _stop(signum: int, frame: FrameType | None) -> None:
    for number in STOPPING_SIGNALS:  # a second signal ends the process at once
        signal.signal(number, signal.SIG_DFL)
    raise Stopped(signum)


@contextmanager
def stopped_by_signals() -> Iterator[None]:
    """SIGTERM and SIGINT raise :class:`Stopped` while inside; the previous handlers are
    restored on the way out. Outside the main thread (where Python cannot set handlers), the
    handlers are left as they are."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.signal(number, _stop) for number in STOPPING_SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
