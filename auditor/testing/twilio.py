"""A Twilio stand-in on 127.0.0.1: Basic-auth account requests in, Twilio-shaped answers (or scripted faults) out.

The network of a test, a benchmark or a user's dry run should never be api.twilio.com: point
``--twilio-api-url`` (or ``AUDITOR_TWILIO_API_URL``) at this server instead. It answers
``GET /2010-04-01/Accounts/{sid}.json`` the way Twilio does — including the account's auth token in
the 200 body, so a test can prove that body never leaks — and ``GET /v2/Services`` (Verify's service list, where an
API key SK… : secret is checked) the way verify.twilio.com does; it records every request it receives
so assertions are made on what reached the server, not on what the client believes it sent.

Errors come in Twilio's JSON shape (``{code, message, more_info, status}``). One stand-in plays one region: a pair
it does not know gets 401/20003, as a token of another region does on Twilio's hosts, so two stand-ins on two ports
(``--twilio-api-url`` and ``--twilio-region-url ie1=URL``) play a token that works in one region only.

    python -m auditor.testing --valid AC…:token --test AC…:token --latency 0.05 --port 8099
    python -m auditor.testing --region ie1 --valid AC…:token --closed AC…:token --subaccount AC…:token
    python -m auditor.testing --api-key SK…:secret --restricted-key SK…:secret
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import email.utils
import hashlib
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field

from aiohttp import web

ACCOUNT_PATH = "/2010-04-01/Accounts/{sid}.json"
SERVICES_PATH = "/v2/Services"  # Verify (verify.twilio.com): the API-key check

Creds = set[tuple[str, str]]


def _error(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """Twilio's error body (twilio.com/docs/api/errors: 20003 Authenticate, 20404 Not Found, 20429 Too Many
    Requests, 20500/20503…)."""
    return web.json_response({"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
                              "status": status}, status=status, headers=headers)


def parent_of(sid: str) -> str:
    """The (made-up, stable) parent account SID the stand-in gives a subaccount."""
    return "AC" + hashlib.sha256(sid.encode()).hexdigest()[:32]


@dataclass
class TwilioStandIn:
    """What the stand-in knows and what it saw; mutate it between requests to change its answers.

    ``faults`` is a script consumed one entry per request, before any normal answer (``sid_faults`` the same for
    one SID's requests, before ``faults``; on ``/v2/Services`` the SID is the Basic login, the key SID):
    ``"429"`` (Twilio's 20429, Retry-After: ``retry_after`` seconds),
    ``"429-date"`` (Retry-After as an HTTP date), ``"429-none"`` (no Retry-After), ``"429-gateway"`` (a 429 that
    is not Twilio's: plain text), any other 3-digit status (e.g. ``"503"``: Twilio's JSON error 20000 + status
    for 4xx and 5xx, so ``"404"`` is Twilio's own 20404), ``"html200"`` (an HTML page with that status: what a proxy
    or a CDN answers; ``"html401"`` too), ``"401-empty"`` (a 401 without a body) and ``"401-json"`` (a gateway's
    JSON 401, not Twilio's), ``"wrongsid"`` (200 JSON of another account), ``"badjson"`` (200, truncated JSON),
    ``"slow"`` (answers after ``slow_seconds``, beyond a client's timeout) and ``"drop"`` (closes the
    connection without answering).
    """

    valid: Creds = field(default_factory=set)  # → 200 account document (status ``account_status``)
    test: Creds = field(default_factory=set)  # test credentials → 403 code 20008
    suspended: Creds = field(default_factory=set)  # → 403 code 20403
    closed: Creds = field(default_factory=set)  # → 200, status closed
    subaccounts: Creds = field(default_factory=set)  # → 200 of a subaccount: owner_account_sid is parent_of(sid)
    api_keys: Creds = field(default_factory=set)  # (SK…, secret) → 200 on /v2/Services (``suspended`` → 403 20403)
    restricted_keys: Creds = field(default_factory=set)  # a Restricted key without Verify's permission → 403 70051
    region: str = "us1"  # the Twilio region this stand-in plays (what it prints; pairs it does not know get 401)
    serves_accounts: bool = True  # False: a host without the Accounts resource (every request 404, code 20404)
    latency: float = 0.0  # seconds before every answer
    faults: list[str] = field(default_factory=list)
    sid_faults: dict[str, list[str]] = field(default_factory=dict)  # SID → its own script, as ``faults``
    retry_after: int = 1
    slow_seconds: float = 5.0
    account_status: str = "active"
    account_type: str = "Full"
    requests: list[tuple[float, str]] = field(default_factory=list)  # (time.monotonic() on arrival, sid)
    asked: list[tuple[str, str, str | None]] = field(default_factory=list)  # (method, path?query, Basic login)
    in_flight: int = 0
    max_in_flight: int = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(ACCOUNT_PATH, self._account)
        app.router.add_get(SERVICES_PATH, self._services)
        return app

    def sids(self) -> list[str]:
        return [sid for _, sid in self.requests]

    def max_per_window(self, window: float = 1.0) -> int:
        """The most requests that arrived within any ``window`` seconds (a sliding window)."""
        times = sorted(t for t, _ in self.requests)
        best, lo = 0, 0
        for hi, t in enumerate(times):
            while t - times[lo] >= window:
                lo += 1
            best = max(best, hi - lo + 1)
        return best

    async def _account(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, request.match_info["sid"], self.serves_accounts, self._answer)

    async def _services(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, _login(request)[0] or "", True, self._key_answer)

    async def _serve(self, request: web.Request, sid: str, serves: bool,
                     answer: Callable[[web.Request, str], web.Response]) -> web.StreamResponse:
        """Latency, then a scripted fault if any, then ``answer``; every request is recorded."""
        self.requests.append((time.monotonic(), sid))
        self.asked.append((request.method, request.path_qs, _login(request)[0]))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.latency:
                await asyncio.sleep(self.latency)
            if self.sid_faults.get(sid):
                return await self._fault(self.sid_faults[sid].pop(0), request, sid, answer)
            if self.faults:
                return await self._fault(self.faults.pop(0), request, sid, answer)
            if not serves:
                return _error(404, 20404, "The requested resource was not found")
            return answer(request, sid)
        finally:
            self.in_flight -= 1

    async def _fault(self, fault: str, request: web.Request, sid: str,
                     answer: Callable[[web.Request, str], web.Response]) -> web.StreamResponse:
        if fault == "429":
            return _error(429, 20429, "Too Many Requests", {"Retry-After": str(self.retry_after)})
        if fault == "429-date":
            return _error(429, 20429, "Too Many Requests", {
                "Retry-After": email.utils.formatdate(time.time() + self.retry_after, usegmt=True)})
        if fault == "429-none":
            return _error(429, 20429, "Too Many Requests")
        if fault == "429-gateway":
            return web.Response(status=429, text="Too Many Requests", headers={"Retry-After": str(self.retry_after)})
        if fault == "401-empty":
            return web.Response(status=401)
        if fault == "401-json":
            return web.json_response({"error": "unauthorized", "message": "Unauthorized"}, status=401)
        if fault.startswith("html") and fault[4:].isdigit():
            return web.Response(status=int(fault[4:]), content_type="text/html",
                                text="<html><body><h1>Service temporarily unavailable</h1></body></html>")
        if fault == "wrongsid":
            return web.json_response({"sid": "AC" + "0f" * 16, "status": "active", "type": "Full"})
        if fault == "badjson":
            return web.Response(status=200, content_type="application/json", text='{"sid": "' + sid[:10])
        if fault == "slow":
            await asyncio.sleep(self.slow_seconds)
            return answer(request, sid)
        if fault == "drop":
            assert request.transport is not None
            request.transport.abort()  # no status line at all: the client sees a disconnect
            return web.Response()
        if fault.isdigit() and len(fault) == 3:
            status = int(fault)
            if status >= 400:
                return _error(status, 20000 + status, f"fault {fault}")
            return web.Response(status=status, text=f"fault {fault}")
        raise ValueError(f"unknown fault {fault!r}")

    def _answer(self, request: web.Request, sid: str) -> web.Response:
        login, password = _login(request)
        creds = (login, password)
        if login is None or login != sid:
            return _error(401, 20003, "Authenticate")
        if creds in self.valid or creds in self.closed or creds in self.subaccounts:
            return web.json_response({
                "sid": sid, "owner_account_sid": parent_of(sid) if creds in self.subaccounts else sid,
                "friendly_name": "owner@example.com",  # Twilio's default is the owner's e-mail: never kept
                "status": "closed" if creds in self.closed else self.account_status, "type": self.account_type,
                "auth_token": password,  # the real API returns it too; the client must never leak it
                "date_created": "Thu, 01 Jan 2015 00:00:00 +0000", "date_updated": "Thu, 01 Jan 2015 00:00:00 +0000",
                "uri": ACCOUNT_PATH.format(sid=sid)})
        if creds in self.test:
            return _error(403, 20008, "Resource not accessible with Test Account Credentials")
        if creds in self.suspended:
            return _error(403, 20403, "Forbidden: account suspended")
        return _error(401, 20003, "Authenticate")

    def _key_answer(self, request: web.Request, sid: str) -> web.Response:
        """Verify's service list for an API key: one page, no service (the body carries no secret)."""
        login, password = _login(request)
        creds = (login or "", password)
        if creds in self.api_keys:
            page = f"https://verify.twilio.com{SERVICES_PATH}?PageSize=1&Page=0"
            return web.json_response({"services": [], "meta": {
                "page": 0, "page_size": 1, "first_page_url": page, "previous_page_url": None, "url": page,
                "next_page_url": None, "key": "services"}})
        if creds in self.restricted_keys:
            return _error(403, 70051, "Authorization Failed")
        if creds in self.suspended:
            return _error(403, 20403, "Forbidden: account suspended")
        return _error(401, 20003, "Authenticate")


def _login(request: web.Request) -> tuple[str | None, str]:
    """The Basic-auth (user, password) of a request; (None, "") without a well-formed Basic header."""
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    try:
        login, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
        return None, ""
    return (login, password) if scheme.lower() == "basic" and sep else (None, "")


@asynccontextmanager
async def serve(standin: TwilioStandIn, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Run the stand-in on this loop; yields its base URL (``http://127.0.0.1:PORT``)."""
    # handler_cancellation: a "slow" answer stops when the client gives up, so cleanup never waits on it
    runner = web.AppRunner(standin.app(), handler_cancellation=True, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1]
        yield f"http://{host}:{bound}"
    finally:
        await runner.cleanup()


@contextmanager
def serve_in_thread(standin: TwilioStandIn, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """The stand-in on its own loop in a background thread, for code under test that runs its own loop or process."""
    ready = threading.Event()
    box: dict[str, object] = {}

    async def main() -> None:
        stop = asyncio.Event()
        box["stop"], box["loop"] = stop, asyncio.get_running_loop()
        async with serve(standin, host, port) as url:
            box["url"] = url
            ready.set()
            await stop.wait()

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as e:  # surfaced in the caller's thread below
            box["error"] = e
        finally:
            ready.set()

    thread = threading.Thread(target=run, name="twilio-stand-in", daemon=True)
    thread.start()
    ready.wait()
    if "error" in box:
        thread.join()
        raise RuntimeError("the Twilio stand-in did not start") from box["error"]
    try:
        yield str(box["url"])
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join()


def _creds(values: list[str]) -> Creds:
    out = set()
    for v in values:
        sid, sep, token = v.partition(":")
        if not sep:
            raise SystemExit(f"expected SID:TOKEN, got {v!r}")
        out.add((sid, token))
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m auditor.testing", description=__doc__.splitlines()[0])
    p.add_argument("--valid", action="append", default=[], metavar="SID:TOKEN", help="live credentials (200)")
    p.add_argument("--test", action="append", default=[], metavar="SID:TOKEN", help="test credentials (403 20008)")
    p.add_argument("--suspended", action="append", default=[], metavar="SID:TOKEN", help="403 20403")
    p.add_argument("--closed", action="append", default=[], metavar="SID:TOKEN", help="200, account status closed")
    p.add_argument("--subaccount", action="append", default=[], metavar="SID:TOKEN",
                   help="200 of a subaccount (owner_account_sid is another SID)")
    p.add_argument("--api-key", action="append", default=[], metavar="SK:SECRET",
                   help="a live API key (200 on /v2/Services)")
    p.add_argument("--restricted-key", action="append", default=[], metavar="SK:SECRET",
                   help="a Restricted API key without Verify's permission (403 70051)")
    p.add_argument("--region", default="us1", help="the Twilio region this stand-in plays (default us1)")
    p.add_argument("--latency", type=float, default=0.0, help="seconds before every answer")
    p.add_argument("--fault", action="append", default=[], help="scripted faults, one per request (see TwilioStandIn)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = p.parse_args(argv)
    standin = TwilioStandIn(valid=_creds(args.valid), test=_creds(args.test), suspended=_creds(args.suspended),
                            closed=_creds(args.closed), subaccounts=_creds(args.subaccount),
                            api_keys=_creds(args.api_key), restricted_keys=_creds(args.restricted_key),
                            region=args.region, latency=args.latency, faults=list(args.fault))

    async def run() -> None:
        async with serve(standin, args.host, args.port) as url:
            use = (f"export AUDITOR_TWILIO_API_URL={url}" if args.region == "us1"
                   else f"--twilio-regions {args.region} --twilio-region-url {args.region}={url}")
            print(f"Twilio stand-in ({args.region}) at {url}  ({use}); Ctrl-C stops", flush=True)
            await asyncio.Event().wait()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        print(f"stopped after {len(standin.requests)} requests")


if __name__ == "__main__":
    main()
