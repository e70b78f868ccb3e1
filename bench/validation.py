"""Benchmark (not a test): is validation throughput bounded by the rate limit and the concurrency, not by auditor?

N unique Twilio secrets, each found in ``--copies`` blobs (so deduplication is exercised too), are
resolved against the local stand-in answering after ``--latency`` seconds. The floor for a run is
``max(N / rate, N * latency / concurrency)``: the rate limit, or the concurrency bound times the
provider's latency, whichever binds. Run twice: at ``--rate`` (rate-bound) and at ``--high-rate``
(concurrency-bound). The server counts what it received, so duplicates are measured, not assumed.

    .venv/bin/python bench/validation.py            # N=1000, ~110 s
    .venv/bin/python bench/validation.py --n 200    # quick
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import time
from collections import Counter

from auditor.detectors import load_detectors
from auditor.models import Candidate, Pair, Validity
from auditor.testing import TwilioStandIn, serve_in_thread
from auditor.validity import Validator

DET = "twilio_master_credentials"


def _candidates(n: int, copies: int) -> tuple[set[tuple[str, str]], list[Candidate]]:
    creds = {("AC" + secrets.token_hex(16), secrets.token_hex(16)) for _ in range(n)}
    candidates = [Candidate(detector=DET, blob=secrets.token_hex(20), client_id=sid,
                            pairs=(Pair(client_id=sid, client_secret=token, rank=0, line=1),))
                  for _ in range(copies) for sid, token in creds]
    return creds, candidates


async def _resolve_all(url: str, candidates: list[Candidate], *, rate: float, concurrency: int) -> Validator:
    async with Validator(load_detectors(), base_urls={DET: url}, rate=rate, concurrency=concurrency) as v:
        resolved = await asyncio.gather(*(v.resolve(c) for c in candidates))
    not_valid = sum(r.check.validity is not Validity.VALID for r in resolved)
    if not_valid:
        raise SystemExit(f"{not_valid} candidates did not resolve to valid: the benchmark is broken")
    return v


def run_once(n: int, copies: int, rate: float, latency: float, concurrency: int) -> dict[str, float]:
    creds, candidates = _candidates(n, copies)
    standin = TwilioStandIn(valid=creds, latency=latency)
    with serve_in_thread(standin) as url:
        t0 = time.perf_counter()
        v = asyncio.run(_resolve_all(url, candidates, rate=rate, concurrency=concurrency))
        wall = time.perf_counter() - t0
    bound = max(n / rate, n * latency / concurrency)
    per_sid = Counter(standin.sids())
    return {"n": n, "candidates": len(candidates), "rate": rate, "concurrency": concurrency, "latency": latency,
            "wall": wall, "bound": bound, "ratio": wall / bound, "client_requests": v.requests,
            "server_requests": len(standin.requests), "duplicates": sum(c - 1 for c in per_sid.values()),
            "max_in_flight": standin.max_in_flight, "max_per_second": standin.max_per_window(1.0)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1000, help="unique secrets")
    p.add_argument("--copies", type=int, default=2, help="candidates per secret (blobs holding the same secret)")
    p.add_argument("--rate", type=float, default=10.0, help="requests/s of the rate-bound run")
    p.add_argument("--high-rate", type=float, default=1000.0, help="requests/s of the concurrency-bound run")
    p.add_argument("--latency", type=float, default=0.05, help="stand-in answer delay, seconds")
    p.add_argument("--concurrency", type=int, default=8)
    args = p.parse_args()
    header = (f"{'rate':>7} {'conc':>4} {'N':>6} {'cands':>6} {'wall s':>8} {'bound s':>8} {'ratio':>6} "
              f"{'requests':>8} {'dupes':>5} {'inflight':>8} {'max/s':>5}")
    print(header)
    failed = False
    for rate in (args.rate, args.high_rate):
        r = run_once(args.n, args.copies, rate, args.latency, args.concurrency)
        print(f"{r['rate']:>7g} {r['concurrency']:>4} {r['n']:>6} {r['candidates']:>6} {r['wall']:>8.2f} "
              f"{r['bound']:>8.2f} {r['ratio']:>6.3f} {r['server_requests']:>8} {r['duplicates']:>5} "
              f"{r['max_in_flight']:>8} {r['max_per_second']:>5}", flush=True)
        failed |= r["duplicates"] > 0 or r["server_requests"] != r["n"] or r["client_requests"] != r["n"]
    print("bound = max(N/rate, N*latency/concurrency); ratio = wall/bound; dupes = server-side duplicate requests")
    if failed:
        raise SystemExit("FAIL: duplicate or missing requests")


if __name__ == "__main__":
    main()
