"""``python -m auditor`` is the ``auditor`` command."""

from auditor.signals import interrupts_deferred

# A Ctrl-C while the command loads is held until it has loaded, then answered as an interruption before anything
# started: 130, no traceback.
try:
    with interrupts_deferred():
        from auditor.cli import entry
except KeyboardInterrupt:
    import os
    import sys

    print("auditor: interrupted", file=sys.stderr)
    sys.stderr.flush()
    os._exit(130)  # as entry() does: a run that met KeyboardInterrupt would still end in a death by SIGINT

entry()
