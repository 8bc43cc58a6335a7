"""A small TOML subset parser, only for Python 3.10 without ``tomli`` (3.11+ uses ``tomllib``).

Enough for thresholds files: comments, ``[table]``/``[a.b]`` headers, bare or quoted keys, basic
and literal strings, integers, floats, booleans, (multi-line) arrays and inline tables. Anything
else raises ValueError naming the line, so a file that needs real TOML says so instead of misreading.
"""

from __future__ import annotations

import re
from typing import Any

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_NUMBER = re.compile(r"[-+]?(?:\d[\d_]*)(?:\.\d[\d_]*)?(?:[eE][-+]?\d+)?")
_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}


class _Parser:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0

    def error(self, msg: str) -> ValueError:
        line = self.s.count("\n", 0, self.i) + 1
        return ValueError(f"TOML line {line}: {msg}")

    def skip_ws(self, newlines: bool = False) -> None:
        while self.i < len(self.s):
            c = self.s[self.i]
            if c in " \t\r" or (newlines and c == "\n"):
                self.i += 1
            elif c == "#":
                while self.i < len(self.s) and self.s[self.i] != "\n":
                    self.i += 1
            else:
                break

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def expect(self, c: str) -> None:
        if self.peek() != c:
            raise self.error(f"expected {c!r}, found {self.peek()!r}")
        self.i += 1

    def key(self) -> list[str]:
        parts = [self.simple_key()]
        self.skip_ws()
        while self.peek() == ".":
            self.i += 1
            self.skip_ws()
            parts.append(self.simple_key())
            self.skip_ws()
        return parts

    def simple_key(self) -> str:
        c = self.peek()
        if c == '"':
            return self.basic_string()
        if c == "'":
            return self.literal_string()
        m = _BARE_KEY.match(self.s, self.i)
        if not m:
            raise self.error("expected a key")
        self.i = m.end()
        return m.group()

    def basic_string(self) -> str:
        self.expect('"')
        out = []
        while True:
            if self.i >= len(self.s) or self.s[self.i] == "\n":
                raise self.error("unterminated string")
            c = self.s[self.i]
            self.i += 1
            if c == '"':
                return "".join(out)
            if c == "\\":
                e = self.s[self.i : self.i + 1]
                self.i += 1
                if e in _ESCAPES:
                    out.append(_ESCAPES[e])
                elif e in ("u", "U"):
                    width = 4 if e == "u" else 8
                    out.append(chr(int(self.s[self.i : self.i + width], 16)))
                    self.i += width
                else:
                    raise self.error(f"bad escape \\{e}")
            else:
                out.append(c)

    def literal_string(self) -> str:
        self.expect("'")
        end = self.s.find("'", self.i)
        if end < 0 or "\n" in self.s[self.i : end]:
            raise self.error("unterminated string")
        value = self.s[self.i : end]
        self.i = end + 1
        return value

    def value(self) -> Any:
        c = self.peek()
        if c == '"':
            if self.s.startswith('"""', self.i):
                raise self.error("multi-line strings need Python 3.11+ or tomli")
            return self.basic_string()
        if c == "'":
            return self.literal_string()
        if c == "[":
            return self.array()
        if c == "{":
            return self.inline_table()
        for word, val in (("true", True), ("false", False)):
            if self.s.startswith(word, self.i):
                self.i += len(word)
                return val
        m = _NUMBER.match(self.s, self.i)
        if m and m.group():
            self.i = m.end()
            text = m.group().replace("_", "")
            return float(text) if any(ch in text for ch in ".eE") else int(text)
        raise self.error(f"unsupported value starting {self.s[self.i : self.i + 10]!r}")

    def array(self) -> list[Any]:
        self.expect("[")
        items: list[Any] = []
        while True:
            self.skip_ws(newlines=True)
            if self.peek() == "]":
                self.i += 1
                return items
            items.append(self.value())
            self.skip_ws(newlines=True)
            if self.peek() == ",":
                self.i += 1
            elif self.peek() != "]":
                raise self.error("expected ',' or ']' in array")

    def inline_table(self) -> dict[str, Any]:
        self.expect("{")
        table: dict[str, Any] = {}
        self.skip_ws()
        if self.peek() == "}":
            self.i += 1
            return table
        while True:
            self.skip_ws()
            k = self.key()
            self.expect("=")
            self.skip_ws()
            _put(table, k, self.value(), self)
            self.skip_ws()
            if self.peek() == ",":
                self.i += 1
            elif self.peek() == "}":
                self.i += 1
                return table
            else:
                raise self.error("expected ',' or '}' in inline table")

    def document(self) -> dict[str, Any]:
        root: dict[str, Any] = {}
        current = root
        while True:
            self.skip_ws(newlines=True)
            if self.i >= len(self.s):
                return root
            if self.peek() == "[":
                self.i += 1
                if self.peek() == "[":
                    raise self.error("arrays of tables need Python 3.11+ or tomli")
                self.skip_ws()
                path = self.key()
                self.expect("]")
                current = root
                for part in path:
                    current = current.setdefault(part, {})
                    if not isinstance(current, dict):
                        raise self.error(f"{'.'.join(path)} is not a table")
            else:
                k = self.key()
                self.expect("=")
                self.skip_ws()
                _put(current, k, self.value(), self)
            self.skip_ws()
            if self.peek() not in ("\n", ""):
                raise self.error("expected the end of the line")


def _put(table: dict[str, Any], path: list[str], value: Any, parser: _Parser) -> None:
    for part in path[:-1]:
        table = table.setdefault(part, {})
    if path[-1] in table:
        raise parser.error(f"duplicate key {'.'.join(path)}")
    table[path[-1]] = value


def loads(text: str) -> dict[str, Any]:
    """Parse the TOML subset described above; ValueError with the line number otherwise."""
    return _Parser(text).document()
