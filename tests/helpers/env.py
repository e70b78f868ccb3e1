"""The environment of every git and auditor process the suite starts: no user or system git configuration (the
global one is an empty file of the suite's own, never the null device, which a product writing there could turn into
a config file), the C locale, and none of the developer's ``AUDITOR_*`` settings."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

_config: Path | None = None


def empty_gitconfig() -> str:
    """An empty file used as git's global configuration; one per test process, removed when it exits."""
    global _config
    if _config is None or not _config.is_file():
        home = Path(tempfile.mkdtemp(prefix="auditor-tests-"))
        atexit.register(shutil.rmtree, home, ignore_errors=True)
        _config = home / "gitconfig"
        _config.write_text("")
    return str(_config)


def git_settings() -> dict[str, str]:
    """What isolates git from the machine: the variables ``env`` sets (and the suite sets in its own process)."""
    return {"GIT_CONFIG_GLOBAL": empty_gitconfig(), "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0",
            "LC_ALL": "C"}


def env(**extra: str) -> dict[str, str]:
    """``os.environ`` with git isolated and without ``AUDITOR_TWILIO_API_URL`` (unless given in ``extra``)."""
    out = {**os.environ, **git_settings()}
    out.pop("AUDITOR_TWILIO_API_URL", None)
    out.update(extra)
    return out
