"""Fixtures for the reports wing: the JSON Schema and a validator for every summary a test makes."""

from __future__ import annotations

from typing import Any

import pytest

from harness.reports.loading import load_schema


@pytest.fixture(scope="session")
def schema() -> dict[str, Any]:
    return load_schema()


@pytest.fixture(scope="session")
def validate(schema: dict[str, Any]):
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)

    def check(summary: dict[str, Any]) -> dict[str, Any]:
        errors = sorted(validator.iter_errors(summary), key=lambda e: list(e.path))
        assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:10])
        return summary

    return check
