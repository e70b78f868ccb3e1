"""``python -m auditor`` is the ``auditor`` command."""

try:
    from auditor.cli import entry
except KeyboardInterrupt:  # Ctrl-C while the command is being loaded: nothing started, nothing to keep
    import os
    import sys

    print("auditor: interrupted", file=sys.stderr)
    sys.stderr.flush()
    os._exit(130)  # as entry() does: a caught KeyboardInterrupt would still end in a death by SIGINT

entry()
