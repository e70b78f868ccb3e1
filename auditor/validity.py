"""Candidates in, Resolved pairs out: each unique secret is asked of its provider once, within concurrency and rate.

SPEC §5 is the contract. The detector's declarative ``check`` (a URL and a decision table of
``ResponseRule``) says what to ask and how to read the answer; this module only adds what every
provider needs: deduplication across the run (and across runs through ``cache``), bounded
concurrency, a shared token bucket, retries that never turn an error page into an answer, and
clean cancellation. Response bodies are parsed in memory for the kept fields and then dropped: a
Twilio 200 body carries the account's auth token, so no body is ever logged, returned or stored.

Regions: a credential is asked of the detector's base first; when the base's answer is a rule marked
``ask_other_regions`` (Twilio's 401/20003: also what a token of another region gets) and the run lists regions,
each listed region's host is asked in turn until one answers otherwise. A result remembers its base (and the
regions asked after it): the cache reuses it only for the same servers.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import email.utils
import json
import logging
import os
import random
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import aiohttp

from auditor.detectors.spec import Check, Detector, Differs, ResponseRule
from auditor.models import Candidate, CheckResult, Pair, Resolved, Validity, secret_sha256

log = logging.getLogger(__name__)

MAX_BODY = 1 << 20  # an account document is ~2 KB; anything this large is not the expected answer
TEXT_FIELDS = ("account_status", "account_type")  # the CheckResult fields a rule's `keep` may fill with a JSON value
FLAG_FIELDS = ("subaccount",)  # … and with a Differs test
ANSWERS = (Validity.VALID, Validity.INVALID)  # a result the cache keeps and a region is recorded for
_MISSING = object()
_NOT_JSON = object()

OnResult = Callable[[str, str, str, CheckResult], None]


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def retry_after_seconds(value: str | None, cap: float) -> float | None:
    """``Retry-After`` as delta-seconds or an HTTP-date → seconds to wait in [0, cap]; None if absent or garbled."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # RFC 9110 dates are GMT; a naive one is read the same way
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), cap)


def _document(body: bytes) -> Any:
    """A body's JSON (None for an empty body), or _NOT_JSON."""
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return _NOT_JSON


def _lookup(doc: Any, key: str) -> Any:
    """The value at ``key`` of a JSON document; a dotted key (``meta.key``) walks nested objects."""
    for part in key.split("."):
        if not isinstance(doc, dict):
            return _MISSING
        doc = doc.get(part, _MISSING)
    return doc


def _fits(doc: Any, wanted: Mapping[str, Any], client_id: str) -> bool:
    return isinstance(doc, dict) and all(_lookup(doc, k) == _expected(v, client_id) for k, v in wanted.items())


def match(rules: Sequence[ResponseRule], status: int, body: bytes, client_id: str
          ) -> tuple[ResponseRule, CheckResult] | None:
    """The first rule fitting (status, body) and its CheckResult without timing; None means "not an answer, retry".

    A non-empty body must be JSON even for rules that test no key: an HTML error page from a proxy
    or a CDN is never read as valid or invalid.
    """
    doc = _document(body)
    if doc is _NOT_JSON:
        return None
    for rule in rules:
        if rule.status != status or (rule.json is not None and not _fits(doc, rule.json, client_id)):
            continue
        kept: dict[str, Any] = {}
        for field, key in rule.keep.items():
            if isinstance(key, Differs):
                value = doc.get(key.key) if isinstance(doc, dict) else None
                if field in FLAG_FIELDS and isinstance(value, str):
                    kept[field] = value != _expected(key.other, client_id)
                continue
            value = doc.get(key) if isinstance(doc, dict) else None
            if field in TEXT_FIELDS and isinstance(value, str | int | float) and not isinstance(value, bool):
                kept[field] = str(value)
        return rule, CheckResult(validity=rule.validity, scope=rule.scope, **kept)
    return None


def _expected(value: Any, client_id: str) -> Any:
    # str.replace, not str.format: a rule value may legitimately hold other braces
    return value.replace("{client_id}", client_id) if isinstance(value, str) else value


class _TokenBucket:
    """Start times at least 1/rate apart (a bucket of one token), so any 1 s window holds at most rate+1 requests.

    A larger bucket would let a burst of `rate` requests through at once, which is exactly what
    providers count against us. ``pause`` (the Retry-After of a 429 that is not the provider's per-account
    limit, e.g. a gateway's) holds every caller, not only the one that was told.
    """

    def __init__(self, rate: float) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be > 0 requests/s, got {rate}")
        self._interval = 1.0 / rate
        self._next = 0.0
        self._paused_until = 0.0

    def pause(self, seconds: float) -> None:
        until = asyncio.get_running_loop().time() + seconds
        self._paused_until = max(self._paused_until, until)

    async def acquire(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            start = max(now, self._next, self._paused_until)
            self._next = start + self._interval  # reserve before sleeping: no lock needed on one loop
            if start > now:
                await asyncio.sleep(start - now)
            if self._paused_until <= loop.time():
                return


class Validator:
    """One run's validation queue; use as ``async with Validator(detectors) as v: await v.resolve(c)``.

    ``base_urls``: detector id → the base its checks ask (else ``check.base_env``, else ``check.base``);
    ``fallbacks``: detector id → (region, base) pairs asked in turn after the base refused a credential the way it
    refuses another region's (a rule with ``ask_other_regions``).
    """

    def __init__(self, detectors: Sequence[Detector], *, base_urls: Mapping[str, str] | None = None,
                 fallbacks: Mapping[str, Sequence[tuple[str, str]]] | None = None,
                 concurrency: int = 8, rate: float = 10.0, timeout: float = 10.0, attempts: int = 4,
                 cache: Mapping[str, CheckResult] | None = None, on_result: OnResult | None = None,
                 backoff: float = 0.5, max_backoff: float = 30.0, retry_after_cap: float = 60.0,
                 throttle_attempts: int = 10) -> None:
        if concurrency < 1 or attempts < 1 or throttle_attempts < 1:
            raise ValueError("concurrency, attempts and throttle_attempts must be at least 1")
        self._detectors = {d.id: d for d in detectors}
        base_urls, fallbacks = base_urls or {}, fallbacks or {}
        self._bases = {d.id: _base_url(d.check, base_urls.get(d.id)).rstrip("/")
                       for d in detectors if d.check is not None}
        self._fallbacks = {d: tuple((region, url.rstrip("/")) for region, url in fallbacks.get(d, ()))
                           for d in self._bases}
        # what a stored answer must have been asked of, besides the base, to be reused (CheckResult.fallbacks)
        self._signature = {d: " ".join(f"{region}={url}" for region, url in fb) for d, fb in self._fallbacks.items()}
        self._proxies: dict[str, str | None] = {}
        self._concurrency = concurrency
        self._bucket = _TokenBucket(rate)
        self._paused: dict[tuple[str, str], float] = {}  # (base, client_id) → loop time its 429 ends
        self._timeout = timeout
        self._attempts = attempts
        self._throttle_attempts = throttle_attempts  # separate cap: a server always answering 429 still ends
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._retry_after_cap = retry_after_cap
        self._cache: Mapping[str, CheckResult] = cache if cache is not None else {}
        self._on_result = on_result
        self._tasks: dict[str, asyncio.Task[CheckResult]] = {}
        self._slots: asyncio.Semaphore | None = None
        self._session: aiohttp.ClientSession | None = None
        self.requests = 0  # HTTP requests actually sent, retries included
        self.unique = 0  # unique secrets checked over the network

    async def __aenter__(self) -> Validator:
        self._slots = asyncio.Semaphore(self._concurrency)
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._timeout),
            connector=aiohttp.TCPConnector(limit=self._concurrency),
            headers={"User-Agent": "auditor (secret validity check)"})
        # aiohttp silently resends an idempotent request once when the server drops the connection; that
        # resend would bypass the token bucket and the attempt count, so our own retry loop does it instead
        # (aiohttp's test_utils turns it off the same way; there is no public switch before 4.0).
        if hasattr(self._session, "_retry_connection"):
            self._session._retry_connection = False
        return self

    async def __aexit__(self, *exc: object) -> None:
        # On Ctrl-C the callers are cancelled but the shared (shielded) checks are not: stop them here,
        # before the session closes under them. Completed checks already went through on_result.
        pending = [t for t in self._tasks.values() if not t.done()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def resolve(self, candidate: Candidate) -> Resolved:
        """SPEC §3: pairs in rank order until one is valid; if none is, the best pair with its own result."""
        first: tuple[Pair, CheckResult] | None = None
        for pair in candidate.ranked():
            result = await self.check(candidate.detector, pair.client_id, pair.client_secret)
            if result.validity is Validity.VALID:
                return Resolved(detector=candidate.detector, client_id=pair.client_id,
                                client_secret=pair.client_secret, check=result)
            if first is None:
                first = (pair, result)
        assert first is not None
        best, result = first
        return Resolved(detector=candidate.detector, client_id=best.client_id, client_secret=best.client_secret,
                        check=result)

    def reusable(self, detector_id: str, stored: CheckResult) -> bool:
        """SPEC §5: a stored answer counts only if it came from the servers this run asks — the same base, and, for
        a pair the base refused, the same regions asked after it."""
        return (stored.base is not None and stored.base == self._bases.get(detector_id)
                and stored.fallbacks in (None, self._signature.get(detector_id)))

    async def check(self, detector_id: str, client_id: str, client_secret: str) -> CheckResult:
        """The provider's answer for one secret; identical calls, concurrent or not, share one check."""
        sha = secret_sha256(client_id, client_secret)
        cached = self._cache.get(sha)
        if cached is not None and self.reusable(detector_id, cached):
            return cached
        task = self._tasks.get(sha)
        if task is None:
            detector = self._detectors.get(detector_id)
            if detector is None:
                raise ValueError(f"unknown detector {detector_id!r}")
            if detector.check is None:
                return CheckResult.unchecked()
            if self._session is None:
                raise RuntimeError("Validator.check needs 'async with Validator(...)' first")
            self.unique += 1
            task = asyncio.create_task(self._run(sha, detector, client_id, client_secret),
                                       name=f"validity-{sha[:12]}")
            self._tasks[sha] = task
        # shield: one cancelled caller must not cancel the check the others are waiting on
        return await asyncio.shield(task)

    async def _run(self, sha: str, detector: Detector, client_id: str, client_secret: str) -> CheckResult:
        result = await self._ask(sha, detector, client_id, client_secret)
        if self._on_result is not None:
            self._on_result(sha, detector.id, client_id, result)
        return result

    async def _ask(self, sha: str, detector: Detector, client_id: str, client_secret: str) -> CheckResult:
        """The base's answer; after a refusal that another region's credential would also get, the listed regions'
        (the first that answers otherwise decides; an error there leaves failed_to_check, never invalid)."""
        check = detector.check
        assert check is not None
        base = self._bases[detector.id]
        if ":" in client_id:  # Basic auth cannot carry it; a detector's pattern let through something odd
            return CheckResult(validity=Validity.FAILED_TO_CHECK, checked_at=_now_iso(), base=base)
        rule, result = await self._ask_host(sha, check, base, client_id, client_secret)
        result = _answered(result, _region_of(check, base), base=base)
        if rule is None or not rule.ask_other_regions:
            return result
        cost, decided, failed = result.requests, None, False
        for region, url in self._fallbacks[detector.id]:
            log.debug("validity %s: refused by the base; asking region %s", sha[:12], region)
            there, answer = await self._ask_host(sha, check, url, client_id, client_secret)
            cost += answer.requests
            if there is not None and there.ask_other_regions:
                continue  # refused there too
            if answer.validity is Validity.FAILED_TO_CHECK:
                failed = True
                continue
            decided = _answered(answer, region, base=base)
            break
        if decided is None:
            decided = CheckResult(validity=Validity.FAILED_TO_CHECK, base=base) if failed else result
        return dataclasses.replace(decided, fallbacks=self._signature[detector.id], requests=cost,
                                   checked_at=_now_iso())

    async def _ask_host(self, sha: str, check: Check, base: str, client_id: str, client_secret: str
                        ) -> tuple[ResponseRule | None, CheckResult]:
        """One host's answer, retried through errors and 429s: (the rule that fitted, its result), or (None,
        failed_to_check) once the attempts are spent."""
        assert self._session is not None and self._slots is not None
        url = check.url.format(base=base, client_id=urllib.parse.quote(client_id, safe=""))
        if base not in self._proxies:
            self._proxies[base] = _proxy_for(base)
        # built by hand: aiohttp.BasicAuth is deprecated in 3.14 and its replacement is missing before it
        headers = {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()}
        account = (base, client_id)
        cost = errors = throttles = 0
        while True:
            throttled, per_client, retry_after, found, why = False, False, None, None, ""
            await self._account_ready(account)
            async with self._slots:
                await self._bucket.acquire()
                self.requests += 1
                cost += 1
                try:
                    # no redirects: credentials are for this URL only
                    async with self._session.request(check.method, url, headers=headers, allow_redirects=False,
                                                     proxy=self._proxies[base]) as resp:
                        body = await _read_capped(resp)
                        if resp.status == 429:
                            throttled = True
                            retry_after = retry_after_seconds(resp.headers.get("Retry-After"), self._retry_after_cap)
                            per_client = (body is not None and check.throttle_per_client is not None
                                          and _fits(_document(body), check.throttle_per_client, client_id))
                        else:
                            found = match(check.responses, resp.status, body, client_id) if body is not None else None
                            why = f"HTTP {resp.status} not in the decision table or not the expected JSON"
                        del body  # may hold the auth token; drop it as early as possible
                except (aiohttp.ClientError, TimeoutError, OSError) as e:
                    why = type(e).__name__  # never str(e): keep anything the server sent out of the log
            if found is not None:
                rule, result = found
                return rule, _stamped(result, cost)
            if throttled:
                throttles += 1
                if throttles >= self._throttle_attempts:
                    log.info("validity %s: still rate-limited after %d tries; failed_to_check", sha[:12], throttles)
                    return None, _stamped(CheckResult(validity=Validity.FAILED_TO_CHECK), cost)
                wait = retry_after if retry_after is not None else self._jitter(throttles)
                if per_client:  # the provider's limit on this account: the others go on at the run's rate
                    log.debug("validity %s: HTTP 429 for its account; its checks wait %.2f s", sha[:12], wait)
                    until = asyncio.get_running_loop().time() + wait
                    self._paused[account] = max(self._paused.get(account, 0.0), until)
                else:
                    log.debug("validity %s: HTTP 429, every request waits %.2f s", sha[:12], wait)
                    self._bucket.pause(wait)
                continue
            errors += 1
            if errors >= self._attempts:
                log.info("validity %s: %s after %d attempts; failed_to_check", sha[:12], why, errors)
                return None, _stamped(CheckResult(validity=Validity.FAILED_TO_CHECK), cost)
            log.debug("validity %s: attempt %d: %s; retrying", sha[:12], errors, why)
            await asyncio.sleep(self._jitter(errors))

    async def _account_ready(self, account: tuple[str, str]) -> None:
        """Wait out a 429 the provider gave this account (outside any slot: other checks use it meanwhile)."""
        loop = asyncio.get_running_loop()
        while (until := self._paused.get(account, 0.0)) > loop.time():
            await asyncio.sleep(until - loop.time())

    def _jitter(self, n: int) -> float:
        # full jitter (AWS architecture blog): spreads retries of many secrets failing at once
        return random.uniform(0.0, min(self._max_backoff, self._backoff * 2 ** (n - 1)))


def _answered(result: CheckResult, region: str | None, *, base: str) -> CheckResult:
    """The result as asked of ``base``, with the region whose host answered (only an answer has one)."""
    return dataclasses.replace(result, base=base, region=region if result.validity in ANSWERS else None)


def _region_of(check: Check, base: str) -> str | None:
    """The region a base serves: a regional host's own, else the detector's base region (a stand-in plays it)."""
    return next((r for r, url in check.regional_bases.items() if url == base), check.base_region)


def _stamped(result: CheckResult, cost: int) -> CheckResult:
    return dataclasses.replace(result, checked_at=_now_iso(), requests=cost)


def _base_url(check: Check, override: str | None) -> str:
    if override:
        return override
    if check.base_env and os.environ.get(check.base_env):
        return os.environ[check.base_env]
    return check.base


def _proxy_for(base: str) -> str | None:
    """HTTPS_PROXY/NO_PROXY as curl reads them; never for loopback, which no proxy can reach.

    Not aiohttp's trust_env: that also reads ~/.netrc, whose credentials would clash with ours.
    """
    parts = urllib.parse.urlsplit(base)
    host = parts.hostname or ""
    if host in ("localhost", "127.0.0.1", "::1") or urllib.request.proxy_bypass(host):
        return None
    return urllib.request.getproxies().get(parts.scheme)


async def _read_capped(resp: aiohttp.ClientResponse) -> bytes | None:
    body = bytearray()
    async for chunk in resp.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > MAX_BODY:
            return None
    return bytes(body)
