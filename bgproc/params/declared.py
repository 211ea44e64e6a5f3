"""Questions about declared types (the annotations of a parameters dataclass).

Only the compiler and the messages ask them: once a type is compiled into
codec nodes, encoding and decoding never look at the annotation again.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from functools import cache
from typing import Any, Union

from ..errors import ParamsError

NONE_TYPE = type(None)


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


def init_fields(cls: type) -> list[dataclasses.Field[Any]]:
    return [f for f in dataclasses.fields(cls) if f.init]


def has_default(f: dataclasses.Field[Any]) -> bool:
    return f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING


def union_args(tp: Any) -> tuple[Any, ...] | None:
    """The members of a union (``int | None``, ``Optional[int]``), or None for any other type."""
    if typing.get_origin(tp) in (Union, types.UnionType):
        return typing.get_args(tp)
    return None


def origin(tp: Any) -> Any:
    return typing.get_origin(tp) or tp


def is_none_type(tp: Any) -> bool:
    return tp is NONE_TYPE or tp is None


def is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def is_enum_type(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, enum.Enum)


def fixed_items(tp: Any) -> tuple[Any, ...] | None:
    """A fixed tuple's item types, or None for a list or variadic tuple."""
    args = typing.get_args(tp)
    if origin(tp) is tuple and args and args[-1] is not Ellipsis:
        return args
    if origin(tp) is tuple and not args and tp is not tuple and tp is not typing.Tuple:  # noqa: UP006 - the bare alias, compared
        return ()  # tuple[()]
    return None


def type_name(tp: Any) -> str:
    """A short, readable name for a declared type (``list[int]``, ``str | None``)."""
    if tp is Any:
        return "any"
    if is_none_type(tp):
        return "None"
    members = union_args(tp)
    if members is not None:
        return " | ".join(type_name(m) for m in members)
    generic, args = typing.get_origin(tp), typing.get_args(tp)
    if generic is not None:
        inner = ", ".join("..." if a is Ellipsis else type_name(a) for a in args)
        return f"{getattr(generic, '__name__', str(generic))}[{inner}]"
    return getattr(tp, "__name__", str(tp))
