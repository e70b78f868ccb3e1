"""``auditor report DIR`` and ``report.build``: report.md, report.html (self-contained plots), frames/ as CSV and
Parquet, every file owner-only and without a token; on the golden history, on an empty one, on no scan at all."""

from __future__ import annotations

import base64
import json
import math
import shutil
import stat
from html.parser import HTMLParser

import pandas as pd
import pytest

from auditor import report
from tests.helpers.git import GitRepo
from tests.helpers.histories import scan_in_process
from tests.helpers.pairs import make_pair, snippet
from tests.helpers.scan import run_auditor


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: dict[str, bytes] = {}
        self.headings: list[str] = []
        self._in_heading = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            assert a["src"].startswith("data:image/png;base64,")  # self-contained
            self.images[a["data-plot"]] = base64.b64decode(a["src"].split(",", 1)[1])
        self._in_heading = tag in ("h1", "h2", "h3")

    def handle_data(self, data):
        if self._in_heading:
            self.headings.append(data)

    def handle_endtag(self, tag):
        self._in_heading = False


def test_auditor_report_command(golden, tmp_path):
    from auditor.report.render import PLOTS

    out = tmp_path / "out"  # a copy: the golden scan is shared by the whole run
    shutil.copytree(golden.out, out)
    proc = run_auditor("report", str(out), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "occurrences: 6 in 9 commits" in proc.stdout and "7.37" in proc.stdout and "8.33" in proc.stdout
    page = Page()
    text = (out / "report.html").read_text(encoding="utf-8")
    assert "<code>frames/</code>" in text and "`" not in text  # markdown's code spans rendered
    page.feed(text)
    page.close()
    assert set(page.images) == set(PLOTS) - {"funnel"}  # one repository: no funnel to draw
    assert all(png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 2000 for png in page.images.values())
    assert {"Headline", "Per repository", "Timeline of introductions", "Exposure time", "Validity",
            "Top paths"} <= set(page.headings)
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "## Headline" in md and "| occurrences | 6 | 9 |" in md and "Garwood" in md
    assert all(f"plots/{name}.png" in md and (out / "plots" / f"{name}.png").is_file() for name in page.images)
    # the per-detector table, and every reference cited with its address, date read and population
    assert "## Per detector" in md and "| twilio_master_credentials | Twilio Master Credentials | 6 | 4 | 8.33 |" in md
    for figure in ("8.33", "7.37"):
        assert (f"GitGuardian, detector page Twilio Master Credentials ({'current' if figure == '8.33' else 'earlier'}"
                f" page, read 2026-11-27), https://docs.gitguardian.com/secrets-detection/secrets-detection-engine/"
                f"detectors/specifics/twilio_master_credentials: {figure} occurrences per million commits over "
                "commits pushed to public GitHub") in md
    frames = out / "frames"
    for name in ("findings", "secrets", "commits", "repos", "rates", "per_repository", "pooled", "per_detector",
                 "compare", "references", "by_year", "by_extension",
                 "by_directory", "by_validity", "by_presence", "timeline", "top_paths"):
        assert (frames / f"{name}.csv").is_file(), name
        parquet = pd.read_parquet(frames / f"{name}.parquet")
        assert len(parquet) == len(pd.read_csv(frames / f"{name}.csv")), name
    pd.testing.assert_frame_equal(pd.read_parquet(frames / "rates.parquet"), report.rates(golden.frames))
    written = [p for p in out.rglob("*") if p.is_file()]
    assert {"audit.sqlite", "findings.jsonl", "secrets.jsonl", "summary.json", "report.md", "report.html"} <= {
        p.name for p in written}
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        data = path.read_bytes()
        for _, token in golden.pairs.values():
            assert token.encode() not in data, path  # the store and every export are redacted


def test_report_of_a_missing_scan_is_a_usage_error(tmp_path):
    proc = run_auditor("report", str(tmp_path / "nothing"), timeout=60)
    assert proc.returncode == 2 and "no audit.sqlite" in proc.stderr


def test_zero_commits(tmp_path):
    empty = GitRepo(tmp_path / "empty")
    out = tmp_path / "out"
    scan_in_process([empty], out)
    f = report.load(out)
    assert f.commits_scanned == 0 and f.findings.empty and f.secrets.empty
    assert report.headline(f)[["rate", "rate_low", "rate_high"]].isna().all().all()
    assert report.by_year(f).empty and report.timeline(f).empty and report.top_paths(f).empty
    summary = json.loads((out / "summary.json").read_text())
    assert summary["occurrences_per_million_commits"] is None
    assert summary["confidence_intervals"]["occurrences_per_million_commits"] is None
    built = report.build(out)
    assert "n/a (no commit scanned)" in "\n".join(built.lines())
    page = Page()
    page.feed(built.html.read_text(encoding="utf-8"))
    assert len(page.images) == len(built.plots)


def test_a_clean_history_says_so_in_one_sentence(tmp_path):
    clean = GitRepo(tmp_path / "clean")
    for i in range(40):
        clean.commit(f"c{i}", {"notes.txt": f"line {i}\n"})
    out = tmp_path / "out"
    scan_in_process([clean], out)
    built = report.build(out)
    md = built.markdown.read_text(encoding="utf-8")
    # 0 found: the upper bound of a zero Poisson count is −ln(0.025) (χ²(0.975; 2)/2), per 40 commits × 10⁶; below
    # each detector's primary reference (API keys' 0.37, master credentials' 8.33) it needs −ln(0.025) × 10⁶ / ref
    bound, need = -math.log(0.025) / 40 * 1e6, -math.log(0.025) * 1e6 / 0.37
    assert (bound, round(need)) == (pytest.approx(92_221.99, abs=0.005), 9_969_944)
    assert ("No occurrences in 40 commits; the 95% upper bound is 92,221.99 per million commits; to show a rate "
            "below the published one, a clean history needs about 9,969,944 commits for twilio_api_keys (0.37: more "
            f"than this scan has), {-math.log(0.025) * 1e6 / 8.33:,.0f} commits for twilio_master_credentials (8.33: "
            "more than this scan has).") in md
    assert "Nothing: no secret found in 40 commits." in md and "median" not in md
    assert set(built.plots) == {"rates", "repositories", "timeline", "by_year"}  # no empty plot of findings
    page = Page()
    page.feed(built.html.read_text(encoding="utf-8"))
    assert set(page.images) == set(built.plots)


def test_findings_only_at_pull_request_refs_are_not_at_the_repository(tmp_path):
    repo = GitRepo(tmp_path / "project")
    repo.commit("base", {"README": "hello\n"})
    repo("checkout", "-q", "-b", "fork")
    repo.commit("a fork's change", {"sms.py": snippet(make_pair())})
    repo("update-ref", "refs/pull/620/head", "HEAD")
    repo("checkout", "-q", "main")
    repo("branch", "-q", "-D", "fork")
    repo.commit("more", {"README": "hello again\n"})
    out = tmp_path / "out"
    scan_in_process([repo], out)
    md = report.build(out).markdown.read_text(encoding="utf-8")
    assert "| pull-request tip | 1 |" in md and "| branch tip |" not in md
    assert "| rotate — still in history | project | sms.py:1 |" in md and "| pull request: #620 |" in md
    secrets = [json.loads(line) for line in (out / "secrets.jsonl").read_text().splitlines()]
    assert [(s["presence"], s["tip_refs"]) for s in secrets] == [("pull-request tip", ["refs/pull/620/head"])]


def test_several_repositories_and_a_catalog_detector_get_a_per_detector_table_a_comparison_and_a_funnel(tmp_path):
    """Any detector id works: a copy of the built-in detector under another id (as a user's catalog brings one),
    with its own published figure, beside the built-in one. Three repositories, one of them tiny: the report has a
    per-detector table, says which repositories' intervals exclude the reference, and draws the funnel."""
    from tests.helpers.detectors import builtin_doc, write_detector

    big, small, tiny = GitRepo(tmp_path / "big"), GitRepo(tmp_path / "small"), GitRepo(tmp_path / "tiny")
    for i in range(60):
        big.commit(f"c{i}", {"notes.txt": f"{i}\n"})
    small.commit("one", {"a.txt": "x\n"})
    small.commit("two", {"b.txt": "y\n"})
    tiny.commit("key", {"settings.py": snippet(make_pair())})
    detectors = tmp_path / "detectors"
    write_detector(detectors, "acme.yaml", builtin_doc("acme-twilio", name="ACME Twilio",
                                                       reference_occurrences_per_million_commits=2.5))
    out = tmp_path / "out"
    scan_in_process([big, small, tiny], out, detectors_dir=detectors)
    f = report.load(out)
    per = report.per_detector(f).set_index("detector")
    assert per.loc["acme-twilio", ["occurrences", "unique_secrets", "commits", "reference"]].tolist() == [1, 1, 63, 2.5]
    assert per.loc["acme-twilio", "reference_source"] == "the detector file"
    assert per.loc["acme-twilio", "rate"] == pytest.approx(1 / 63 * 1e6)
    assert per.loc["acme-twilio", "reference_is"] == "below"  # 2.5 lies below [0.4, 88.4] thousand per million
    compared = report.compare(f, detector="acme-twilio")
    assert compared[["name", "excludes_reference"]].to_numpy().tolist() == [
        ["tiny", True], ["big", False], ["small", False]]
    both = report.compare(f)  # per detector, each against its own reference
    assert sorted(set(zip(both["detector"], both["reference"], strict=True))) == [
        ("acme-twilio", 2.5), ("twilio_api_keys", 0.37), ("twilio_master_credentials", 8.33)]
    built = report.build(out)
    assert "funnel" in built.plots
    md = built.markdown.read_text(encoding="utf-8")
    assert "## Per detector" in md and ("| acme-twilio | ACME Twilio | 1 | 1 | 2.50 | the detector file | below | "
                                         "15,873.02 [401.87–88,438.78] |") in md
    assert ("acme-twilio: the detector file: 2.5 occurrences per million commits over a population it does not "
            "name.") in md
    assert ("acme-twilio: 1 of 3 repositories have a 95% interval that excludes the reference (2.5): tiny "
            "(higher).") in md
    assert "### Funnel plot" in md and "plots/funnel.png" in md
