"""Corpus audits on a real Dask cluster: a `dask scheduler` and two `dask worker` processes on 127.0.0.1, a corpus
of generated repositories (one big enough to be split into chunks, one missing, one broken, one secret in three
repositories), a Twilio stand-in counting requests. The corpus result must equal a sequential `auditor scan` of the
same repositories, also when the worker scanning the big repository is killed mid-task."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from auditor.testing import TwilioStandIn, serve_in_thread
from auditor.testing.history import generate

ENV = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "Corpus",
       "GIT_AUTHOR_EMAIL": "corpus@example.com", "GIT_COMMITTER_NAME": "Corpus",
       "GIT_COMMITTER_EMAIL": "corpus@example.com", "GIT_AUTHOR_DATE": "1600000000 +0000",
       "GIT_COMMITTER_DATE": "1600000000 +0000", "LC_ALL": "C", "DASK_DISTRIBUTED__WORKER__DAEMON": "True"}
ENV.pop("AUDITOR_TWILIO_API_URL", None)
SPLIT = "1000000"  # bytes of packed objects above which a repository is scanned in parts: the big one only


def _pair() -> tuple[str, str]:
    while True:
        sid, tok = secrets.token_hex(16), secrets.token_hex(16)
        if len(set(sid)) >= 8 and len(set(tok)) >= 8:
            return "AC" + sid, tok


def _tiny(path: Path, pair: tuple[str, str], extra: str) -> None:
    """A two-commit repository holding ``pair`` in one file."""
    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(path), *args], check=True, capture_output=True, env=ENV)

    path.mkdir(parents=True)
    git("init", "-q", "-b", "main")
    (path / "README.txt").write_text(f"{extra}\n")
    git("add", "-A")
    git("commit", "-q", "-m", "start")
    (path / "settings.py").write_text(f'ACCOUNT_SID = "{pair[0]}"\nAUTH_TOKEN = "{pair[1]}"\n')
    git("add", "-A")
    git("commit", "-q", "-m", "configure")


class Corpus:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.shared = _pair()
        self.big = root / "big"
        generate(self.big, commits=12000, files=400, pairs=6, seed=11)
        self.good: list[Path | str] = [self.big]
        for i, commits in enumerate((150, 600, 2500)):
            generate(root / f"gen{i}", commits=commits, files=60, pairs=3, seed=20 + i)
            self.good.append(root / f"gen{i}")
        for i in range(3):  # one secret, three repositories: asked about once
            _tiny(root / f"shared{i}", self.shared, f"project {i}")
            self.good.append(root / f"shared{i}")
        _tiny(root / "remote", _pair(), "fetched")  # named by URL: the worker that scans it mirrors it first
        ENV["AUDITOR_CACHE"] = str(root / "cache")  # every process of this module (workers too) mirrors there
        self.url = (root / "remote").as_uri()
        self.good.append(self.url)
        broken = root / "broken"
        broken.mkdir()
        (broken / ".git").write_text("gitdir: /nonexistent/nowhere\n")  # a work tree whose git directory is gone
        self.file = root / "corpus.txt"
        lines = ["# a test corpus", *(p if isinstance(p, str) else p.name for p in self.good), "", "missing", "broken",
                 "gen0/.git", "gen1"]
        self.file.write_text("\n".join(lines) + "\n")
        self.valid = {self.shared}  # the stand-in says this one is live; every other pair is invalid


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return Corpus(tmp_path_factory.mktemp("corpus"))


@contextlib.contextmanager
def _dask(where: Path, workers: int, worker_env: dict[str, str] | None = None) -> Iterator[Path]:
    """A real `dask scheduler` and ``workers`` real `dask worker` processes (one thread each) on 127.0.0.1, all
    waited for; the scheduler file."""
    scheduler_file = where / "scheduler.json"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "cwd": where}
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", "0", "--no-dashboard", "--scheduler-file", str(scheduler_file)],
                              env=ENV, **quiet)]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists():
            assert time.monotonic() < deadline, "the Dask scheduler did not start"
            time.sleep(0.1)
        procs += [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file",
                                    str(scheduler_file), "--nworkers", "1", "--nthreads", "1", "--host", "127.0.0.1",
                                    "--no-dashboard"], env=worker_env or ENV, **quiet) for _ in range(workers)]
        from distributed import Client

        with Client(scheduler_file=str(scheduler_file), timeout="30s") as client:
            client.wait_for_workers(workers, timeout=60)
        yield scheduler_file
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.fixture(scope="module")
def cluster(corpus: Corpus, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Two workers, shared by the tests of this module."""
    with _dask(tmp_path_factory.mktemp("dask"), 2) as scheduler_file:
        yield scheduler_file


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "auditor", "scan", "--no-progress", *args]


def _results(out: Path) -> tuple[set[tuple], dict]:
    rows = [json.loads(line) for line in (out / "findings.jsonl").read_text().splitlines()]
    keys = {(r["repo"], r["commit"], r["path"], r["line"], r["secret_sha256"], r["validity"]) for r in rows}
    assert len(keys) == len(rows)
    return keys, json.loads((out / "summary.json").read_text())


def _sequential(corpus: Corpus, out: Path, *args: str) -> tuple[set[tuple], dict]:
    proc = subprocess.run(_cmd(*map(str, corpus.good), "--out", str(out), *args), capture_output=True, text=True,
                          env=ENV, timeout=300)
    assert proc.returncode in (0, 1), proc.stderr
    return _results(out)


def _repo_rows(summary: dict) -> dict[str, dict]:
    return {r["repo"]: r for r in summary["repos"]}


def test_corpus_on_a_cluster_equals_a_sequential_run_and_checks_each_secret_once(corpus: Corpus, cluster: Path,
                                                                                tmp_path: Path) -> None:
    standin = TwilioStandIn(valid=set(corpus.valid))
    with serve_in_thread(standin) as base:
        expected, seq = _sequential(corpus, tmp_path / "seq", "--twilio-api-url", base, "--validate-rate", "1000")
        asked_sequential = Counter(standin.sids())
        standin.requests.clear()
        proc = subprocess.run(_cmd("--corpus", str(corpus.file), "--out", str(tmp_path / "out"), "--scheduler-file",
                                   str(cluster), "--split-bytes", SPLIT, "--twilio-api-url", base,
                                   "--validate-rate", "1000"),
                              capture_output=True, text=True, env=ENV, timeout=300)
        asked = Counter(standin.sids())
    assert proc.returncode == 1, proc.stderr  # the shared secret is live: an alert
    got, summary = _results(tmp_path / "out")
    assert got == expected and len(got) > 20
    assert asked[corpus.shared[0]] == 1  # one secret in three repositories: asked once
    assert asked == asked_sequential
    rows = _repo_rows(summary)
    assert rows[str(corpus.root / "missing")]["error"] and rows[str(corpus.root / "broken")]["error"]
    assert str(corpus.root / "gen0/.git") in rows[str(corpus.root / "gen0")]["also_named"]
    for repo in corpus.good:
        row, alone = rows[str(repo)], _repo_rows(seq)[str(repo)]
        assert (row["commits_scanned"], row["occurrences"]) == (alone["commits_scanned"], alone["occurrences"])
        assert "error" not in row
    for key in ("commits_scanned", "occurrences", "unique_secrets", "valid_occurrences",
                "occurrences_per_million_commits", "confidence_intervals"):
        assert summary[key] == seq[key], key
    pooled = summary["corpus"]
    assert pooled["repositories"] == len(corpus.good) + 2 and pooled["repositories_scanned"] == len(corpus.good)
    low, high = pooled["clustered_confidence_intervals"]["occurrences_per_million_commits"]
    assert low <= summary["occurrences_per_million_commits"] <= high
    assert "bootstrap" in pooled["clustered_confidence_interval_method"]
    from auditor import report  # the report, from the store alone, gives the same pooled intervals

    row = report.pooled(report.load(tmp_path / "out")).set_index("measure").loc["occurrences"]
    assert [row["clustered_low"], row["clustered_high"]] == [low, high]
    assert row["repositories"] == len(corpus.good) and row["count"] == summary["occurrences"]
    assert "not scanned" in proc.stderr and "missing" in proc.stderr
    assert rows[corpus.url]["occurrences"] == 1  # mirrored by a worker into AUDITOR_CACHE, then scanned


def test_a_worker_killed_mid_task_changes_nothing(corpus: Corpus, cluster: Path, tmp_path: Path) -> None:
    """SIGKILL the worker process that is scanning a chunk of the big repository: Dask runs the task again
    elsewhere (the nanny restarts the worker) and the corpus result is what a sequential run gives."""
    from distributed import Client

    expected, _ = _sequential(corpus, tmp_path / "seq", "--no-validate")
    proc = subprocess.Popen(_cmd("--corpus", str(corpus.file), "--out", str(tmp_path / "out"), "--scheduler-file",
                                 str(cluster), "--split-bytes", SPLIT, "--no-validate"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    killed = None
    with Client(scheduler_file=str(cluster), timeout="30s") as client:
        deadline = time.monotonic() + 120
        while killed is None and proc.poll() is None and time.monotonic() < deadline:
            for worker, keys in client.processing().items():
                if any(str(k).startswith("auditor-chunk-") for k in keys):
                    pid = client.run(os.getpid, workers=[worker]).get(worker)
                    if pid:
                        os.kill(pid, signal.SIGKILL)
                        killed = (worker, [str(k) for k in keys])
                    break
            time.sleep(0.01)
        _, stderr = proc.communicate(timeout=300)
        client.wait_for_workers(2, timeout=60)  # the nanny brought it back: the next test has two again
    assert killed is not None, "no chunk of the big repository was seen running: nothing was killed"
    assert proc.returncode == 1, stderr
    got, summary = _results(tmp_path / "out")
    assert got == expected
    assert not any(r.get("error") for r in summary["repos"] if r["repo"] in {str(p) for p in corpus.good})


def test_ctrl_c_keeps_what_was_stored_and_a_rerun_completes_it(corpus: Corpus, cluster: Path,
                                                              tmp_path: Path) -> None:
    expected, _ = _sequential(corpus, tmp_path / "seq", "--no-validate")
    out = tmp_path / "out"
    args = ("--corpus", str(corpus.file), "--out", str(out), "--scheduler-file", str(cluster), "--split-bytes",
            SPLIT, "--no-validate")
    proc = subprocess.Popen(_cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    deadline = time.monotonic() + 120
    while not (out / "audit.sqlite").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode in (130, 1), stderr  # 1: it had finished already
    assert "Traceback" not in stderr, stderr
    rerun = subprocess.run(_cmd(*args), capture_output=True, text=True, env=ENV, timeout=300)
    assert rerun.returncode == 1, rerun.stderr
    got, _ = _results(out)
    assert got == expected


@pytest.mark.parametrize("case", ["no_file", "empty", "neither_path_nor_url", "nobody_answers",
                                  "scheduler_without_corpus", "no_repo_at_all"])
def test_bad_corpus_input_is_exit_2_in_seconds_with_what_to_do(tmp_path: Path, case: str) -> None:
    corpus = tmp_path / "corpus.txt"
    args = ["--corpus", str(corpus)]
    if case == "empty":
        corpus.write_text("# nothing yet\n\n")
    elif case == "neither_path_nor_url":
        corpus.write_text("repo-one\nnot a path\n")
    elif case == "nobody_answers":
        corpus.write_text(f"{tmp_path}\n")
        args += ["--scheduler", "tcp://127.0.0.1:9"]
    elif case == "scheduler_without_corpus":
        args = [str(tmp_path), "--scheduler", "tcp://127.0.0.1:9"]
    elif case == "no_repo_at_all":
        args = []
    started = time.monotonic()
    proc = subprocess.run(_cmd(*args, "--out", str(tmp_path / "out"), "--no-validate"), capture_output=True,
                          text=True, env=ENV, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert time.monotonic() - started < 20
    said = proc.stderr
    assert "Traceback" not in said and said.startswith("auditor: error:"), said
    assert {"no_file": "no such corpus file", "empty": "names no repository", "neither_path_nor_url": "line 2",
            "nobody_answers": "cannot reach the Dask scheduler", "scheduler_without_corpus": "--corpus",
            "no_repo_at_all": "at least one REPO"}[case] in said


def test_a_worker_with_another_auditor_is_refused_before_any_task(corpus: Corpus, tmp_path: Path) -> None:
    """A worker whose installation differs from the client's (here: another copy of the package, first on its
    path, saying another version) stops the run before any task, exit 2, saying what to do."""
    import shutil

    import auditor

    other = tmp_path / "other"
    shutil.copytree(Path(auditor.__file__).parent, other / "auditor", ignore=shutil.ignore_patterns("__pycache__"))
    init = other / "auditor" / "__init__.py"
    init.write_text(init.read_text().replace(f'__version__ = "{auditor.__version__}"', '__version__ = "0.0.0-other"'))
    with _dask(tmp_path, 1, {**ENV, "PYTHONPATH": str(other)}) as scheduler_file:
        proc = subprocess.run(_cmd("--corpus", str(corpus.file), "--out", str(tmp_path / "out"), "--scheduler-file",
                                   str(scheduler_file), "--no-validate"),
                              capture_output=True, text=True, env=ENV, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "0.0.0-other" in proc.stderr and "install the same auditor" in proc.stderr, proc.stderr
    assert not (tmp_path / "out" / "findings.jsonl").exists()  # nothing was scanned
