"""``python -m auditor`` is the ``auditor`` command."""

import signal

# A Ctrl-C while the command loads is held until it has loaded (raised inside the import machinery it could surface
# as another error), then answered as an interruption before anything started: 130, no traceback.
_held: list[int] = []
_holding = signal.getsignal(signal.SIGINT) is signal.default_int_handler
if _holding:
    signal.signal(signal.SIGINT, lambda signum, frame: _held.append(signum))
try:
    from auditor.cli import entry
finally:
    if _holding:
        signal.signal(signal.SIGINT, signal.default_int_handler)
if _held:
    import os
    import sys

    print("auditor: interrupted", file=sys.stderr)
    sys.stderr.flush()
    os._exit(130)  # as entry() does: a run that met KeyboardInterrupt would still end in a death by SIGINT

entry()
