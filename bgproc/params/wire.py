"""The wire format: MessagePack bytes, with extension types for what MessagePack lacks.

    1 UUID      16 raw bytes
    2 datetime  [proleptic ordinal, microsecond of day, UTC offset in us | nil, fold]
    3 date      proleptic ordinal
    4 time      [microsecond of day, UTC offset in us | nil, fold]
    5 Decimal   its exact decimal text

Integers travel as MessagePack integers, so they must fit in -2**63 ..
2**64 - 1 (int64 or uint64). An aware datetime keeps its UTC offset (a
``ZoneInfo`` comes back as the fixed offset it had at that instant); an aware
time needs a fixed offset. Stored requests hold these bytes: the format
never changes (tests/test_params_wire.py holds it to bytes written before).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgpack

from ..errors import ParamsError
from .messages import kind

EXT_UUID = 1
EXT_DATETIME = 2
EXT_DATE = 3
EXT_TIME = 4
EXT_DECIMAL = 5

MAX_DEPTH = 32
MAX_BYTES = 1024 * 1024
INT_MIN, INT_MAX = -(2**63), 2**64 - 1
_US_PER_DAY = 86_400_000_000


# --------------------------------------------------------------------------
# Framing


def pack(tree: Any) -> bytes:
    """The bytes of an encoded tree (plain values and extension types), within the size limit."""
    data: bytes = msgpack.packb(tree, use_bin_type=True)
    if len(data) > MAX_BYTES:
        raise ParamsError(
            f"params: {len(data)} bytes serialized, over the limit of {MAX_BYTES}; "
            "pass a reference (a path, an id) instead of the data itself"
        )
    return data


def unpack(data: bytes) -> Any:
    """The tree of plain values that bytes hold, extension types rebuilt."""
    try:
        if len(data) > MAX_BYTES:
            raise ParamsError(f"params: {len(data)} bytes, over the limit of {MAX_BYTES}")
        return msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=True)
    except ParamsError:
        raise
    except Exception as exc:
        raise ParamsError(f"params: not valid bgproc MessagePack data ({exc})") from None


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


# --------------------------------------------------------------------------
# Writers: a scalar value as MessagePack carries it (``path`` names it in a refusal)


def write_plain(value: Any, path: str) -> Any:
    return value


def write_text(value: str, path: str) -> str:
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ParamsError(
                f"{path}: text holds a lone surrogate {value[exc.start]!r} at position {exc.start}, "
                "which is not valid Unicode; pass binary data as bytes"
            ) from None
    return value


def write_int(value: int, path: str) -> int:
    if not INT_MIN <= value <= INT_MAX:
        raise ParamsError(
            f"{path}: integer {int_text(value)} does not fit in 64 bits "
            f"({INT_MIN} to {INT_MAX}); pass it as a str or Decimal"
        )
    return value


def write_float(value: Any, path: str) -> float:
    try:
        return float(value)
    except OverflowError:
        raise ParamsError(f"{path}: integer {int_text(value)} is too large for a float") from None


def write_uuid(value: UUID, path: str) -> msgpack.ExtType:
    return msgpack.ExtType(EXT_UUID, value.bytes)


def write_datetime(value: datetime, path: str) -> msgpack.ExtType:
    micros = (value.hour * 3600 + value.minute * 60 + value.second) * 1_000_000
    body = [value.toordinal(), micros + value.microsecond, _offset_us(value.utcoffset()), value.fold]
    return msgpack.ExtType(EXT_DATETIME, msgpack.packb(body))


def write_date(value: date, path: str) -> msgpack.ExtType:
    return msgpack.ExtType(EXT_DATE, msgpack.packb(value.toordinal()))


def write_time(value: time, path: str) -> msgpack.ExtType:
    offset = value.utcoffset()
    if value.tzinfo is not None and offset is None:
        raise ParamsError(
            f"{path}: time {value.isoformat()} has the zone {value.tzinfo} but no fixed UTC "
            "offset; give it a fixed offset (datetime.timezone) or use a datetime"
        )
    micros = (value.hour * 3600 + value.minute * 60 + value.second) * 1_000_000
    body = [micros + value.microsecond, _offset_us(offset), value.fold]
    return msgpack.ExtType(EXT_TIME, msgpack.packb(body))


def write_decimal(value: Decimal, path: str) -> msgpack.ExtType:
    return msgpack.ExtType(EXT_DECIMAL, str(value).encode("ascii"))


def _offset_us(offset: timedelta | None) -> int | None:
    return None if offset is None else offset // timedelta(microseconds=1)


def int_text(value: int) -> str:
    text = str(value)
    return text if len(text) <= 40 else f"{text[:12]}...({len(text.lstrip('-'))} digits)"


# A value whose type is not declared (an ``Any`` field, an enum's value) is
# written by its own type; the first match wins (a bool is an int, a datetime a date).
_WRITERS: list[tuple[type | tuple[type, ...], Callable[[Any, str], Any]]] = [
    (str, write_text),
    ((bool, float, bytes, type(None)), write_plain),
    (int, write_int),
    (UUID, write_uuid),
    (datetime, write_datetime),
    (date, write_date),
    (time, write_time),
    (Decimal, write_decimal),
]

# The serialized kind of each scalar type, in the same precedence.
_KINDS: list[tuple[type, str]] = [
    (bool, "bool"), (int, "int"), (float, "float"), (str, "str"), (bytes, "bin"),
    (UUID, "uuid"), (datetime, "datetime"), (date, "date"), (time, "time"), (Decimal, "decimal"),
]


def write_scalar(value: Any, path: str) -> Any:
    """A scalar value written by its own type; anything else is refused."""
    for cls, writer in _WRITERS:
        if isinstance(value, cls):
            return writer(value, path)
    raise ParamsError(f"{path}: cannot serialize {kind(value)}")


def value_kind(value: Any) -> str | None:
    """The serialized kind of a scalar value (``nil`` for None; None if it is not a scalar)."""
    if value is None:
        return "nil"
    for cls, name in _KINDS:
        if isinstance(value, cls):
            return name
    return None
