"""An installed auditor (a wheel, not this checkout) finds data/reference_rates.csv: the wheel carries the one file
in git as data (pyproject ``data-files``), and ``auditor report`` run from that installation cites the reference."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.helpers.env import env as base_env

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_a_wheel_installed_elsewhere_reads_the_reference_rates(golden, tmp_path):
    source = tmp_path / "source"  # a clean copy: no build/ or egg-info of this checkout leaks into the wheel
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".venv", ".git", "*.egg-info", "build", "__pycache__",
                                                                "tests", "bench", "notebooks"))
    wheels = tmp_path / "wheels"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(source)],
                           capture_output=True, text=True, timeout=600, check=False)
    if built.returncode != 0 and "No matching distribution" in built.stderr:
        pytest.skip(f"setuptools cannot be fetched to build a wheel: {built.stderr[-300:]}")
    assert built.returncode == 0, built.stderr
    [wheel] = wheels.glob("auditor-*.whl")
    prefix = tmp_path / "prefix"
    # --ignore-installed: never uninstall the auditor this interpreter already has (the checkout, editable)
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed", "-q",
                    "--prefix", str(prefix), str(wheel)], check=True, capture_output=True, timeout=300)
    mine = subprocess.run([sys.executable, "-c", "import auditor; print(auditor.__file__)"], capture_output=True,
                          text=True, env=base_env(), cwd=tmp_path, check=True)
    assert mine.stdout.strip() == str(ROOT / "auditor" / "__init__.py")  # this checkout's install is untouched
    site = Path(sysconfig.get_path("purelib", vars={"base": str(prefix), "platbase": str(prefix)}))
    assert (prefix / "share" / "auditor" / "reference_rates.csv").read_bytes() == (
        ROOT / "data" / "reference_rates.csv").read_bytes()
    env = base_env(PYTHONPATH=str(site))  # ahead of this checkout's editable install
    where = subprocess.run([sys.executable, "-c", "import auditor.report.published as p; print(p.__file__); "
                            "print(p.find())"], capture_output=True, text=True, env=env, cwd=tmp_path, check=True)
    module, found = where.stdout.split()
    assert module.startswith(str(site)) and found == str(prefix / "share" / "auditor" / "reference_rates.csv")
    out = tmp_path / "out"
    shutil.copytree(golden.out, out)
    proc = subprocess.run([sys.executable, "-m", "auditor", "report", str(out)], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "8.33" in proc.stdout and "7.37" in proc.stdout
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "docs.gitguardian.com/secrets-detection/secrets-detection-engine/detectors/specifics/" in md
