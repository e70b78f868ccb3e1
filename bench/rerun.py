"""What a rerun costs after new commits land (issue 6 point 1): full scan vs rerun on the same --out.

    .venv/bin/python bench/rerun.py synth:20k [--new 10] [--reps 3]

In one run, on a copy of the repository (``git clone --mirror``, never the original): the full scan (fresh --out)
of the history, then ``--new`` commits are added with ``git fast-import`` (one of them planting a random-hex pair),
then the rerun on a copy of the full scan's --out, a full scan of the grown history into a fresh --out, and a
rerun with nothing new. Medians of ``--reps``. The rerun's findings must equal the fresh scan's. Writes
bench/work/results/rerun-<label>.md and prints it.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import WORK  # noqa: E402
from run import resolve  # noqa: E402

PY = sys.executable


def scan(repo: Path, out: Path) -> tuple[float, dict, set]:
    t0 = time.perf_counter()
    proc = subprocess.run([PY, "-m", "auditor", "scan", str(repo), "--out", str(out), "--no-validate",
                           "--no-progress", "--show-secrets"], capture_output=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        raise SystemExit(f"scan failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}")
    summary = json.loads((out / "summary.json").read_text())
    rows = [json.loads(x) for x in (out / "findings.jsonl").read_text().splitlines() if x.strip()]
    return wall, summary, {(r["commit"], r["path"], r["client_id"], r["client_secret"]) for r in rows}


def add_commits(repo: Path, n: int) -> None:
    """``n`` commits on main, each adding one file; the first plants a random-hex SID and token."""
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "refs/heads/main"], capture_output=True,
                          check=True, text=True).stdout.strip()
    stream = []
    for i in range(n):
        body = f"new file {i}\n".encode()
        if i == 0:
            sid, token = f"AC{secrets.token_hex(16)}", secrets.token_hex(16)
            body += f'TWILIO_ACCOUNT_SID = "{sid}"\nauth_token = "{token}"\n'.encode()
        msg = f"bench: new commit {i}\n".encode()
        stream += [b"commit refs/heads/main", b"committer Bench <bench@example.com> %d +0000" % (1_800_000_000 + i),
                   b"data %d" % len(msg), msg]
        if i == 0:
            stream.append(f"from {head}".encode())
        stream += [f"M 100644 inline bench/new-{i}.py".encode(), b"data %d" % len(body), body]
    subprocess.run(["git", "-C", str(repo), "fast-import", "--quiet"], input=b"\n".join(stream) + b"\n", check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("repo", help="repository path or synth:20k / synth:100k")
    ap.add_argument("--new", type=int, default=10, help="commits to add (default 10)")
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    src, label, _ = resolve(args.repo)
    work = WORK / "rerun" / label
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    repo = work / "repo.git"
    subprocess.run(["git", "clone", "-q", "--mirror", str(src), str(repo)], check=True)

    full = [scan(repo, work / f"full-{r}") for r in range(args.reps)]
    add_commits(repo, args.new)
    reruns, fresh, same = [], [], []
    for r in range(args.reps):
        shutil.copytree(work / "full-0", work / f"rerun-{r}")
        reruns.append(scan(repo, work / f"rerun-{r}"))
        same.append(scan(repo, work / f"rerun-{r}"))
        fresh.append(scan(repo, work / f"fresh-{r}"))
    equal = all(x[2] == fresh[0][2] for x in reruns + same + fresh)

    def med(runs: list) -> float:
        return statistics.median(x[0] for x in runs)

    def repo_of(runs: list) -> dict:
        return runs[0][1]["repos"][0]

    lines = [f"### Rerun after {args.new} new commits — {label} ({repo_of(full)['commits_scanned']:,} commits), "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
             f"`.venv/bin/python bench/rerun.py {args.repo} --new {args.new} --reps {args.reps}`; medians of "
             f"{args.reps}; `auditor scan --no-validate`.", "",
             "| run | wall s | ratio to full | commits attributed | file changes read | blobs scanned | findings |",
             "|---|---|---|---|---|---|---|"]
    base = med(fresh)
    for name, runs in (("full scan, before", full), ("full scan, after (fresh --out)", fresh),
                       (f"rerun after {args.new} new commits", reruns), ("rerun, nothing new", same)):
        r = repo_of(runs)
        lines.append(f"| {name} | {med(runs):.2f} | {med(runs) / base:.2f} | {r['commits_new']:,} | "
                     f"{r['changes_read']:,} | {r['blobs_scanned']:,} | {len(runs[0][2])} |")
    lines += ["", f"Rerun findings equal the fresh scan's: **{'yes' if equal else 'NO'}**."]
    text = "\n".join(lines) + "\n"
    (WORK / "results").mkdir(parents=True, exist_ok=True)
    (WORK / "results" / f"rerun-{label}.md").write_text(text)
    print(text)
    if not equal:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
