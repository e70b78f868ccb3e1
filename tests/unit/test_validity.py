"""The validation queue against the Twilio stand-in over real loopback HTTP: mappings, faults, dedup, limits, leaks."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import email.utils
import logging
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import datetime

import aiohttp
import pytest

from auditor.detectors import load_detectors
from auditor.models import Candidate, CheckResult, Pair, Validity, resolve_unchecked, secret_sha256
from auditor.testing import TwilioStandIn, serve, serve_in_thread
from auditor.validity import Validator, _proxy_for, retry_after_seconds

DET = "twilio_master_credentials"
DETECTORS = load_detectors()
FAST = {"backoff": 0.02, "timeout": 0.5, "rate": 1000.0}


def creds() -> tuple[str, str]:
    return "AC" + secrets.token_hex(16), secrets.token_hex(16)


def run(standin: TwilioStandIn, coro_fn, **kw):
    """Serve ``standin``, open a Validator on it with fast test settings, and run ``coro_fn(validator)``."""
    async def main():
        async with serve(standin) as url, Validator(DETECTORS, base_urls={DET: url}, **{**FAST, **kw}) as v:
            return await coro_fn(v), v
    return asyncio.run(main())


def check_all(standin: TwilioStandIn, pairs, **kw) -> tuple[list[CheckResult], Validator]:
    async def go(v):
        return await asyncio.gather(*(v.check(DET, i, s) for i, s in pairs))
    return run(standin, go, **kw)


def test_every_status_of_the_decision_table():
    live, trial, test, suspended, wrong = (creds() for _ in range(5))
    standin = TwilioStandIn(valid={live}, test={test}, suspended={suspended})
    (r_live, r_test, r_susp, r_wrong), v = check_all(standin, [live, test, suspended, wrong])
    assert (r_live.validity, r_live.scope) == (Validity.VALID, "live")
    assert (r_live.account_status, r_live.account_type) == ("active", "Full")
    assert (r_test.validity, r_test.scope) == (Validity.VALID, "test")
    assert r_susp.validity is Validity.INVALID and r_susp.scope is None
    assert r_wrong.validity is Validity.INVALID
    assert all(r.requests == 1 for r in (r_live, r_test, r_susp, r_wrong))
    assert datetime.fromisoformat(r_live.checked_at).utcoffset().total_seconds() == 0
    assert (v.requests, v.unique, len(standin.requests)) == (4, 4, 4)

    standin = TwilioStandIn(valid={trial}, account_status="suspended", account_type="Trial")
    [r], _ = check_all(standin, [trial])
    assert (r.validity, r.account_status, r.account_type) == (Validity.VALID, "suspended", "Trial")


def test_a_closed_account_is_invalid_and_keeps_its_status():
    """SPEC §5: a 200 whose account status is closed → invalid (a closed account never reopens); suspended stays
    valid (test_every_status_of_the_decision_table)."""
    closed = creds()
    [r], _ = check_all(TwilioStandIn(closed={closed}), [closed])
    assert (r.validity, r.scope, r.account_status, r.account_type) == (Validity.INVALID, None, "closed", "Full")
    assert (r.requests, r.region, r.subaccount) == (1, "us1", False)


def test_a_subaccount_is_valid_and_said_to_be_one():
    """owner_account_sid ≠ sid: a subaccount (its parent can rotate or close it); friendly_name is never kept."""
    main, sub = creds(), creds()
    standin = TwilioStandIn(valid={main}, subaccounts={sub})
    (r_main, r_sub), _ = check_all(standin, [main, sub])
    assert (r_main.validity, r_main.scope, r_main.subaccount) == (Validity.VALID, "live", False)
    assert (r_sub.validity, r_sub.scope, r_sub.subaccount) == (Validity.VALID, "live", True)
    assert "owner@example.com" not in repr(r_sub)  # the stand-in's friendly_name, an e-mail as Twilio's default


@pytest.mark.parametrize("fault", ["401-empty", "401-json"])
def test_a_401_without_twilios_error_json_is_an_error_like_a_5xx(fault):
    """SPEC §5: only a 401 with Twilio's error code 20003 says invalid; any other 401 is retried like a 5xx."""
    live = creds()
    [r], v = check_all(TwilioStandIn(valid={live}, faults=[fault]), [live])
    assert (r.validity, r.requests) == (Validity.VALID, 2)
    dead = creds()
    [r], v = check_all(TwilioStandIn(faults=[fault] * 4), [dead])  # never Twilio's answer: never invalid
    assert (r.validity, r.requests, r.region) == (Validity.FAILED_TO_CHECK, 4, None)


def test_twilios_own_401_is_invalid_at_once():
    """The control for the case above: the stand-in's 401 carries Twilio's JSON (code 20003)."""
    dead = creds()
    [r], _ = check_all(TwilioStandIn(), [dead])
    assert (r.validity, r.requests) == (Validity.INVALID, 1)


RECOVERABLE = ["429", "429-date", "429-none", "429-gateway", "503", "500", "html404", "302", "html200", "html401",
               "html403", "401-empty", "401-json", "wrongsid", "badjson", "slow", "drop"]


@pytest.mark.parametrize("fault", RECOVERABLE)
def test_a_fault_followed_by_a_good_answer_recovers(fault):
    live = creds()
    standin = TwilioStandIn(valid={live}, faults=[fault], slow_seconds=2.0)
    [r], v = check_all(standin, [live], timeout=0.3)
    assert (r.validity, r.scope) == (Validity.VALID, "live")
    assert r.requests == v.requests == len(standin.requests) == 2
    if fault == "429":  # Retry-After: 1 is honoured, not just any backoff
        (t0, _), (t1, _) = standin.requests
        assert t1 - t0 >= 0.9


@pytest.mark.parametrize("fault", RECOVERABLE)
def test_a_persistent_fault_is_failed_to_check_never_an_answer(fault):
    live = creds()
    standin = TwilioStandIn(valid={live}, faults=[fault] * 20, slow_seconds=2.0)
    [r], v = check_all(standin, [live], timeout=0.3, attempts=3, throttle_attempts=3, retry_after_cap=0.05)
    assert r.validity is Validity.FAILED_TO_CHECK
    assert r.scope is None and r.account_status is None and r.checked_at
    assert r.requests == v.requests == len(standin.requests) == 3


def test_twilios_own_404_is_failed_to_check_at_once():
    """20404 (a wrong host or path) would be the same answer every time: asked once, never read as invalid."""
    live = creds()
    standin = TwilioStandIn(valid={live}, faults=["404"])
    [r], v = check_all(standin, [live])
    assert (r.validity, r.requests, r.region) == (Validity.FAILED_TO_CHECK, 1, None)
    assert v.requests == len(standin.requests) == 1


def check_regions(us: TwilioStandIn, regions: dict[str, TwilioStandIn], pairs, **kw):
    """Stand-ins on their own ports: ``us`` the base, each of ``regions`` asked after it refused a pair, in order."""
    async def main():
        async with contextlib.AsyncExitStack() as stack:
            base = await stack.enter_async_context(serve(us))
            fallbacks = [(name, await stack.enter_async_context(serve(standin))) for name, standin in regions.items()]
            v = await stack.enter_async_context(Validator(DETECTORS, base_urls={DET: base}, fallbacks={DET: fallbacks},
                                                          **{**FAST, **kw}))
            return [await v.check(DET, *c) for c in pairs], base, dict(fallbacks)
    return asyncio.run(main())


def test_a_token_of_another_region_is_asked_there_after_the_base_refused_it():
    """SPEC §5: US1 refuses an IE1 token as it refuses a bad pair (401/20003); the listed regions are asked next, in
    order, until one answers otherwise; the region that answered is kept."""
    in_us, in_ie, in_au, dead = (creds() for _ in range(4))
    us, au, ie = TwilioStandIn(valid={in_us}), TwilioStandIn(valid={in_au}), TwilioStandIn(valid={in_ie})
    (r_us, r_ie, r_au, r_dead), base, urls = check_regions(us, {"au1": au, "ie1": ie}, [in_us, in_ie, in_au, dead])
    asked = f"au1={urls['au1']} ie1={urls['ie1']}"
    assert (r_us.validity, r_us.region, r_us.requests, r_us.fallbacks) == (Validity.VALID, "us1", 1, None)
    assert (r_ie.validity, r_ie.scope, r_ie.region, r_ie.requests) == (Validity.VALID, "live", "ie1", 3)
    assert (r_au.validity, r_au.region, r_au.requests) == (Validity.VALID, "au1", 2)
    assert (r_dead.validity, r_dead.region, r_dead.requests) == (Validity.INVALID, "us1", 3)  # refused everywhere
    assert {r.base for r in (r_us, r_ie, r_au, r_dead)} == {base}
    assert r_ie.fallbacks == r_au.fallbacks == r_dead.fallbacks == asked
    assert us.sids() == [in_us[0], in_ie[0], in_au[0], dead[0]]
    assert au.sids() == [in_ie[0], in_au[0], dead[0]]  # never asked about the pair US1 took
    assert ie.sids() == [in_ie[0], dead[0]]  # nor about the one AU1 took


def test_without_regions_a_token_of_another_region_reads_invalid_at_the_base():
    in_ie = creds()
    [r], _ = check_all(TwilioStandIn(), [in_ie])
    assert (r.validity, r.region, r.requests, r.fallbacks) == (Validity.INVALID, "us1", 1, "")


def test_what_a_region_says_besides_a_refusal_decides_and_an_error_there_is_no_answer():
    """A closed or suspended account in IE1 is invalid there (with its region); a regional host that fails, or does not
    serve the Accounts resource (Twilio's 404/20404, asked once), leaves failed_to_check — never invalid."""
    closed, suspended, unknown = creds(), creds(), creds()
    ie = TwilioStandIn(closed={closed}, suspended={suspended})
    results, _, _ = check_regions(TwilioStandIn(), {"ie1": ie}, [closed, suspended, unknown])
    assert [(r.validity, r.region, r.account_status) for r in results] == [
        (Validity.INVALID, "ie1", "closed"), (Validity.INVALID, "ie1", None), (Validity.INVALID, "us1", None)]
    unserved = TwilioStandIn(serves_accounts=False)
    [r], _, _ = check_regions(TwilioStandIn(), {"ie1": unserved}, [unknown])
    assert (r.validity, r.region, r.requests, len(unserved.requests)) == (Validity.FAILED_TO_CHECK, None, 2, 1)
    down = TwilioStandIn(faults=["503"] * 10)
    in_au = creds()
    [r, r2], _, _ = check_regions(TwilioStandIn(), {"ie1": down, "au1": TwilioStandIn(valid={in_au})},
                                  [unknown, in_au], attempts=2)
    assert (r.validity, r.region, r.requests) == (Validity.FAILED_TO_CHECK, None, 4)  # US1 1, IE1 2, AU1 1
    assert (r2.validity, r2.region) == (Validity.VALID, "au1")  # a region that answers wins over one that failed


def test_the_stand_in_answers_errors_in_twilios_json_shape():
    """What the decision table reads: Twilio's legacy error object (code, message, more_info, status)."""
    async def main():
        async with serve(TwilioStandIn(faults=["429", "503", "404"])) as url, aiohttp.ClientSession() as session:
            got = []
            for _ in range(4):  # three scripted faults, then an unknown pair
                async with session.get(f"{url}/2010-04-01/Accounts/{creds()[0]}.json") as resp:
                    got.append((resp.status, await resp.json()))
            return got
    for status, body in asyncio.run(main()):
        code = {401: 20003}.get(status, 20000 + status)
        assert body == {"code": code, "message": body["message"], "status": status,
                        "more_info": f"https://www.twilio.com/docs/errors/{code}"}


def test_an_endpoint_that_is_down_is_failed_to_check():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def main():
        async with Validator(DETECTORS, base_urls={DET: f"http://127.0.0.1:{port}"}, **FAST) as v:
            return await v.check(DET, *creds()), v
    r, v = asyncio.run(main())
    assert r.validity is Validity.FAILED_TO_CHECK and r.requests == v.requests == 4


def test_identical_concurrent_checks_send_one_request():
    live = creds()
    standin = TwilioStandIn(valid={live}, latency=0.1)
    results, v = check_all(standin, [live] * 20)
    assert len(set(results)) == 1 and results[0].validity is Validity.VALID
    assert (v.requests, v.unique, len(standin.requests)) == (1, 1, 1)


def test_a_cancelled_caller_does_not_cancel_the_check_others_wait_for():
    live = creds()
    standin = TwilioStandIn(valid={live}, latency=0.2)

    async def go(v):
        impatient = asyncio.create_task(v.check(DET, *live))
        patient = asyncio.create_task(v.check(DET, *live))
        await asyncio.sleep(0.05)
        impatient.cancel()
        return await patient
    r, v = run(standin, go)
    assert r.validity is Validity.VALID and v.requests == len(standin.requests) == 1


def test_a_detector_without_a_check_is_unchecked_and_an_unknown_one_is_an_error():
    plain = dataclasses.replace(DETECTORS[0], id="no_check", check=None, validity_check_available=False)

    async def main():
        async with Validator([plain], **FAST) as v:
            r = await v.check("no_check", *creds())
            with pytest.raises(ValueError, match="unknown detector"):
                await v.check("nope", *creds())
            return r, v
    r, v = asyncio.run(main())
    assert r == CheckResult.unchecked() and v.requests == 0


def test_resolve_stops_at_the_first_valid_pair_in_rank_order():
    sid, token = creds()
    decoys = [secrets.token_hex(16) for _ in range(3)]
    standin = TwilioStandIn(valid={(sid, token)})
    secrets_in_rank_order = decoys[:2] + [token, decoys[2]]
    pairs = [Pair(client_id=sid, client_secret=s, rank=i, line=1) for i, s in enumerate(secrets_in_rank_order)]
    candidate = Candidate(detector=DET, blob="b" * 40, client_id=sid, pairs=tuple(reversed(pairs)))  # ranks, not order
    resolved, v = run(standin, lambda v: v.resolve(candidate))
    assert (resolved.client_secret, resolved.check.validity) == (token, Validity.VALID)
    assert resolved.secret_sha256 == secret_sha256(sid, token)
    assert v.requests == len(standin.requests) == 3

    nothing = Candidate(detector=DET, blob="b" * 40, client_id=sid,
                        pairs=tuple(Pair(client_id=sid, client_secret=s, rank=i, line=1) for i, s in enumerate(decoys)))
    resolved, v = run(TwilioStandIn(), lambda v: v.resolve(nothing))
    assert (resolved.client_secret, resolved.check.validity) == (decoys[0], Validity.INVALID)
    assert v.requests == 3

    unchecked = resolve_unchecked(candidate)
    assert (unchecked.client_secret, unchecked.check) == (decoys[0], CheckResult.unchecked())


def test_cache_hits_send_no_request_and_are_not_reported_again():
    live, fresh = creds(), creds()
    reported = []
    standin = TwilioStandIn(valid={live, fresh})

    async def main():
        async with serve(standin) as url:
            stored = CheckResult(validity=Validity.VALID, scope="live", checked_at="2020-01-01T00:00:00+00:00",
                                 requests=1, base=url, region="us1")
            async with Validator(DETECTORS, base_urls={DET: url}, cache={secret_sha256(*live): stored},
                                 on_result=lambda *a: reported.append(a), **FAST) as v:
                got = [await v.check(DET, *c) for c in (live, live, fresh, fresh)]
                return stored, got, v
    stored, results, v = asyncio.run(main())
    assert results[0] is stored and results[1] is stored
    assert results[2].validity is Validity.VALID and results[2] is not stored
    assert standin.sids() == [fresh[0]] and (v.requests, v.unique) == (1, 1)
    assert reported == [(secret_sha256(*fresh), DET, fresh[0], results[2])]


def test_a_stored_answer_is_reused_only_for_the_servers_that_gave_it():
    """SPEC §5: the same base; and for a pair the base refused (401/20003), the same regions asked after it."""
    us, ie = "https://us.example", "https://ie.example"
    plain = Validator(DETECTORS, base_urls={DET: us})
    regional = Validator(DETECTORS, base_urls={DET: us}, fallbacks={DET: [("ie1", ie)]})
    valid = CheckResult(validity=Validity.VALID, base=us, region="us1")  # the base answered alone
    refused = CheckResult(validity=Validity.INVALID, base=us, region="us1", fallbacks="")  # no region asked
    refused_everywhere = dataclasses.replace(refused, fallbacks=f"ie1={ie}")
    found_in_ie1 = CheckResult(validity=Validity.VALID, base=us, region="ie1", fallbacks=f"ie1={ie}")
    assert [plain.reusable(DET, r) for r in (valid, refused, refused_everywhere, found_in_ie1)] == [
        True, True, False, False]
    assert [regional.reusable(DET, r) for r in (valid, refused, refused_everywhere, found_in_ie1)] == [
        True, False, True, True]
    other_base = Validator(DETECTORS, base_urls={DET: "http://127.0.0.1:9"})
    assert not any(other_base.reusable(DET, r) for r in (valid, refused))
    assert not plain.reusable(DET, CheckResult(validity=Validity.VALID))  # an older store: no base, not reused
    assert not plain.reusable("nope", valid)


def test_on_result_reports_every_new_check_once_failures_included():
    live, dead = creds(), creds()
    reported = []
    standin = TwilioStandIn(valid={live}, faults=["503"] * 4)  # all four attempts for `dead` fail

    async def go(v):
        return [await v.check(DET, *c) for c in (dead, dead, live, live)]
    results, _ = run(standin, go, on_result=lambda *a: reported.append(a))
    assert [r.validity for r in results] == [Validity.FAILED_TO_CHECK] * 2 + [Validity.VALID] * 2
    assert [a[0] for a in reported] == [secret_sha256(*dead), secret_sha256(*live)]
    assert [a[3] for a in reported] == [results[0], results[2]]


def test_the_rate_limit_holds_at_the_server():
    pairs = [creds() for _ in range(25)]
    standin = TwilioStandIn(valid=set(pairs))
    t0 = time.monotonic()
    results, v = check_all(standin, pairs, rate=10.0, concurrency=8)
    assert all(r.validity is Validity.VALID for r in results) and v.requests == 25
    assert standin.max_per_window(1.0) <= 11
    assert time.monotonic() - t0 >= 2.3  # 25 requests 0.1 s apart


def test_a_429_that_is_not_twilios_slows_every_request_down():
    """A gateway's 429 (no Twilio code) limits this client, whatever account it was for."""
    pairs = [creds() for _ in range(6)]
    standin = TwilioStandIn(valid=set(pairs), faults=["429-gateway"])
    results, v = check_all(standin, pairs, concurrency=1)
    assert all(r.validity is Validity.VALID for r in results) and v.requests == 7
    (t0, _), (t1, _) = standin.requests[:2]
    assert t1 - t0 >= 0.9  # the next request, whichever secret it was for, waited for Retry-After


def test_twilios_429_holds_that_account_only():
    """Twilio's 20429 limits concurrent requests per account: the other accounts' checks go on at the run's rate,
    and the throttled one is asked again after its Retry-After."""
    throttled, *others = [creds() for _ in range(8)]
    standin = TwilioStandIn(valid={throttled, *others}, sid_faults={throttled[0]: ["429"]}, retry_after=4)
    results, v = check_all(standin, [throttled, *others], concurrency=2, rate=20.0)
    assert all(r.validity is Validity.VALID for r in results) and v.requests == 9
    times = {}
    for t, sid in standin.requests:
        times.setdefault(sid, []).append(t)
    first, again = times[throttled[0]]
    assert again - first >= 3.9  # Retry-After honoured
    assert all(len(times[sid]) == 1 for sid, _ in others)
    # nobody waited for it: 7 requests at 20/s take ~0.35 s; a pause of every check would start them after 4 s
    assert max(times[sid][0] for sid, _ in others) - first < 3.0


def test_the_concurrency_bound_holds_at_the_server():
    pairs = [creds() for _ in range(15)]
    standin = TwilioStandIn(valid=set(pairs), latency=0.1)
    results, v = check_all(standin, pairs, concurrency=3)
    assert all(r.validity is Validity.VALID for r in results)
    assert standin.max_in_flight == 3


def test_response_bodies_never_reach_the_log(caplog):
    caplog.set_level(logging.DEBUG)
    live = creds()
    standin = TwilioStandIn(valid={live}, faults=["html200", "503", "badjson"])
    [r, _], _ = check_all(standin, [live, live])
    assert r.validity is Validity.VALID
    # the stand-in's 200 body holds the auth token, as Twilio's does; neither it nor the body may be logged
    assert "validity" in caplog.text  # the retries were logged, so the test can fail
    assert live[1] not in caplog.text and "auth_token" not in caplog.text
    assert live[1] not in repr(r)


def test_cancellation_keeps_the_results_of_completed_checks():
    pairs = [creds() for _ in range(30)]
    standin = TwilioStandIn(valid=set(pairs), latency=0.05)
    reported = []

    async def main():
        async with serve(standin) as url:
            v = Validator(DETECTORS, base_urls={DET: url}, **{**FAST, "concurrency": 2},
                          on_result=lambda *a: reported.append(a))

            async def scan():
                async with v:
                    await asyncio.gather(*(v.resolve(Candidate(detector=DET, blob="c" * 40, client_id=i,
                                                               pairs=(Pair(client_id=i, client_secret=s, rank=0,
                                                                           line=1),)))
                                           for i, s in pairs))

            task = asyncio.create_task(scan())
            async with asyncio.timeout(10):
                while len(reported) < 4:
                    await asyncio.sleep(0.005)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            at_cancel = len(reported)
            await asyncio.sleep(0.2)
            assert len(reported) == at_cancel  # nothing runs on after the run was stopped
            return at_cancel, v

    n, v = asyncio.run(main())
    assert 4 <= n < len(pairs)
    assert all(r[3].validity is Validity.VALID for r in reported)
    assert len({r[0] for r in reported}) == n
    assert n <= len(standin.requests) <= n + 2  # only in-flight checks were lost


def test_base_url_comes_from_the_override_then_the_environment(monkeypatch):
    live = creds()
    standin = TwilioStandIn(valid={live})
    with serve_in_thread(standin) as url:
        async def check(**kw):
            async with Validator(DETECTORS, **{**FAST, "attempts": 1}, **kw) as v:
                return await v.check(DET, *live)
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # loopback never goes through a proxy
        monkeypatch.setenv("AUDITOR_TWILIO_API_URL", url + "/")
        assert asyncio.run(check()).validity is Validity.VALID
        monkeypatch.setenv("AUDITOR_TWILIO_API_URL", "http://127.0.0.1:9")  # nothing listens there
        assert asyncio.run(check(base_urls={DET: url})).validity is Validity.VALID
        assert asyncio.run(check()).validity is Validity.FAILED_TO_CHECK
    assert len(standin.requests) == 2


def test_a_proxy_from_the_environment_is_used_for_the_provider(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "example.com")
    assert _proxy_for("https://api.twilio.com") == "http://proxy.internal:3128"
    assert _proxy_for("https://eu.example.com") is None and _proxy_for("http://localhost:8080") is None


def test_retry_after_parsing():
    assert retry_after_seconds("3", 60) == 3
    assert retry_after_seconds("3600", 60) == 60
    assert retry_after_seconds("-5", 60) == 0
    assert retry_after_seconds(None, 60) is None and retry_after_seconds("soon", 60) is None
    assert retry_after_seconds(email.utils.formatdate(time.time() - 100, usegmt=True), 60) == 0
    later = retry_after_seconds(email.utils.formatdate(time.time() + 30, usegmt=True), 60)
    assert 28 <= later <= 30


def test_the_stand_in_runs_from_the_command_line():
    sid, token = creds()
    proc = subprocess.Popen([sys.executable, "-m", "auditor.testing", "--valid", f"{sid}:{token}"],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        url = line.split(" at ", 1)[1].split()[0]
        req = urllib.request.Request(f"{url}/2010-04-01/Accounts/{sid}.json")
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{sid}:{token}".encode()).decode())
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert resp.status == 200
    finally:
        proc.terminate()
        proc.wait(timeout=5)
        proc.stdout.close()
