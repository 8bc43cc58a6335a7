"""The HTML pages load in a real headless browser without errors and draw their charts.

Screenshots land in test-artifacts/reports/ (git-ignored). Skipped when no Chromium is available.
The browser runs in a subprocess: Playwright's sync API and gevent's monkey-patching do not mix.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.reports import render, run_page, trend
from harness.reports.compare import compare
from tests.reports.synth import make_summary
from tests.reports.test_loadshape_pages import _arrival, _breakpoint, _step

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "reports"

DRIVER = r"""
import json, sys
from playwright.sync_api import sync_playwright
pages, executable, shots = json.loads(sys.argv[1]), sys.argv[2] or None, sys.argv[3]
out = {}
with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    for name, path in pages.items():
        errors = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto("file://" + path)
        boxes = page.eval_on_selector_all("svg", "els => els.map(e => [e.getBoundingClientRect().width, "
                                          "e.getBoundingClientRect().height, e.querySelectorAll('rect,polygon,"
                                          "polyline,circle').length])")
        page.screenshot(path=f"{shots}/{name}.png", full_page=True)
        headings = page.eval_on_selector_all("h2", "els => els.filter(e => e.offsetHeight > 0).map(e => e.textContent)")
        out[name] = {"errors": errors, "svgs": boxes, "headings": headings}
    browser.close()
print(json.dumps(out))
"""


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def test_pages_render_in_headless_chromium(tmp_path: Path) -> None:
    pytest.importorskip("playwright")
    executable = _chromium()
    if executable is None:
        pytest.skip("no chromium on PATH")
    base, cand = make_summary(1, label="1.4.1"), make_summary(2, label="1.4.2", shift_ms={"authenticate": 50.0})
    runs = [make_summary(10 + i, label=f"1.{i}.0", shift_ms={"authenticate": 4.0 * i}) for i in range(6)]
    files = {
        "compare": render.html(compare(base, cand), base, cand),
        "trend": trend.trend_html(runs, order="label"),
        "run": run_page.run_html(base),
        "run-shapes": run_page.run_html(
            {**base, "breakpoint": _breakpoint("knee", [_step(1, 2, "held"), _step(2, 4, "broke")]),
             "arrival": _arrival(kept=False)}
        ),  # fmt: skip
    }
    paths = {}
    for name, html in files.items():
        path = tmp_path / f"{name}.html"
        path.write_text(html)
        paths[name] = str(path)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    out = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(paths), executable, str(ARTIFACTS)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if out.returncode != 0 and "Executable doesn't exist" in out.stderr:
        pytest.skip("playwright cannot start chromium here")
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    for name, html in files.items():
        page = result[name]
        assert page["errors"] == [], (name, page["errors"])
        assert len(page["svgs"]) == html.count("<svg"), name
        for width, height, marks in page["svgs"]:
            assert width > 100 and height > 100 and marks > 0, (name, width, height, marks)
        assert (ARTIFACTS / f"{name}.png").stat().st_size > 10_000
    shown = result["run-shapes"]["headings"]  # the load shape's sections, drawn before the steps
    assert shown.index("Breakpoint: knee") < shown.index("Arrival rate: NOT KEPT") < shown.index("Steps"), shown
