"""Fixtures of the whole suite (helpers live in ``tests.helpers``; nothing imports from here).

Tests are marked by the folder they live in: ``unit`` (one module at a time, in process, seconds), ``properties``
(hypothesis against the reference oracle) and ``functional`` (the CLI in subprocesses); ``slow`` marks the few that
take many seconds each. ``pytest -m unit`` runs the unit tests alone, ``-m "not slow"`` skips the slow ones.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.env import git_settings
from tests.helpers.git import GitRepo
from tests.helpers.histories import Golden, golden_history

TESTS = Path(__file__).resolve().parent
KINDS = ("unit", "functional", "properties")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        kind = Path(item.path).resolve().relative_to(TESTS).parts[0]
        if kind in KINDS:
            item.add_marker(kind)


@pytest.fixture(scope="session", autouse=True)
def isolated_git():
    """This process too (in-process scans run git) sees no user or system git configuration and no
    ``AUDITOR_TWILIO_API_URL`` of the developer's shell."""
    with pytest.MonkeyPatch.context() as mp:
        for key, value in git_settings().items():
            mp.setenv(key, value)
        mp.delenv("AUDITOR_TWILIO_API_URL", raising=False)
        yield


@pytest.fixture
def git(tmp_path: Path):
    """Factory: ``git()`` → a new GitRepo at tmp_path/repo; ``git("name")`` → tmp_path/name."""
    def make(name: str = "repo", *, bare: bool = False) -> GitRepo:
        return GitRepo(tmp_path / name, bare=bare)
    return make


@pytest.fixture(scope="session")
def golden(tmp_path_factory: pytest.TempPathFactory) -> Golden:
    """The history of every lifecycle (``helpers.histories.golden_history``), scanned once for the whole run."""
    return golden_history(tmp_path_factory.mktemp("golden"))
