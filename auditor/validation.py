"""The validation queue as the scanning thread sees it: candidates in as detection finds them, resolutions out.

The checks themselves run in ``validity.Validator`` (asyncio + aiohttp) on an event loop of their own thread, so
detection, which runs in the caller's thread, never waits for the network and the network never waits for it.
Candidates are deduplicated for the whole run; each check result is handed back to the caller (``drain_checks``),
which stores it: the store keeps one writer.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from auditor.models import Candidate, CheckResult, Resolved, resolve_unchecked
from auditor.progress import Stage
from auditor.signals import interrupts_deferred

if TYPE_CHECKING:
    import asyncio

    from auditor.detectors.spec import Detector
    from auditor.validity import Validator

Check = tuple[str, str, str, CheckResult]  # (secret_sha256, detector, client_id, result)


class ValidationQueue:
    """``submit`` candidates, then ``resolve`` them; without validation every candidate resolves at once to its
    best-ranked pair, unchecked, and nothing touches the network."""

    def __init__(self, detectors: Sequence[Detector], *, validate: bool, base_urls: Mapping[str, str],
                 concurrency: int, rate: float, timeout: float, cache: Mapping[str, CheckResult],
                 progress: bool, fallbacks: Mapping[str, Sequence[tuple[str, str]]] | None = None) -> None:
        self._detectors, self._validate, self._progress = detectors, validate, progress
        self._options = dict(base_urls=base_urls, fallbacks=fallbacks or {}, concurrency=concurrency, rate=rate,
                             timeout=timeout, cache=cache)
        self._futures: dict[tuple, concurrent.futures.Future[Resolved]] = {}
        self._checks: list[Check] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._validator: Validator | None = None

    # -- lifecycle ----------------------------------------------------------------------------------------------
    def __enter__(self) -> ValidationQueue:
        if self._validate:
            with interrupts_deferred():  # asyncio and aiohttp: loaded only when validating
                import asyncio

                from auditor.validity import Validator

            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, name="auditor-validation", daemon=True)
            self._thread.start()
            self._validator = Validator(self._detectors, on_result=self._keep, **self._options)
            self._call(self._validator.__aenter__())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is None:
            return
        try:
            self._call(self._shutdown())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread is not None:
                self._thread.join()
            self._loop.close()
            self._loop = None

    async def _shutdown(self) -> None:
        """Cancel what is still asked (an interrupted run), then close the validator's session."""
        import asyncio

        me = asyncio.current_task()
        others = [t for t in asyncio.all_tasks() if t is not me]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        assert self._validator is not None
        await self._validator.__aexit__(None, None, None)

    def _call(self, coro: object) -> object:
        import asyncio

        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    # -- candidates in, resolutions out ---------------------------------------------------------------------------
    def submit(self, candidates: Iterable[Candidate]) -> None:
        """Start resolving each candidate not seen before in this run."""
        for c in candidates:
            if c.checks_key in self._futures:
                continue
            if self._validator is None:
                fut: concurrent.futures.Future[Resolved] = concurrent.futures.Future()
                fut.set_result(resolve_unchecked(c))
            else:
                import asyncio

                assert self._loop is not None
                fut = asyncio.run_coroutine_threadsafe(self._validator.resolve(c), self._loop)
            self._futures[c.checks_key] = fut

    def ready(self, candidates: Iterable[Candidate]) -> bool:
        """Every one of these (submitted) candidates is resolved: ``resolve`` would not wait."""
        return all(self._futures[c.checks_key].done() for c in candidates)

    def resolve(self, candidates: Iterable[Candidate], *, progress: bool = True) -> dict[tuple, Resolved]:
        """Wait until every candidate is resolved (a progress line per run of waiting); checks_key → Resolved."""
        cands = list(candidates)
        self.submit(cands)
        wanted = {c.checks_key: self._futures[c.checks_key] for c in cands}
        pending = [f for f in wanted.values() if not f.done()]
        shown = progress and self._progress and self._validator is not None
        bar = Stage("validation", enabled=shown, unit="secret")
        for _ in concurrent.futures.as_completed(pending):
            bar.update(1)
        if shown:
            bar.done(f"{len(pending):,} candidates resolved, {self._validator.requests:,} requests")
        return {k: f.result() for k, f in wanted.items()}

    def _keep(self, sha: str, detector: str, client_id: str, result: CheckResult) -> None:
        with self._lock:
            self._checks.append((sha, detector, client_id, result))

    def drain_checks(self) -> list[Check]:
        """Check results not handed out yet, for the caller to store."""
        with self._lock:
            out, self._checks = self._checks, []
        return out

    @property
    def requests(self) -> int:
        """HTTP requests sent, retries included."""
        return self._validator.requests if self._validator else 0

    @property
    def unique(self) -> int:
        """Unique secrets checked over the network."""
        return self._validator.unique if self._validator else 0
