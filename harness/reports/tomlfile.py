"""The one TOML reader of lp-harness: ``tomllib`` on Python 3.11+, its twin ``tomli`` below.

Every config and rules file goes through :func:`loads`, so all of them accept the same TOML and
fail the same way: a :class:`TomlError` (a ``ValueError``) whose message gives the line and column.
Standard library (and tomli) only, so any wing may import it without pulling in anything else.
"""

from __future__ import annotations

import sys
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - depends on the interpreter; tomli is a dependency below 3.11
    import tomli as tomllib


class TomlError(ValueError):
    """Text that is not valid TOML (or not UTF-8); the message says where."""


def loads(text: str | bytes) -> dict[str, Any]:
    """TOML text (``bytes`` are decoded as UTF-8, as TOML requires) as a dict."""
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        return tomllib.loads(text)
    except UnicodeDecodeError as exc:
        raise TomlError(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise TomlError(str(exc)) from None
