"""The wire format does not change: bytes and a database that bgproc wrote before
its codec was rebuilt (tests/fixtures/wire/, see write_fixtures.py there) decode,
encode and show exactly as they did."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import msgpack
import pytest
from conftest import Result, run_bgproc

from bgproc import params as P

FIXTURES = Path(__file__).resolve().parent / "fixtures"
WIRE = FIXTURES / "wire"


def _wire_tasks() -> ModuleType:
    """The fixture's task module, under the name the database registered it by."""
    if "wire_tasks" not in sys.modules:
        spec = importlib.util.spec_from_file_location("wire_tasks", FIXTURES / "wire_tasks.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["wire_tasks"] = module
        spec.loader.exec_module(module)
    return sys.modules["wire_tasks"]


CASES: dict[str, dict[str, Any]] = json.loads((WIRE / "encoded.json").read_text())["cases"]
EXPECTED: dict[str, Any] = json.loads((WIRE / "expected.json").read_text())


def _sent_and_back(name: str) -> tuple[Any, Any]:
    tasks = _wire_tasks()
    if name == "any-forms":
        return tasks.ANY_FORMS
    return tasks.SAMPLES[name], tasks.SAMPLES[name]


@pytest.mark.parametrize("name", sorted(CASES))
def test_bytes_written_before_decode_to_equal_values_and_encode_to_the_same_bytes(name: str) -> None:
    case = CASES[name]
    data = bytes.fromhex(case["hex"])
    sent, back = _sent_and_back(name)
    assert type(sent).__name__ == case["class"]
    decoded = P.decode(type(sent), data)
    assert _wire_tasks().differences(decoded, back) == []
    assert P.encode(decoded) == data
    assert P.encode(sent) == data
    assert P.to_jsonable(P.decode_raw(data)) == case["json"]


def test_the_fixture_bytes_hold_every_extension_type() -> None:
    """A guard on the fixture itself."""
    seen: set[int] = set()

    def note(code: int, data: bytes) -> None:
        seen.add(code)

    msgpack.unpackb(bytes.fromhex(CASES["full"]["hex"]), ext_hook=note, raw=False)
    assert seen == {P.EXT_UUID, P.EXT_DATETIME, P.EXT_DATE, P.EXT_TIME, P.EXT_DECIMAL}


@pytest.fixture
def old_db(db: Path) -> Path:
    """A copy of the database written before the change (git checks it out 0644; bgproc wants 0600)."""
    db.parent.mkdir(mode=0o700)
    shutil.copy(WIRE / "before-codec.db", db)
    os.chmod(db, 0o600)
    return db


def _params_by_id(listed: list[dict[str, Any]]) -> dict[int, Any]:
    return {r["id"]: (r["task"], r["params"]) for r in listed}


def _expected_params() -> dict[int, Any]:
    return {r["id"]: (r["task"], r["params"]) for r in EXPECTED["requests"]}


def _register(cli: Callable[..., Result]) -> None:
    _wire_tasks()
    registered = cli("register", str(FIXTURES / "wire_tasks.py"))
    assert registered.code == 0, registered.err


def test_an_old_database_shows_the_same_parameters(old_db: Path, cli: Callable[..., Result]) -> None:
    listed = cli("requests", "--json")
    assert listed.code == 0, listed.err
    assert _params_by_id(listed.json()) == _expected_params()
    # registering again decodes every pending request by its task's parameters
    _register(cli)
    tasks = cli("tasks", "--json")
    assert {t["name"]: t["params"] for t in tasks.json()} == EXPECTED["tasks"]
    for request_id, params in EXPECTED["run"].items():
        shown = cli("run", request_id, "--json")
        assert shown.code == 0, shown.err
        assert shown.json()["params"] == params
    assert _params_by_id(cli("requests", "--json").json()) == _expected_params()


@pytest.mark.daemon
def test_an_old_database_runs_each_request_with_its_exact_parameters(
    old_db: Path, cli: Callable[..., Result]
) -> None:
    _register(cli)
    for request_id in EXPECTED["run"]:
        assert cli("run", request_id).code == 0
    done = run_bgproc(old_db, "daemon", "--once", "--workers", "2", timeout=60)
    assert done.code == 0, done.err
    runs = cli("monitor", "--json").json()
    got = {
        str(r["request_id"]): {
            "status": r["status"],
            "printed": [line.split(" ", 1)[1] for line in r["log"].splitlines() if "wire params" in line],
        }
        for r in runs
    }
    assert got == EXPECTED["runs"]
    assert all(run["status"] == "success" for run in got.values())
