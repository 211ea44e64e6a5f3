"""The parameter codec: round trips for every supported type, refusals that name
the field, and command-line / JSON conversion by the declared types."""

from __future__ import annotations

import dataclasses
import enum
import itertools
import math
import typing
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Optional, Union
from uuid import UUID
from zoneinfo import ZoneInfo

import msgpack
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bgproc import params as P
from bgproc.errors import ParamsError
from bgproc.params.declared import union_args

INT_MIN, INT_MAX = -(2**63), 2**64 - 1
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.Enum):
    ONE = 1
    TWO = 2
    BIG = 2**40


# ---------------------------------------------------------------------------
# Exact comparison: equal values AND the same types, offsets, folds, signs.


def assert_same(got: Any, want: Any, path: str = "params") -> None:
    assert type(got) is type(want), f"{path}: {type(got).__name__} != {type(want).__name__}"
    if dataclasses.is_dataclass(want):
        for f in dataclasses.fields(want):
            assert_same(getattr(got, f.name), getattr(want, f.name), f"{path}.{f.name}")
    elif isinstance(want, (list, tuple)):
        assert len(got) == len(want), path
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_same(g, w, f"{path}[{i}]")
    elif isinstance(want, dict):
        assert list(got) == list(want), path
        for k in want:
            assert_same(got[k], want[k], f"{path}[{k!r}]")
    elif isinstance(want, float):
        if math.isnan(want):
            assert math.isnan(got), path
        else:
            assert got == want and math.copysign(1, got) == math.copysign(1, want), path
    elif isinstance(want, Decimal):
        assert got.as_tuple() == want.as_tuple(), f"{path}: {got} != {want}"
    elif isinstance(want, (datetime, time)):
        assert got.replace(tzinfo=None) == want.replace(tzinfo=None), path
        assert got.utcoffset() == want.utcoffset(), path
        assert got.fold == want.fold, path
        assert (got.tzinfo is None) == (want.tzinfo is None) or want.utcoffset() is None, path
    else:
        assert got == want, f"{path}: {got!r} != {want!r}"


def roundtrip(value: Any) -> Any:
    data = P.encode(value)
    assert isinstance(data, bytes)
    back = P.decode(type(value), data)
    assert_same(back, value)
    return back


# ---------------------------------------------------------------------------
# Strategies for every supported type

offsets = st.timedeltas(
    min_value=-timedelta(hours=24) + timedelta(microseconds=1),
    max_value=timedelta(hours=24) - timedelta(microseconds=1),
)
odd_offsets = st.one_of(
    offsets,
    st.sampled_from([timedelta(hours=5, minutes=30), timedelta(hours=-9, minutes=-30),
                     timedelta(hours=5, minutes=45), timedelta(minutes=-0.5), timedelta(0),
                     timedelta(hours=14), timedelta(hours=-12), timedelta(seconds=1, microseconds=7)]),
)
folds = st.integers(0, 1)
naive_datetimes = st.builds(lambda d, f: d.replace(fold=f), st.datetimes(), folds)
aware_datetimes = st.builds(
    lambda d, off, f: d.replace(tzinfo=timezone(off), fold=f), st.datetimes(), odd_offsets, folds
)
datetimes_any = st.one_of(naive_datetimes, aware_datetimes)
times_any = st.one_of(
    st.builds(lambda t, f: t.replace(fold=f), st.times(), folds),
    st.builds(lambda t, off, f: t.replace(tzinfo=timezone(off), fold=f), st.times(), odd_offsets, folds),
)
huge_exponent_decimals = st.builds(
    lambda sign, digits, exp: Decimal((sign, tuple(digits), exp)),
    st.integers(0, 1),
    st.lists(st.integers(0, 9), min_size=1, max_size=40),
    st.integers(-(10**17), 10**17),
)
decimals_any = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True),
    huge_exponent_decimals,
    st.sampled_from([Decimal("-0"), Decimal("1.10"), Decimal("0E-30"), Decimal("sNaN"),
                     Decimal("-Infinity"), Decimal("1E+999999999999999999"),
                     Decimal("9.999999999999999999999999999E-999999999999999999")]),
)
ints_64 = st.one_of(
    st.integers(INT_MIN, INT_MAX),
    st.sampled_from([INT_MIN, INT_MIN + 1, -1, 0, 2**63 - 1, 2**63, INT_MAX - 1, INT_MAX]),
)

SCALARS: dict[Any, st.SearchStrategy] = {
    str: st.text(max_size=20),
    int: ints_64,
    float: st.floats(allow_nan=True, allow_infinity=True),
    bool: st.booleans(),
    bytes: st.binary(max_size=20),
    UUID: st.uuids(),
    datetime: datetimes_any,
    date: st.dates(),
    time: times_any,
    Decimal: decimals_any,
    Color: st.sampled_from(Color),
    Level: st.sampled_from(Level),
}
# Scalars that a union may mix: each has its own serialized kind.
UNION_SCALARS = [str, int, float, bool, bytes, UUID, datetime, date, time, Decimal]

_names = itertools.count()


def make_dataclass(types: list[Any]) -> type:
    return dataclasses.make_dataclass(f"Gen{next(_names)}", [(f"f{i}", t) for i, t in enumerate(types)])


def _extend(inner: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(
        inner.map(lambda t: list[t]),
        inner.map(lambda t: tuple[t, ...]),
        st.lists(inner, min_size=1, max_size=3).map(lambda ts: tuple[tuple(ts)]),
        inner.map(lambda t: dict[str, t]),
        inner.map(lambda t: Optional[t]),  # noqa: UP045 - typing.Optional on purpose
        st.lists(inner, min_size=1, max_size=4).map(make_dataclass),
    )


schemas = st.recursive(
    st.one_of(
        st.sampled_from(list(SCALARS)),
        st.lists(st.sampled_from(UNION_SCALARS), min_size=2, max_size=3, unique=True).map(
            lambda ts: Union[tuple(ts)]  # noqa: UP007 - typing.Union on purpose
        ),
    ),
    _extend,
    max_leaves=8,
)


def values(tp: Any) -> st.SearchStrategy:
    if tp in SCALARS:
        return SCALARS[tp]
    if tp is type(None):
        return st.none()
    members = union_args(tp)
    if members is not None:
        return st.one_of([values(m) for m in members])
    if dataclasses.is_dataclass(tp):
        return st.builds(tp, **{n: values(t) for n, t in P.field_types(tp).items()})
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is list:
        return st.lists(values(args[0]), max_size=3)
    if origin is tuple and args[-1] is Ellipsis:
        return st.lists(values(args[0]), max_size=3).map(tuple)
    if origin is tuple:
        return st.tuples(*[values(a) for a in args])
    if origin is dict:
        return st.dictionaries(st.text(max_size=5), values(args[1]), max_size=3)
    raise AssertionError(tp)


typed_params = schemas.map(lambda tp: make_dataclass([tp])).flatmap(
    lambda cls: st.tuples(st.just(cls), values(cls))
)


# ---------------------------------------------------------------------------
# Round trips


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(typed_params)
def test_any_supported_schema_round_trips_with_types_preserved(case: tuple[type, Any]) -> None:
    cls, value = case
    P.check_type(cls)
    roundtrip(value)


@dataclass
class AllScalars:
    s: str
    i: int
    f: float
    b: bool
    n: None
    raw: bytes
    u: UUID
    dt: datetime
    d: date
    t: time
    dec: Decimal
    color: Color
    level: Level


@FAST
@given(st.builds(AllScalars, **{k: v for k, v in {
    "s": SCALARS[str], "i": ints_64, "f": SCALARS[float], "b": st.booleans(), "n": st.none(),
    "raw": st.binary(), "u": st.uuids(), "dt": datetimes_any, "d": st.dates(), "t": times_any,
    "dec": decimals_any, "color": st.sampled_from(Color), "level": st.sampled_from(Level),
}.items()}))
def test_every_scalar_round_trips(value: AllScalars) -> None:
    roundtrip(value)


@dataclass
class Stamp:
    at: datetime


@FAST
@given(aware_datetimes)
@example(datetime(2026, 5, 1, 9, 30, tzinfo=timezone(timedelta(hours=5, minutes=45))))
@example(datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=23, minutes=59, seconds=59, microseconds=999999))))
@example(datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone(-timedelta(hours=23, minutes=59))))
def test_aware_datetimes_keep_their_offset_exactly(value: datetime) -> None:
    back = roundtrip(Stamp(value)).at
    assert back.utcoffset() == value.utcoffset()
    assert back == value and back.isoformat() == value.isoformat()


@FAST
@given(naive_datetimes)
@example(datetime(2026, 11, 1, 1, 30, fold=1))
def test_naive_datetimes_stay_naive_and_keep_fold(value: datetime) -> None:
    back = roundtrip(Stamp(value)).at
    assert back.tzinfo is None and back.fold == value.fold and back == value


@FAST
@given(st.datetimes(timezones=st.timezones(), allow_imaginary=False), folds)
def test_zoneinfo_datetimes_come_back_as_the_same_wall_time_and_offset(value: datetime, fold: int) -> None:
    value = value.replace(fold=fold)
    back = P.decode(Stamp, P.encode(Stamp(value))).at
    assert back.replace(tzinfo=None) == value.replace(tzinfo=None)
    assert back.utcoffset() == value.utcoffset()
    assert back.astimezone(UTC) == value.astimezone(UTC)


def test_datetime_at_a_fall_back_fold_keeps_the_second_occurrence() -> None:
    zone = ZoneInfo("America/New_York")
    first = datetime(2026, 11, 1, 1, 30, tzinfo=zone)
    second = first.replace(fold=1)
    for value in (first, second):
        back = P.decode(Stamp, P.encode(Stamp(value))).at
        assert back.astimezone(UTC) == value.astimezone(UTC)
    assert P.decode(Stamp, P.encode(Stamp(second))).at.utcoffset() == timedelta(hours=-5)


@dataclass
class Clock:
    t: time


@FAST
@given(times_any)
@example(time(23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-3, minutes=-30)), fold=1))
def test_times_keep_offset_and_fold(value: time) -> None:
    roundtrip(Clock(value))


@dataclass
class Money:
    amount: Decimal


@FAST
@given(decimals_any)
def test_decimals_round_trip_exactly_including_huge_exponents(value: Decimal) -> None:
    back = roundtrip(Money(value)).amount
    assert str(back) == str(value)


@dataclass
class Number:
    n: int


@FAST
@given(ints_64)
@example(INT_MIN)
@example(INT_MAX)
def test_ints_round_trip_across_the_64_bit_range(value: int) -> None:
    roundtrip(Number(value))


@pytest.mark.parametrize("value", [INT_MIN - 1, INT_MAX + 1, 10**30, -(10**30), 2**200])
def test_ints_beyond_64_bits_are_refused_naming_the_field(value: int) -> None:
    with pytest.raises(ParamsError, match=r"^params\.n: integer .* does not fit in 64 bits"):
        P.encode(Number(value))


@dataclass
class Mixed:
    a: float | int
    b: int | float
    c: int | str | None
    d: list[int] | list[str]
    e: date | datetime
    f: Decimal | float


def test_union_members_keep_their_own_type() -> None:
    roundtrip(Mixed(3, 3.0, None, ["x"], datetime(2026, 1, 1), 1.5))
    roundtrip(Mixed(3.5, 3, "3", [1], date(2026, 1, 1), Decimal("1.5")))
    roundtrip(Mixed(2**63, INT_MIN, 7, [], datetime(2026, 1, 1, tzinfo=UTC), Decimal("NaN")))


@dataclass
class Point:
    x: int
    y: int


@dataclass
class Label:
    text: str
    size: int = 10


@dataclass
class Shapes:
    item: Point | Label | None
    items: list[Point | Label]
    by_name: dict[str, Label]
    pair: tuple[Point, Label | None]
    trail: tuple[Point, ...]


def test_nested_dataclasses_and_dataclass_unions_round_trip() -> None:
    roundtrip(Shapes(Label("a"), [Point(1, 2), Label("b", 3)], {"k": Label("c")}, (Point(0, 0), None), ()))
    roundtrip(Shapes(Point(-1, 1), [], {}, (Point(1, 1), Label("z", 0)), (Point(1, 2), Point(3, 4))))
    roundtrip(Shapes(None, [Label("q")], {"": Label("")}, (Point(5, 5), Label("w")), (Point(0, 1),)))


@dataclass
class Containers:
    tags: list[str] = field(default_factory=list)
    fixed: tuple[int, str, bool] = (0, "", False)
    empty: tuple[()] = ()
    variadic: tuple[float, ...] = ()
    scores: dict[str, int] = field(default_factory=dict)
    nested: dict[str, list[tuple[int, ...]]] = field(default_factory=dict)
    maybe: Optional[list[Color]] = None  # noqa: UP045 - typing.Optional on purpose


@FAST
@given(st.builds(
    Containers, tags=st.lists(st.text()), fixed=st.tuples(ints_64, st.text(), st.booleans()),
    variadic=st.lists(st.floats(allow_nan=False)).map(tuple),
    scores=st.dictionaries(st.text(), ints_64),
    nested=st.dictionaries(st.text(max_size=3), st.lists(st.lists(ints_64).map(tuple), max_size=3), max_size=3),
    maybe=st.none() | st.lists(st.sampled_from(Color)),
))
def test_lists_tuples_and_dicts_round_trip(value: Containers) -> None:
    roundtrip(value)


def test_enums_come_back_as_members() -> None:
    @dataclass
    class E:
        color: Color
        level: Level
        levels: list[Level]

    back = roundtrip(E(Color.GREEN, Level.BIG, [Level.ONE, Level.TWO]))
    assert back.color is Color.GREEN and back.level is Level.BIG


def test_any_fields_come_back_as_plain_data() -> None:
    @dataclass
    class Loose:
        extra: Any = None

    value = Loose({"a": [1, 2.5, "x", None, True, b"\x00", Decimal("1.5"), UUID(int=7)], "t": (1, 2)})
    back = P.decode(Loose, P.encode(value))
    assert back.extra == {"a": [1, 2.5, "x", None, True, b"\x00", Decimal("1.5"), UUID(int=7)], "t": [1, 2]}
    assert P.decode(Loose, P.encode(Loose(Point(1, 2)))).extra == {"x": 1, "y": 2}
    assert P.decode(Loose, P.encode(Loose(Color.RED))).extra == "red"


def test_init_false_fields_are_computed_not_carried() -> None:
    @dataclass
    class Derived:
        a: int
        doubled: int = field(init=False, default=0)

        def __post_init__(self) -> None:
            self.doubled = self.a * 2

    assert P.decode(Derived, P.encode(Derived(4))).doubled == 8
    assert [f["name"] for f in P.describe_fields(Derived)] == ["a"]


def test_decoding_fills_defaults_of_fields_added_later() -> None:
    data = msgpack.packb({"text": "old"})
    assert P.decode(Label, data) == Label("old", 10)


def test_decoding_refuses_data_that_does_not_match_the_class() -> None:
    with pytest.raises(ParamsError, match=r"^params\.size: expected int, got str"):
        P.decode(Label, msgpack.packb({"text": "a", "size": "big"}))
    with pytest.raises(ParamsError, match=r"^params\.gone: unknown field"):
        P.decode(Label, msgpack.packb({"text": "a", "gone": 1}))
    with pytest.raises(ParamsError, match=r"^params: not valid bgproc MessagePack"):
        P.decode(Label, b"\xc1")
    with pytest.raises(ParamsError, match="unknown MessagePack extension type 42"):
        P.decode(Label, msgpack.packb({"text": msgpack.ExtType(42, b"")}))


# ---------------------------------------------------------------------------
# Refusals name the field path


@dataclass
class Bag:
    tags: list[Any]


@dataclass
class Holder:
    inner: Bag
    meta: dict[str, Any] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)
    extra: Any = None
    maybe: Bag | None = None


class Widget:
    pass


def holder(**changes: Any) -> Holder:
    return dataclasses.replace(Holder(Bag(["a", "b"])), **changes)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (holder(inner=Bag(["a", "b", {"x"}])), "params.inner.tags[2]: cannot serialize set"),
        (holder(meta={"k": {1, 2}}), "params.meta['k']: cannot serialize set"),
        (holder(meta={"k": [1, {"deep": frozenset()}]}), "params.meta['k'][1]['deep']: cannot serialize frozenset"),
        (holder(names=["a", {"b"}]), "params.names[1]: cannot serialize set"),
        (holder(extra={1}), "params.extra: cannot serialize set"),
        (holder(maybe=Bag([{"s"}])), "params.maybe.tags[0]: cannot serialize set"),
        (holder(extra=Widget()), "params.extra: cannot serialize Widget"),
        (holder(extra=lambda: 1), "params.extra: cannot serialize a lambda"),
        (holder(extra=Widget), "params.extra: cannot serialize the class Widget"),
        (holder(extra=print), "params.extra: cannot serialize builtin_function_or_method"),
        (holder(inner=Bag([object()])), "params.inner.tags[0]: cannot serialize object"),
        (holder(extra=[1, 2**64]), "params.extra[1]: integer 18446744073709551616 does not fit in 64 bits"),
        (holder(meta={"n": INT_MIN - 1}), "params.meta['n']: integer -9223372036854775809 does not fit in 64 bits"),
        (holder(meta={"a": {1: "x"}}), "params.meta['a']: dict key 1 is not a str (int)"),
        (holder(extra={("t",): 1}), "params.extra: dict key ('t',) is not a str (tuple)"),
        (holder(names=["\ud800"]), "params.names[0]: text holds a lone surrogate"),
        (holder(extra=bytearray(b"x")), "params.extra: cannot serialize bytearray"),
        (holder(names="abc"), "params.names: expected list[str], got str 'abc'"),
        (holder(inner={"tags": []}), "params.inner: expected Bag, got dict"),
    ],
)
def test_unserializable_values_are_refused_naming_the_path(value: Holder, message: str) -> None:
    with pytest.raises(ParamsError) as info:
        P.encode(value)
    assert str(info.value).startswith(message), str(info.value)


def test_an_open_file_is_refused(tmp_path: Path) -> None:
    with open(tmp_path / "f.txt", "w") as handle:
        with pytest.raises(ParamsError, match=r"^params\.extra: cannot serialize an open file \(TextIOWrapper\)"):
            P.encode(holder(extra=handle))
        with pytest.raises(ParamsError, match=r"^params\.inner\.tags\[1\]: cannot serialize an open file"):
            P.encode(holder(inner=Bag(["a", handle])))


def test_recursive_structures_are_refused() -> None:
    loop: list[Any] = ["a"]
    loop.append(loop)
    with pytest.raises(ParamsError, match=r"^params\.extra\[1\]: recursive structure"):
        P.encode(holder(extra=loop))
    cycle: dict[str, Any] = {}
    cycle["self"] = cycle
    with pytest.raises(ParamsError, match=r"^params\.meta\['c'\]\['self'\]: recursive structure"):
        P.encode(holder(meta={"c": cycle}))
    selfish = Bag([])
    selfish.tags.append(selfish)
    with pytest.raises(ParamsError, match=r"^params\.inner\.tags\[0\]: recursive structure"):
        P.encode(holder(inner=selfish))
    shared = [1, 2]  # the same list twice is not a cycle
    assert P.decode(Holder, P.encode(holder(extra=[shared, shared]))).extra == [[1, 2], [1, 2]]


def test_nesting_deeper_than_the_limit_is_refused() -> None:
    deep: list[Any] = []
    cursor = deep
    for _ in range(P.MAX_DEPTH + 5):
        cursor.append([])
        cursor = cursor[0]
    with pytest.raises(ParamsError, match=f"nested deeper than {P.MAX_DEPTH} levels"):
        P.encode(holder(extra=deep))


def test_oversized_params_are_refused() -> None:
    with pytest.raises(ParamsError, match=rf"^params: \d+ bytes serialized, over the limit of {P.MAX_BYTES}"):
        P.encode(holder(names=["x" * (P.MAX_BYTES // 2)] * 3))
    assert P.decode(Holder, P.encode(holder(names=["x" * (P.MAX_BYTES // 2)])))
    with pytest.raises(ParamsError, match="over the limit"):
        P.decode_raw(b"\x00" * (P.MAX_BYTES + 1))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (Number(True), "params.n: expected int, got bool True"),
        (Number(1.0), "params.n: expected int, got float 1.0"),
        (Number("1"), "params.n: expected int, got str '1'"),
        (AllScalars("s", 1, 1.0, 1, None, b"", UUID(int=1), datetime(2026, 1, 1), date(2026, 1, 1),
                    time(), Decimal(1), Color.RED, Level.ONE), "params.b: expected bool, got int 1"),
        (AllScalars("s", 1, 1.0, True, None, b"", UUID(int=1), datetime(2026, 1, 1),
                    datetime(2026, 1, 1), time(), Decimal(1), Color.RED, Level.ONE),
         "params.d: expected date, got datetime"),
        (AllScalars("s", 1, 1.0, True, None, b"", UUID(int=1), datetime(2026, 1, 1), date(2026, 1, 1),
                    time(), Decimal(1), "red", Level.ONE), "params.color: expected Color, got str 'red'"),
        (Clock(time(1, tzinfo=ZoneInfo("Europe/Paris"))),
         "params.t: time 01:00:00 has the zone Europe/Paris but no fixed UTC offset"),
        (Stamp("2026-01-01"), "params.at: expected datetime, got str"),
    ],
)
def test_values_of_the_wrong_type_are_refused(value: Any, message: str) -> None:
    with pytest.raises(ParamsError) as info:
        P.encode(value)
    assert str(info.value).startswith(message), str(info.value)


def test_a_subclass_instance_is_refused_rather_than_truncated() -> None:
    @dataclass
    class Special(Label):
        extra: int = 0

    @dataclass
    class HasLabel:
        label: Label

    with pytest.raises(ParamsError, match=r"^params\.label: expected Label, got Special"):
        P.encode(HasLabel(Special("a")))


def test_encode_wants_a_dataclass_instance() -> None:
    for value in ({"a": 1}, Label, None):
        with pytest.raises(ParamsError, match="^params: expected a dataclass instance"):
            P.encode(value)


# ---------------------------------------------------------------------------
# Declared types checked at registration


@pytest.mark.parametrize(
    ("tp", "message"),
    [
        (set[str], "params: cannot serialize set[str]"),
        (frozenset[int], "params: cannot serialize frozenset[int]"),
        (list[set[int]], "params[]: cannot serialize set[int]"),
        (Widget | None, "params: cannot serialize Widget"),
        (dict[int, str], "params: dict keys must be str, not int"),
        (typing.Callable[[], int], "params: cannot serialize"),
        (list[int] | tuple[int, ...],
         "params: list[int] and tuple[int, ...] in list[int] | tuple[int, ...] look the same"),
        (Color | str, "params: Color and str in Color | str look the same"),
        (int | Level, "params: int and Level"),
        (dict[str, int] | Point, "params: dict[str, int] and Point"),
        (Any | int, "params: any and int"),
        (list[Color] | list[str], "params: list[Color] and list[str]"),
    ],
)
def test_check_type_refuses_what_cannot_be_carried(tp: Any, message: str) -> None:
    with pytest.raises(ParamsError) as info:
        P.check_type(tp)
    assert str(info.value).startswith(message), str(info.value)


def test_check_type_refuses_nested_and_recursive_problems() -> None:
    @dataclass
    class Deep:
        inner: Holder
        labels: dict[str, set[str]]

    with pytest.raises(ParamsError, match=r"^params\.labels\[\]: cannot serialize set\[str\]"):
        P.check_type(Deep)

    @dataclass
    class Twin:
        x: int
        y: int

    with pytest.raises(ParamsError, match="Point and Twin in Point | Twin look the same"):
        P.check_type(Point | Twin)

    class Odd(enum.Enum):
        A = (1, 2)

    with pytest.raises(ParamsError, match=r"^params: Odd\.A has a value of type tuple"):
        P.check_type(Odd)


def test_check_type_accepts_every_supported_type() -> None:
    for tp in [*SCALARS, AllScalars, Mixed, Shapes, Containers, Holder, Any, Any | None,
               list, tuple, dict, int | None, Point | Label, tuple[int, ...] | None]:
        P.check_type(tp)


def test_describe_fields_gives_names_types_and_json_ready_defaults() -> None:
    @dataclass
    class Described:
        title: str
        when: datetime | None = None
        amount: Decimal = Decimal("1.50")
        color: Color = Color.GREEN
        raw: bytes = b"\x00\x01"
        tags: list[str] = field(default_factory=lambda: ["a"])

    assert P.describe_fields(Described) == [
        {"name": "title", "type": "str", "required": True},
        {"name": "when", "type": "datetime | None", "required": False, "default": None},
        {"name": "amount", "type": "Decimal", "required": False, "default": "1.50"},
        {"name": "color", "type": "Color", "required": False, "default": "green"},
        {"name": "raw", "type": "bytes", "required": False, "default": "base64:AAE="},
        {"name": "tags", "type": "list[str]", "required": False, "default": ["a"]},
    ]

    @dataclass
    class BadDefault:
        extra: Any = frozenset({1})

    with pytest.raises(ParamsError, match=r"^params\.extra: cannot serialize frozenset \(the field's default\)"):
        P.describe_fields(BadDefault)


# ---------------------------------------------------------------------------
# Command-line text: -p field=value


@pytest.mark.parametrize("text", ["true", "TRUE", "True", "1", "yes", "Yes", "y", "on", " true "])
def test_bool_true_spellings(text: str) -> None:
    assert P.from_text(text, bool, "params.b") is True


@pytest.mark.parametrize("text", ["false", "False", "0", "no", "NO", "n", "off"])
def test_bool_false_spellings(text: str) -> None:
    assert P.from_text(text, bool, "params.b") is False


U = UUID("6f1f2c0e-3b7a-4c8e-9a55-0d4c1e7b2a10")


@pytest.mark.parametrize(
    ("text", "tp", "want"),
    [
        ("hello world", str, "hello world"),
        ("", str, ""),
        ("a=b", str, "a=b"),
        (" 42 ", int, 42),
        ("-9223372036854775808", int, INT_MIN),
        ("1.5", float, 1.5),
        ("1e3", float, 1000.0),
        ("-inf", float, -math.inf),
        ("hello", bytes, b"hello"),
        ("base64:AAEC", bytes, b"\x00\x01\x02"),
        ("caf\udce9", bytes, b"caf\xe9"),  # a non-UTF-8 argv byte, as Python decodes it
        (str(U), UUID, U),
        (U.hex.upper(), UUID, U),
        ("2026-05-01T09:30:00+02:00", datetime, datetime(2026, 5, 1, 9, 30, tzinfo=timezone(timedelta(hours=2)))),
        ("2026-05-01T09:30:00.123456", datetime, datetime(2026, 5, 1, 9, 30, 0, 123456)),
        ("2026-05-01T09:30:00Z", datetime, datetime(2026, 5, 1, 9, 30, tzinfo=UTC)),
        ("2026-05-01", date, date(2026, 5, 1)),
        ("09:30", time, time(9, 30)),
        ("09:30:00-03:30", time, time(9, 30, tzinfo=timezone(-timedelta(hours=3, minutes=30)))),
        ("1.10", Decimal, Decimal("1.10")),
        ("-1E+999999", Decimal, Decimal("-1E+999999")),
        ("GREEN", Color, Color.GREEN),
        ("green", Color, Color.GREEN),
        ("TWO", Level, Level.TWO),
        ("2", Level, Level.TWO),
        ("[1, 2, 3]", list[int], [1, 2, 3]),
        ('["a", "b"]', list[str], ["a", "b"]),
        ('[1, "a", true]', tuple[int, str, bool], (1, "a", True)),
        ("[1.5, 2]", tuple[float, ...], (1.5, 2.0)),
        ('{"a": 1, "b": 2}', dict[str, int], {"a": 1, "b": 2}),
        ('{"x": 1, "y": 2}', Point, Point(1, 2)),
        ('{"text": "hi"}', Label, Label("hi")),
        ('{"inner": {"tags": ["a"]}}', Holder, Holder(Bag(["a"]))),
        ('["GREEN", "red"]', list[Color], [Color.GREEN, Color.RED]),
        ('{"when": "2026-01-01"}', dict[str, date], {"when": date(2026, 1, 1)}),
        ("null", int | None, None),
        ("none", int | None, None),
        ("5", int | None, 5),
        ("null", str | None, None),
        ("none", str | None, "none"),
        ("null", Point | None, None),
        ("2026-05-01", date | None, date(2026, 5, 1)),
        ("3", int | float, 3),
        ("3.5", int | float, 3.5),
        ("3", float | int, 3),
        ("3", Decimal | int, 3),
        ("3.0", Decimal | int, Decimal("3.0")),
        ("abc", int | str, "abc"),
        ("5", Any, 5),
        ("hello", Any, "hello"),
        ('{"a": [1, 2.5]}', Any, {"a": [1, 2.5]}),
    ],
)
def test_from_text_converts_by_the_declared_type(text: str, tp: Any, want: Any) -> None:
    assert_same(P.from_text(text, tp, "params.x"), want)


@pytest.mark.parametrize(
    ("text", "tp", "message"),
    [
        ("maybe", bool, "params.x: 'maybe' is not a bool; use true/false, yes/no or 1/0"),
        ("abc", int, "params.x: 'abc' is not an int"),
        ("4.5", int, "params.x: '4.5' is not an int"),
        ("abc", float, "params.x: 'abc' is not a float"),
        ("base64:!!", bytes, "params.x: 'base64:!!' is not base64 after 'base64:'"),
        ("nope", UUID, "params.x: 'nope' is not a UUID"),
        ("2026-13-01T00:00", datetime, "params.x: '2026-13-01T00:00' is not a real datetime: month must be in 1..12"),
        ("tomorrow", date, "params.x: 'tomorrow' is not an ISO 8601 date"),
        ("25:00", time, "params.x: '25:00' is not a real time: hour must be in 0..23"),
        ("1,5", Decimal, "params.x: '1,5' is not a decimal number"),
        ("urgent", Color, "params.x: 'urgent' is not one of Color: RED, GREEN"),
        ("3", Level, "params.x: '3' is not one of Level: ONE, TWO, BIG"),
        ("1,2", list[int], "params.x: invalid JSON at line 1 column 2"),
        ('[1, "a"]', list[int], "params.x[1]: expected int, got a string (\"a\")"),
        ("[1]", tuple[int, str], "params.x: expected 2 items, got 1"),
        ('{"a": "b"}', dict[str, int], "params.x['a']: expected int, got a string"),
        ('{"x": 1}', Point, "params.x.y: missing required field (int)"),
        ('{"x": 1, "y": 2, "z": 3}', Point, "params.x.z: unknown field; Point has: x, y"),
        ("[1]", Point, "params.x: expected Point, got an array"),
        ("abc", int | None, "params.x: 'abc' is not an int"),
        ("abc", int | float, "params.x: expected int | float, got 'abc'"),
    ],
)
def test_from_text_names_the_field_and_the_problem(text: str, tp: Any, message: str) -> None:
    with pytest.raises(ParamsError) as info:
        P.from_text(text, tp, "params.x")
    assert str(info.value).startswith(message), str(info.value)


# ---------------------------------------------------------------------------
# JSON: --params-json / --params-file


@pytest.mark.parametrize(
    ("json_value", "tp", "want"),
    [
        ('"s"', str, "s"),
        ("7", int, 7),
        ("18446744073709551615", int, INT_MAX),
        ("1.5", float, 1.5),
        ("2", float, 2.0),
        ('"NaN"', float, math.nan),
        ("true", bool, True),
        ("null", type(None), None),
        ('"base64:AAE="', bytes, b"\x00\x01"),
        ('"text"', bytes, b"text"),
        (f'"{U}"', UUID, U),
        ('"2026-05-01T09:30:00-07:00"', datetime, datetime(2026, 5, 1, 9, 30, tzinfo=timezone(timedelta(hours=-7)))),
        ('"2026-05-01"', date, date(2026, 5, 1)),
        ('"09:30:15.5"', time, time(9, 30, 15, 500000)),
        ("0.1", Decimal, Decimal("0.1")),
        ("1.10", Decimal, Decimal("1.10")),
        ('"1E+400"', Decimal, Decimal("1E+400")),
        ("12", Decimal, Decimal(12)),
        ('"RED"', Color, Color.RED),
        ('"red"', Color, Color.RED),
        ("2", Level, Level.TWO),
        ('"ONE"', Level, Level.ONE),
        ("[1, 2]", list[int], [1, 2]),
        ('[1, "a"]', tuple[int, str], (1, "a")),
        ("[]", tuple[int, ...], ()),
        ('{"a": [1.5]}', dict[str, list[float]], {"a": [1.5]}),
        ('{"x": 1, "y": 2}', Point, Point(1, 2)),
        ("null", Point | None, None),
        ('{"text": "t", "size": 3}', Label | None, Label("t", 3)),
        ('{"text": "t"}', Point | Label, Label("t")),
        ("3", float | int, 3),
        ("3.5", int | float, 3.5),
        ('"x"', int | str, "x"),
        ("[1, 2.5]", Any, [1, 2.5]),
    ],
)
def test_from_json_converts_by_the_declared_type(json_value: str, tp: Any, want: Any) -> None:
    assert_same(P.from_json(P.parse_json(json_value, "params.x"), tp, "params.x"), want)


@pytest.mark.parametrize(
    ("json_value", "tp", "message"),
    [
        ("5", str, "params.x: expected str, got a number (5)"),
        ('"5"', int, 'params.x: expected int, got a string ("5")'),
        ("1.5", int, "params.x: expected int, got a number (1.5)"),
        ("true", int, "params.x: expected int, got a boolean (true)"),
        ('"yes"', bool, 'params.x: expected bool, got a string ("yes")'),
        ("1", bool, "params.x: expected bool, got a number (1)"),
        ("null", int, "params.x: expected int, got null"),
        ("[1]", str, "params.x: expected str, got an array"),
        ('{"a": 1}', list[int], "params.x: expected list[int], got an object"),
        ("true", Level, "params.x: True is not one of Level"),
        ('"purple"', Color, "params.x: 'purple' is not one of Color: RED, GREEN"),
        ('"2026-02-30"', date, "params.x: '2026-02-30' is not a real date: day is out of range"),
        ('{"x": "1", "y": 2}', Point, 'params.x.x: expected int, got a string ("1")'),
        ("[1, 2, 3]", tuple[int, int], "params.x: expected 2 items, got 3"),
        ('"abc"', int | None, 'params.x: expected int, got a string ("abc")'),
        ('"abc"', int | float, "params.x: expected int | float, got a string"),
    ],
)
def test_from_json_refuses_wrong_types_naming_the_field(json_value: str, tp: Any, message: str) -> None:
    with pytest.raises(ParamsError) as info:
        P.from_json(P.parse_json(json_value, "params.x"), tp, "params.x")
    assert str(info.value).startswith(message), str(info.value)


def test_parse_json_errors() -> None:
    with pytest.raises(ParamsError, match=r"^params: invalid JSON at line 1 column 2"):
        P.parse_json("{bad", "params")
    with pytest.raises(ParamsError, match=r"^params: JSON nested deeper than"):
        P.parse_json("[" * 100_000 + "]" * 100_000, "params")
    with pytest.raises(ParamsError, match=r"^params: invalid JSON"):
        P.parse_json("1e99999999999999999999", "params")


@dataclass
class Job:
    title: str
    count: int = 1
    when: date | None = None
    color: Color = Color.RED
    inner: Label | None = None


def test_from_inputs_combines_json_and_pairs_pairs_winning() -> None:
    got = P.from_inputs(Job, ["count=5", "color=GREEN"], '{"title": "t", "count": 2, "when": "2026-01-02"}')
    assert got == Job("t", 5, date(2026, 1, 2), Color.GREEN)
    assert P.from_inputs(Job, ["title=x", 'inner={"text": "l"}']) == Job("x", inner=Label("l"))
    assert P.from_inputs(Job, ["title=a=b", "when=null"]) == Job("a=b")


@pytest.mark.parametrize(
    ("pairs", "json_text", "message"),
    [
        ([], None, "params.title: missing required field (str); pass -p title=..."),
        (["title=x", "nope=1"], None, "params.nope: unknown field; Job has: title, count, when, color, inner"),
        ([], '{"title": "x", "nope": 1}', "params.nope: unknown field"),
        (["title"], None, "params: 'title' is not field=value"),
        (["=x"], None, "params: '=x' is not field=value"),
        (["title=x", "count=many"], None, "params.count: 'many' is not an int"),
        ([], '{"title": 5}', "params.title: expected str, got a number (5)"),
        ([], "[1]", "params: expected a JSON object, got an array"),
        ([], "{", "params: invalid JSON at line 1 column 2"),
        (["title=x", 'inner={"text": "a", "bad": 1}'], None, "params.inner.bad: unknown field; Label has: text, size"),
        (["title=x", "count=99999999999999999999999"], None, None),
    ],
)
def test_from_inputs_refuses_bad_input(pairs: list[str], json_text: str | None, message: str | None) -> None:
    if message is None:  # converts, then the codec refuses it when encoding
        with pytest.raises(ParamsError, match=r"^params\.count: integer .* does not fit in 64 bits"):
            P.encode(P.from_inputs(Job, pairs, json_text))
        return
    with pytest.raises(ParamsError) as info:
        P.from_inputs(Job, pairs, json_text)
    assert str(info.value).startswith(message), str(info.value)


@FAST
@given(st.builds(
    AllScalars, s=st.text(), i=ints_64, f=st.floats(), b=st.booleans(), n=st.none(), raw=st.binary(),
    u=st.uuids(), dt=datetimes_any.map(lambda d: d.replace(fold=0)), d=st.dates(),
    t=times_any.map(lambda t: t.replace(fold=0)), dec=decimals_any.filter(lambda d: not d.is_snan()),
    color=st.sampled_from(Color), level=st.sampled_from(Level),
))
def test_the_json_display_converts_back_to_the_same_params(value: AllScalars) -> None:
    """What `--json` shows for params is accepted back by --params-json."""
    import json

    shown = json.dumps(P.to_jsonable(P.decode_raw(P.encode(value))), allow_nan=False)
    back = P.from_inputs(AllScalars, None, shown)
    assert_same(back, value)
