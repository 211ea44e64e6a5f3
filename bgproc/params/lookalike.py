"""Which union members would look alike once serialized, so a value could come
back as the wrong one (``list | tuple``, ``dict | SomeDataclass``, an Enum with a
member of its values' type, two dataclasses with the same fields).

The questions are asked of compiled nodes, by the shape their values take in
MessagePack (``nil``, ``array``, ``map``, ``enum``, one per scalar kind).
"""

from __future__ import annotations

from .nodes import AnyNode, DataclassNode, DictNode, ListNode, Node, NoneNode, TupleNode, UnionNode
from .scalars import EnumNode


def clash(a: Node, b: Node) -> bool:
    """Whether one serialized value could decode as ``a`` though it was ``b`` (or back)."""
    if a.tp == b.tp:
        return False
    if isinstance(a, UnionNode) or isinstance(b, UnionNode):
        return any(clash(x, y) for x in _members(a) for y in _members(b))
    if isinstance(a, AnyNode) or isinstance(b, AnyNode):
        return not (isinstance(a, NoneNode) or isinstance(b, NoneNode))
    if a.shape == "enum" or b.shape == "enum":
        return overlap(a, b)
    if a.shape != b.shape:
        return False
    if isinstance(a, ListNode) and isinstance(b, ListNode):
        return _arrays_clash(a, b)
    if isinstance(a, DictNode) and isinstance(b, DictNode):
        return clash(a.value, b.value)
    return a.shape == "map" and overlap(a, b)


def _arrays_clash(a: ListNode, b: ListNode) -> bool:
    if isinstance(a, TupleNode) is not isinstance(b, TupleNode):
        return overlap(a, b)  # a list and a tuple
    fa, fb = a.fixed, b.fixed
    if fa is None and fb is None:
        return clash(a.item, b.item)
    if not overlap(a, b):
        return False
    xs = fa if fa is not None else [a.item] * len(fb or ())
    ys = fb if fb is not None else [b.item] * len(fa or ())
    return any(clash(x, y) for x, y in zip(xs, ys, strict=True))


def overlap(a: Node, b: Node) -> bool:
    """Whether some serialized value decodes (exactly) as both ``a`` and ``b``."""
    if isinstance(a, AnyNode) or isinstance(b, AnyNode):
        return True
    if isinstance(a, UnionNode):
        return any(overlap(m, b) for m in a.members)
    if isinstance(b, UnionNode):
        return any(overlap(m, a) for m in b.members)
    if a.tp == b.tp:
        return True
    if isinstance(a, EnumNode) or isinstance(b, EnumNode):
        return _enum_overlap(a, b)
    if a.shape != b.shape:
        return False
    if isinstance(a, ListNode) and isinstance(b, ListNode):
        return _arrays_overlap(a, b)
    if isinstance(a, DataclassNode) and isinstance(b, DataclassNode):
        return set(a.fields) == set(b.fields) and all(overlap(a.fields[n], b.fields[n]) for n in a.fields)
    return a.shape == "map"  # a dict can hold any keys; two different scalar kinds never overlap


def _enum_overlap(a: Node, b: Node) -> bool:
    if isinstance(a, EnumNode) and isinstance(b, EnumNode):
        return any(va == vb and ka == kb for ka, va in a.values for kb, vb in b.values)
    enum_node, other = (a, b.shape) if isinstance(a, EnumNode) else (b, a.shape)
    assert isinstance(enum_node, EnumNode)
    return any(kind == other for kind, _ in enum_node.values)


def _arrays_overlap(a: ListNode, b: ListNode) -> bool:
    fa, fb = a.fixed, b.fixed
    if fa is not None and fb is not None:
        return len(fa) == len(fb) and all(overlap(x, y) for x, y in zip(fa, fb, strict=True))
    if fa is not None:
        return all(overlap(b.item, y) for y in fa)
    if fb is not None:
        return all(overlap(a.item, y) for y in fb)
    return True  # both can be empty


def _members(node: Node) -> tuple[Node, ...]:
    return node.members if isinstance(node, UnionNode) else (node,)
