"""Check a summary against the packaged ``summary.schema.json`` without a JSON Schema library.

Every reader (compare, trend, report, baseline promote, thresholds check) goes through
:func:`harness.reports.loading.load_summary`, which calls :func:`first_problem`: a corrupt summary
-- a wrong type, a null where a number belongs, a missing section, a NaN or infinite count -- is
refused with the file and the field named, instead of a traceback or a page of nonsense.

Why not ``jsonschema``: it would be the reports wing's only runtime dependency beyond the standard
library and jinja2, and brings four packages with it (one a compiled extension), for a schema that
uses a dozen keywords. This walker implements exactly the keywords in :data:`KEYWORDS` (draft
2020-12 semantics; ``tests/reports/test_readers.py`` checks the packaged schema uses no other and
that it agrees with ``jsonschema`` on valid and corrupt summaries). One rule is stricter than
JSON Schema: a number must be finite (``NaN``/``Infinity`` parse in Python's json, but no count,
ratio or latency can be one).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any, Final

ANNOTATIONS: Final = frozenset(
    {"$schema", "$id", "$defs", "$comment", "title", "description", "default", "examples", "deprecated", "format"}
)
KEYWORDS: Final = frozenset(
    {
        "$ref", "type", "enum", "const", "required", "properties", "additionalProperties", "patternProperties",
        "propertyNames", "minProperties", "maxProperties", "items", "minItems", "maxItems", "minimum", "maximum",
        "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "pattern", "oneOf", "anyOf", "allOf", "not",
    }
)  # fmt: skip
_NAMES: Final = {"object": "an object", "array": "a list", "string": "a string", "integer": "an integer",
                 "number": "a number", "boolean": "true or false", "null": "null"}  # fmt: skip
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


class Invalid(Exception):
    """One problem: ``path`` (e.g. ``steps.connect.count``) and what is wrong there."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path or 'the document'} {problem}")
        self.path, self.problem = path, problem


def first_problem(instance: Any, schema: Mapping[str, Any]) -> Invalid | None:
    """The first problem found (in the schema's order), or None when the instance is valid."""
    try:
        _check(instance, schema, schema, "")
    except Invalid as problem:
        return problem
    return None


def unknown_keywords(schema: Any) -> set[str]:
    """Keywords in ``schema`` (at any depth) this walker does not implement."""
    found: set[str] = set()
    if isinstance(schema, Mapping):
        for key, value in schema.items():
            if key not in KEYWORDS and key not in ANNOTATIONS:
                found.add(key)
            if key in ("properties", "patternProperties", "$defs"):
                for sub in value.values():
                    found |= unknown_keywords(sub)
            elif key in ("oneOf", "anyOf", "allOf"):
                for sub in value:
                    found |= unknown_keywords(sub)
            elif isinstance(value, Mapping) and key not in ("const", "default", "examples", "enum"):
                found |= unknown_keywords(value)
    return found


def _show(value: Any) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, (dict, list)):
        return "an object" if isinstance(value, dict) else "a list"
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    if _PLAIN_KEY.match(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"


def _is(value: Any, kind: str) -> bool:
    if kind == "null":
        return value is None
    if kind == "boolean":
        return isinstance(value, bool)
    if kind in ("integer", "number"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return kind == "number" or isinstance(value, int) or value.is_integer()
    return isinstance(value, {"object": dict, "array": list, "string": str}[kind])


def _same(a: Any, b: Any) -> bool:
    """JSON equality: true is not 1."""
    return type(a) is type(b) and a == b if isinstance(a, bool) or isinstance(b, bool) else a == b


def _resolve(root: Mapping[str, Any], ref: str) -> Mapping[str, Any]:
    if not ref.startswith("#"):
        raise ValueError(f"only local $ref are supported, not {ref!r}")
    node: Any = root
    for part in (p for p in ref[1:].split("/") if p):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _check(value: Any, schema: Any, root: Mapping[str, Any], path: str) -> None:
    if schema is True or schema == {}:
        return
    if schema is False:
        raise Invalid(path, "is not allowed here")
    if "$ref" in schema:
        _check(value, _resolve(root, schema["$ref"]), root, path)
    if isinstance(value, float) and not math.isfinite(value):
        raise Invalid(path, f"must be a finite number, not {_show(value)}")
    if "type" in schema:
        kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is(value, k) for k in kinds):
            raise Invalid(path, f"must be {' or '.join(_NAMES[k] for k in kinds)}, not {_show(value)}")
    if "const" in schema and not _same(value, schema["const"]):
        raise Invalid(path, f"must be {_show(schema['const'])}, not {_show(value)}")
    if "enum" in schema and not any(_same(value, option) for option in schema["enum"]):
        options = ", ".join(_show(o) for o in schema["enum"])
        raise Invalid(path, f"must be one of {options}, not {_show(value)}")
    if _is(value, "number"):
        _check_number(value, schema, path)
    elif isinstance(value, str):
        _check_string(value, schema, path)
    elif isinstance(value, dict):
        _check_object(value, schema, root, path)
    elif isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            raise Invalid(path, f"must have at least {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            raise Invalid(path, f"must have at most {schema['maxItems']} items")
        if "items" in schema:
            for i, item in enumerate(value):
                _check(item, schema["items"], root, _join(path, i))
    for sub in schema.get("allOf", ()):
        _check(value, sub, root, path)
    for key in ("oneOf", "anyOf"):
        if key in schema:
            _check_alternatives(value, schema[key], root, path, exactly_one=key == "oneOf")
    if "not" in schema and first_problem_at(value, schema["not"], root, path) is None:
        raise Invalid(path, "matches a form it must not have")


def first_problem_at(value: Any, schema: Any, root: Mapping[str, Any], path: str) -> Invalid | None:
    try:
        _check(value, schema, root, path)
    except Invalid as problem:
        return problem
    return None


def _check_alternatives(value: Any, options: list[Any], root: Mapping[str, Any], path: str, *, exactly_one: bool) -> None:
    problems = [first_problem_at(value, option, root, path) for option in options]
    matched = sum(p is None for p in problems)
    if matched == 0:
        raise max(problems, key=lambda p: len(p.path) if p else -1)  # the deepest: the branch that nearly fit
    if exactly_one and matched > 1:
        raise Invalid(path, "matches more than one allowed form")


def _check_number(value: float, schema: Mapping[str, Any], path: str) -> None:
    for key, ok, words in (
        ("minimum", lambda v, m: v >= m, ">="),
        ("maximum", lambda v, m: v <= m, "<="),
        ("exclusiveMinimum", lambda v, m: v > m, ">"),
        ("exclusiveMaximum", lambda v, m: v < m, "<"),
    ):
        if key in schema and not ok(value, schema[key]):
            raise Invalid(path, f"must be {words} {schema[key]}, not {_show(value)}")


def _check_string(value: str, schema: Mapping[str, Any], path: str) -> None:
    if "minLength" in schema and len(value) < schema["minLength"]:
        raise Invalid(path, "must not be empty" if schema["minLength"] == 1 else f"is shorter than {schema['minLength']}")
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        raise Invalid(path, f"is longer than {schema['maxLength']} characters")
    if "pattern" in schema and not re.search(schema["pattern"], value):
        raise Invalid(path, f"must match {schema['pattern']}, not {_show(value)}")


def _check_object(value: dict[str, Any], schema: Mapping[str, Any], root: Mapping[str, Any], path: str) -> None:
    for name in schema.get("required", ()):
        if name not in value:
            raise Invalid(_join(path, name), "is missing")
    if "minProperties" in schema and len(value) < schema["minProperties"]:
        raise Invalid(path, f"must have at least {schema['minProperties']} entries")
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        raise Invalid(path, f"must have at most {schema['maxProperties']} entries")
    properties = schema.get("properties", {})
    patterns = schema.get("patternProperties", {})
    names = schema.get("propertyNames")
    for key, item in value.items():
        where = _join(path, key)
        if names is not None:
            problem = first_problem_at(key, names, root, where)
            if problem is not None:
                raise Invalid(where, f"is not an allowed name here ({problem.problem})")
        if key in properties:
            _check(item, properties[key], root, where)
        matching = [sub for pattern, sub in patterns.items() if re.search(pattern, key)]
        for sub in matching:
            _check(item, sub, root, where)
        if key not in properties and not matching and "additionalProperties" in schema:
            _check(item, schema["additionalProperties"], root, where)
