"""JSON both ways: the text users give (``--params-json``, ``-p field={...}``) and
the documents ``--json`` shows. Numbers with a fraction or an exponent are read
as Decimal, so a field's declared type decides what they become."""

from __future__ import annotations

import base64
import dataclasses
import enum
import json
import math
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, BinaryIO
from uuid import UUID

from ..errors import ParamsError
from .wire import MAX_BYTES, MAX_DEPTH

NON_FINITE = {"nan": math.nan, "inf": math.inf, "+inf": math.inf, "-inf": -math.inf,
              "infinity": math.inf, "+infinity": math.inf, "-infinity": -math.inf}


def read_limited(source: BinaryIO, name: str) -> str:
    """The text of a parameters file or pipe, read no further than the parameter
    limit: ``/dev/zero`` or a pipe that never ends is refused, not read into memory.
    A leading UTF-8 byte-order mark is dropped. Raises ``UnicodeDecodeError``
    for text that is not UTF-8."""
    data = source.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise ParamsError(
            f"{name} holds more than {MAX_BYTES} bytes, the limit for parameters (1 MiB); "
            "pass a reference (a path, an id) instead of the data itself"
        )
    return data.decode("utf-8-sig")  # a byte-order mark, as some editors write, is not part of the text


def parse_json(text: str, path: str) -> Any:
    """Parse JSON text; numbers with a fraction or exponent (and NaN, Infinity) become Decimal."""
    try:
        value = _loads(text)
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
    if _depth(value) > MAX_DEPTH:
        raise ParamsError(f"{path}: JSON nested deeper than {MAX_DEPTH} levels")
    return value


def looks_like_json(text: str) -> bool:
    """Whether text is JSON, or near enough that ``parse_json`` should say what is wrong with it."""
    try:
        _loads(text)
    except (_DuplicateKey, RecursionError):
        return True  # parse_json reports it
    except (ValueError, ArithmeticError):
        return False
    return True


def _loads(text: str) -> Any:
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


def _depth(value: Any) -> int:
    deepest, todo = 0, [(value, 0)]
    while todo:
        item, depth = todo.pop()
        deepest = max(deepest, depth)
        if isinstance(item, list):
            todo.extend((v, depth + 1) for v in item)
        elif isinstance(item, dict):
            todo.extend((v, depth + 1) for v in item.values())
    return deepest


def plain_json(value: Any) -> Any:
    """JSON for an ``Any`` field: numbers that were parsed as Decimal become float."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, list):
        return [plain_json(v) for v in value]
    if isinstance(value, dict):
        return {k: plain_json(v) for k, v in value.items()}
    return value


def json_kind(value: Any) -> str:
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


def json_wrong(path: str, expected: str, value: Any) -> ParamsError:
    shown = json.dumps(plain_json(value), default=str)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return ParamsError(f"{path}: expected {expected}, got {json_kind(value)} ({shown})")


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
