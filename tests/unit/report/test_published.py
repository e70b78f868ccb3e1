"""report.published: data/reference_rates.csv, the published per-detector figures (issue 11 point 4) — every row a
sourced fact, read by detector id as people write it, a detector file's own figure kept when the table lacks it, and
a broken file named with its line."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from auditor.errors import UsageError
from auditor.report import published

DATA = Path(__file__).resolve().parents[3] / "data" / published.NAME


def test_the_file_is_the_one_in_the_checkout_and_every_row_is_sourced():
    assert published.find() == DATA
    with DATA.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames or ()) == published.COLUMNS
        rows = list(reader)
    assert rows
    for row in rows:
        assert float(row["figure"]) > 0 and row["unit"] == published.UNIT
        assert row["address"].startswith("https://docs.gitguardian.com/") and row["population"]
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", row["date_read"]) and row["source"].startswith("GitGuardian")


def test_figures_by_detector_primary_first():
    assert [r.figure for r in published.of("twilio_master_credentials")] == [8.33, 7.37]
    assert published.primary("twilio_master_credentials").version == "current page"
    # the built-in id, however a user spells its case and separators; gitleaks' `twilio-api-key` (the key SID
    # alone, no secret) is another population and gets no figure
    assert [r.figure for r in published.of("twilio_api_keys")] == [0.37] == [
        r.figure for r in published.of("Twilio-API-Keys")]
    assert published.of("twilio-api-key") == []
    assert published.of("no-such-detector") == [] and published.primary("no-such-detector") is None


def test_a_detector_files_own_figure_is_kept_unless_the_table_has_it():
    assert [r.figure for r in published.of("twilio_master_credentials", 7.37)] == [8.33, 7.37]  # the same fact
    own = published.of("my_catalog_rule", 2.5)
    assert [(r.figure, r.source) for r in own] == [(2.5, "the detector file")]
    assert own[0].citation == ("the detector file: 2.5 occurrences per million commits over a population it does not "
                               "name")
    assert published.of("my_catalog_rule", float("nan")) == []


def test_citation_says_source_version_date_address_and_population():
    ref = published.primary("twilio_master_credentials")
    assert ref.label == "GitGuardian, current page (read 2026-11-27)"
    assert ref.citation == (
        "GitGuardian, detector page Twilio Master Credentials (current page, read 2026-11-27), "
        "https://docs.gitguardian.com/secrets-detection/secrets-detection-engine/detectors/specifics/"
        "twilio_master_credentials: 8.33 occurrences per million commits over commits pushed to public GitHub, as "
        "GitGuardian monitors them")


def test_a_broken_file_is_named_with_its_line(tmp_path):
    bad = tmp_path / "rates.csv"
    bad.write_text(",".join(published.COLUMNS) + "\nx,seven,u,p,s,a,v,2026-01-01,r\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"rates.csv, line 2: figure 'seven' is not a number"):
        published.load(bad)
    short = tmp_path / "short.csv"
    short.write_text("detector,figure\nx,1\n", encoding="utf-8")
    with pytest.raises(UsageError, match="no column unit"):
        published.load(short)
