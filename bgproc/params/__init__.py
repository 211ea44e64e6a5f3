"""The parameter codec: parameter dataclasses <-> MessagePack bytes.

Parameters are data, never code: a small tree of simple values inside a
dataclass. They are encoded when the request is made (so a bad value is
refused then, naming its field) and decoded in the worker; ``wire.py`` says
how each value travels.

Each declared type is compiled once (``compile.py``) into a tree of codec
nodes (``nodes.py``, ``scalars.py``) that encode, decode, read command-line
text and JSON, and name their type. Decoding rebuilds tuples, enums and
nested dataclasses; a union is encoded as the first member that takes the
value exactly (``float | int`` keeps an int an int), and decoded the same
way; a union whose members would look alike once serialized (``list |
tuple``, ``dict | SomeDataclass``, an Enum with a member of its values'
type, two dataclasses with the same fields) is refused by ``check_type``
(``lookalike.py``).

Every error is a ``ParamsError`` whose message starts with the field path
(``params.inner.tags[2]: cannot serialize set``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..errors import ParamsError
from .compile import compiled
from .declared import field_types, has_default, type_name
from .jsonio import json_kind, parse_json, read_limited, to_jsonable
from .messages import kind
from .nodes import DataclassNode
from .wire import EXT_DATE, EXT_DATETIME, EXT_DECIMAL, EXT_TIME, EXT_UUID, MAX_BYTES, MAX_DEPTH, pack, unpack

__all__ = [
    "EXT_DATE", "EXT_DATETIME", "EXT_DECIMAL", "EXT_TIME", "EXT_UUID", "MAX_BYTES", "MAX_DEPTH",
    "check_type", "decode", "decode_raw", "describe_fields", "encode", "field_types", "from_inputs",
    "from_json", "from_text", "parse_json", "read_limited", "to_jsonable", "type_name",
]


def check_type(tp: Any, path: str = "params") -> None:
    """Refuse a declared type that the codec cannot carry (at registration)."""
    compiled(tp, path)


def encode(params: Any) -> bytes:
    """Serialize a parameters dataclass instance to MessagePack bytes."""
    if not dataclasses.is_dataclass(params) or isinstance(params, type):
        raise ParamsError(
            f"params: expected a dataclass instance, got {kind(params)}; "
            "declare the parameters as a @dataclass"
        )
    return pack(compiled(type(params)).encode(params, "params", (), 0, False))


def decode_raw(data: bytes) -> Any:
    """Decode MessagePack bytes without a schema (for display)."""
    return unpack(data)


def decode(cls: type, data: bytes) -> Any:
    """Deserialize MessagePack bytes into an instance of the dataclass ``cls``."""
    raw = unpack(data)
    return compiled(cls).decode(raw, "params", False)


def from_text(text: str, tp: Any, path: str) -> Any:
    """Convert one command-line value by its declared type.

    For an optional field, ``null`` means None; so does ``none`` when no
    other member takes the text (an ``str | None`` field keeps ``none``).
    """
    return compiled(tp, path).from_text(text, path, False)


def from_json(value: Any, tp: Any, path: str) -> Any:
    """Convert a value parsed from JSON (floats as Decimal) by its declared type."""
    return compiled(tp, path).from_json(value, path, False)


def from_inputs(
    cls: type,
    pairs: list[str] | None = None,
    json_text: str | None = None,
    *,
    base: dict[str, Any] | None = None,
) -> Any:
    """Build parameters from ``--params-json`` (or a file's text) and ``-p field=value`` pairs.

    Pairs override the JSON object. Every value is converted by its field's
    declared type; unknown and missing fields are refused.
    """
    node = _dataclass_node(cls)
    raw: dict[str, Any] = dict(base or {})
    if json_text is not None:
        loaded = parse_json(json_text, "params")
        if not isinstance(loaded, dict):
            raise ParamsError(f"params: expected a JSON object, got {json_kind(loaded)}")
        raw.update(loaded)
    converted: dict[str, Any] = {}
    for key, value in raw.items():
        field = node.fields.get(key)
        # an unknown field is reported by build, below
        converted[key] = value if field is None else field.from_json(value, f"params.{key}", False)
    given: set[str] = set()
    for pair in pairs or []:
        name, sep, text = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ParamsError(f"params: '{pair}' is not field=value; write -p field=value, such as -p title=Hello")
        if name not in node.fields:
            raise node.unknown(f"params.{name}")
        if name in given:
            raise ParamsError(f"params.{name}: given twice with -p; give each field once")
        given.add(name)
        converted[name] = node.fields[name].from_text(text, f"params.{name}", False)
    return node.build(converted, "params", lambda field, v, p: v)


def describe_fields(cls: type) -> list[dict[str, Any]]:
    """The fields of a parameters dataclass: name, type, required, default (JSON-ready).

    A default that cannot be serialized is refused here, at registration.
    """
    node = _dataclass_node(cls)
    out = []
    for f in node.init_fields:
        field, path = node.fields[f.name], f"params.{f.name}"
        entry: dict[str, Any] = {"name": f.name, "type": field.describe(), "required": not has_default(f)}
        if has_default(f):
            default = _default(f, path)
            try:
                field.encode(default, path, (), 1, False)
            except ParamsError as exc:
                raise ParamsError(f"{exc} (the field's default)") from None
            entry["default"] = to_jsonable(default)
        out.append(entry)
    return out


def _default(f: dataclasses.Field[Any], path: str) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    try:
        return f.default_factory()  # type: ignore[operator]
    except Exception as exc:  # noqa: BLE001 - user code
        raise ParamsError(f"{path}: its default_factory raised {type(exc).__name__}: {exc}") from None


def _dataclass_node(cls: type) -> DataclassNode:
    node = compiled(cls)
    if not isinstance(node, DataclassNode):
        raise ParamsError(f"params: expected a dataclass, got {type_name(cls)}; declare the parameters as a @dataclass")
    return node
