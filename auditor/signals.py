"""Ctrl-C while a module is being imported: CPython may deliver the KeyboardInterrupt inside importlib's own lock
callback, where it is printed as "Exception ignored … Traceback" and lost. Imports made after start-up are run
with SIGINT held back, and the interrupt is raised once they are done."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught and previous is signal.default_int_handler:
        raise KeyboardInterrupt
