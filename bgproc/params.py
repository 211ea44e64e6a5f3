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

Integers travel as MessagePack integers, so they must fit in -2**63 ..
2**64 - 1 (int64 or uint64). An aware datetime keeps its UTC offset (a
``ZoneInfo`` comes back as the fixed offset it had at that instant); an aware
time needs a fixed offset.

The declared field types drive both directions: decoding rebuilds tuples,
enums and nested dataclasses; command-line and JSON text is converted by
the same types. A union is encoded as the first member that takes the value
exactly (``float | int`` keeps an int an int), and decoded the same way;
a union whose members would look alike once serialized (``list | tuple``,
``dict | SomeDataclass``, an Enum with a member of its values' type, two
dataclasses with the same fields) is refused by ``check_type``.

Every error is a ``ParamsError`` whose message starts with the field path
(``params.inner.tags[2]: cannot serialize set``).
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import json
import math
import re
import types
import typing
from collections.abc import Callable
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
_NONE = type(None)
_NON_FINITE = {"nan": math.nan, "inf": math.inf, "+inf": math.inf, "-inf": -math.inf,
               "infinity": math.inf, "+infinity": math.inf, "-infinity": -math.inf}


# --------------------------------------------------------------------------
# Types


@cache
def field_types(cls: type) -> dict[str, Any]:
    """The resolved type of each field of a parameters dataclass that ``__init__`` takes.

    Fields declared with ``init=False`` are computed by the class itself, so
    they are neither serialized nor accepted as input.
    """
    try:
        hints = typing.get_type_hints(cls)
    except (NameError, TypeError, AttributeError) as exc:
        raise ParamsError(
            f"params: cannot resolve the field types of {cls.__name__}: {exc}; "
            "define every type a field uses at module level"
        ) from None
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls) if f.init}


def _init_fields(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if f.init]


def _union_args(tp: Any) -> tuple[Any, ...] | None:
    if typing.get_origin(tp) in (Union, types.UnionType):
        return typing.get_args(tp)
    return None


def _origin(tp: Any) -> Any:
    return typing.get_origin(tp) or tp


def _is_none_type(tp: Any) -> bool:
    return tp is _NONE or tp is None


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _is_enum_type(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, enum.Enum)


def type_name(tp: Any) -> str:
    """A short, readable name for a declared type (``list[int]``, ``str | None``)."""
    if tp is Any:
        return "any"
    if _is_none_type(tp):
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
    _check_type(tp, path, frozenset())


@cache
def _checked(cls: type) -> bool:
    """``check_type`` once per parameters class (failures are not cached)."""
    check_type(cls)
    return True


def _check_type(tp: Any, path: str, seen: frozenset[type]) -> None:
    if tp is Any or _is_none_type(tp) or tp in _SCALARS:
        return
    if _is_enum_type(tp):
        for member in tp:
            if _value_kind(member.value) is None:
                raise ParamsError(
                    f"{path}: {tp.__name__}.{member.name} has a value of type "
                    f"{type(member.value).__name__}, which cannot be serialized; give the enum's "
                    "members str, int, float, bool, bytes, UUID, date/time or Decimal values"
                )
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
        for i, a in enumerate(members):
            for b in members[i + 1:]:
                if _clash(a, b):
                    raise ParamsError(
                        f"{path}: {type_name(a)} and {type_name(b)} in {type_name(tp)} look the "
                        "same once serialized, so the value could come back as the wrong one; "
                        "keep only one of them"
                    )
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


# Which serialized shapes a declared type can produce, to refuse unions whose
# members cannot be told apart when decoding.

_SCALAR_KINDS: list[tuple[type, str]] = [
    (bool, "bool"), (int, "int"), (float, "float"), (str, "str"), (bytes, "bin"),
    (UUID, "uuid"), (datetime, "datetime"), (date, "date"), (time, "time"), (Decimal, "decimal"),
]


def _value_kind(value: Any) -> str | None:
    """The serialized kind of a scalar value (None if it is not a scalar)."""
    if value is None:
        return "nil"
    for cls, kind in _SCALAR_KINDS:
        if isinstance(value, cls):
            return kind
    return None


def _shape(tp: Any) -> str:
    if _is_none_type(tp):
        return "nil"
    if _is_enum_type(tp):
        return "enum"
    if _is_dataclass_type(tp):
        return "map"
    origin = _origin(tp)
    if origin in (list, tuple):
        return "array"
    if origin is dict:
        return "map"
    for cls, kind in _SCALAR_KINDS:
        if origin is cls:
            return kind
    return "other"


def _enum_values(tp: type[enum.Enum]) -> list[tuple[str | None, Any]]:
    return [(_value_kind(m.value), m.value) for m in tp]


def _array_items(tp: Any) -> tuple[Any, ...] | None:
    """A fixed tuple's item types, or None for a list or variadic tuple."""
    origin, args = _origin(tp), typing.get_args(tp)
    if origin is tuple and args and args[-1] is not Ellipsis:
        return args
    if origin is tuple and not args and tp is not tuple and tp is not typing.Tuple:  # noqa: UP006 - the bare alias, compared
        return ()  # tuple[()]
    return None


def _item(tp: Any) -> Any:
    args = typing.get_args(tp)
    return args[0] if args else Any


def _overlap(a: Any, b: Any) -> bool:
    """Whether some serialized value decodes (exactly) as both ``a`` and ``b``."""
    if a is Any or b is Any:
        return True
    for x, y in ((a, b), (b, a)):
        members = _union_args(x)
        if members is not None:
            return any(_overlap(m, y) for m in members)
    if a == b:
        return True
    sa, sb = _shape(a), _shape(b)
    if sa == "enum" or sb == "enum":
        if sa == sb:
            return any(va == vb and ka == kb for ka, va in _enum_values(a) for kb, vb in _enum_values(b))
        enum_tp, other = (a, sb) if sa == "enum" else (b, sa)
        return any(kind == other for kind, _ in _enum_values(enum_tp))
    if sa != sb:
        return False
    if sa == "array":
        fa, fb = _array_items(a), _array_items(b)
        if fa is not None and fb is not None:
            return len(fa) == len(fb) and all(_overlap(x, y) for x, y in zip(fa, fb, strict=True))
        if fa is not None:
            return all(_overlap(_item(b), y) for y in fa)
        if fb is not None:
            return all(_overlap(_item(a), y) for y in fb)
        return True  # both can be empty
    if sa == "map":
        if _is_dataclass_type(a) and _is_dataclass_type(b):
            ta, tb = field_types(a), field_types(b)
            return set(ta) == set(tb) and all(_overlap(ta[n], tb[n]) for n in ta)
        return True  # a dict can hold any keys
    return False  # two different scalar types


def _clash(a: Any, b: Any) -> bool:
    """Whether one serialized value could decode as ``a`` though it was ``b`` (or back)."""
    if a == b:
        return False
    ua, ub = _union_args(a), _union_args(b)
    if ua is not None or ub is not None:
        return any(_clash(x, y) for x in (ua or (a,)) for y in (ub or (b,)))
    if a is Any or b is Any:
        return not (_is_none_type(a) or _is_none_type(b))
    sa, sb = _shape(a), _shape(b)
    if sa == "enum" or sb == "enum":
        return _overlap(a, b)
    if sa != sb:
        return False
    if sa == "array":
        if _origin(a) is not _origin(b):
            return _overlap(a, b)  # a list and a tuple
        fa, fb = _array_items(a), _array_items(b)
        if fa is None and fb is None:
            return _clash(_item(a), _item(b))
        if not _overlap(a, b):
            return False
        xs = fa if fa is not None else [_item(a)] * len(fb or ())
        ys = fb if fb is not None else [_item(b)] * len(fa or ())
        return any(_clash(x, y) for x, y in zip(xs, ys, strict=True))
    if sa == "map":
        da, db = _is_dataclass_type(a), _is_dataclass_type(b)
        if not da and not db:
            return _clash(typing.get_args(a)[1] if typing.get_args(a) else Any,
                          typing.get_args(b)[1] if typing.get_args(b) else Any)
        return _overlap(a, b)
    return False


# --------------------------------------------------------------------------
# Encoding


def encode(params: Any) -> bytes:
    """Serialize a parameters dataclass instance to MessagePack bytes."""
    if not dataclasses.is_dataclass(params) or isinstance(params, type):
        raise ParamsError(
            f"params: expected a dataclass instance, got {_kind(params)}; "
            "declare the parameters as a @dataclass"
        )
    _checked(type(params))
    tree = _encode(params, type(params), "params", (), 0)
    data = msgpack.packb(tree, use_bin_type=True)
    if len(data) > MAX_BYTES:
        raise ParamsError(
            f"params: {len(data)} bytes serialized, over the limit of {MAX_BYTES}; "
            "pass a reference (a path, an id) instead of the data itself"
        )
    return data


def _encode(
    value: Any, tp: Any, path: str, stack: tuple[int, ...], depth: int, exact: bool = False
) -> Any:
    if depth > MAX_DEPTH:
        raise ParamsError(f"{path}: nested deeper than {MAX_DEPTH} levels")
    members = _union_args(tp)
    if members is not None:
        return _encode_union(value, tp, members, path, stack, depth, exact)
    if tp is Any:
        return _encode_any(value, path, stack, depth)
    if _is_none_type(tp):
        if value is None:
            return None
        raise _wrong_type(path, tp, value)
    if not _accepts(tp, value, exact):
        raise _wrong_type(path, tp, value)
    if _is_dataclass_type(tp):
        stack = _enter(value, path, stack)
        return {
            name: _encode(getattr(value, name), ftp, f"{path}.{name}", stack, depth + 1, exact)
            for name, ftp in field_types(tp).items()
        }
    if _is_enum_type(tp):
        return _encode_scalar(value.value, path)
    origin, args = _origin(tp), typing.get_args(tp)
    if origin is list:
        stack = _enter(value, path, stack)
        item = args[0] if args else Any
        return [
            _encode(v, item, f"{path}[{i}]", stack, depth + 1, exact) for i, v in enumerate(value)
        ]
    if origin is tuple:
        stack = _enter(value, path, stack)
        fixed = _array_items(tp)
        if fixed is not None and len(fixed) != len(value):
            raise ParamsError(f"{path}: expected {len(fixed)} items, got {len(value)}")
        out = []
        for i, v in enumerate(value):
            item = fixed[i] if fixed is not None else args[0] if args else Any
            out.append(_encode(v, item, f"{path}[{i}]", stack, depth + 1, exact))
        return out
    if origin is dict:
        stack = _enter(value, path, stack)
        item = args[1] if args else Any
        return _encode_dict(value, item, path, stack, depth, exact)
    if origin is float:
        try:
            return float(value)
        except OverflowError:
            raise ParamsError(f"{path}: integer {_int_text(value)} is too large for a float") from None
    return _encode_scalar(value, path)


def _encode_union(
    value: Any, tp: Any, members: tuple[Any, ...], path: str, stack: tuple[int, ...],
    depth: int, exact: bool,
) -> Any:
    """The first member that takes the value exactly; failing that, the first that takes it.

    When no member does, the error comes from the last pass (the lenient
    one, so it names the real problem rather than a strictness), preferring
    a member whose type the value has exactly (``int`` for 2**70 in
    ``float | int``) over one that would only convert it.
    """
    errors: list[tuple[bool, ParamsError]] = []
    for strict in (True,) if exact else (True, False):
        errors = []
        for m in members:
            if not _accepts(m, value, strict):
                continue
            try:
                return _encode(value, m, path, stack, depth, strict)
            except ParamsError as exc:
                errors.append((strict or _accepts(m, value, True), exc))
    if errors:
        raise next((exc for own, exc in errors if own), errors[0][1])
    raise _wrong_type(path, tp, value)


def _encode_any(value: Any, path: str, stack: tuple[int, ...], depth: int) -> Any:
    """Encode a value whose declared type is ``Any``: its own type decides."""
    if depth > MAX_DEPTH:
        raise ParamsError(f"{path}: nested deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, (bool, float)):
        return value
    if isinstance(value, enum.Enum):
        return _encode_any(value.value, path, stack, depth)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        _check_type(type(value), path, frozenset())
        return _encode(value, type(value), path, stack, depth)
    if isinstance(value, (list, tuple)):
        stack = _enter(value, path, stack)
        return [_encode_any(v, f"{path}[{i}]", stack, depth + 1) for i, v in enumerate(value)]
    if isinstance(value, dict):
        stack = _enter(value, path, stack)
        return _encode_dict(value, Any, path, stack, depth, False)
    return _encode_scalar(value, path)


def _encode_dict(
    value: dict, item: Any, path: str, stack: tuple[int, ...], depth: int, exact: bool
) -> dict:
    out = {}
    for k, v in value.items():
        if not isinstance(k, str):
            raise ParamsError(
                f"{path}: dict key {_short(k)} is not a str ({_kind(k)}); only str keys can be serialized"
            )
        _check_text(k, f"{path}[{_short(k)}]")
        out[k] = _encode(v, item, f"{path}[{k!r}]", stack, depth + 1, exact)
    return out


def _check_text(text: str, path: str) -> None:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ParamsError(
                f"{path}: text holds a lone surrogate {text[exc.start]!r} at position {exc.start}, "
                "which is not valid Unicode; pass binary data as bytes"
            ) from None


def _encode_scalar(value: Any, path: str) -> Any:
    if isinstance(value, str):
        _check_text(value, path)
        return value
    if isinstance(value, (bool, float, bytes)) or value is None:
        return value
    if isinstance(value, int):
        if not _INT_MIN <= value <= _INT_MAX:
            raise ParamsError(
                f"{path}: integer {_int_text(value)} does not fit in 64 bits "
                f"({_INT_MIN} to {_INT_MAX}); pass it as a str or Decimal"
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
        offset = value.utcoffset()
        if value.tzinfo is not None and offset is None:
            raise ParamsError(
                f"{path}: time {value.isoformat()} has the zone {value.tzinfo} but no fixed UTC "
                "offset; give it a fixed offset (datetime.timezone) or use a datetime"
            )
        micros = (value.hour * 3600 + value.minute * 60 + value.second) * 1_000_000
        body = [micros + value.microsecond, _offset_us(offset), value.fold]
        return msgpack.ExtType(EXT_TIME, msgpack.packb(body))
    if isinstance(value, Decimal):
        return msgpack.ExtType(EXT_DECIMAL, str(value).encode("ascii"))
    raise ParamsError(f"{path}: cannot serialize {_kind(value)}")


def _int_text(value: int) -> str:
    text = str(value)
    return text if len(text) <= 40 else f"{text[:12]}...({len(text.lstrip('-'))} digits)"


def _offset_us(offset: timedelta | None) -> int | None:
    return None if offset is None else offset // timedelta(microseconds=1)


def _enter(value: Any, path: str, stack: tuple[int, ...]) -> tuple[int, ...]:
    if id(value) in stack:
        raise ParamsError(f"{path}: recursive structure (it contains itself) cannot be serialized")
    return stack + (id(value),)


def _accepts(tp: Any, value: Any, exact: bool = False) -> bool:
    """Whether ``value`` is of the declared type at the top level.

    ``exact`` refuses the conversions a lone type allows (an int for a float).
    """
    if tp is Any:
        return True
    if _is_none_type(tp):
        return value is None
    members = _union_args(tp)
    if members is not None:
        return any(_accepts(m, value, exact) for m in members)
    origin = _origin(tp)
    if origin is bool:
        return isinstance(value, bool)
    if origin is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is float:
        if exact:
            return isinstance(value, float)
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if origin is date:
        return isinstance(value, date) and not isinstance(value, datetime)
    if origin is list:
        return isinstance(value, list)
    if origin is tuple:
        return isinstance(value, tuple)
    if origin is dict:
        return isinstance(value, dict)
    if _is_dataclass_type(origin):
        # a subclass instance would come back as the declared class, losing its own fields
        return type(value) is origin
    if isinstance(origin, type):
        return isinstance(value, origin)
    return False


def _kind(value: Any) -> str:
    if isinstance(value, types.LambdaType) and getattr(value, "__name__", "") == "<lambda>":
        return "a lambda"
    if hasattr(value, "read") and hasattr(value, "close") and hasattr(value, "fileno"):
        return f"an open file ({type(value).__name__})"
    if isinstance(value, type):
        return f"the class {value.__name__}"
    return type(value).__name__


def _wrong_type(path: str, tp: Any, value: Any) -> ParamsError:
    if _unsupported(value):
        return ParamsError(f"{path}: cannot serialize {_kind(value)}")
    return ParamsError(f"{path}: expected {type_name(tp)}, got {_kind(value)} {_short(value)}")


def _unsupported(value: Any) -> bool:
    ok = (type(None), list, tuple, dict, enum.Enum) + _SCALARS
    return not isinstance(value, ok) and not (
        dataclasses.is_dataclass(value) and not isinstance(value, type)
    )


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


def _build(raw: Any, tp: Any, path: str, exact: bool = False) -> Any:
    """Rebuild typed values (tuples, enums, dataclasses) from a decoded tree.

    ``exact`` (while choosing a union's member) takes a value only in the
    form this codec writes for the type: a float as a float, a dataclass
    with every field.
    """
    if tp is Any:
        return raw
    members = _union_args(tp)
    if members is not None:
        return _first_member(
            members, exact, lambda m, strict: _build(raw, m, path, strict),
            lambda errors: _union_error(path, tp, members, errors, _kind(raw)),
        )
    if _is_none_type(tp):
        if raw is None:
            return None
        raise _wrong_type(path, tp, raw)
    if _is_dataclass_type(tp):
        return _build_dataclass(raw, tp, path, lambda v, t, p: _build(v, t, p, exact), exact)
    if _is_enum_type(tp):
        return _enum_by_value(raw, tp, path)
    origin, args = _origin(tp), typing.get_args(tp)
    if origin is list:
        if not isinstance(raw, list):
            raise _wrong_type(path, tp, raw)
        item = args[0] if args else Any
        return [_build(v, item, f"{path}[{i}]", exact) for i, v in enumerate(raw)]
    if origin is tuple:
        if not isinstance(raw, list):
            raise _wrong_type(path, tp, raw)
        fixed = _array_items(tp)
        if fixed is not None:
            if len(fixed) != len(raw):
                raise ParamsError(f"{path}: expected {len(fixed)} items, got {len(raw)}")
            return tuple(_build(v, a, f"{path}[{i}]", exact) for i, (v, a) in enumerate(zip(raw, fixed, strict=True)))
        item = args[0] if args else Any
        return tuple(_build(v, item, f"{path}[{i}]", exact) for i, v in enumerate(raw))
    if origin is dict:
        if not isinstance(raw, dict):
            raise _wrong_type(path, tp, raw)
        item = args[1] if args else Any
        return {k: _build(v, item, f"{path}[{k!r}]", exact) for k, v in raw.items()}
    if origin is float and not exact and isinstance(raw, int) and not isinstance(raw, bool):
        return float(raw)
    if not _accepts(tp, raw, exact):
        raise _wrong_type(path, tp, raw)
    return raw


def _enum_by_value(raw: Any, tp: type[enum.Enum], path: str) -> enum.Enum:
    kind = _value_kind(raw)
    for member in tp:
        # 1, 1.0, True and Decimal(1) are equal in Python, but not the same value here
        if _value_kind(member.value) == kind and member.value == raw:
            return member
    raise ParamsError(f"{path}: {_short(raw)} is not a value of {tp.__name__}")


def _first_member(
    members: tuple[Any, ...],
    exact: bool,
    attempt: Callable[[Any, bool], Any],
    failure: Callable[[list[ParamsError | None]], ParamsError],
    skip: Callable[[Any], bool] = lambda m: False,
) -> Any:
    """The result of the first union member that takes the value, exact matches first."""
    errors: list[ParamsError | None] = []
    for strict in (True,) if exact else (True, False):
        errors = []
        for m in members:
            if skip(m):
                errors.append(None)
                continue
            try:
                return attempt(m, strict)
            except ParamsError as exc:
                errors.append(exc)
    raise failure(errors)


def _build_dataclass(
    raw: Any, cls: type, path: str, convert: Any, exact: bool = False
) -> Any:
    """Build a dataclass from a mapping, refusing unknown and missing fields.

    ``exact`` also refuses a mapping that lacks a field with a default.
    """
    if not isinstance(raw, dict):
        raise ParamsError(
            f"{path}: expected an object with the fields of {cls.__name__}, got {_kind(raw)}"
        )
    hints = field_types(cls)
    unknown = sorted(set(raw) - set(hints), key=str)
    if unknown:
        raise ParamsError(
            f"{path}.{unknown[0]}: unknown field; {cls.__name__} has: {', '.join(hints) or 'no fields'}"
        )
    values = {}
    for f in _init_fields(cls):
        if f.name in raw:
            values[f.name] = convert(raw[f.name], hints[f.name], f"{path}.{f.name}")
        elif exact or not _has_default(f):
            fix = f"pass -p {f.name}=..." if path == "params" else f"add \"{f.name}\" to the JSON object of {path}"
            raise ParamsError(f"{path}.{f.name}: missing required field ({type_name(hints[f.name])}); {fix}")
    return _construct(cls, values, path)


def _construct(cls: type, values: dict[str, Any], path: str) -> Any:
    try:
        return cls(**values)
    except ParamsError:
        raise
    except Exception as exc:  # noqa: BLE001 - __post_init__ is user code
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
    given: set[str] = set()
    for pair in pairs or []:
        name, sep, text = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ParamsError(f"params: '{pair}' is not field=value; write -p field=value, such as -p title=Hello")
        if name not in hints:
            raise ParamsError(
                f"params.{name}: unknown field; {cls.__name__} has: {', '.join(hints) or 'no fields'}"
            )
        if name in given:
            raise ParamsError(f"params.{name}: given twice with -p; give each field once")
        given.add(name)
        converted[name] = from_text(text, hints[name], f"params.{name}")
    return _build_dataclass(converted, cls, "params", lambda v, t, p: v)


def read_limited(source: typing.BinaryIO, name: str) -> str:
    """The text of a parameters file or pipe, read no further than the parameter
    limit: ``/dev/zero`` or a pipe that never ends is refused, not read into memory.
    Raises ``UnicodeDecodeError`` for text that is not UTF-8."""
    data = source.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise ParamsError(
            f"{name} holds more than {MAX_BYTES} bytes, the limit for parameters (1 MiB); "
            "pass a reference (a path, an id) instead of the data itself"
        )
    return data.decode("utf-8")


def parse_json(text: str, path: str) -> Any:
    """Parse JSON text; numbers with a fraction or exponent (and NaN, Infinity) become Decimal."""
    try:
        value = _json_loads(text)
    except _DuplicateKey as exc:
        raise ParamsError(f"{path}: key {exc.args[0]!r} is given twice in a JSON object; give each key once") from None
    except json.JSONDecodeError as exc:
        raise ParamsError(
            f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except RecursionError:
        raise ParamsError(f"{path}: JSON nested deeper than {MAX_DEPTH} levels") from None
    except (ValueError, ArithmeticError) as exc:
        raise ParamsError(f"{path}: invalid JSON: {exc or type(exc).__name__}") from None
    if _json_depth(value) > MAX_DEPTH:
        raise ParamsError(f"{path}: JSON nested deeper than {MAX_DEPTH} levels")
    return value


def _json_loads(text: str) -> Any:
    return json.loads(text, parse_float=Decimal, parse_constant=Decimal, object_pairs_hook=_unique_keys)


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object; a key given twice is refused rather than the last one winning."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _json_depth(value: Any) -> int:
    deepest, todo = 0, [(value, 0)]
    while todo:
        item, depth = todo.pop()
        deepest = max(deepest, depth)
        if isinstance(item, list):
            todo.extend((v, depth + 1) for v in item)
        elif isinstance(item, dict):
            todo.extend((v, depth + 1) for v in item.values())
    return deepest


def _is_int_text(text: str) -> bool:
    try:
        int(text.strip())
    except ValueError:
        return False
    return True


def from_text(text: str, tp: Any, path: str) -> Any:
    """Convert one command-line value by its declared type.

    For an optional field, ``null`` means None; so does ``none`` when no
    other member takes the text (an ``str | None`` field keeps ``none``).
    """
    return _from_text(text, tp, path, False)


def _from_text(text: str, tp: Any, path: str, exact: bool) -> Any:
    members = _union_args(tp)
    if members is not None:
        optional = any(_is_none_type(m) for m in members)
        word = text.strip().lower()
        if optional and word == "null":
            return None
        try:
            return _first_member(
                members, exact, lambda m, strict: _from_text(text, m, path, strict),
                lambda errors: _union_error(path, tp, members, errors, repr(text)),
                skip=_is_none_type,
            )
        except ParamsError:
            if optional and word == "none":
                return None
            raise
    origin = _origin(tp)
    if tp is Any:
        try:  # JSON when it is JSON, else the text itself
            _json_loads(text)
        except (_DuplicateKey, RecursionError):
            pass  # parse_json reports it
        except (ValueError, ArithmeticError):
            return text
        return _from_json(parse_json(text, path), Any, path, exact)
    if _is_none_type(tp):
        if text.strip().lower() in ("null", "none"):
            return None
        raise ParamsError(f"{path}: expected null, got {text!r}")
    if origin in (list, tuple, dict) or _is_dataclass_type(tp):
        return _from_json(parse_json(text, path), tp, path, exact)
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
    if origin in (float, Decimal) and exact and _is_int_text(text):
        raise ParamsError(f"{path}: {text!r} is an int, not a {type_name(tp)}")
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
            # surrogateescape gives back the raw bytes of a non-UTF-8 command-line argument
            return text.encode("utf-8", "surrogateescape")
        if origin is UUID:
            return UUID(text.strip())
        if origin is datetime:
            return _exact_offset(datetime.fromisoformat(text.strip()), text)
        if origin is date:
            return date.fromisoformat(text.strip())
        if origin is time:
            return _exact_offset(time.fromisoformat(text.strip()), text)
        if origin is Decimal:
            return Decimal(text.strip())
    except (ValueError, InvalidOperation, TypeError) as exc:
        reason = str(exc)
        if origin in (datetime, date, time) and reason and not reason.startswith("Invalid isoformat"):
            # well formed, but no such day or hour: "day is out of range for month"
            raise ParamsError(f"{path}: {_short(text)} is not a real {type_name(tp)}: {reason}") from None
        hint = {
            UUID: "a UUID",
            datetime: "an ISO 8601 date-time such as 2026-05-01T09:30:00+02:00",
            date: "an ISO 8601 date such as 2026-05-01",
            time: "an ISO 8601 time such as 09:30:00",
            Decimal: "a decimal number",
            bytes: "base64 after 'base64:'",
        }.get(origin, type_name(tp))
        raise ParamsError(f"{path}: {_short(text)} is not {hint}") from None
    if _is_enum_type(tp):
        return _enum_from(text, tp, path)
    raise ParamsError(f"{path}: cannot serialize {type_name(tp)}")


_FRACTIONAL_OFFSET = re.compile(r"([+-])(\d\d):(\d\d):(\d\d)\.(\d{1,6})$")


def _exact_offset(value: Any, text: str) -> Any:
    """Python 3.11 reads an offset under one second (``+00:00:00.5``) as UTC; read it exactly."""
    match = _FRACTIONAL_OFFSET.search(text.strip())
    if match is None or value.tzinfo is None:
        return value
    sign = -1 if match[1] == "-" else 1
    offset = sign * timedelta(
        hours=int(match[2]), minutes=int(match[3]), seconds=int(match[4]),
        microseconds=int(match[5].ljust(6, "0")),
    )
    return value.replace(tzinfo=timezone(offset))


def _enum_from(value: Any, tp: type[enum.Enum], path: str) -> enum.Enum:
    """An enum member by name, by value, or by its value's text."""
    if isinstance(value, str):
        for member in tp:
            if value == member.name:
                return member
    for member in tp:
        if _same_value(value, member.value):
            return member
    if isinstance(value, str):
        for member in tp:
            if not isinstance(member.value, str) and value.strip() == _enum_text(member.value):
                return member
    choices = ", ".join(m.name for m in tp)
    raise ParamsError(f"{path}: {_short(value)} is not one of {tp.__name__}: {choices}")


def _same_value(given: Any, value: Any) -> bool:
    """Whether JSON input ``given`` is the enum value ``value`` (numbers by number, bools apart)."""
    if isinstance(given, bool) or isinstance(value, bool):
        return isinstance(given, bool) and isinstance(value, bool) and given == value
    numbers = (int, float, Decimal)
    if isinstance(value, float) and isinstance(given, numbers):
        return float(given) == value
    if isinstance(given, numbers) and isinstance(value, numbers):
        return given == value
    return _value_kind(given) == _value_kind(value) and given == value


def _enum_text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(to_jsonable(value))


def from_json(value: Any, tp: Any, path: str) -> Any:
    """Convert a value parsed from JSON (floats as Decimal) by its declared type."""
    return _from_json(value, tp, path, False)


def _from_json(value: Any, tp: Any, path: str, exact: bool) -> Any:
    members = _union_args(tp)
    if members is not None:
        return _first_member(
            members, exact, lambda m, strict: _from_json(value, m, path, strict),
            lambda errors: _union_error(path, tp, members, errors, _json_kind(value)),
        )
    if tp is Any:
        return _plain_json(value)
    if _is_none_type(tp):
        if value is None:
            return None
        raise _json_wrong(path, tp, value)
    origin, args = _origin(tp), typing.get_args(tp)
    if _is_dataclass_type(tp):
        if not isinstance(value, dict):
            raise _json_wrong(path, tp, value)
        return _build_dataclass(
            value, tp, path, lambda v, t, p: _from_json(v, t, p, exact), exact
        )
    if _is_enum_type(tp):
        return _enum_from(value, tp, path)
    if origin is list:
        if not isinstance(value, list):
            raise _json_wrong(path, tp, value)
        item = args[0] if args else Any
        return [_from_json(v, item, f"{path}[{i}]", exact) for i, v in enumerate(value)]
    if origin is tuple:
        if not isinstance(value, list):
            raise _json_wrong(path, tp, value)
        fixed = _array_items(tp)
        if fixed is not None:
            if len(fixed) != len(value):
                raise ParamsError(f"{path}: expected {len(fixed)} items, got {len(value)}")
            return tuple(
                _from_json(v, a, f"{path}[{i}]", exact) for i, (v, a) in enumerate(zip(value, fixed, strict=True))
            )
        item = args[0] if args else Any
        return tuple(_from_json(v, item, f"{path}[{i}]", exact) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise _json_wrong(path, tp, value)
        item = args[1] if args else Any
        return {k: _from_json(v, item, f"{path}[{k!r}]", exact) for k, v in value.items()}
    is_number = isinstance(value, (int, Decimal)) and not isinstance(value, bool)
    if origin is bool:
        if isinstance(value, bool):
            return value
        raise _json_wrong(path, tp, value)
    if origin is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _json_wrong(path, tp, value)
    if origin in (float, Decimal) and exact and isinstance(value, int):
        raise _json_wrong(path, tp, value)
    if origin is float:
        if is_number:
            try:
                return float(value)
            except OverflowError:
                raise ParamsError(f"{path}: {value} is too large for a float") from None
        if isinstance(value, str) and value.strip().lower() in _NON_FINITE:
            return _NON_FINITE[value.strip().lower()]
        raise _json_wrong(path, tp, value)
    if origin is str:
        if isinstance(value, str):
            return value
        raise _json_wrong(path, tp, value)
    if origin is Decimal and is_number:
        return Decimal(value)
    if isinstance(value, str):
        return _from_string(value, tp, path)
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
    path: str, tp: Any, members: Any, errors: list[ParamsError | None], got: str
) -> ParamsError:
    """One member's own error when it is the only candidate, else the union's."""
    candidates = [i for i, m in enumerate(members) if not _is_none_type(m)]
    if len(candidates) == 1 and len(errors) == len(members) and errors[candidates[0]] is not None:
        return errors[candidates[0]]  # type: ignore[return-value]
    return ParamsError(f"{path}: expected {type_name(tp)}, got {got}")


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, Decimal, float)):
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
    """A JSON-ready rendering of decoded parameters, symmetric with the input forms.

    Non-finite floats become the strings ``NaN``, ``Infinity`` and
    ``-Infinity`` (a float field accepts them back), so the document stays
    strict JSON.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
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
    """The fields of a parameters dataclass: name, type, required, default (JSON-ready).

    A default that cannot be serialized is refused here, at registration.
    """
    hints = field_types(cls)
    out = []
    for f in _init_fields(cls):
        path = f"params.{f.name}"
        entry: dict[str, Any] = {"name": f.name, "type": type_name(hints[f.name])}
        entry["required"] = not _has_default(f)
        if _has_default(f):
            if f.default is not dataclasses.MISSING:
                default = f.default
            else:
                try:
                    default = f.default_factory()  # type: ignore[misc,operator]
                except Exception as exc:  # noqa: BLE001 - user code
                    raise ParamsError(
                        f"{path}: its default_factory raised {type(exc).__name__}: {exc}"
                    ) from None
            try:
                _encode(default, hints[f.name], path, (), 1)
            except ParamsError as exc:
                raise ParamsError(f"{exc} (the field's default)") from None
            entry["default"] = to_jsonable(default)
        out.append(entry)
    return out
