"""Stage progress on stderr: tqdm bars on a terminal, one closing line per stage otherwise (or nothing)."""

from __future__ import annotations

import sys
import time
from typing import Any


class Stage:
    """One stage's bar; ``done()`` prints the closing line when stderr is not a terminal."""

    def __init__(self, label: str, *, enabled: bool, unit: str = "it", total: float | None = None,
                 unit_scale: bool = False) -> None:
        self.label = label
        self.enabled = enabled
        self.count = 0.0
        self.started = time.perf_counter()
        self._bar: Any = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm  # only for a bar: a run without one does not import it

            self._bar = tqdm(desc=label, unit=unit, total=total, unit_scale=unit_scale, unit_divisor=1024,
                             file=sys.stderr, leave=True, dynamic_ncols=True)

    def update(self, n: float = 1, **postfix: Any) -> None:
        self.count += n
        if self._bar is not None:
            self._bar.update(n)
            if postfix:
                self._bar.set_postfix(postfix, refresh=False)

    def done(self, summary: str) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self.enabled:
            print(f"auditor: {self.label}: {summary} in {time.perf_counter() - self.started:.1f} s", file=sys.stderr)
