"""Ctrl-C while modules load: raised inside the import machinery, CPython may print the KeyboardInterrupt as
"Exception ignored … Traceback" (in importlib's lock callback) and lose it, or turn it into another error (3.11: a
RuntimeError from a class's ``__set_name__``) and leave a module half made. Imports made after start-up run with
SIGINT held back; the interrupt is raised once they are done."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt
