"""The one exception tree of auditor; only the CLI turns these into messages and exit codes.

    AuditorError
    ├── UsageError            bad command-line input (exit 2)
    ├── RepositoryError       not a repository, unreadable, cannot mirror (exit 2)
    ├── DetectorFileError     malformed detector YAML: names the file and the field (exit 2)
    └── OutputError           --out cannot be created or written (exit 2)
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    ALERTS = 1
    BAD_INPUT = 2
    INTERRUPTED = 130


class AuditorError(Exception):
    """Base of every error auditor raises on purpose; the message tells the user what to do."""

    exit_code = ExitCode.BAD_INPUT


class UsageError(AuditorError):
    pass


class RepositoryError(AuditorError):
    pass


class DetectorFileError(AuditorError):
    def __init__(self, path: object, field: str, problem: str) -> None:
        super().__init__(f"{path}: field '{field}': {problem}")
        self.path = path
        self.field = field


class OutputError(AuditorError):
    pass
