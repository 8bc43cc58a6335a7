"""Our summary inside Locust's HTML report, so the UI's "Download Report" carries it too.

Locust's report is a React page rendered from ``window.templateArgs``; it has no slot for
extra sections, so :func:`augment_report_html` appends one plain, self-styled HTML section
after the page's root element: the terminal summary (steps and phases side by side, sockets,
pings), the load generator's health, and the full ``summary.json`` in a
``<script type="application/json" id="lp-harness-summary">`` element that tools can extract.
"""

from __future__ import annotations

import html
import json
from typing import Any, Final

from harness.reports.summary import terminal_table

SECTION_ID: Final = "lp-harness-summary-section"
JSON_ID: Final = "lp-harness-summary"

_STYLE = (
    "font-family:system-ui,sans-serif;background:#fff;color:#111;max-width:1100px;"
    "margin:24px auto;padding:16px 24px;border:1px solid #ccc;border-radius:8px"
)


def summary_section(summary: dict[str, Any], health: dict[str, Any] | None = None) -> str:
    """The HTML section: readable text plus the machine-readable JSON."""
    try:
        text = terminal_table(summary)
    except (KeyError, TypeError, ValueError):  # a partial summary still ships its JSON
        text = "(summary table unavailable; see the JSON below)"
    parts = [
        f'<section id="{SECTION_ID}" style="{_STYLE}">',
        "<h2>lp-harness summary</h2>",
        f'<pre style="font-size:12px;overflow-x:auto">{html.escape(text)}</pre>',
    ]
    if health is not None:
        if health.get("saturated"):
            parts.append(f'<p style="color:#b00;font-weight:bold">{html.escape(health.get("warning") or "")}</p>')
        rows = "".join(
            "<tr>"
            + "".join(
                f'<td style="padding:2px 12px">{html.escape(str(v))}</td>'
                for v in (
                    p.get("id"),
                    f"{p.get('cpu_percent', 0):.0f}%",
                    f"{(p.get('rss_bytes') or 0) / 1048576:.0f} MB",
                    p.get("fds") if p.get("fds") is not None else "-",
                    f"{p.get('lag_ms', 0):.1f} / {p.get('lag_max_ms', 0):.1f} ms",
                    "SATURATED" if p.get("saturated") else "ok",
                )
            )
            + "</tr>"
            for p in [
                *health.get("processes", []),
                *([health["total"]] if len(health.get("processes", [])) > 1 else []),
            ]
        )
        parts.append(
            "<h3>load generator at download time</h3><table style='font-size:13px;border-collapse:collapse'>"
            "<tr>"
            + "".join(
                f'<th style="padding:2px 12px;text-align:left">{h}</th>'
                for h in ("process", "CPU", "RSS", "open files", "loop lag avg / max", "status")
            )
            + f"</tr>{rows}</table>"
        )
    payload = json.dumps(summary, indent=2).replace("</", "<\\/")  # keep the JSON inside its script element
    parts.append(f'<script type="application/json" id="{JSON_ID}">{payload}</script>')
    parts.append("</section>")
    return "\n".join(parts)


def augment_report_html(report_html: str, summary: dict[str, Any], health: dict[str, Any] | None = None) -> str:
    """Locust's report with our section added before ``</body>`` (appended when there is none)."""
    section = summary_section(summary, health)
    at = report_html.lower().rfind("</body>")
    if at < 0:
        return report_html + section
    return report_html[:at] + section + "\n" + report_html[at:]


def extract_summary(report_html: str) -> dict[str, Any] | None:
    """The summary embedded by :func:`augment_report_html`, or None."""
    marker = f'<script type="application/json" id="{JSON_ID}">'
    start = report_html.find(marker)
    if start < 0:
        return None
    start += len(marker)
    end = report_html.find("</script>", start)
    return json.loads(report_html[start:end].replace("<\\/", "</"))
