"""The Twilio API keys check (builtin/twilio_api_keys.yaml) against the real aiohttp stand-in on 127.0.0.1: what
Verify's service list answers for a key SID : secret, read as SPEC §5 reads the master credentials' answers."""

from __future__ import annotations

import asyncio
import secrets
import string

import pytest

from auditor.detectors import load_detectors
from auditor.models import CheckResult, Validity
from auditor.testing import TwilioStandIn, serve
from auditor.validity import Validator

DET = "twilio_api_keys"
DETECTORS = load_detectors()
FAST = {"backoff": 0.02, "timeout": 0.5, "rate": 1000.0}
ALNUM = string.ascii_letters + string.digits


def key() -> tuple[str, str]:
    """A made-up key: random hex SID, random alphanumeric secret (never a real-looking live credential)."""
    return "SK" + secrets.token_hex(16), "".join(secrets.choice(ALNUM) for _ in range(32))


def check_all(standin: TwilioStandIn, pairs, **kw) -> tuple[list[CheckResult], Validator]:
    async def main():
        async with serve(standin) as url, Validator(DETECTORS, base_urls={DET: url}, **{**FAST, **kw}) as v:
            return await asyncio.gather(*(v.check(DET, i, s) for i, s in pairs)), v
    return asyncio.run(main())


def test_every_row_of_the_api_keys_decision_table():
    live, restricted, suspended, wrong = key(), key(), key(), key()
    standin = TwilioStandIn(api_keys={live}, restricted_keys={restricted}, suspended={suspended})
    (r_live, r_restricted, r_suspended, r_wrong), v = check_all(standin, [live, restricted, suspended, wrong])
    assert (r_live.validity, r_live.scope, r_live.region) == (Validity.VALID, "live", "us1")
    assert r_wrong.validity is Validity.INVALID and r_suspended.validity is Validity.INVALID
    # a Restricted key without Verify's permission authenticated: no answer, and asking again says the same
    assert (r_restricted.validity, r_restricted.requests) == (Validity.FAILED_TO_CHECK, 1)
    assert v.requests == len(standin.requests) == 4
    assert sorted(standin.sids()) == sorted(sid for sid, _ in (live, restricted, suspended, wrong))


def test_the_key_is_the_basic_login_of_a_get_on_verifys_service_list():
    live = key()
    standin = TwilioStandIn(api_keys={live})
    [r], _ = check_all(standin, [live])
    assert r.validity is Validity.VALID  # the stand-in answers 200 only for the key's own secret as password
    assert standin.asked == [("GET", "/v2/Services?PageSize=1", live[0])]


RECOVERABLE = ["429", "429-gateway", "503", "html200", "html401", "401-empty", "401-json", "wrongsid", "badjson",
               "drop"]


@pytest.mark.parametrize("fault", RECOVERABLE)
def test_a_fault_followed_by_a_good_answer_recovers(fault):
    live = key()
    standin = TwilioStandIn(api_keys={live}, faults=[fault])
    [r], v = check_all(standin, [live])
    assert (r.validity, r.scope) == (Validity.VALID, "live")
    assert r.requests == len(standin.requests) == 2


@pytest.mark.parametrize("fault", RECOVERABLE)
def test_a_persistent_fault_is_failed_to_check_never_an_answer(fault):
    live = key()
    standin = TwilioStandIn(api_keys={live}, faults=[fault] * 20)
    [r], _ = check_all(standin, [live], attempts=3, throttle_attempts=3, retry_after_cap=0.05)
    assert (r.validity, r.requests) == (Validity.FAILED_TO_CHECK, 3)


def test_twilios_429_holds_that_key_for_its_retry_after():
    live = key()
    standin = TwilioStandIn(api_keys={live}, sid_faults={live[0]: ["429"]})
    [r], _ = check_all(standin, [live])
    assert r.validity is Validity.VALID
    (t0, _), (t1, _) = standin.requests
    assert t1 - t0 >= 0.9  # Retry-After: 1, honoured


def test_a_host_without_verify_is_failed_to_check_at_once():
    live = key()
    standin = TwilioStandIn(api_keys={live}, faults=["404"])  # Twilio's own 20404
    [r], _ = check_all(standin, [live])
    assert (r.validity, r.requests) == (Validity.FAILED_TO_CHECK, 1)


def test_a_key_of_another_region_is_asked_there_after_the_base_refused_it():
    ie1_key = key()

    async def main():
        ireland = TwilioStandIn(region="ie1", api_keys={ie1_key})
        async with serve(TwilioStandIn()) as us, serve(ireland) as ie, Validator(
                DETECTORS, base_urls={DET: us}, fallbacks={DET: [("ie1", ie)]}, **FAST) as v:
            return await v.check(DET, *ie1_key)
    r = asyncio.run(main())
    assert (r.validity, r.region, r.requests) == (Validity.VALID, "ie1", 2)
