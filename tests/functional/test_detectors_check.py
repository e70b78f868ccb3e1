"""`auditor detectors check [DIR]`: every detector parses, ids are unique, patterns compile, examples match with
their expected values and negative examples do not — run as the real CLI in a subprocess, plus the runner itself
on the built-in detectors' examples. Self-contained: its own tiny helpers."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from auditor.detectors import CompiledDetector, load_detectors
from auditor.detectors import spec as detector_spec
from auditor.detectors.check import check_detectors, run_example, run_negative_example
from auditor.detectors.spec import Example

ROOT = Path(__file__).resolve().parents[1]
BUILTIN_FILE = Path(detector_spec.__file__).parent / "builtin" / "twilio_master_credentials.yaml"
BUILTIN_DOC = yaml.safe_load(BUILTIN_FILE.read_text(encoding="utf-8"))
DETECTORS = load_detectors()


def check(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "auditor", "detectors", "check", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def custom(id: str = "custom_twilio") -> dict:
    doc = copy.deepcopy(BUILTIN_DOC)
    doc["id"] = id
    return doc


def write(directory: Path, name: str, doc: dict) -> Path:
    directory.mkdir(exist_ok=True)
    path = directory / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def fail_line(stdout: str, path: Path) -> str:
    lines = [line for line in stdout.splitlines() if line.startswith("FAIL") and str(path) in line]
    assert len(lines) == 1, stdout
    return lines[0]


# -- the runner, on every built-in example ----------------------------------------------------------------------

POSITIVES = [pytest.param(d, e, id=f"{d.id}-example{i}") for d in DETECTORS for i, e in enumerate(d.examples)]
NEGATIVES = [pytest.param(d, e, id=f"{d.id}-negative{i}") for d in DETECTORS
             for i, e in enumerate(d.negative_examples)]


@pytest.mark.parametrize(("detector", "example"), POSITIVES)
def test_builtin_example_finds_its_expected_pair(detector, example):
    assert run_example(CompiledDetector(detector), example) is None


@pytest.mark.parametrize(("detector", "example"), NEGATIVES)
def test_builtin_negative_example_finds_nothing(detector, example):
    assert run_negative_example(CompiledDetector(detector), example) is None


def test_runner_says_what_is_wrong():
    twilio = CompiledDetector(DETECTORS[0])
    good = DETECTORS[0].examples[0]
    wrong_secret = Example(text=good.text, client_id=good.client_id, client_secret="1" * 31 + "2")
    assert "expected " + "1" * 31 + "2" in (run_example(twilio, wrong_secret) or "")
    assert "does not match" in (run_example(twilio, Example(text="nothing here", client_id=good.client_id,
                                                            client_secret=good.client_secret)) or "")
    assert "no client_secret" in (run_example(twilio, Example(text=good.text)) or "")
    assert "must not" in (run_negative_example(twilio, Example(text=good.text)) or "")


def test_builtin_detectors_pass_in_process():
    report = check_detectors()
    assert report.ok, report
    assert [f.detector for f in report.files] == [d.id for d in DETECTORS]


# -- the command ------------------------------------------------------------------------------------------------

def test_builtin_detectors_pass():
    r = check()
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "ok    twilio_master_credentials  builtin/twilio_master_credentials.yaml" in r.stdout
    assert "ok    twilio_api_keys  builtin/twilio_api_keys.yaml" in r.stdout
    assert r.stdout.splitlines()[-1] == "auditor: 2 detector files checked: 2 ok, 0 failed"
    assert r.stderr == ""


def test_a_good_user_directory_passes(tmp_path):
    write(tmp_path / "d", "mine.yaml", custom())
    (tmp_path / "d" / "notes.txt").write_text("not a detector", encoding="utf-8")
    r = check(tmp_path / "d")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert f"ok    custom_twilio  {tmp_path / 'd' / 'mine.yaml'}" in r.stdout
    assert "3 detector files checked: 3 ok, 0 failed" in r.stdout


def test_an_example_that_does_not_match_fails(tmp_path):
    doc = custom()
    doc["examples"][1]["client_secret"] = "0123456789abcdef0123456789abcdfe"
    path = write(tmp_path / "d", "mine.yaml", doc)
    r = check(tmp_path / "d")
    assert r.returncode == 2, (r.stdout, r.stderr)
    line = fail_line(r.stdout, path)
    assert "examples[1]" in line and "0123456789abcdef0123456789abcdfe" in line
    assert "1 failed" in r.stdout.splitlines()[-1]
    assert "auditor: error:" in r.stderr and "Traceback" not in r.stderr


def test_a_negative_example_that_matches_fails(tmp_path):
    doc = custom()
    doc["negative_examples"].append({"text": doc["examples"][0]["text"]})
    path = write(tmp_path / "d", "mine.yaml", doc)
    r = check(tmp_path / "d")
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert f"negative_examples[{len(doc['negative_examples']) - 1}] matches" in fail_line(r.stdout, path)


def test_a_pattern_that_does_not_compile_fails(tmp_path):
    doc = custom()
    doc["matchers"]["client_id"]["pattern"] = r"\b(AC[0-9a-f]{32}\b"
    path = write(tmp_path / "d", "mine.yaml", doc)
    r = check(tmp_path / "d")
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "matchers.client_id.pattern" in fail_line(r.stdout, path)
    assert "Traceback" not in r.stderr


def test_a_duplicate_id_fails(tmp_path):
    first = write(tmp_path / "d", "a.yaml", custom("mine"))
    second = write(tmp_path / "d", "b.yaml", custom("mine"))
    r = check(tmp_path / "d")
    assert r.returncode == 2, (r.stdout, r.stderr)
    line = fail_line(r.stdout, second)
    assert "'mine'" in line and str(first) in line
    assert f"ok    mine  {first}" in r.stdout


def test_replacing_a_builtin_detector_is_a_warning(tmp_path):
    path = write(tmp_path / "d", "tuned.yaml", custom("twilio_master_credentials"))
    r = check(tmp_path / "d")
    assert r.returncode == 0, (r.stdout, r.stderr)
    line = next(line for line in r.stdout.splitlines() if str(path) in line)
    assert line.startswith("ok") and "warning:" in line and "builtin/twilio_master_credentials.yaml" in line
    assert "1 warning(s)" in r.stdout.splitlines()[-1]


@pytest.mark.parametrize(("value", "field"), [("yes please", "high_recall"), (None, "name")])
def test_a_malformed_field_fails(tmp_path, value, field):
    doc = custom()
    if value is None:
        del doc[field]
    else:
        doc[field] = value
    path = write(tmp_path / "d", "mine.yaml", doc)
    r = check(tmp_path / "d")
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert f"field '{field}'" in fail_line(r.stdout, path)


def test_yaml_that_does_not_parse_fails_on_one_line(tmp_path):
    (tmp_path / "d").mkdir()
    path = tmp_path / "d" / "broken.yml"
    path.write_text("id: x\nmatchers: [unclosed\n", encoding="utf-8")
    r = check(tmp_path / "d")
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "is not valid YAML" in fail_line(r.stdout, path)


def test_every_file_is_checked_not_only_the_first_bad_one(tmp_path):
    bad_yaml = tmp_path / "d" / "a.yml"
    write(tmp_path / "d", "b.yaml", custom("b") | {"high_recall": 3})
    bad_yaml.write_text("[", encoding="utf-8")
    good = write(tmp_path / "d", "c.yaml", custom("c"))
    r = check(tmp_path / "d")
    assert r.returncode == 2
    fail_line(r.stdout, bad_yaml)
    fail_line(r.stdout, tmp_path / "d" / "b.yaml")
    assert f"ok    c  {good}" in r.stdout
    assert r.stdout.splitlines()[-1] == "auditor: 5 detector files checked: 3 ok, 2 failed"


def test_not_a_directory_is_bad_input(tmp_path):
    r = check(tmp_path / "missing")
    assert r.returncode == 2
    assert str(tmp_path / "missing") in r.stderr and "Traceback" not in r.stderr


NP_RULES = """rules:
- name: Service Key
  id: np.service.1
  pattern: 'service_key\\s*=\\s*"([0-9a-f]{32})"'
- name: Service Key again
  id: np.service.2
  pattern: '(?P<broken'
"""


def test_a_noseyparker_rules_file_in_the_directory_is_checked_rule_by_rule(tmp_path):
    (tmp_path / "d").mkdir()
    path = tmp_path / "d" / "service.yml"
    path.write_text(NP_RULES)
    write(tmp_path / "d", "mine.yaml", custom())
    r = check(tmp_path / "d")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert f"ok    np.service.1  {path} rule np.service.1" in r.stdout
    assert "rule np.service.2: not loaded: its pattern does not compile" in r.stdout  # said, never silent


def test_one_rule_id_in_two_rules_files_fails(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.yml").write_text(NP_RULES)
    (tmp_path / "d" / "b.yml").write_text(NP_RULES)
    r = check(tmp_path / "d")
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "'np.service.1' is also the id of " + str(tmp_path / "d" / "a.yml") in r.stdout
