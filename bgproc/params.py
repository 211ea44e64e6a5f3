"""The parameter codec: parameter dataclasses <-> MessagePack bytes.

Parameters are data, never code: a small tree of simple values inside a
dataclass. They are encoded when the request is made (so a bad value is
refused then, naming its field) and decoded in the worker. Values that
MessagePack has no type for travel as extension types:

    1 UUID      16 raw bytes
    2 datetime  [proleptic ordinal, microsecond of day, UTC offset in us | nil, fold]
    3 date      proleptic ordinal
    4 time      [microsecond of day, UTC offset in us | nil, fold]
    5 Decimal   its exact decimal text

The declared field types drive both directions: decoding rebuilds tuples,
enums and nested dataclasses; command-line and JSON text is converted by
the same types. Every error is a ``ParamsError`` whose message starts with
the field path (``params.inner.tags[2]: cannot serialize set``).
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import json
import types
import typing
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any, Union
from uuid import UUID

import msgpack

from .errors import ParamsError

EXT_UUID = 1
EXT_DATETIME = 2
EXT_DATE = 3
EXT_TIME = 4
EXT_DECIMAL = 5

MAX_DEPTH = 32
MAX_BYTES = 1024 * 1024
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1
_US_PER_DAY = 86_400_000_000
_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}
_SCALARS: tuple[type, ...] = (str, int, float, bool, bytes, UUID, datetime, date, time, Decimal)


# --------------------------------------------------------------------------
# Types


@cache
def field_types(cls: type) -> dict[str, Any]:
    """The resolved type of each field of a parameters dataclass."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls)}


def _union_args(tp: Any) -> tuple[Any, ...] | None:
    if typing.get_origin(tp) in (Union, types.UnionType):
        return typing.get_args(tp)
    return None


def _origin(tp: Any) -> Any:
    return typing.get_origin(tp) or tp


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _is_enum_type(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, enum.Enum)


def type_name(tp: Any) -> str:
    """A short, readable name for a declared type (``list[int]``, ``str | None``)."""
    if tp is Any:
        return "any"
    if tp is type(None) or tp is None:
        return "None"
    members = _union_args(tp)
    if members is not None:
        return " | ".join(type_name(m) for m in members)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is not None:
        inner = ", ".join("..." if a is Ellipsis else type_name(a) for a in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    return getattr(tp, "__name__", str(tp))


def check_type(tp: Any, path: str = "params") -> None:
    """Refuse a declared type that the codec cannot carry (at registration)."""
    _check_type(tp, path, set())


def _check_type(tp: Any, path: str, seen: set[type]) -> None:
    if tp is Any or tp is type(None) or tp is None or tp in _SCALARS:
        return
    if _is_enum_type(tp):
        return
    if _is_dataclass_type(tp):
        if tp in seen:
            raise ParamsError(f"{path}: recursive dataclass {tp.__name__} cannot be serialized")
        for name, ftp in field_types(tp).items():
            _check_type(ftp, f"{path}.{name}", seen | {tp})
        return
    members = _union_args(tp)
    if members is not None:
        for m in members:
            _check_type(m, path, seen)
        return
    origin, args = _origin(tp), typing.get_args(tp)
    if origin is list:
        _check_type(args[0] if args else Any, f"{path}[]", seen)
        return
    if origin is tuple:
        for a in args:
            if a is not Ellipsis:
                _check_type(a, f"{path}[]", seen)
        return
    if origin is dict:
        if args and args[0] is not str:
            raise ParamsError(
                f"{path}: dict keys must be str, not {type_name(args[0])}; "
                "use dict[str, ...] or a list of pairs"
            )
        _check_type(args[1] if args else Any, f"{path}[]", seen)
        return
    raise ParamsError(
        f"{path}: cannot serialize {type_name(tp)}; use str, int, float, bool, bytes, UUID, "
        "datetime, date, time, Decimal, an Enum, list, tuple, dict[str, ...] or a dataclass"
    )


# --------------------------------------------------------------------------
# Encoding


def encode(params: Any) -> bytes:
    """Serialize a parameters dataclass instance to MessagePack bytes."""
    if not dataclasses.is_dataclass(params) or isinstance(params, type):
        raise ParamsError(
            f"params: expected a dataclass instance, got {type(params).__name__}; "
            "declare the parameters as a @dataclass"
        )
    tree = _encode(params, type(params), "params", (), 0)
    data = msgpack.packb(tree, use_bin_type=True)
    if len(data) > MAX_BYTES:
        raise ParamsError(
            f"params: {len(data)} bytes serialized, over the limit of {MAX_BYTES}; "
            "pass a reference (a path, an id) instead of the data itself"
        )
    return data


def _encode(value: Any, tp: Any, path: str, stack: tuple[int, ...], depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise ParamsError(f"{path}: nested deeper than {MAX_DEPTH} levels")
    members = _union_args(tp)
    if members is not None:
        for m in members:
            if _accepts(m, value):
                return _encode(value, m, path, stack, depth)
        raise _wrong_type(path, tp, value)
    if tp is Any:
        return _encode_any(value, path, stack, depth)
    if tp is type(None) or tp is None:
        if value is None:
            return None
        raise _wrong_type(path, tp, value)
    if not _accepts(tp, value):
        raise _wrong_type(path, tp, value)
    if _is_dataclass_type(tp):
        stack = _enter(value, path, stack)
        hints = field_types(tp)
        return {
            name: _encode(getattr(value, name), ftp, f"{path}.{name}", stack, depth + 1)
            for name, ftp in hints.items()
        }
    if _is_enum_type(tp):
        return _encode_any(value.value, path, stack, depth)
    origin, args = _origin(tp), typing.get_args(tp)
    if origin is list:
        stack = _enter(value, path, stack)
        item = args[0] if args else Any
        return [_encode(v, item, f"{path}[{i}]", stack, depth + 1) for i, v in enumerate(value)]
    if origin is tuple:
        stack = _enter(value, path, stack)
        if args and args[-1] is not Ellipsis and len(args) != len(value):
            raise ParamsError(f"{path}: expected {len(args)} items, got {len(value)}")
        out = []
        for i, v in enumerate(value):
            item = Any if not args else args[0] if args[-1] is Ellipsis else args[i]
            out.append(_encode(v, item, f"{path}[{i}]", stack, depth + 1))
        return out
    if origin is dict:
        stack = _enter(value, path, stack)
        item = args[1] if args else Any
        return _encode_dict(value, item, path, stack, depth)
    if origin is float:
        return float(value)
    return _encode_scalar(value, path)


def _encode_any(value: Any, path: str, stack: tuple[int, ...], depth: int) -> Any:
    """Encode a value whose declared type is ``Any``: its own type decides."""
    if value is None or isinstance(value, (str, bool, float)):
        return value
    if isinstance(value, enum.Enum):
        return _encode_any(value.value, path, stack, depth)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _encode(value, type(value), path, stack, depth)
    if isinstance(value, (list, tuple)):
        stack = _enter(value, path, stack)
        return [_encode_any(v, f"{path}[{i}]", stack, depth + 1) for i, v in enumerate(value)]
    if isinstance(value, dict):
        stack = _enter(value, path, stack)
        return _encode_dict(value, Any, path, stack, depth)
    return _encode_scalar(value, path)


def _encode_dict(value: dict, item: Any, path: str, stack: tuple[int, ...], depth: int) -> dict:
    out = {}
    for k, v in value.items():
        if not isinstance(k, str):
            raise ParamsError(f"{path}: dict key {k!r} is not a str; only str keys can be serialized")
        out[k] = _encode(v, item, f"{path}[{k!r}]", stack, depth + 1)
    return out


def _encode_scalar(value: Any, path: str) -> Any:
    if isinstance(value, bool) or isinstance(value, (str, float, bytes)):
        return value
    if isinstance(value, int):
        if not _INT_MIN <= value <= _INT_MAX:
            raise ParamsError(
                f"{path}: integer {value} does not fit in 64 bits; pass it as a str or Decimal"
            )
        return value
    if isinstance(value, UUID):
        return msgpack.ExtType(EXT_UUID, value.bytes)
    if isinstance(value, datetime):
        micros = (value.hour * 3600 + value.minute * 60 + value.second) * 1_000_000
        body = [value.toordinal(), micros + value.microsecond, _offset_us(value.utcoffset()), value.fold]
        return msgpack.ExtType(EXT_DATETIME, msgpack.packb(body))
    if isinstance(value, date):
        return msgpack.ExtType(EXT_DATE, msgpack.packb(value.toordinal()))
    if isinstance(value, time):
        micros = (value.hour * 3600 + value.minute * 60 + value.second) * 1_000_000
        body = [micros + value.microsecond, _offset_us(value.utcoffset()), value.fold]
        return msgpack.ExtType(EXT_TIME, msgpack.packb(body))
    if isinstance(value, Decimal):
        return msgpack.ExtType(EXT_DECIMAL, str(value).encode("ascii"))
    raise ParamsError(f"{path}: cannot serialize {_kind(value)}")


def _offset_us(offset: timedelta | None) -> int | None:
    return None if offset is None else offset // timedelta(microseconds=1)


def _enter(value: Any, path: str, stack: tuple[int, ...]) -> tuple[int, ...]:
    if id(value) in stack:
        raise ParamsError(f"{path}: recursive structure (it contains itself) cannot be serialized")
    return stack + (id(value),)


def _accepts(tp: Any, value: Any) -> bool:
    """Whether ``value`` is of the declared type at the top level."""
    if tp is Any:
        return True
    if tp is type(None) or tp is None:
        return value is None
    members = _union_args(tp)
    if members is not None:
        return any(_accepts(m, value) for m in members)
    origin = _origin(tp)
    if origin is bool:
        return isinstance(value, bool)
    if origin is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if origin is date:
        return isinstance(value, date) and not isinstance(value, datetime)
    if origin is list:
        return isinstance(value, list)
    if origin is tuple:
        return isinstance(value, tuple)
    if origin is dict:
        return isinstance(value, dict)
    if isinstance(origin, type):
        return isinstance(value, origin)
    return False


def _kind(value: Any) -> str:
    if callable(value) and getattr(value, "__name__", "") == "<lambda>":
        return "a lambda"
    return type(value).__name__


def _wrong_type(path: str, tp: Any, value: Any) -> ParamsError:
    if not _accepts(Any, value) or _unsupported(value):
        return ParamsError(f"{path}: cannot serialize {_kind(value)}")
    return ParamsError(f"{path}: expected {type_name(tp)}, got {_kind(value)} {_short(value)}")


def _unsupported(value: Any) -> bool:
    ok = (type(None), list, tuple, dict, enum.Enum) + _SCALARS
    return not isinstance(value, ok) and not dataclasses.is_dataclass(value)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# --------------------------------------------------------------------------
# Decoding


def _ext_hook(code: int, data: bytes) -> Any:
    if code == EXT_UUID:
        return UUID(bytes=data)
    if code == EXT_DATETIME:
        ordinal, micros, offset, fold = msgpack.unpackb(data)
        return datetime.combine(
            date.fromordinal(ordinal), _time_of(micros, offset, fold), _zone(offset)
        ).replace(fold=fold)
    if code == EXT_DATE:
        return date.fromordinal(msgpack.unpackb(data))
    if code == EXT_TIME:
        micros, offset, fold = msgpack.unpackb(data)
        return _time_of(micros, offset, fold)
    if code == EXT_DECIMAL:
        return Decimal(data.decode("ascii"))
    raise ParamsError(f"params: unknown MessagePack extension type {code}")


def _zone(offset_us: int | None) -> timezone | None:
    if offset_us is None:
        return None
    return timezone(timedelta(microseconds=offset_us))


def _time_of(micros: int, offset_us: int | None, fold: int) -> time:
    if not 0 <= micros < _US_PER_DAY:
        raise ValueError(f"microsecond of day {micros} out of range")
    seconds, us = divmod(micros, 1_000_000)
    return time(seconds // 3600, seconds // 60 % 60, seconds % 60, us, _zone(offset_us), fold=fold)


def decode_raw(data: bytes) -> Any:
    """Decode MessagePack bytes without a schema (for display)."""
    try:
        if len(data) > MAX_BYTES:
            raise ParamsError(f"params: {len(data)} bytes, over the limit of {MAX_BYTES}")
        return msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=True)
    except ParamsError:
        raise
    except Exception as exc:
        raise ParamsError(f"params: not valid bgproc MessagePack data ({exc})") from None


def decode(cls: type, data: bytes) -> Any:
    """Deserialize MessagePack bytes into an instance of the dataclass ``cls``."""
    return _build(decode_raw(data), cls, "params")


def _build(raw: Any, tp: Any, path: str) -> Any:
    """Rebuild typed values (tuples, enums, dataclasses) from a decoded tree."""
    if tp is Any:
        return raw
    members = _union_args(tp)
    if members is not None:
        errors = []
        for m in members:
            try:
                return _build(raw, m, path)
            except ParamsError as exc:
                errors.append(exc)
        raise _union_error(path, tp, members, errors, _kind(raw))
    if tp is type(None) or tp is None:
        if raw is None:
            return None
        raise _wrong_type(path, tp, raw)
    if _is_dataclass_type(tp):
        return _build_dataclass(raw, tp, path, lambda v, t, p: _build(v, t, p))
    if _is_enum_type(tp):
        try:
            return tp(raw)
        except ValueError:
            raise ParamsError(f"{path}: {raw!r} is not a value of {tp.__name__}") from None
    origin, args = _origin(tp), typing.get_args(tp)
    if origin is list:
        if not isinstance(raw, list):
            raise _wrong_type(path, tp, raw)
        item = args[0] if args else Any
        return [_build(v, item, f"{path}[{i}]") for i, v in enumerate(raw)]
    if origin is tuple:
        if not isinstance(raw, list):
            raise _wrong_type(path, tp, raw)
        if args and args[-1] is not Ellipsis:
            if len(args) != len(raw):
                raise ParamsError(f"{path}: expected {len(args)} items, got {len(raw)}")
            return tuple(_build(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(args, raw)))
        item = args[0] if args else Any
        return tuple(_build(v, item, f"{path}[{i}]") for i, v in enumerate(raw))
    if origin is dict:
        if not isinstance(raw, dict):
            raise _wrong_type(path, tp, raw)
        item = args[1] if args else Any
        return {k: _build(v, item, f"{path}[{k!r}]") for k, v in raw.items()}
    if origin is float and isinstance(raw, int) and not isinstance(raw, bool):
        return float(raw)
    if not _accepts(tp, raw):
        raise _wrong_type(path, tp, raw)
    return raw


def _build_dataclass(raw: Any, cls: type, path: str, convert: Any) -> Any:
    """Build a dataclass from a mapping, refusing unknown and missing fields."""
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected an object with the fields of {cls.__name__}, got {_kind(raw)}")
    hints = field_types(cls)
    unknown = sorted(set(raw) - set(hints))
    if unknown:
        raise ParamsError(
            f"{path}.{unknown[0]}: unknown field; {cls.__name__} has: {', '.join(hints) or 'no fields'}"
        )
    values = {}
    for f in dataclasses.fields(cls):
        if f.name in raw:
            values[f.name] = convert(raw[f.name], hints[f.name], f"{path}.{f.name}")
        elif not _has_default(f):
            raise ParamsError(
                f"{path}.{f.name}: missing required field ({type_name(hints[f.name])}); "
                f"pass -p {f.name}=..."
            )
    return _construct(cls, values, path)


def _construct(cls: type, values: dict[str, Any], path: str) -> Any:
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise ParamsError(f"{path}: {cls.__name__} refused these values: {exc}") from None


def _has_default(f: dataclasses.Field) -> bool:
    return f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING


# --------------------------------------------------------------------------
# Text and JSON from the command line


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
    raw: dict[str, Any] = dict(base or {})
    if json_text is not None:
        loaded = parse_json(json_text, "params")
        if not isinstance(loaded, dict):
            raise ParamsError(f"params: expected a JSON object, got {_json_kind(loaded)}")
        raw.update(loaded)
    converted: dict[str, Any] = {}
    hints = field_types(cls)
    for key, value in raw.items():
        if key in hints:
            converted[key] = from_json(value, hints[key], f"params.{key}")
        else:
            converted[key] = value  # reported as unknown below
    for pair in pairs or []:
        name, sep, text = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ParamsError(f"params: '{pair}' is not field=value; write -p {pair or 'field'}=value")
        if name not in hints:
            raise ParamsError(
                f"params.{name}: unknown field; {cls.__name__} has: {', '.join(hints) or 'no fields'}"
            )
        converted[name] = from_text(text, hints[name], f"params.{name}")
    return _build_dataclass(converted, cls, "params", lambda v, t, p: v)


def parse_json(text: str, path: str) -> Any:
    try:
        return json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise ParamsError(
            f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None


def from_text(text: str, tp: Any, path: str) -> Any:
    """Convert one command-line value by its declared type."""
    members = _union_args(tp)
    if members is not None:
        if type(None) in members and text.strip().lower() in ("null", "none"):
            return None
        errors = []
        for m in members:
            if m is type(None):
                continue
            try:
                return from_text(text, m, path)
            except ParamsError as exc:
                errors.append(exc)
        raise _union_error(path, tp, [m for m in members if m is not type(None)], errors, repr(text))
    origin = _origin(tp)
    if tp is Any:
        try:
            return from_json(json.loads(text, parse_float=Decimal), Any, path)
        except json.JSONDecodeError:
            return text
    if tp is type(None):
        if text.strip().lower() in ("null", "none"):
            return None
        raise ParamsError(f"{path}: expected null, got {text!r}")
    if origin in (list, tuple, dict) or _is_dataclass_type(tp):
        return from_json(parse_json(text, path), tp, path)
    if origin is bool:
        low = text.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ParamsError(f"{path}: {text!r} is not a bool; use true/false, yes/no or 1/0")
    if origin is str:
        return text
    if origin is int:
        try:
            return int(text.strip())
        except ValueError:
            raise ParamsError(f"{path}: {text!r} is not an int") from None
    if origin is float:
        try:
            return float(text.strip())
        except ValueError:
            raise ParamsError(f"{path}: {text!r} is not a float") from None
    return _from_string(text, tp, path)


def _from_string(text: str, tp: Any, path: str) -> Any:
    """Types written as strings both on the command line and in JSON."""
    origin = _origin(tp)
    try:
        if origin is bytes:
            if text.startswith("base64:"):
                return base64.b64decode(text[7:], validate=True)
            return text.encode("utf-8")
        if origin is UUID:
            return UUID(text.strip())
        if origin is datetime:
            return datetime.fromisoformat(text.strip())
        if origin is date:
            return date.fromisoformat(text.strip())
        if origin is time:
            return time.fromisoformat(text.strip())
        if origin is Decimal:
            return Decimal(text.strip())
    except (ValueError, InvalidOperation, TypeError):
        hint = {
            UUID: "a UUID",
            datetime: "an ISO 8601 date-time such as 2026-05-01T09:30:00+02:00",
            date: "an ISO 8601 date such as 2026-05-01",
            time: "an ISO 8601 time such as 09:30:00",
            Decimal: "a decimal number",
            bytes: "base64 after 'base64:'",
        }.get(origin, type_name(tp))
        raise ParamsError(f"{path}: {text!r} is not {hint}") from None
    if _is_enum_type(tp):
        return _enum_from(text, tp, path)
    raise ParamsError(f"{path}: cannot serialize {type_name(tp)}")


def _enum_from(value: Any, tp: type[enum.Enum], path: str) -> enum.Enum:
    for member in tp:
        if value == member.name or value == member.value or (
            isinstance(value, str) and value == str(member.value)
        ):
            return member
    choices = ", ".join(m.name for m in tp)
    raise ParamsError(f"{path}: {value!r} is not one of {tp.__name__}: {choices}")


def from_json(value: Any, tp: Any, path: str) -> Any:
    """Convert a value parsed from JSON (floats as Decimal) by its declared type."""
    members = _union_args(tp)
    if members is not None:
        errors = []
        for m in members:
            try:
                return from_json(value, m, path)
            except ParamsError as exc:
                errors.append(exc)
        raise _union_error(path, tp, members, errors, _json_kind(value))
    if tp is Any:
        return _plain_json(value)
    if tp is type(None):
        if value is None:
            return None
        raise _json_wrong(path, tp, value)
    origin, args = _origin(tp), typing.get_args(tp)
    if _is_dataclass_type(tp):
        if not isinstance(value, dict):
            raise _json_wrong(path, tp, value)
        return _build_dataclass(value, tp, path, from_json)
    if _is_enum_type(tp):
        return _enum_from(value, tp, path)
    if origin is list:
        if not isinstance(value, list):
            raise _json_wrong(path, tp, value)
        item = args[0] if args else Any
        return [from_json(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is tuple:
        if not isinstance(value, list):
            raise _json_wrong(path, tp, value)
        if args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ParamsError(f"{path}: expected {len(args)} items, got {len(value)}")
            return tuple(from_json(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        return tuple(from_json(v, item, f"{path}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise _json_wrong(path, tp, value)
        item = args[1] if args else Any
        return {k: from_json(v, item, f"{path}[{k!r}]") for k, v in value.items()}
    if origin is bool:
        if isinstance(value, bool):
            return value
        raise _json_wrong(path, tp, value)
    if origin is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _json_wrong(path, tp, value)
    if origin is float:
        if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
            return float(value)
        raise _json_wrong(path, tp, value)
    if origin is str:
        if isinstance(value, str):
            return value
        raise _json_wrong(path, tp, value)
    if origin is Decimal and isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        return Decimal(value)
    if isinstance(value, str):
        return _from_string(value, tp, path)
    if _is_enum_type(tp):
        return _enum_from(value, tp, path)
    raise _json_wrong(path, tp, value)


def _plain_json(value: Any) -> Any:
    """JSON for an ``Any`` field: numbers that were parsed as Decimal become float."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, list):
        return [_plain_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain_json(v) for k, v in value.items()}
    return value


def _union_error(
    path: str, tp: Any, members: Any, errors: list[ParamsError], got: str
) -> ParamsError:
    """One member's own error when it is the only candidate, else the union's."""
    candidates = [m for m in members if m is not type(None)]
    if len(candidates) == 1 and len(errors) == len(members):
        return errors[list(members).index(candidates[0])]
    return ParamsError(f"{path}: expected {type_name(tp)}, got {got}")


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, Decimal)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _json_wrong(path: str, tp: Any, value: Any) -> ParamsError:
    shown = json.dumps(_plain_json(value), default=str)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return ParamsError(f"{path}: expected {type_name(tp)}, got {_json_kind(value)} ({shown})")


# --------------------------------------------------------------------------
# Display


def to_jsonable(value: Any) -> Any:
    """A JSON-ready rendering of decoded parameters, symmetric with the input forms."""
    if isinstance(value, (UUID, Decimal)):
        return str(value)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return "base64:" + base64.b64encode(value).decode("ascii")
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    return value


def describe_fields(cls: type) -> list[dict[str, Any]]:
    """The fields of a parameters dataclass: name, type, required, default (JSON-ready)."""
    hints = field_types(cls)
    out = []
    for f in dataclasses.fields(cls):
        entry: dict[str, Any] = {"name": f.name, "type": type_name(hints[f.name])}
        entry["required"] = not _has_default(f)
        if f.default is not dataclasses.MISSING:
            entry["default"] = to_jsonable(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            entry["default"] = to_jsonable(f.default_factory())
        out.append(entry)
    return out
