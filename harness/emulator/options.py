"""Options declared once, on the fields of a config dataclass, and everything made from them.

Each option field carries an :class:`Option` in its ``dataclasses.field`` metadata (see
:func:`option`). From those declarations come the command line (:func:`add_arguments`), the
config-file keys (:func:`file_defaults`), the typed values (:func:`from_args`) and the view the
admin API shows (:func:`view`), so an option added to the dataclass is in all four at once and
none of them can name it differently. Fields without an :class:`Option` are internal: set by the
program, never by a user, and never shown.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from harness.emulator.faults import ConfigError

_META = "option"


@dataclasses.dataclass(frozen=True)
class Option:
    """How one config field is spelled and parsed on the command line and in a config file.

    ``kind``: ``"value"`` (``--port 8080``), ``"list"`` (repeatable: ``--trust-key a --trust-key b``;
    a file may give one string or a list), ``"switch"`` (``--tls`` sets True) or ``"negated"``
    (``--no-tutorial-key`` sets the field to False; its file key holds the flag's value).
    """

    flag: str
    help: str
    group: str | None = None  # argparse group title; None: the parser's own "options"
    kind: str = "value"
    type: Callable[[str], Any] | None = None  # for "value" and "list"; strings when None
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    normalise: Callable[[Any], Any] | None = None  # applied to every value before choices are checked
    aliases: tuple[str, ...] = ()  # further config-file keys for the same option
    secret: bool = False  # the admin view says whether it is set, never its value

    @property
    def key(self) -> str:
        """The config-file (and admin view) key: the flag without its dashes (``idle-timeout``)."""
        return self.flag.removeprefix("--")

    @property
    def dest(self) -> str:
        return self.key.replace("-", "_")


def option(default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING, **spec: Any) -> Any:
    """A dataclass field that is also an option (``spec``: the :class:`Option` fields)."""
    return dataclasses.field(default=default, default_factory=default_factory, metadata={_META: Option(**spec)})


def options(cls: type) -> Iterator[tuple[dataclasses.Field[Any], Option]]:
    """(field, option) for every option field of the dataclass ``cls``, in declaration order."""
    for f in dataclasses.fields(cls):
        spec = f.metadata.get(_META)
        if spec is not None:
            yield f, spec


def config_keys(cls: type) -> dict[str, str]:
    """Every accepted config-file key (``-`` and ``_`` alike) -> the field it sets."""
    keys: dict[str, str] = {}
    for f, spec in options(cls):
        for key in (spec.key, *spec.aliases):
            keys[_norm(key)] = f.name
    return keys


def _norm(key: str) -> str:
    return key.replace("_", "-")


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None if f.default is dataclasses.MISSING else f.default


# ---------------------------------------------------------------------- the command line
def add_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """One argparse option per option field, in groups named by their declarations."""
    groups: dict[str, Any] = {}
    for f, spec in options(cls):
        target: Any = parser
        if spec.group is not None:
            if spec.group not in groups:
                groups[spec.group] = parser.add_argument_group(spec.group)
            target = groups[spec.group]
        kwargs: dict[str, Any] = {"dest": spec.dest, "help": spec.help}
        if spec.kind in ("switch", "negated"):
            target.add_argument(spec.flag, action="store_true", **kwargs)
            continue
        kwargs.update(type=spec.type, metavar=spec.metavar, choices=spec.choices)
        if spec.kind == "list":
            target.add_argument(spec.flag, action="append", default=[], **kwargs)
        else:
            target.add_argument(spec.flag, default=_default(f), **kwargs)


def file_defaults(cls: type, data: Mapping[str, Any], source: str, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """argparse defaults (dest -> value) from a config file's option keys; ConfigError for an unknown
    key or a value of the wrong type. Keys in ``skip`` belong to someone else (the fault plan)."""
    keys = config_keys(cls)
    by_name = {f.name: spec for f, spec in options(cls)}
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in skip:
            continue
        name = keys.get(_norm(key))
        if name is None:
            raise ConfigError(f"{source}: unknown key {key!r}")
        spec = by_name[name]
        out[spec.dest] = _file_value(spec, value, f"{source}: {key}")
    return out


def _file_value(spec: Option, value: Any, where: str) -> Any:
    if spec.kind in ("switch", "negated"):
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if spec.kind == "list":
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
            raise ConfigError(f"{where} must be a string or a list of strings, got {value!r}")
        return [_typed(spec, v, where) for v in items]
    if value is None:
        return None
    return _typed(spec, value, where)


def _typed(spec: Option, value: Any, where: str) -> Any:
    if isinstance(value, bool) or (spec.type is None and not isinstance(value, str)):
        raise ConfigError(f"{where}: bad value {value!r}")
    try:
        return value if spec.type is None else spec.type(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: bad value {value!r}") from None


def from_args(cls: type, args: argparse.Namespace, **internal: Any) -> Any:
    """The dataclass from parsed arguments (defaults already hold the config file's values)."""
    values: dict[str, Any] = {}
    for f, spec in options(cls):
        value = getattr(args, spec.dest)
        if spec.kind == "negated":
            value = not value
        elif spec.kind == "list":
            value = list(value)
        elif spec.kind == "switch":
            value = bool(value)
        if spec.normalise is not None and value is not None:
            value = spec.normalise(value)
        if spec.choices is not None and value not in spec.choices:
            raise ConfigError(f"{spec.key} must be one of {', '.join(spec.choices)}, got {value!r}")
        values[f.name] = value
    return cls(**values, **internal)


def view(config: Any) -> dict[str, Any]:
    """The options of a config as a config file would give them (same keys), internal fields left out."""
    out: dict[str, Any] = {}
    for f, spec in options(type(config)):
        value = getattr(config, f.name)
        if spec.kind == "negated":
            value = not value
        elif spec.kind == "list":
            value = list(value)
        if spec.secret:
            value = "<set>" if value else None
        out[spec.key] = value
    return out
