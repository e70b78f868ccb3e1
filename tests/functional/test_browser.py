"""report.html in a real browser (issue 14): headless Chromium (Debian's ``chromium``; .ci/run installs it when
missing) loads the page at 1400 px; every image decodes to a non-empty size and no table makes the page wider than
the window. The page is checked by a script appended to a copy, whose answer Chromium prints with the DOM."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from auditor import report
from tests.helpers.git import GitRepo
from tests.helpers.histories import scan_in_process
from tests.helpers.pairs import make_pair, snippet

CHECK = """<script>
window.addEventListener("load", () => {
  const images = [...document.images].map(i => ({plot: i.dataset.plot, complete: i.complete,
                                                 width: i.naturalWidth, height: i.naturalHeight}));
  const page = {scroll: document.documentElement.scrollWidth, window: window.innerWidth};
  // a table wider than the page must sit in a box that scrolls sideways, itself within the page
  const shown = t => getComputedStyle(t.parentElement).overflowX === "auto" ? t.parentElement : t;
  const wide = [...document.querySelectorAll("table")].filter(t => shown(t).getBoundingClientRect().right >
                                                                    window.innerWidth + 1).length;
  const out = document.createElement("pre");
  out.id = "verdict";
  out.textContent = "VERDICT" + JSON.stringify({images, page, wide}) + "END";
  document.body.appendChild(out);
});
</script>"""


def _browser() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if found is None:
        if os.environ.get("AUDITOR_REQUIRE_BROWSER"):
            pytest.fail("no chromium on PATH: .ci/run installs Debian's chromium package")
        pytest.skip("no chromium on PATH (apt-get install chromium; .ci/run installs it)")
    return found


def _open(page: Path, tmp: Path) -> dict:
    copy = tmp / "checked.html"
    copy.write_text(page.read_text(encoding="utf-8").replace("</body>", CHECK + "</body>"), encoding="utf-8")
    proc = subprocess.run([_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           f"--user-data-dir={tmp / 'profile'}", "--window-size=1400,1000",
                           "--virtual-time-budget=10000", "--dump-dom", copy.as_uri()],
                          capture_output=True, text=True, timeout=120, check=False)
    got = re.search(r"<pre id=\"verdict\">VERDICT(.*?)END</pre>", proc.stdout, re.S)
    assert got, f"the page's check did not run: rc {proc.returncode}, {proc.stderr[-2000:]}"
    return json.loads(got.group(1))


def _several(tmp: Path) -> Path:
    """Three repositories, one of them tiny, one with a secret only at a pull-request ref; long paths."""
    big, tiny, pr = GitRepo(tmp / "a-project-with-a-rather-long-name"), GitRepo(tmp / "tiny"), GitRepo(tmp / "pr")
    for i in range(30):
        big.commit(f"c{i}", {f"services/some/deeply/nested/directory/tree/module_{i % 3}.py": f"x = {i}\n"})
    big.commit("key", {"services/some/deeply/nested/directory/tree/settings_production_override.py":
                       snippet(make_pair())})
    tiny.commit("one", {"a.py": snippet(make_pair())})
    pr.commit("base", {"README": "hi\n"})
    pr("checkout", "-q", "-b", "fork")
    pr.commit("fork", {"sms.py": snippet(make_pair())})
    pr("update-ref", "refs/pull/3/head", "HEAD")
    pr("checkout", "-q", "main")
    out = tmp / "out"
    scan_in_process([big, tiny, pr], out)
    return out


def _clean(tmp: Path) -> Path:
    repo = GitRepo(tmp / "clean")
    for i in range(5):
        repo.commit(f"c{i}", {"f.txt": f"{i}\n"})
    scan_in_process([repo], tmp / "out")
    return tmp / "out"


@pytest.mark.parametrize("history", [_several, _clean], ids=["several-repositories", "clean"])
def test_every_image_decodes_and_no_table_overflows_the_page(tmp_path, history):
    _browser()
    built = report.build(history(tmp_path))
    verdict = _open(built.html, tmp_path)
    images = verdict["images"]
    assert {i["plot"] for i in images} == set(built.plots) and images
    for image in images:
        assert image["complete"] and image["width"] > 100 and image["height"] > 100, image
    assert verdict["page"]["scroll"] <= verdict["page"]["window"], verdict["page"]
    assert verdict["wide"] == 0
