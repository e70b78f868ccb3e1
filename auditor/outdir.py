"""The ``--out`` directory: the one place that names its files. Who writes each (one writer apiece): ``store.Store``
audit.sqlite; ``outputs`` findings.jsonl, secrets.jsonl, summary.json and findings.sarif (which
``report.render`` rewrites from the store); ``report.render`` report.md,
report.html, plots/ and frames/. Every file is created readable by the owner only, before anything secret is
written to it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auditor.errors import OutputError


@dataclass(frozen=True, slots=True)
class OutDir:
    """The layout of one ``--out`` directory."""

    root: Path

    @property
    def store(self) -> Path:
        return self.root / "audit.sqlite"

    @property
    def store_sidecars(self) -> tuple[Path, Path]:
        """SQLite's write-ahead log and shared-memory files beside the store."""
        return self.root / "audit.sqlite-wal", self.root / "audit.sqlite-shm"

    @property
    def findings(self) -> Path:
        return self.root / "findings.jsonl"

    @property
    def secrets(self) -> Path:
        return self.root / "secrets.jsonl"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    @property
    def sarif(self) -> Path:
        """findings.sarif: SARIF 2.1.0, for code scanning (SPEC §11)."""
        return self.root / "findings.sarif"

    @property
    def frames(self) -> Path:
        return self.root / "frames"

    @property
    def plots(self) -> Path:
        return self.root / "plots"

    @property
    def report_md(self) -> Path:
        return self.root / "report.md"

    @property
    def report_html(self) -> Path:
        return self.root / "report.html"

    def prepare(self) -> None:
        """Create the directory and prove it writable before any work is done."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / ".auditor-write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise OutputError(f"{self.root}: cannot write the output directory ({e.strerror or e}). Pass --out a "
                              "directory you can write to.") from None

    def read_summary(self) -> dict[str, Any]:
        """The last summary.json as written (empty when there is none or it cannot be read)."""
        try:
            got = json.loads(self.summary.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return got if isinstance(got, dict) else {}


def private_file(path: Path) -> None:
    """Create ``path`` readable by the owner only, before anything secret is written to it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)


def write_private(path: Path, data: bytes) -> None:
    """Replace ``path``'s contents with ``data``, the file readable by the owner only."""
    private_file(path)
    with path.open("wb") as fh:
        fh.truncate()
        fh.write(data)
