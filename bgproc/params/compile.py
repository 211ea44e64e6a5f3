"""The compiler: a declared type becomes its tree of codec nodes, once.

This is the one place that asks which kind of type a declaration is; the
nodes then encode, decode and read input without looking at annotations
again. A type the codec cannot carry is refused here, at registration,
naming where it sits (``params.inner.tags[]: cannot serialize set[int]``).
Dataclasses and enums are compiled once per class and shared; a failure is
not remembered, so it is reported again each time.
"""

from __future__ import annotations

import typing
from typing import Any

from ..errors import ParamsError
from .declared import (
    field_types,
    fixed_items,
    is_dataclass_type,
    is_enum_type,
    is_none_type,
    origin,
    type_name,
    union_args,
)
from .lookalike import clash
from .nodes import AnyNode, DataclassNode, DictNode, ListNode, Node, NoneNode, TupleNode, UnionNode
from .scalars import SCALAR_NODES, EnumNode
from .wire import value_kind

_CLASSES: dict[type, Node] = {}  # dataclasses and enums, compiled


class _Refused(Exception):
    """A declared type the codec cannot carry, ``where`` below the type being compiled."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(message)
        self.where = where
        self.message = message


def compiled(tp: Any, path: str = "params") -> Node:
    """The codec node tree of a declared type; one the codec cannot carry is refused, under ``path``."""
    try:
        return _compile(tp, "", frozenset())
    except _Refused as refused:
        raise ParamsError(f"{path}{refused.where}: {refused.message}") from None


def _compile(tp: Any, where: str, seen: frozenset[type]) -> Node:
    """``where``: the path below the compiled type so far; ``seen``: the dataclasses around it."""
    if tp is Any:
        return ANY
    if is_none_type(tp):
        return NONE
    if isinstance(tp, type) and tp in SCALAR_NODES:
        return SCALAR_NODES[tp]
    if is_enum_type(tp):
        return _enum(tp, where)
    if is_dataclass_type(tp):
        return _dataclass(tp, where, seen)
    members = union_args(tp)
    if members is not None:
        return _union(tp, members, where, seen)
    return _container(tp, where, seen)


def _enum(tp: Any, where: str) -> Node:
    if tp not in _CLASSES:
        for member in tp:
            if value_kind(member.value) is None:
                raise _Refused(
                    where,
                    f"{tp.__name__}.{member.name} has a value of type {type(member.value).__name__}, which "
                    "cannot be serialized; give the enum's members str, int, float, bool, bytes, UUID, "
                    "date/time or Decimal values",
                )
        _CLASSES[tp] = EnumNode(tp)
    return _CLASSES[tp]


def _dataclass(tp: type, where: str, seen: frozenset[type]) -> Node:
    if tp in seen:
        raise _Refused(where, f"recursive dataclass {tp.__name__} cannot be serialized")
    if tp not in _CLASSES:
        inside = seen | {tp}
        fields = {name: _compile(ftp, f"{where}.{name}", inside) for name, ftp in field_types(tp).items()}
        _CLASSES[tp] = DataclassNode(tp, fields)
    return _CLASSES[tp]


def _union(tp: Any, members: tuple[Any, ...], where: str, seen: frozenset[type]) -> Node:
    nodes = tuple(_compile(m, where, seen) for m in members)
    for i, a in enumerate(nodes):
        for b in nodes[i + 1:]:
            if clash(a, b):
                raise _Refused(
                    where,
                    f"{a.describe()} and {b.describe()} in {type_name(tp)} look the same once serialized, "
                    "so the value could come back as the wrong one; keep only one of them",
                )
    return UnionNode(tp, nodes)


def _container(tp: Any, where: str, seen: frozenset[type]) -> Node:
    kind, args = origin(tp), typing.get_args(tp)
    if kind is list:
        return ListNode(tp, _compile(args[0] if args else Any, f"{where}[]", seen))
    if kind is tuple:
        items = tuple(_compile(a, f"{where}[]", seen) for a in args if a is not Ellipsis)
        fixed = items if fixed_items(tp) is not None else None
        return TupleNode(tp, items[0] if items else ANY, fixed)
    if kind is dict:
        if args and args[0] is not str:
            raise _Refused(
                where, f"dict keys must be str, not {type_name(args[0])}; use dict[str, ...] or a list of pairs"
            )
        return DictNode(tp, _compile(args[1] if args else Any, f"{where}[]", seen))
    raise _Refused(
        where,
        f"cannot serialize {type_name(tp)}; use str, int, float, bool, bytes, UUID, "
        "datetime, date, time, Decimal, an Enum, list, tuple, dict[str, ...] or a dataclass",
    )


ANY = AnyNode(compiled)
NONE = NoneNode()
