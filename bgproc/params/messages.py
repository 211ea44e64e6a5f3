"""How a refused value is named in an error message (``params.tags[2]: cannot serialize set``)."""

from __future__ import annotations

import dataclasses
import enum
import types
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from uuid import UUID

from ..errors import ParamsError

# The Python types whose values the codec carries (given a declared type that takes them).
_CARRIED: tuple[type, ...] = (
    type(None), list, tuple, dict, enum.Enum, str, int, float, bool, bytes, UUID, datetime, date, time, Decimal,
)


def short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def kind(value: Any) -> str:
    """What a value is, for a message: its type, or what it is when that says more."""
    if isinstance(value, types.LambdaType) and getattr(value, "__name__", "") == "<lambda>":
        return "a lambda"
    if hasattr(value, "read") and hasattr(value, "close") and hasattr(value, "fileno"):
        return f"an open file ({type(value).__name__})"
    if isinstance(value, type):
        return f"the class {value.__name__}"
    return type(value).__name__


def wrong_type(path: str, expected: str, value: Any) -> ParamsError:
    if _unsupported(value):
        return ParamsError(f"{path}: cannot serialize {kind(value)}")
    return ParamsError(f"{path}: expected {expected}, got {kind(value)} {short(value)}")


def _unsupported(value: Any) -> bool:
    return not isinstance(value, _CARRIED) and not (dataclasses.is_dataclass(value) and not isinstance(value, type))
