"""Ctrl-C while modules load: raised inside the import machinery, CPython may print the KeyboardInterrupt as
"Exception ignored … Traceback" (in importlib's lock callback) and lose it, or turn it into another error (3.11: a
RuntimeError from a class's ``__set_name__``) and leave a module half made. Imports made after start-up run with
SIGINT held back; the interrupt is raised once they are done. Elsewhere a Ctrl-C that lands in a finalizer (a
``__del__``: regex's compiler leaves many to collect) is handed back to the main thread (``keep_interrupts``).
"""

from __future__ import annotations

import _thread
import contextlib
import signal
import sys
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


def keep_interrupts() -> None:
    """A KeyboardInterrupt raised while the interpreter runs a finalizer is "ignored" by CPython — printed with a
    traceback, and lost; it is raised again in the main thread instead (at its next instruction), where the command
    answers it as any Ctrl-C. Other unraisable errors go to the hook that was there."""
    previous = sys.unraisablehook
    if getattr(previous, "keeps_interrupts", False):
        return

    def hook(unraisable: sys.UnraisableHookArgs) -> None:
        if unraisable.exc_type is not None and issubclass(unraisable.exc_type, KeyboardInterrupt):
            # from another thread, a moment later: raised here, in the hook, it would be "ignored" again.
            # interrupt_main does nothing while SIGINT is ignored (the command winding down)
            later = threading.Timer(0.02, _thread.interrupt_main)
            later.daemon = True
            later.start()
            return
        previous(unraisable)

    hook.keeps_interrupts = True  # type: ignore[attr-defined]
    sys.unraisablehook = hook
