"""Codec nodes for single values: bool, int, float, str, the types written as
strings (bytes, UUID, datetime, date, time, Decimal) and enums."""

from __future__ import annotations

import base64
import enum
import re
from collections.abc import Callable
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar
from uuid import UUID

from ..errors import ParamsError
from .jsonio import NON_FINITE, json_wrong, to_jsonable
from .messages import short, wrong_type
from .nodes import Node
from .wire import (
    value_kind,
    write_date,
    write_datetime,
    write_decimal,
    write_float,
    write_int,
    write_plain,
    write_scalar,
    write_text,
    write_time,
    write_uuid,
)

_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}


class ScalarNode(Node):
    """A value of one plain type, written as MessagePack carries it and decoded as it is."""

    def __init__(self, tp: type, shape: str, write: Callable[[Any, str], Any]) -> None:
        super().__init__(tp)
        self.shape = shape
        self._write = write

    def accepts(self, value: Any, exact: bool = False) -> bool:
        return isinstance(value, self.tp)

    def encode(self, value: Any, path: str, stack: tuple[int, ...], depth: int, exact: bool) -> Any:
        if not self.accepts(value, exact):
            raise wrong_type(path, self.name, value)
        return self._write(value, path)

    def decode(self, raw: Any, path: str, exact: bool) -> Any:
        if not self.accepts(raw, exact):
            raise wrong_type(path, self.name, raw)
        return raw

    def from_json(self, value: Any, path: str, exact: bool) -> Any:
        if not isinstance(value, self.tp):
            raise json_wrong(path, self.name, value)
        return value


class BoolNode(ScalarNode):
    def __init__(self) -> None:
        super().__init__(bool, "bool", write_plain)

    def from_text(self, text: str, path: str, exact: bool) -> Any:
        low = text.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ParamsError(f"{path}: {text!r} is not a bool; use true/false, yes/no or 1/0")


class IntNode(ScalarNode):
    def __init__(self) -> None:
        super().__init__(int, "int", write_int)

    def accepts(self, value: Any, exact: bool = False) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    def from_text(self, text: str, path: str, exact: bool) -> Any:
        try:
            return int(text.strip())
        except ValueError:
            raise ParamsError(f"{path}: {text!r} is not an int") from None

    def from_json(self, value: Any, path: str, exact: bool) -> Any:
        if not self.accepts(value):
            raise json_wrong(path, self.name, value)
        return value


class FloatNode(ScalarNode):
    """A float; an int is taken and converted, but not while a union looks for an exact match."""

    def __init__(self) -> None:
        super().__init__(float, "float", write_float)

    def accepts(self, value: Any, exact: bool = False) -> bool:
        if exact:
            return isinstance(value, float)
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    def decode(self, raw: Any, path: str, exact: bool) -> Any:
        if not exact and isinstance(raw, int) and not isinstance(raw, bool):
            return float(raw)
        return super().decode(raw, path, exact)

    def from_text(self, text: str, path: str, exact: bool) -> Any:
        refuse_int_text(self, text, path, exact)
        try:
            return float(text.strip())
        except ValueError:
            raise ParamsError(f"{path}: {text!r} is not a float") from None

    def from_json(self, value: Any, path: str, exact: bool) -> Any:
        if exact and isinstance(value, int):
            raise json_wrong(path, self.name, value)
        if is_json_number(value):
            try:
                return float(value)
            except OverflowError:
                raise ParamsError(f"{path}: {value} is too large for a float") from None
        if isinstance(value, str) and value.strip().lower() in NON_FINITE:
            return NON_FINITE[value.strip().lower()]
        raise json_wrong(path, self.name, value)


class StrNode(ScalarNode):
    def __init__(self) -> None:
        super().__init__(str, "str", write_text)

    def from_text(self, text: str, path: str, exact: bool) -> Any:
        return text


def is_json_number(value: Any) -> bool:
    return isinstance(value, (int, Decimal)) and not isinstance(value, bool)


def refuse_int_text(node: Node, text: str, path: str, exact: bool) -> None:
    """While a union looks for an exact match, ``3`` is an int's, not a float's or a Decimal's."""
    if exact and _is_int_text(text):
        raise ParamsError(f"{path}: {text!r} is an int, not a {node.name}")


def _is_int_text(text: str) -> bool:
    try:
        int(text.strip())
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------
# Types written as strings, both on the command line and in JSON


class StringFormNode(ScalarNode):
    """A type users write as a string (``2026-05-01``, a UUID, ``base64:...``)."""

    hint = ""  # what the string should look like, for a refusal
    calendar = False  # well-formed text can still name no such day or hour

    def parse(self, text: str) -> Any:
        raise NotImplementedError

    def from_text(self, text: str, path: str, exact: bool) -> Any:
        return self.from_string(text, path)

    def from_json(self, value: Any, path: str, exact: bool) -> Any:
        if not isinstance(value, str):
            raise json_wrong(path, self.name, value)
        return self.from_string(value, path)

    def from_string(self, text: str, path: str) -> Any:
        try:
            return self.parse(text)
        except (ValueError, InvalidOperation, TypeError) as exc:
            reason = str(exc)
            if self.calendar and reason and not reason.startswith("Invalid isoformat"):
                # well formed, but no such day or hour: "day is out of range for month"
                raise ParamsError(f"{path}: {short(text)} is not a real {self.name}: {reason}") from None
            raise ParamsError(f"{path}: {short(text)} is not {self.hint}") from None


class BytesNode(StringFormNode):
    hint = "base64 after 'base64:'"

    def __init__(self) -> None:
        super().__init__(bytes, "bin", write_plain)

    def parse(self, text: str) -> bytes:
        if text.startswith("base64:"):
            return base64.b64decode(text[7:], validate=True)
        # surrogateescape gives back the raw bytes of a non-UTF-8 command-line argument
        return text.encode("utf-8", "surrogateescape")


class UUIDNode(StringFormNode):
    hint = "a UUID"

    def __init__(self) -> None:
        super().__init__(UUID, "uuid", write_uuid)

    def parse(self, text: str) -> UUID:
        return UUID(text.strip())


class DateTimeNode(StringFormNode):
    hint = "an ISO 8601 date-time such as 2026-05-01T09:30:00+02:00"
    calendar = True

    def __init__(self) -> None:
        super().__init__(datetime, "datetime", write_datetime)

    def parse(self, text: str) -> datetime:
        return _exact_offset(datetime.fromisoformat(text.strip()), text)


class DateNode(StringFormNode):
    hint = "an ISO 8601 date such as 2026-05-01"
    calendar = True

    def __init__(self) -> None:
        super().__init__(date, "date", write_date)

    def accepts(self, value: Any, exact: bool = False) -> bool:
        return isinstance(value, date) and not isinstance(value, datetime)

    def parse(self, text: str) -> date:
        return date.fromisoformat(text.strip())


class TimeNode(StringFormNode):
    hint = "an ISO 8601 time such as 09:30:00"
    calendar = True

    def __init__(self) -> None:
        super().__init__(time, "time", write_time)

    def parse(self, text: str) -> time:
        return _exact_offset(time.fromisoformat(text.strip()), text)


class DecimalNode(StringFormNode):
    """A Decimal: from a JSON number exactly as written, or from its text."""

    hint = "a decimal number"

    def __init__(self) -> None:
        super().__init__(Decimal, "decimal", write_decimal)

    def parse(self, text: str) -> Decimal:
        return Decimal(text.strip())

    def from_text(self, text: str, path: str, exact: bool) -> Any:
        refuse_int_text(self, text, path, exact)
        return self.from_string(text, path)

    def from_json(self, value: Any, path: str, exact: bool) -> Any:
        if exact and isinstance(value, int):
            raise json_wrong(path, self.name, value)
        if is_json_number(value):
            return Decimal(value)
        return super().from_json(value, path, exact)


_FRACTIONAL_OFFSET = re.compile(r"([+-])(\d\d):(\d\d):(\d\d)\.(\d{1,6})$")


_Instant = TypeVar("_Instant", datetime, time)


def _exact_offset(value: _Instant, text: str) -> _Instant:
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


# --------------------------------------------------------------------------
# Enums


class EnumNode(Node):
    """An Enum: written as its member's value; typed in by name, by value or by the value's text."""

    shape = "enum"

    def __init__(self, tp: type[enum.Enum]) -> None:
        super().__init__(tp)
        self.values = [(value_kind(m.value), m.value) for m in tp]

    def accepts(self, value: Any, exact: bool = False) -> bool:
        return isinstance(value, self.tp)

    def encode(self, value: Any, path: str, stack: tuple[int, ...], depth: int, exact: bool) -> Any:
        if not self.accepts(value):
            raise wrong_type(path, self.name, value)
        return write_scalar(value.value, path)

    def decode(self, raw: Any, path: str, exact: bool) -> Any:
        kind = value_kind(raw)
        for member in self.tp:
            # 1, 1.0, True and Decimal(1) are equal in Python, but not the same value here
            if value_kind(member.value) == kind and member.value == raw:
                return member
        raise ParamsError(f"{path}: {short(raw)} is not a value of {self.name}")

    def from_text(self, text: str, path: str, exact: bool) -> Any:
        return self.from_json(text, path, exact)

    def from_json(self, value: Any, path: str, exact: bool) -> Any:
        """A member by name, by value, or by its value's text."""
        members = list(self.tp)
        if isinstance(value, str):
            for member in members:
                if value == member.name:
                    return member
        for member in members:
            if _same_value(value, member.value):
                return member
        if isinstance(value, str):
            for member in members:
                if not isinstance(member.value, str) and value.strip() == _enum_text(member.value):
                    return member
        choices = ", ".join(m.name for m in members)
        raise ParamsError(f"{path}: {short(value)} is not one of {self.name}: {choices}")


def _same_value(given: Any, value: Any) -> bool:
    """Whether JSON input ``given`` is the enum value ``value`` (numbers by number, bools apart)."""
    if isinstance(given, bool) or isinstance(value, bool):
        return isinstance(given, bool) and isinstance(value, bool) and given == value
    numbers = (int, float, Decimal)
    if isinstance(value, float) and isinstance(given, numbers):
        return float(given) == value
    if isinstance(given, numbers) and isinstance(value, numbers):
        return given == value
    return value_kind(given) == value_kind(value) and given == value


def _enum_text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(to_jsonable(value))


# One node per scalar type, shared by every tree that uses it.
SCALAR_NODES: dict[type, Node] = {
    node.tp: node
    for node in (BoolNode(), IntNode(), FloatNode(), StrNode(), BytesNode(), UUIDNode(), DateTimeNode(),
                 DateNode(), TimeNode(), DecimalNode())
}
