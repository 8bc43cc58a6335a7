"""The HTML pages of the reports, rendered from jinja2 templates (``templates/``) with autoescape.

Every value reaches a page through a template variable and is escaped there; the only markup made
in Python is :mod:`.svg`'s charts, which arrive as ``Markup`` and are written as they are. The
pages stay self-contained (inline CSS, no scripts, no network) and XHTML-clean, so they also
parse as XML.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import jinja2


@cache
def environment() -> jinja2.Environment:
    """One environment per process; templates are read from the installed package on first use."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("harness.reports", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a misspelt variable fails loudly instead of printing nothing
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render(template: str, **context: Any) -> str:
    """A whole page from ``templates/<template>``."""
    return environment().get_template(template).render(**context)
