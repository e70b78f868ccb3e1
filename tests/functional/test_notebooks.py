"""Both notebooks run headless (nbclient, a python3 kernel of this interpreter) against a scan this test builds."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbclient
import nbformat
import pytest

from auditor.pipeline import ScanOptions, scan
from tests.helpers.git import GitRepo
from tests.helpers.pairs import make_pair, snippet

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


@pytest.fixture(scope="module")
def scan_dir(tmp_path_factory) -> Path:
    """Two repositories: one secret removed then re-added, one copied, one only in history."""
    base = tmp_path_factory.mktemp("nb")
    one, two = GitRepo(base / "one"), GitRepo(base / "two")
    a, b, c = make_pair(), make_pair(), make_pair()
    one.commit("add", {"app/settings.py": snippet(a), "deploy/.env": snippet(b)})
    one.commit("remove", {"app/settings.py": "SETTINGS = {}\n"})
    one.clock += 400 * 86400
    one.commit("re-add", {"app/settings.py": snippet(a)})
    two.commit("copy", {"config/twilio.yaml": snippet(b)})
    two.commit("add", {"tools/send.sh": snippet(c)})
    two.commit("drop", {"tools/send.sh": "echo nothing\n"})
    out = base / "out"
    scan([str(one.path), str(two.path)], ScanOptions(out=out, validate=False, progress=False, jobs=1))
    return out


@pytest.fixture
def kernel(tmp_path, monkeypatch, scan_dir) -> str:
    """A python3 kernelspec that runs this very interpreter (the venv), found before any other on JUPYTER_PATH."""
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (auditor tests)", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("AUDITOR_SCAN_DIR", str(scan_dir))  # the kernel inherits the environment
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    return "python3"


# what each notebook must answer, found in the text of its results: what to rotate first, who introduced them, how
# long they stayed (the ones still exposed counted), which repositories differ from the reference
ANSWERS = {"explore_scan": ("rotate now", "Test Author", "still at a ref tip (until the scan)", "reference_is",
                            "twilio_master_credentials"),
           "compare_repositories": ("excludes_reference", "reference_is", "clustered_low")}


@pytest.mark.parametrize(("name", "plots"), [("explore_scan", 6), ("compare_repositories", 3)])
def test_notebook_runs_headless(name, plots, kernel):
    path = NOTEBOOKS / f"{name}.ipynb"
    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") and c.get("execution_count") is None
               for c in nb.cells if c.cell_type == "code"), "outputs must be stripped in git"
    nbclient.NotebookClient(nb, kernel_name=kernel, timeout=120,
                            resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()  # raises on any error
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert sum("image/png" in o.get("data", {}) for o in outputs) == plots
    text = "\n".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "2 repositories, 6 commits, 5 occurrences of 3 secrets" in text
    results = "\n".join(o.get("data", {}).get("text/plain", "") for o in outputs)
    for answer in ANSWERS[name]:
        assert answer in results, answer
    assert not [o for o in outputs if o.get("name") == "stderr"]
