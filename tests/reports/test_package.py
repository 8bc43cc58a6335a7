"""What the reports package ships and guarantees: its schema, its templates, escaping on every page."""

from __future__ import annotations

from fnmatch import fnmatch
from pathlib import Path

import harness.reports
from harness.reports import render, run_page, tomlfile, trend
from harness.reports.compare import compare
from harness.reports.loading import SCHEMA_FILE, SUPPORTED_VERSIONS, load_schema
from harness.reports.summary import FORMAT, VERSION
from tests.reports.synth import make_summary
from tests.reports.test_outputs import charts, well_formed

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = Path(harness.reports.__file__).parent
HOSTILE = "<script>alert('x')</script> & \"q\""


def test_the_schema_ships_in_the_package_and_names_the_format_the_code_writes() -> None:
    assert (PACKAGE / SCHEMA_FILE).is_file()
    assert not (ROOT / "reports" / SCHEMA_FILE).exists()  # one copy, the packaged one
    props = load_schema()["properties"]
    assert props["format"]["const"] == FORMAT
    assert props["version"]["const"] == VERSION and VERSION in SUPPORTED_VERSIONS


def test_package_data_covers_the_templates_and_the_schema() -> None:
    data = tomlfile.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    patterns = data.get("*", []) + data.get("harness.reports", [])
    shipped = [p.relative_to(PACKAGE).as_posix() for p in (PACKAGE / "templates").iterdir()] + [SCHEMA_FILE]
    assert len(shipped) > 1
    for name in shipped:
        # "*" patterns also match inside templates/, which setuptools finds as a namespace package
        assert any(fnmatch(name, pat) or fnmatch(Path(name).name, pat) for pat in patterns), name


def test_every_page_escapes_what_a_summary_says_and_keeps_its_charts() -> None:
    base = make_summary(1, label=HOSTILE)
    cand = make_summary(2, label="ok", shift_ms={"authenticate": 50.0})
    base["run"]["scenario"] = cand["run"]["scenario"] = HOSTILE
    pages = {
        "compare": render.html(compare(base, cand), base, cand),
        "trend": trend.trend_html([base, cand]),
        "run": run_page.run_html(base),
    }
    for name, html in pages.items():
        assert "<script" not in html, name
        root = well_formed(html)
        texts = "".join(root.itertext())
        assert HOSTILE in texts, name  # shown as text, neither lost nor double-escaped
        assert "&amp;lt;" not in html and "&lt;svg" not in html, name
        assert charts(root), name
