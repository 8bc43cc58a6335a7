"""The shell of our self-contained HTML pages: inline CSS, no scripts from anywhere, XHTML-clean."""

from __future__ import annotations

from html import escape
from typing import Final

CSS: Final = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:18px 0 6px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:right;vertical-align:top}
th{background:#f4f4f4}td.l,th.l{text-align:left}
.regressed{background:#fde0dc;color:#a00;font-weight:600}.improved{background:#dff3df;color:#075}
.unchanged{color:#555}.na{color:#999}
.box{border:1px solid #ccc;border-radius:6px;padding:8px 12px;margin:8px 0;background:#fafafa}
.warn{border-color:#e0b000;background:#fff8e0}.bad{border-color:#c00;background:#fde0dc}
.charts{display:flex;flex-wrap:wrap;gap:12px}.charts svg{border:1px solid #eee;background:#fff}
.muted{color:#777;font-size:12px}code{background:#f4f4f4;padding:0 3px}
.why{font-size:11px;color:#666;text-align:left;max-width:520px}
"""


def page(title: str, body: str, *, generator: str = "lp-harness") -> str:
    """A whole HTML document around ``body``."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8"/>\n'
        f'<meta name="generator" content="{escape(generator, quote=True)}"/>\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1"/>\n'
        f"<title>{escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def table(header: list[str], rows: list[list[str]], *, left: int = 1, classes: list[str] | None = None) -> str:
    """A table from already-escaped cell HTML; the first ``left`` columns align left."""
    out = [
        "<table>",
        "<tr>"
        + "".join(f'<th class="l">{h}</th>' if i < left else f"<th>{h}</th>" for i, h in enumerate(header))
        + "</tr>",
    ]
    for r, row in enumerate(rows):
        cls = f' class="{classes[r]}"' if classes and classes[r] else ""
        out.append(
            f"<tr{cls}>"
            + "".join(f'<td class="l">{c}</td>' if i < left else f"<td>{c}</td>" for i, c in enumerate(row))
            + "</tr>"
        )
    out.append("</table>")
    return "\n".join(out)
