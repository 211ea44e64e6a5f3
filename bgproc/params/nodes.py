"""Codec nodes: a declared type, compiled once (``compile.py``), that knows how its
values are encoded, decoded, read from command-line text and from JSON, and
what the type is called.

Every method takes the field path (``params.inner.tags[2]``) that a refusal
names. ``exact`` is set while a union chooses its member: it refuses the
conversions a lone type allows (an int for a float, a dataclass without its
defaulted fields), so the member that takes a value as it is wins.
"""

from __future__ import annotations

import dataclasses
import enum
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from itertools import repeat
from typing import Any

from ..errors import ParamsError
from .declared import has_default, init_fields, type_name
from .jsonio import json_kind, json_wrong, looks_like_json, parse_json, plain_json
from .messages import kind, short, wrong_type
from .wire import MAX_DEPTH, write_scalar, write_text

# While choosing a union's member: exact matches first, then conversions.
PASSES = {True: (True,), False: (True, False)}


class Node(ABC):
    """One declared type, compiled."""

    shape = "other"  # what its values look like once serialized (for union checks)

    def __init__(self, tp: Any) -> None:
        self.tp = tp
        self.name = type_name(tp)

    def describe(self) -> str:
        """The type's name as users read it (``list[int]``, ``str | None``)."""
        return self.name

    @abstractmethod
    def accepts(self, value: Any, exact: bool = False) -> bool:
        """Whether a Python value is of this type at the top level."""

    @abstractmethod
    def encode(self, value: Any, path: str, stack: tuple[int, ...], depth: int, exact: bool) -> Any:
        """The value as MessagePack carries it (``stack``: the containers around it, to refuse cycles)."""

    @abstractmethod
    def decode(self, raw: Any, path: str, exact: bool) -> Any:
        """The typed value back from what MessagePack gave."""

    def from_text(self, text: str, path: str, exact: bool) -> Any:
        """The value of a command-line ``-p field=value``: JSON, for containers."""
        return self.from_json(parse_json(text, path), path, exact)

    @abstractmethod
    def from_json(self, value: Any, path: str, exact: bool) -> Any:
        """The value of parsed JSON (numbers with a fraction as Decimal)."""


def enter(value: Any, path: str, stack: tuple[int, ...]) -> tuple[int, ...]:
    """The stack inside a container, refusing one that contains itself."""
    if id(value) in stack:
        raise ParamsError(f"{path}: recursive structure (it contains itself) cannot be serialized")
    return stack + (id(value),)


def too_deep(path: str) -> ParamsError:
    return ParamsError(f"{path}: nested deeper than {MAX_DEPTH} levels")


def encode_items(
    values: Iterable[Any], nodes: Iterable[Node], path: str, stack: tuple[int, ...], depth: int, exact: bool
) -> list[Any]:
    out = []
    for i, (value, node) in enumerate(zip(values, nodes, strict=False)):  # nodes may repeat forever
        if depth + 1 > MAX_DEPTH:
            raise too_deep(f"{path}[{i}]")
        out.append(node.encode(value, f"{path}[{i}]", stack, depth + 1, exact))
    return out


def encode_dict(
    value: dict[str, Any], item: Node, path: str, stack: tuple[int, ...], depth: int, exact: bool
) -> dict[str, Any]:
    out = {}
    for k, v in value.items():
        if not isinstance(k, str):
            raise ParamsError(
                f"{path}: dict key {short(k)} is not a str ({kind(k)}); only str keys can be serialized"
            )
        if not k.isascii():
            write_text(k, f"{path}[{short(k)}]")
        child = f"{path}[{k!r}]"
        if depth + 1 > MAX_DEPTH:
            raise too_deep(child)
        out[k] = item.encode(v, child, stack, depth + 1, exact)
    return out


# --------------------------------------------------------------------------
# Any and None


class AnyNode(Node):
    """``Any``: a value's own type decides how it is written; it comes back as plain data."""

    shape = "any"

    def __init__(self, compile_class: Callable[[type, str], Node]) -> None:
        super().__init__(Any)
        self._compile_class = compile_class  # for a dataclass instance met at run time

    def accepts(self, value: Any, exact: bool = False) -> bool:
        return True

    def encode(self, value: Any, path: str, stack: tuple[int, ...], depth: int, exact: bool) -> Any:
        if depth > MAX_DEPTH:
            raise too_deep(path)
        if value is None or isinstance(value, (bool, float)):
            return value
        if isinstance(value, enum.Enum):
            return self.encode(value.value, path, stack, depth, False)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return self._compile_class(type(value), path).encode(value, path, stack, depth, False)
        if isinstance(value, (list, tuple)):
            return encode_items(value, repeat(self), path, enter(value, path, stack), depth, False)
        if isinstance(value, dict):
            return encode_dict(value, self, path, enter(value, path, stack), depth, False)
        return write_scalar(value, path)

    def decode(self, raw: Any, path: str, exact: bool) -> Any:
        return raw

    def from_text(self, text: str, path: str, exact: bool) -> Any:
        if not looks_like_json(text):
            return text  # JSON when it is JSON, else the text itself
        return self.from_json(parse_json(text, path), path, exact)

    def from_json(self, value: Any, path: str, exact: bool) -> Any:
        return plain_json(value)


class NoneNode(Node):
    """``None``: only None."""

    shape = "nil"

    def __init__(self) -> None:
        super().__init__(type(None))

    def accepts(self, value: Any, exact: bool = False) -> bool:
        return value is None

    def encode(self, value: Any, path: str, stack: tuple[int, ...], depth: int, exact: bool) -> Any:
        return self.decode(value, path, exact)

    def decode(self, raw: Any, path: str, exact: bool) -> Any:
        if raw is not None:
            raise wrong_type(path, self.name, raw)
        return None

    def from_text(self, text: str, path: str, exact: bool) -> Any:
        if text.strip().lower() in ("null", "none"):
            return None
        raise ParamsError(f"{path}: expected null, got {text!r}")

    def from_json(self, value: Any, path: str, exact: bool) -> Any:
        if value is not None:
            raise json_wrong(path, self.name, value)
        return None


# --------------------------------------------------------------------------
# Containers


class ListNode(Node):
    """``list[T]``: a MessagePack array (``TupleNode`` is the other kind of array)."""

    shape = "array"
    fixed: tuple[Node, ...] | None = None

    def __init__(self, tp: Any, item: Node) -> None:
        super().__init__(tp)
        self.item = item

    def accepts(self, value: Any, exact: bool = False) -> bool:
        return isinstance(value, list)

    def encode(self, value: Any, path: str, stack: tuple[int, ...], depth: int, exact: bool) -> Any:
        if not self.accepts(value):
            raise wrong_type(path, self.name, value)
        return encode_items(value, repeat(self.item), path, enter(value, path, stack), depth, exact)

    def decode(self, raw: Any, path: str, exact: bool) -> Any:
        if not isinstance(raw, list):
            raise wrong_type(path, self.name, raw)
        item = self.item
        return [item.decode(v, f"{path}[{i}]", exact) for i, v in enumerate(raw)]

    def from_json(self, value: Any, path: str, exact: bool) -> Any:
        if not isinstance(value, list):
            raise json_wrong(path, self.name, value)
        item = self.item
        return [item.from_json(v, f"{path}[{i}]", exact) for i, v in enumerate(value)]


class TupleNode(ListNode):
    """``tuple[A, B]`` (fixed) or ``tuple[T, ...]``: a MessagePack array, a tuple again when decoded."""

    def __init__(self, tp: Any, item: Node, fixed: tuple[Node, ...] | None) -> None:
        super().__init__(tp, item)
        self.fixed = fixed

    def accepts(self, value: Any, exact: bool = False) -> bool:
        return isinstance(value, tuple)

    def encode(self, value: Any, path: str, stack: tuple[int, ...], depth: int, exact: bool) -> Any:
        if not self.accepts(value):
            raise wrong_type(path, self.name, value)
        stack = enter(value, path, stack)
        return encode_items(value, self._nodes(value, path), path, stack, depth, exact)

    def decode(self, raw: Any, path: str, exact: bool) -> Any:
        if not isinstance(raw, list):
            raise wrong_type(path, self.name, raw)
        nodes = self._nodes(raw, path)
        return tuple(n.decode(v, f"{path}[{i}]", exact) for i, (v, n) in enumerate(zip(raw, nodes, strict=False)))

    def from_json(self, value: Any, path: str, exact: bool) -> Any:
        if not isinstance(value, list):
            raise json_wrong(path, self.name, value)
        nodes = self._nodes(value, path)
        return tuple(n.from_json(v, f"{path}[{i}]", exact) for i, (v, n) in enumerate(zip(value, nodes, strict=False)))

    def _nodes(self, items: Any, path: str) -> Iterator[Node]:
        """The node of each item, refusing a fixed tuple of another length."""
        if self.fixed is None:
            return repeat(self.item)
        if len(self.fixed) != len(items):
            raise ParamsError(f"{path}: expected {len(self.fixed)} items, got {len(items)}")
        return iter(self.fixed)


class DictNode(Node):
    """``dict[str, T]``: a MessagePack map."""

    shape = "map"

    def __init__(self, tp: Any, value: Node) -> None:
        super().__init__(tp)
        self.value = value

    def accepts(self, value: Any, exact: bool = False) -> bool:
        return isinstance(value, dict)

    def encode(self, value: Any, path: str, stack: tuple[int, ...], depth: int, exact: bool) -> Any:
        if not self.accepts(value):
            raise wrong_type(path, self.name, value)
        return encode_dict(value, self.value, path, enter(value, path, stack), depth, exact)

    def decode(self, raw: Any, path: str, exact: bool) -> Any:
        if not isinstance(raw, dict):
            raise wrong_type(path, self.name, raw)
        item = self.value
        return {k: item.decode(v, f"{path}[{k!r}]", exact) for k, v in raw.items()}

    def from_json(self, value: Any, path: str, exact: bool) -> Any:
        if not isinstance(value, dict):
            raise json_wrong(path, self.name, value)
        item = self.value
        return {k: item.from_json(v, f"{path}[{k!r}]", exact) for k, v in value.items()}


class DataclassNode(Node):
    """A dataclass: a MessagePack map of its ``__init__`` fields; unknown and missing fields are refused."""

    shape = "map"

    def __init__(self, cls: type, fields: dict[str, Node]) -> None:
        super().__init__(cls)
        self.fields = fields
        self.init_fields = init_fields(cls)

    def accepts(self, value: Any, exact: bool = False) -> bool:
        # a subclass instance would come back as the declared class, losing its own fields
        return type(value) is self.tp

    def encode(self, value: Any, path: str, stack: tuple[int, ...], depth: int, exact: bool) -> Any:
        if not self.accepts(value):
            raise wrong_type(path, self.name, value)
        stack = enter(value, path, stack)
        if self.fields and depth + 1 > MAX_DEPTH:
            raise too_deep(f"{path}.{next(iter(self.fields))}")
        return {
            name: node.encode(getattr(value, name), f"{path}.{name}", stack, depth + 1, exact)
            for name, node in self.fields.items()
        }

    def decode(self, raw: Any, path: str, exact: bool) -> Any:
        return self.build(raw, path, lambda node, v, p: node.decode(v, p, exact), exact)

    def from_json(self, value: Any, path: str, exact: bool) -> Any:
        if not isinstance(value, dict):
            raise json_wrong(path, self.name, value)
        return self.build(value, path, lambda node, v, p: node.from_json(v, p, exact), exact)

    def build(self, raw: Any, path: str, convert: Callable[[Node, Any, str], Any], exact: bool = False) -> Any:
        """The dataclass from a mapping, each given field converted; ``exact`` also
        refuses a mapping that lacks a field with a default."""
        if not isinstance(raw, dict):
            raise ParamsError(f"{path}: expected an object with the fields of {self.name}, got {kind(raw)}")
        unknown = sorted(set(raw) - set(self.fields), key=str)
        if unknown:
            raise self.unknown(f"{path}.{unknown[0]}")
        values = {}
        for f in self.init_fields:
            if f.name in raw:
                values[f.name] = convert(self.fields[f.name], raw[f.name], f"{path}.{f.name}")
            elif exact or not has_default(f):
                fix = f"pass -p {f.name}=..." if path == "params" else f"add \"{f.name}\" to the JSON object of {path}"
                raise ParamsError(f"{path}.{f.name}: missing required field ({self.fields[f.name].name}); {fix}")
        return self._construct(values, path)

    def unknown(self, path: str) -> ParamsError:
        return ParamsError(f"{path}: unknown field; {self.name} has: {', '.join(self.fields) or 'no fields'}")

    def _construct(self, values: dict[str, Any], path: str) -> Any:
        try:
            return self.tp(**values)
        except ParamsError:
            raise
        except Exception as exc:  # noqa: BLE001 - __post_init__ is user code
            raise ParamsError(f"{path}: {self.name} refused these values: {exc}") from None


# --------------------------------------------------------------------------
# Unions


class UnionNode(Node):
    """``A | B``: the first member that takes a value exactly; failing that, the first that takes it."""

    shape = "union"

    def __init__(self, tp: Any, members: tuple[Node, ...]) -> None:
        super().__init__(tp)
        self.members = members
        self.optional = any(isinstance(m, NoneNode) for m in members)

    def accepts(self, value: Any, exact: bool = False) -> bool:
        return any(m.accepts(value, exact) for m in self.members)

    def encode(self, value: Any, path: str, stack: tuple[int, ...], depth: int, exact: bool) -> Any:
        """When no member takes the value, the error comes from the last pass (the
        lenient one, so it names the real problem rather than a strictness),
        preferring a member whose type the value has exactly (``int`` for 2**70 in
        ``float | int``) over one that would only convert it."""
        errors: list[tuple[bool, ParamsError]] = []
        for strict in PASSES[exact]:
            errors = []
            for m in self.members:
                if not m.accepts(value, strict):
                    continue
                try:
                    return m.encode(value, path, stack, depth, strict)
                except ParamsError as exc:
                    errors.append((strict or m.accepts(value, True), exc))
        if errors:
            raise next((exc for own, exc in errors if own), errors[0][1])
        raise wrong_type(path, self.name, value)

    def decode(self, raw: Any, path: str, exact: bool) -> Any:
        return self._first(lambda m, strict: m.decode(raw, path, strict), exact, path, lambda: kind(raw))

    def from_text(self, text: str, path: str, exact: bool) -> Any:
        """``null`` is None for an optional field; so is ``none`` when no other
        member takes the text (an ``str | None`` field keeps ``none``)."""
        word = text.strip().lower()
        if self.optional and word == "null":
            return None
        try:
            return self._first(
                lambda m, strict: m.from_text(text, path, strict), exact, path, lambda: repr(text), skip_none=True
            )
        except ParamsError:
            if self.optional and word == "none":
                return None
            raise

    def from_json(self, value: Any, path: str, exact: bool) -> Any:
        return self._first(lambda m, strict: m.from_json(value, path, strict), exact, path, lambda: json_kind(value))

    def _first(
        self, attempt: Callable[[Node, bool], Any], exact: bool, path: str, got: Callable[[], str],
        skip_none: bool = False,
    ) -> Any:
        errors: list[ParamsError | None] = []
        for strict in PASSES[exact]:
            errors = []
            for m in self.members:
                if skip_none and isinstance(m, NoneNode):
                    errors.append(None)
                    continue
                try:
                    return attempt(m, strict)
                except ParamsError as exc:
                    errors.append(exc)
        raise self._refusal(errors, path, got())

    def _refusal(self, errors: list[ParamsError | None], path: str, got: str) -> ParamsError:
        """One member's own error when it is the only candidate, else the union's."""
        candidates = [i for i, m in enumerate(self.members) if not isinstance(m, NoneNode)]
        if len(candidates) == 1 and len(errors) == len(self.members):
            own = errors[candidates[0]]
            if own is not None:
                return own
        return ParamsError(f"{path}: expected {self.name}, got {got}")
