"""Encode and decode of a mid-size parameters object, against the codec of another commit.

    python benchmarks/bench_params.py [--baseline REV] [--repeats 7] [--number 2000]

The baseline codec is read from git (``REV:bgproc/params.py``, or the
``bgproc/params/`` package) and loaded beside the current one, so both are
timed in the same run, in turns; each figure is the best of the repeats, and
the ratio is current / baseline (below 1: the current codec is faster).
"""

from __future__ import annotations

import argparse
import enum
import importlib.util
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any
from uuid import UUID

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bgproc import params as current  # noqa: E402


class Status(enum.Enum):
    OPEN = "open"
    DONE = "done"


@dataclass
class Line:
    sku: str
    quantity: int
    price: Decimal
    note: str | None = None


@dataclass
class Address:
    street: str
    city: str
    zip: str
    country: str = "DE"


@dataclass
class Order:
    id: UUID
    customer: str
    created: datetime
    due: date
    status: Status
    lines: list[Line]
    shipping: Address
    billing: Address | None
    tags: list[str] = field(default_factory=list)
    totals: dict[str, float] = field(default_factory=dict)
    weight: float | int = 0
    window: tuple[int, int] = (9, 17)
    retries: int = 3
    urgent: bool = False
    extra: Any = None


def sample() -> Order:
    zone = timezone(timedelta(hours=2))
    return Order(
        id=UUID(int=123456789),
        customer="Acme Corporation GmbH",
        created=datetime(2026, 5, 1, 9, 30, tzinfo=zone),
        due=date(2026, 6, 1),
        status=Status.OPEN,
        lines=[Line(f"SKU-{i:05d}", i % 7 + 1, Decimal(f"{i}.99"), None if i % 3 else "gift wrap") for i in range(40)],
        shipping=Address("Hauptstraße 1", "Berlin", "10115"),
        billing=Address("Postfach 12", "Hamburg", "20095", "DE"),
        tags=["priority", "b2b", "export"],
        totals={"net": 1234.5, "tax": 234.56, "gross": 1469.06},
        weight=12.5,
        extra={"source": "api", "attempt": 2, "flags": [True, False]},
    )


def baseline_codec(rev: str) -> ModuleType:
    """The codec as it was at ``rev``, importable beside the current one."""
    scratch = Path(tempfile.mkdtemp(prefix="bgproc-bench-params-"))
    single = subprocess.run(["git", "show", f"{rev}:bgproc/params.py"], cwd=ROOT, capture_output=True, text=True)
    name = "bgproc._baseline_params"
    if single.returncode == 0:
        path = scratch / "params.py"
        path.write_text(single.stdout)
        spec = importlib.util.spec_from_file_location(name, path)
    else:
        listing = subprocess.run(
            ["git", "ls-tree", "--name-only", f"{rev}:bgproc/params"], cwd=ROOT, capture_output=True, text=True,
            check=True,
        ).stdout.split()
        package = scratch / "params"
        package.mkdir()
        for entry in listing:
            text = subprocess.run(["git", "show", f"{rev}:bgproc/params/{entry}"], cwd=ROOT, capture_output=True,
                                  text=True, check=True).stdout
            (package / entry).write_text(text)
        spec = importlib.util.spec_from_file_location(
            name, package / "__init__.py", submodule_search_locations=[str(package)]
        )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def per_call(action: Callable[[], Any], number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        action()
    return (time.perf_counter() - start) / number


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", default="main", help="the git revision to compare with (default: main)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--number", type=int, default=2000)
    args = parser.parse_args()
    old = baseline_codec(args.baseline)
    value = sample()
    data = current.encode(value)
    assert old.encode(value) == data, "the two codecs write different bytes"
    assert old.decode(Order, data) == current.decode(Order, data) == value
    cases = {
        "encode": (lambda: old.encode(value), lambda: current.encode(value)),
        "decode": (lambda: old.decode(Order, data), lambda: current.decode(Order, data)),
    }
    print(f"a {len(data)}-byte Order ({len(value.lines)} lines); baseline {args.baseline}; best of {args.repeats}")
    for label, (before, after) in cases.items():
        times: dict[str, list[float]] = {"before": [], "after": []}
        for _ in range(args.repeats):  # in turns, so load on the machine hits both alike
            times["before"].append(per_call(before, args.number))
            times["after"].append(per_call(after, args.number))
        b, a = min(times["before"]), min(times["after"])
        print(f"{label}: baseline {b * 1e6:8.1f} us, current {a * 1e6:8.1f} us, ratio {a / b:.2f}")


if __name__ == "__main__":
    main()
