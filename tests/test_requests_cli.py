"""Registering tasks and making process requests, through the command line
(in-process, against a per-test database) and the Python API.

Every bad input must exit non-zero with exactly one `bgproc:` line on stderr,
no traceback, nothing on stdout, and the database exactly as it was."""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import shutil
import sys
import textwrap
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pgserver
import pytest
from conftest import (
    ROOT,
    SAMPLE,
    Result,
    Target,
    cli_on,
    insert_runs,
    is_url,
    query,
    run_bgproc,
    snapshot,
    target_on,
)

import bgproc
from bgproc import params as P
from bgproc.errors import BgprocError, ParamsError, RegistryError, StoreError, TimingError
from bgproc.store import open_store

FIXTURES = Path(__file__).resolve().parent / "fixtures"
GOOD = FIXTURES / "good_tasks.py"
BAD_TYPES = FIXTURES / "bad_types.py"
BROKEN = FIXTURES / "broken_module.py"
DUP_A = FIXTURES / "dup_a.py"
DUP_B = FIXTURES / "dup_b.py"
REQUEST_KEYS = {"id", "task", "status", "timing", "params", "next_run_at", "start", "finish", "timezone"}

Cli = Callable[..., Result]

pytestmark = pytest.mark.both_stores


@pytest.fixture(autouse=True)
def isolated_imports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test imports task modules afresh, as a new `bgproc` process would."""
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    saved_path = list(sys.path)
    before = set(sys.modules)
    yield
    sys.path[:] = saved_path
    roots = (str(FIXTURES), str(tmp_path))
    for name in set(sys.modules) - before:
        file = getattr(sys.modules[name], "__file__", None) or ""
        if file.startswith(roots):
            del sys.modules[name]


def ok(result: Result) -> Result:
    assert result.code == 0, f"exit {result.code}: {result.err}"
    assert "Traceback" not in result.err
    return result


def assert_refused(result: Result, *words: str) -> str:
    """Non-zero, one `bgproc:` line on stderr naming the problem, no traceback, no stdout."""
    assert result.code != 0, result.out
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    line = lines[0]
    assert line.startswith("bgproc:"), line
    assert "Traceback" not in result.err and "Traceback" not in result.out
    assert result.out == "", result.out
    for word in words:
        assert word in line, f"{word!r} not in {line!r}"
    return line


def schedule_id(result: Result) -> int:
    ok(result)
    return int(result.out.strip())


def requests_json(cli: Cli, *args: str) -> list[dict[str, Any]]:
    return ok(cli("requests", "--json", *args)).json()


def request_json(cli: Cli, request_id: int) -> dict[str, Any]:
    return next(r for r in requests_json(cli, "--all") if r["id"] == request_id)


def write_module(directory: Path, name: str, source: str) -> Path:
    path = directory / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return path


def stored_params(db: Path, request_id: int) -> bytes:
    return query(db, "SELECT params FROM requests WHERE id = ?", request_id)[0]["params"]


def good_module() -> Any:
    return importlib.import_module("good_tasks")


# ---------------------------------------------------------------------------
# Registering


def test_register_records_every_task_class_with_fields_types_and_defaults(cli: Cli) -> None:
    out = ok(cli("register", str(GOOD))).out
    assert out.strip() == "registered good_tasks: Bare, EveryType, Greet"
    tasks = {t["name"]: t for t in ok(cli("tasks", "--json")).json()}
    assert sorted(tasks) == ["Bare", "EveryType", "Greet"]
    greet = tasks["Greet"]
    assert greet["import_path"] == "good_tasks:Greet"
    assert greet["description"] == "Greets someone a few times."
    assert greet["timeout_s"] == 3600.0
    assert greet["params"] == [
        {"name": "who", "type": "str", "required": True},
        {"name": "times", "type": "int", "required": False, "default": 1},
    ]
    fields = {f["name"]: f for f in tasks["EveryType"]["params"]}
    assert tasks["EveryType"]["timeout_s"] == 60.0
    assert {n: f["type"] for n, f in fields.items()} == {
        "name": "str", "count": "int", "ratio": "float", "enabled": "bool", "note": "str | None",
        "blob": "bytes", "ident": "UUID | None", "when": "datetime | None", "day": "date | None",
        "at": "time | None", "amount": "Decimal", "priority": "Priority", "level": "Level",
        "tags": "list[str]", "pair": "tuple[int, str]", "scores": "dict[str, int]",
        "inner": "Inner | None", "extra": "any",
    }
    assert fields["amount"]["default"] == "0" and fields["priority"]["default"] == "low"
    assert fields["pair"]["default"] == [0, ""] and fields["blob"]["default"] == "base64:"
    assert tasks["Bare"]["params"] == []
    table = ok(cli("tasks")).out
    assert "Greet" in table and "who: str" in table and "times: int = 1" in table


def test_register_by_dotted_name_from_the_working_directory(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    ok(cli("register", "sample_tasks.activities"))
    names = {t["name"]: t["import_path"] for t in ok(cli("tasks", "--json")).json()}
    assert names["BackgroundActivityCreator"] == "sample_tasks.activities:BackgroundActivityCreator"


def test_register_by_dotted_name_on_pythonpath_in_a_real_process(db: Path, tmp_path: Path) -> None:
    path = os.pathsep.join([str(FIXTURES), str(ROOT)])
    result = run_bgproc(db, "register", "good_tasks", PYTHONPATH=path)
    assert result.code == 0, result.err
    assert "registered good_tasks" in result.out
    broken = run_bgproc(db, "register", "broken_module", PYTHONPATH=path)
    assert broken.code != 0 and "Traceback" not in broken.err
    assert broken.err.splitlines() == [
        "bgproc: error: cannot import broken_module: ModuleNotFoundError: "
        "No module named 'bgproc_missing_dependency_for_tests'"
    ]


def test_reregistering_updates_fields_and_unregisters_tasks_that_are_gone(
    cli: Cli, db: Path, tmp_path: Path
) -> None:
    v1 = '''
        from dataclasses import dataclass
        from bgproc import BackgroundTask

        @dataclass
        class EvolveParams:
            a: int

        class Evolve(BackgroundTask[EvolveParams]):
            """Version one."""
            def run(self, params): pass
    '''
    v2 = '''
        from dataclasses import dataclass
        from bgproc import BackgroundTask

        @dataclass
        class EvolveParams:
            a: int
            b: str = "x"

        class Evolve(BackgroundTask[EvolveParams]):
            """Version two, with more."""
            def run(self, params): pass

        class Sidekick(BackgroundTask):
            def run(self, params): pass
    '''
    path = write_module(tmp_path, "evolving_tasks", v1)
    ok(cli("register", str(path)))
    first = {t["name"]: t for t in ok(cli("tasks", "--json")).json()}["Evolve"]
    assert [f["name"] for f in first["params"]] == ["a"]

    def reload(source: str) -> None:
        path.write_text(textwrap.dedent(source))
        sys.modules.pop("evolving_tasks", None)
        importlib.invalidate_caches()

    reload(v2)
    assert ok(cli("register", str(path))).out.strip() == "registered evolving_tasks: Evolve, Sidekick"
    tasks = {t["name"]: t for t in ok(cli("tasks", "--json")).json()}
    assert sorted(tasks) == ["Evolve", "Sidekick"]
    assert tasks["Evolve"]["description"] == "Version two, with more."
    assert tasks["Evolve"]["params"][1] == {"name": "b", "type": "str", "required": False, "default": "x"}
    assert tasks["Evolve"]["registered_at"] == first["registered_at"]
    assert len(query(db, "SELECT * FROM tasks")) == 2

    # a task that vanished while requests wait for it is a mistake until shown otherwise
    request = schedule_id(cli("schedule", "Sidekick"))
    other = schedule_id(cli("schedule", "Sidekick", "--daily"))
    reload(v1)
    before = snapshot(db)
    line = assert_refused(cli("register", str(path)), "task Sidekick (from evolving_tasks) is not in the module")
    assert "2 pending request(s)" in line and f"bgproc unschedule {request} {other}" in line
    assert snapshot(db) == before

    unscheduled = ok(cli("unschedule", str(request), str(other), "--json")).json()
    assert [r["status"] for r in unscheduled] == ["unscheduled", "unscheduled"]
    sys.modules.pop("evolving_tasks", None)
    out = ok(cli("register", str(path))).out
    assert "Sidekick is no longer in evolving_tasks: unregistered" in out
    assert [t["name"] for t in ok(cli("tasks", "--json")).json()] == ["Evolve"]


def test_another_file_of_the_same_module_name_does_not_silently_replace_the_first(
    cli: Cli, db: Path, tmp_path: Path
) -> None:
    source = "from bgproc import BackgroundTask\nclass {0}(BackgroundTask):\n    def run(self, p): pass\n"
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    first = write_module(tmp_path / "one", "samename_tasks", source.format("First"))
    second = write_module(tmp_path / "two", "samename_tasks", source.format("Second"))
    ok(cli("register", str(first)))
    sys.modules.pop("samename_tasks", None)
    before = snapshot(db)
    assert_refused(cli("register", str(second)), f"module samename_tasks was registered from {tmp_path / 'one'}",
                   "task First there is not in the one from", "bgproc unregister First")
    assert snapshot(db) == before
    ok(cli("unregister", "First"))
    sys.modules.pop("samename_tasks", None)
    ok(cli("register", str(second)))
    assert [t["name"] for t in ok(cli("tasks", "--json")).json()] == ["Second"]


def test_unschedule_takes_several_ids_all_or_none(cli: Cli, db: Path) -> None:
    ok(cli("register", str(GOOD)))
    a = schedule_id(cli("schedule", "Greet", "-p", "who=a", "--daily"))
    b = schedule_id(cli("schedule", "Greet", "-p", "who=b", "--daily"))
    ok(cli("unschedule", str(b)))
    before = snapshot(db)
    assert_refused(cli("unschedule", str(a), str(b)), f"request {b} is unscheduled, not scheduled")
    assert_refused(cli("unschedule", str(a), "999"), "no request with id 999")
    assert snapshot(db) == before
    ok(cli("reschedule", str(b)))
    assert ok(cli("unschedule", str(a), str(b))).out.splitlines() == [
        f"request {a} unscheduled", f"request {b} unscheduled"
    ]


def test_unregister_keeps_history_and_reregistering_brings_the_task_back(cli: Cli, db: Path) -> None:
    ok(cli("register", str(GOOD)))
    first = schedule_id(cli("schedule", "Greet", "-p", "who=Ann"))
    second = schedule_id(cli("schedule", "Greet", "-p", "who=Bob", "--every", "5m"))
    assert ok(cli("unregister", "Greet")).out.strip() == "unregistered Greet; unscheduled 2 requests"
    assert "Greet" not in [t["name"] for t in ok(cli("tasks", "--json")).json()]
    assert requests_json(cli) == []
    history = requests_json(cli, "--all")
    assert [(r["id"], r["status"], r["params"]["who"]) for r in history] == [
        (first, "unscheduled", "Ann"), (second, "unscheduled", "Bob"),
    ]
    row = query(db, "SELECT * FROM tasks WHERE name = 'Greet'")[0]
    assert row["unregistered_at"] is not None
    assert_refused(cli("schedule", "Greet", "-p", "who=C"), "unknown task 'Greet'")
    assert_refused(cli("reschedule", str(second)), "Greet", "not registered")

    ok(cli("register", str(GOOD)))
    assert ok(cli("reschedule", str(second))).out.startswith(f"request {second} scheduled")
    assert request_json(cli, second)["status"] == "scheduled"


# ---------------------------------------------------------------------------
# Scheduling and the request lifecycle


def test_schedule_prints_the_id_and_json_has_the_documented_keys(cli: Cli, db: Path) -> None:
    ok(cli("register", str(GOOD)))
    first = schedule_id(cli("schedule", "Greet", "-p", "who=Ann"))
    result = ok(cli("schedule", "good_tasks:Greet", "-p", "who=Bob", "-p", "times=3", "--json",
                    "--every", "10m", "--timeout", "90s", "--allow-overlap"))
    document = result.json()
    assert REQUEST_KEYS <= set(document)
    assert document["id"] == first + 1
    assert document["task"] == "Greet" and document["status"] == "scheduled"
    assert document["params"] == {"who": "Bob", "times": 3}
    assert document["timing"]["kind"] == "every" and document["timing"]["every"] == "10m"
    assert document["timeout_s"] == 90.0 and document["allow_overlap"] is True
    assert document["finish"] is None and document["timezone"]
    assert datetime.fromisoformat(document["next_run_at"]).utcoffset() is not None
    assert datetime.fromisoformat(document["start"]) <= datetime.fromisoformat(document["next_run_at"])
    assert P.decode(good_module().GreetParams, stored_params(db, first)) == good_module().GreetParams("Ann")


def test_an_empty_or_blank_user_is_refused_and_nothing_is_written(cli: Cli, db: Path) -> None:
    ok(cli("register", str(GOOD)))
    before = snapshot(db)
    line = assert_refused(cli("schedule", "Greet", "-p", "who=A", "--user", ""))
    assert line == "bgproc: error: --user is empty; give a name, or leave --user out for the OS user"
    line = assert_refused(cli("schedule", "Greet", "-p", "who=A", "--user", "   "))
    assert line == "bgproc: error: --user is only white space; give a name, or leave --user out for the OS user"
    assert snapshot(db) == before
    with pytest.raises(BgprocError, match="--user is only white space"):
        bgproc.start_new("Greet", good_module().GreetParams("x"), db=db, user="\t")
    with pytest.raises(BgprocError, match="--user 5 is not a name; give a string"):
        bgproc.start_new("Greet", good_module().GreetParams("x"), db=db, user=5)  # type: ignore[arg-type]
    assert snapshot(db) == before
    made = schedule_id(cli("schedule", "Greet", "-p", "who=A", "--user", "ann"))
    assert request_json(cli, made)["user"] == "ann"


def test_requests_lists_a_request_whose_recovery_is_waiting(cli: Cli, db: Path) -> None:
    ok(cli("register", str(GOOD)))
    made = schedule_id(cli("schedule", "Greet", "-p", "who=A", "--recover"))
    done = schedule_id(cli("schedule", "Greet", "-p", "who=B"))
    now = datetime.now(UTC)
    with open_store(db) as store:
        first, second = (c.run_id for c in store.claim_due("d", now, now, 2, registered=False).runs)
        store.finish_run(first, status="interrupted", ended_at=now)  # an interrupted --recover run
        store.finish_run(second, status="interrupted", ended_at=now)
    shown = requests_json(cli)
    assert [r["id"] for r in shown] == [made]
    assert (shown[0]["status"], shown[0]["next_run_at"], shown[0]["follow_up_reason"]) == ("complete", None, "recovery")
    assert datetime.fromisoformat(shown[0]["follow_up_at"]) == now
    assert request_json(cli, done)["follow_up_at"] is None
    table = ok(cli("requests")).out
    assert "Greet" in table and "complete" in table and "(recovery)" in table
    assert not ok(cli("requests")).out.startswith("no scheduled requests")


def test_requests_lists_only_scheduled_ones_without_all(cli: Cli) -> None:
    ok(cli("register", str(GOOD)))
    assert ok(cli("requests")).out.startswith("no scheduled requests")
    a = schedule_id(cli("schedule", "Greet", "-p", "who=A"))
    b = schedule_id(cli("schedule", "Bare", "--every", "1h"))
    c = schedule_id(cli("schedule", "Greet", "-p", "who=C", "--daily", "--start", "09:00"))
    ok(cli("unschedule", str(b)))
    assert [r["id"] for r in requests_json(cli)] == [a, c]
    assert [(r["id"], r["status"]) for r in requests_json(cli, "--all")] == [
        (a, "scheduled"), (b, "unscheduled"), (c, "scheduled"),
    ]
    table = ok(cli("requests")).out
    assert "Greet" in table and "Bare" not in table
    assert "Bare" in ok(cli("requests", "--all")).out


def test_unschedule_and_reschedule_change_status_and_timing(cli: Cli) -> None:
    ok(cli("register", str(GOOD)))
    rid = schedule_id(cli("schedule", "Greet", "-p", "who=A", "--every", "30m"))
    assert ok(cli("unschedule", str(rid))).out.strip() == f"request {rid} unscheduled"
    gone = request_json(cli, rid)
    assert gone["status"] == "unscheduled" and gone["next_run_at"] is None

    back = ok(cli("reschedule", str(rid), "--json")).json()
    assert back["status"] == "scheduled" and back["timing"]["every"] == "30m"
    assert back["next_run_at"] is not None

    ok(cli("unschedule", str(rid), "--json"))
    changed = ok(cli("reschedule", str(rid), "--cron", "0 9 * * mon-fri", "--json")).json()
    assert changed["status"] == "scheduled" and changed["timing"]["kind"] == "cron"
    assert changed["timing"]["cron"] == "0 9 * * mon-fri"
    assert datetime.fromisoformat(changed["next_run_at"]).astimezone(
        __import__("zoneinfo").ZoneInfo(changed["timezone"])
    ).hour == 9

    # a scheduled request takes a new timing directly
    daily = ok(cli("reschedule", str(rid), "--daily", "--start", "07:15", "--json")).json()
    assert daily["timing"]["kind"] == "daily" and daily["status"] == "scheduled"
    upcoming = ok(cli("upcoming", str(rid), "-n", "3", "--json")).json()
    assert len(upcoming["next"]) == 3


def test_every_parameter_type_travels_from_the_command_line(cli: Cli, db: Path) -> None:
    ok(cli("register", str(GOOD)))
    g = good_module()
    uid = "6f1f2c0e-3b7a-4c8e-9a55-0d4c1e7b2a10"
    rid = schedule_id(cli(
        "schedule", "EveryType",
        "-p", "name=Jo = Jo", "-p", "count=-9223372036854775808", "-p", "ratio=2.5",
        "-p", "enabled=yes", "-p", "note=null", "-p", "blob=base64:AAEC", "-p", f"ident={uid}",
        "-p", "when=2026-05-01T09:30:00.000001+05:45", "-p", "day=2026-02-28",
        "-p", "at=23:59:59-03:30", "-p", "amount=1.10", "-p", "priority=HIGH", "-p", "level=2",
        "-p", 'tags=["a", "b"]', "-p", 'pair=[7, "seven"]', "-p", 'scores={"x": 1}',
        "-p", 'inner={"label": "in"}', "-p", 'extra={"free": [1, "form"]}',
    ))
    got = P.decode(g.EveryTypeParams, stored_params(db, rid))
    assert got == g.EveryTypeParams(
        name="Jo = Jo", count=-(2**63), ratio=2.5, enabled=True, note=None, blob=b"\x00\x01\x02",
        ident=UUID(uid), when=datetime(2026, 5, 1, 9, 30, 0, 1, tzinfo=timezone(timedelta(hours=5, minutes=45))),
        day=date(2026, 2, 28), at=time(23, 59, 59, tzinfo=timezone(-timedelta(hours=3, minutes=30))),
        amount=Decimal("1.10"), priority=g.Priority.HIGH, level=g.Level.TWO, tags=["a", "b"],
        pair=(7, "seven"), scores={"x": 1}, inner=g.Inner("in"), extra={"free": [1, "form"]},
    )
    assert str(got.amount) == "1.10" and got.when.utcoffset() == timedelta(hours=5, minutes=45)
    shown = request_json(cli, rid)["params"]
    assert shown["blob"] == "base64:AAEC" and shown["amount"] == "1.10" and shown["priority"] == "high"
    assert shown["when"] == "2026-05-01T09:30:00.000001+05:45"

    # what --json shows is accepted back by --params-json, to the same parameters
    again = schedule_id(cli("schedule", "EveryType", "--params-json", json.dumps(shown)))
    assert P.decode(g.EveryTypeParams, stored_params(db, again)) == got


def test_params_json_and_params_file_with_pairs_overriding(cli: Cli, db: Path, tmp_path: Path) -> None:
    ok(cli("register", str(GOOD)))
    g = good_module()
    rid = schedule_id(cli("schedule", "Greet", "--params-json", '{"who": "J", "times": 2}', "-p", "times=4"))
    assert P.decode(g.GreetParams, stored_params(db, rid)) == g.GreetParams("J", 4)
    file = tmp_path / "params.json"
    file.write_text(
        '{"name": "f", "amount": 0.1, "when": "2026-01-01T00:00:00Z", "inner": {"label": "x", "weight": 2}}'
    )
    rid = schedule_id(cli("schedule", "EveryType", "--params-file", str(file)))
    got = P.decode(g.EveryTypeParams, stored_params(db, rid))
    assert got.amount == Decimal("0.1") and got.when == datetime(2026, 1, 1, tzinfo=UTC)
    assert got.inner == g.Inner("x", 2.0)


def test_a_params_file_with_a_utf8_byte_order_mark_is_read(
    cli: Cli, db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok(cli("register", str(GOOD)))
    g = good_module()
    file = tmp_path / "bom.json"
    file.write_bytes(b"\xef\xbb\xbf" + '{"who": "\u00e9", "times": 3}'.encode())
    rid = schedule_id(cli("schedule", "Greet", "--params-file", str(file)))
    assert P.decode(g.GreetParams, stored_params(db, rid)) == g.GreetParams("\u00e9", 3)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(file.read_bytes())))
    rid = schedule_id(cli("schedule", "Greet", "--params-file", "-"))
    assert P.decode(g.GreetParams, stored_params(db, rid)) == g.GreetParams("\u00e9", 3)
    # Only one mark, at the start: a second is text, and JSON refuses it.
    file.write_bytes(b"\xef\xbb\xbf" * 2 + b'{"who": "a"}')
    assert_refused(cli("schedule", "Greet", "--params-file", str(file)), "invalid JSON at line 1 column 1")


def _peak_kb(pid: int) -> int:
    """A live process's own peak memory (VmHWM), 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return 0


@pytest.mark.sqlite_only  # about reading input, on any store: once is enough
@pytest.mark.parametrize("source", ["/dev/zero", "-"])
def test_a_params_file_that_never_ends_is_refused_at_the_limit(db: Path, source: str) -> None:
    # A real bgproc, fed for ever (stdin) or reading /dev/zero: it must stop reading at
    # the parameter limit and say so in one line, its memory bounded all along.
    import subprocess
    import threading
    import time

    from conftest import bgproc_env

    ok(run_bgproc(db, "register", str(GOOD)))
    proc = subprocess.Popen(
        [sys.executable, "-m", "bgproc", "schedule", "Greet", "--params-file", source],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=bgproc_env(db), cwd=str(ROOT),
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    stdin, stop = proc.stdin, threading.Event()

    def feed() -> None:
        chunk = b"{" + b" " * 65535
        try:
            while not stop.is_set():
                stdin.write(chunk)
        except (BrokenPipeError, ValueError, OSError):
            pass

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    peak, deadline = 0, time.monotonic() + 60
    try:
        while proc.poll() is None:
            peak = max(peak, _peak_kb(proc.pid))
            assert peak < 200 * 1024, f"bgproc grew to {peak} KiB reading {source}"
            assert time.monotonic() < deadline, f"bgproc still reading {source} after 60 s"
            time.sleep(0.01)
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    err = proc.stderr.read().decode()
    assert proc.returncode == 1 and proc.stdout.read() == b""
    assert err.count("\n") == 1 and "holds more than 1048576 bytes, the limit for parameters (1 MiB)" in err
    assert query(db, "SELECT COUNT(*) AS n FROM requests")[0]["n"] == 0


def test_dry_run_writes_nothing(cli: Cli, db: Path) -> None:
    ok(cli("register", str(GOOD)))
    before = snapshot(db)
    result = ok(cli("schedule", "Greet", "-p", "who=A", "--every", "5m", "--dry-run", "--json"))
    assert len(result.json()["next"]) == 5
    assert snapshot(db) == before


# ---------------------------------------------------------------------------
# The Python API


def test_python_api_start_new_and_schedule(cli: Cli, db: Path) -> None:
    ok(cli("register", str(GOOD)))
    g = good_module()
    rid = bgproc.start_new(g.Greet, g.GreetParams("api"), db=db)
    assert isinstance(rid, int)
    by_name = bgproc.start_new("Greet", g.GreetParams("named", 2), db=db, user="alice", timeout=30)
    defaults = bgproc.start_new(g.Bare, db=db)
    recurring = bgproc.schedule(g.Greet, g.GreetParams("every"), db=db, every="10m", allow_overlap=True)
    cron = bgproc.schedule(g.Greet, g.GreetParams("cron"), db=db, cron="*/15 * * * *", tz="Europe/Paris")
    full = g.EveryTypeParams(
        name="all", ident=UUID(int=5), when=datetime(2026, 3, 29, 2, 30), day=date(2026, 1, 1),
        at=time(1, 2, 3, 4), amount=Decimal("1E+400"), priority=g.Priority.HIGH, level=g.Level.TWO,
        tags=["t"], pair=(1, "x"), scores={"s": 2}, inner=g.Inner("i", 0.5), extra=[None, 1.5],
        blob=b"\xff", enabled=True, count=2**64 - 1,
    )
    typed = bgproc.start_new(g.EveryType, full, db=db)

    listed = {r["id"]: r for r in requests_json(cli)}
    assert sorted(listed) == [rid, by_name, defaults, recurring, cron, typed]
    assert listed[rid]["params"] == {"who": "api", "times": 1}
    assert listed[rid]["timing"]["kind"] == "now"
    assert listed[by_name]["user"] == "alice" and listed[by_name]["timeout_s"] == 30.0
    assert listed[defaults]["params"] == {}
    assert listed[recurring]["timing"]["every"] == "10m" and listed[recurring]["allow_overlap"] is True
    assert listed[cron]["timing"]["cron"] == "*/15 * * * *" and listed[cron]["timezone"] == "Europe/Paris"
    assert P.decode(g.EveryTypeParams, stored_params(db, typed)) == full


def test_python_api_refuses_bad_params_before_writing(cli: Cli, db: Path) -> None:
    ok(cli("register", str(GOOD)))
    g = good_module()
    before = snapshot(db)
    cases: list[tuple[Callable[[], Any], type[BgprocError], str]] = [
        (lambda: bgproc.start_new(g.EveryType, g.EveryTypeParams(name="x", extra={1, 2}), db=db),
         ParamsError, "params.extra: cannot serialize set"),
        (lambda: bgproc.start_new(g.EveryType, g.EveryTypeParams(name="x", extra=[open]), db=db),
         ParamsError, "params.extra[0]: cannot serialize builtin_function_or_method"),
        (lambda: bgproc.start_new(g.EveryType, g.EveryTypeParams(name="x", tags=["a", {"b"}]), db=db),
         ParamsError, "params.tags[1]: cannot serialize set"),
        (lambda: bgproc.start_new(g.EveryType, g.EveryTypeParams(name="x", count=2**64), db=db),
         ParamsError, "params.count: integer 18446744073709551616 does not fit in 64 bits"),
        (lambda: bgproc.start_new(g.EveryType, g.EveryTypeParams(name=5), db=db),
         ParamsError, "params.name: expected str, got int 5"),
        (lambda: bgproc.start_new(g.Greet, db=db), ParamsError, "params.who: missing required field"),
        (lambda: bgproc.start_new(g.Greet, g.EveryTypeParams(name="x"), db=db),
         ParamsError, "params: expected GreetParams for task Greet, got EveryTypeParams"),
        (lambda: bgproc.start_new("Nope", db=db), RegistryError, "unknown task 'Nope'"),
        (lambda: bgproc.schedule(g.Greet, g.GreetParams("x"), db=db, fortnightly=True),
         TimingError, "unknown timing keyword"),
        (lambda: bgproc.schedule(g.Greet, g.GreetParams("x"), db=db, every="5m", daily=True),
         TimingError, "choose one timing"),
    ]
    for call, error, message in cases:
        with pytest.raises(error) as info:
            call()
        assert str(info.value).startswith(message), str(info.value)
        assert snapshot(db) == before


def test_python_api_refuses_a_class_that_is_not_registered(db: Path, tmp_path: Path) -> None:
    path = write_module(tmp_path, "unregistered_tasks", '''
        from bgproc import BackgroundTask

        class Stray(BackgroundTask):
            def run(self, params): pass
    ''')
    sys.path.insert(0, str(tmp_path))
    module = importlib.import_module("unregistered_tasks")
    assert Path(module.__file__) == path
    with pytest.raises(StoreError, match="register a task first"):
        bgproc.start_new(module.Stray, db=db)
    open_store(db).close()
    with pytest.raises(RegistryError, match="task unregistered_tasks:Stray is not registered"):
        bgproc.start_new(module.Stray, db=db)


# ---------------------------------------------------------------------------
# Every bad input: one line, no traceback, nothing written


def _make_world(target: Target) -> None:
    from bgproc.cli import run

    saved_path = list(sys.path)
    with contextlib.redirect_stdout(io.StringIO()) as out:
        for args in (
            ["register", str(GOOD), str(DUP_A)],
            ["schedule", "Greet", "-p", "who=A", "--every", "5m"],
            ["schedule", "Greet", "-p", "who=B"],
            ["unschedule", "2"],
        ):
            assert run(["--db", str(target), *args]) == 0, out.getvalue()
    sys.path[:] = saved_path
    for name in ("good_tasks", "dup_a"):
        sys.modules.pop(name, None)


@pytest.fixture(scope="module")
def world_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Target]]:
    """A database with registered tasks, one scheduled and one unscheduled request, on
    each store (made when first asked for).

    Built once and copied for each test: every command line call costs tens of
    milliseconds, and the bad-input table is long.
    """
    made: dict[str, Target] = {}
    with contextlib.ExitStack() as stack:

        def template(store: str) -> Target:
            if store not in made:
                made[store] = stack.enter_context(target_on(store, tmp_path_factory.mktemp("world")))
                _make_world(made[store])
            path = made[store]
            assert is_url(path) or not Path(path).with_name("bgproc.db-wal").exists() or (
                Path(path).with_name("bgproc.db-wal").stat().st_size == 0
            )
            return path

        yield template


def _copy_world(template: Target, db: Target) -> None:
    if is_url(db):
        pgserver.refill(str(db), str(template))
        return
    Path(db).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(template, db)


WORLD = {"scheduled": 1, "unscheduled": 2}


@pytest.fixture
def world(world_template: Callable[[str], Target], db: Target) -> dict[str, int]:
    _copy_world(world_template("postgres" if is_url(db) else "sqlite"), db)
    return WORLD


@pytest.fixture(scope="module")
def pg_world(world_template: Callable[[str], Target]) -> Iterator[list[str]]:
    """A copy of the PostgreSQL world that tests share while none of them changes it
    (``worlds`` checks, and makes another copy if one did): a new database per test
    would cost more than the test."""
    template = str(world_template("postgres"))
    with contextlib.ExitStack() as stack:
        shared = [stack.enter_context(pgserver.fresh_database(template))]
        yield shared


@pytest.fixture
def worlds(world_template: Callable[[str], Target], pg_world: list[str], tmp_path: Path) -> Iterator[dict[str, Target]]:
    """The world on each store, side by side (to compare what they say)."""
    sqlite: Target = tmp_path / "sqlite" / "bgproc.db"
    _copy_world(world_template("sqlite"), sqlite)
    pristine = snapshot(pg_world[0])
    yield {"sqlite": sqlite, "postgres": pg_world[0]}
    if snapshot(pg_world[0]) != pristine:
        pgserver.refill(pg_world[0], str(world_template("postgres")))


def refused_on_both(worlds: dict[str, Target], capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """The command refused on each store in one line, the same line (the database's name
    aside), each database as it was: that line."""
    said = {}
    for store, target in worlds.items():
        before = snapshot(target)
        line = assert_refused(cli_on(target, capsys)(*args))
        said[store] = line.replace(str(target), "DB")
        assert snapshot(target) == before, store
    assert said["sqlite"] == said["postgres"], said
    return said["sqlite"]


def _syntax_error(tmp: Path) -> list[str]:
    return ["register", str(write_module(tmp, "syntax_broken", "def oops(:\n    pass\n"))]


def _raises_at_import(tmp: Path) -> list[str]:
    return ["register", str(write_module(tmp, "raising_tasks", "raise RuntimeError('no config  found\\nat all')\n"))]


def _no_tasks(tmp: Path) -> list[str]:
    return ["register", str(write_module(tmp, "empty_tasks", "X = 1\n"))]


def _bad_timeout(tmp: Path) -> list[str]:
    return ["register", str(write_module(tmp, "bad_timeout_tasks", '''
        from bgproc import BackgroundTask

        class Slow(BackgroundTask):
            timeout = "five minutes"
            def run(self, params): pass
    '''))]


def _bad_default(tmp: Path) -> list[str]:
    return ["register", str(write_module(tmp, "bad_default_tasks", '''
        from dataclasses import dataclass
        from typing import Any
        from bgproc import BackgroundTask

        @dataclass
        class P:
            seen: Any = frozenset({1})

        class Defaulted(BackgroundTask[P]):
            def run(self, params): pass
    '''))]


def _ambiguous_union(tmp: Path) -> list[str]:
    return ["register", str(write_module(tmp, "ambiguous_tasks", '''
        from dataclasses import dataclass
        from bgproc import BackgroundTask

        @dataclass
        class P:
            items: list[int] | tuple[int, ...]

        class Ambiguous(BackgroundTask[P]):
            def run(self, params): pass
    '''))]


def _unresolvable_annotation(tmp: Path) -> list[str]:
    return ["register", str(write_module(tmp, "unresolved_tasks", '''
        from __future__ import annotations
        from dataclasses import dataclass
        from bgproc import BackgroundTask

        @dataclass
        class P:
            when: Moment

        class Unresolved(BackgroundTask[P]):
            def run(self, params): pass
    '''))]


def _same_module_name_twice(tmp: Path) -> list[str]:
    source = "from bgproc import BackgroundTask\nclass {0}(BackgroundTask):\n    def run(self, p): pass\n"
    (tmp / "one").mkdir()
    (tmp / "two").mkdir()
    first = write_module(tmp / "one", "clashing_tasks", source.format("First"))
    second = write_module(tmp / "two", "clashing_tasks", source.format("Second"))
    return ["register", str(first), str(second)]


def _shadows_the_standard_library(tmp: Path) -> list[str]:
    return ["register", str(write_module(tmp, "json", "from bgproc import BackgroundTask\n"))]


def _params_file_dir(tmp: Path) -> list[str]:
    return ["schedule", "Greet", "--params-file", str(tmp)]


def _params_file_binary(tmp: Path) -> list[str]:
    (tmp / "bin.json").write_bytes(b"\xff\xfe\x00")
    return ["schedule", "Greet", "--params-file", str(tmp / "bin.json")]


def _oversized(tmp: Path) -> list[str]:
    return ["schedule", "Greet", "--params-json", json.dumps({"who": "x" * (P.MAX_BYTES + 10)})]


def _oversized_file(tmp: Path) -> list[str]:
    (tmp / "big.json").write_text(json.dumps({"who": "x" * (P.MAX_BYTES + 10)}))
    return ["schedule", "Greet", "--params-file", str(tmp / "big.json")]


def _fixed(*args: str) -> Callable[[Path], list[str]]:
    return lambda tmp: list(args)


BAD_INPUTS: list[tuple[str, Callable[[Path], list[str]], tuple[str, ...]]] = [
    # tasks and registration
    ("unknown task", _fixed("schedule", "Nope"), ("unknown task 'Nope'",)),
    ("misspelled task", _fixed("schedule", "Greeet", "-p", "who=a"), ("unknown task 'Greeet'", "did you mean Greet?")),
    ("unknown import path", _fixed("schedule", "good_tasks:Nope"), ("unknown task 'good_tasks:Nope'",)),
    ("unregister unknown", _fixed("unregister", "Nope"), ("no registered task named 'Nope'",)),
    ("set[str] params", _fixed("register", str(BAD_TYPES)), ("task Tagged", "params.tags: cannot serialize set[str]")),
    ("import error", _fixed("register", str(BROKEN)),
     ("cannot import", "broken_module.py", "No module named 'bgproc_missing_dependency_for_tests'")),
    ("syntax error", _syntax_error, ("cannot import", "SyntaxError", "syntax_broken.py:1")),
    ("raises at import", _raises_at_import, ("cannot import", "RuntimeError: no config found at all")),
    ("no tasks", _no_tasks, ("module empty_tasks defines no BackgroundTask subclasses",)),
    ("bad timeout", _bad_timeout, ("task Slow: timeout 'five minutes' is not a duration; write 30s, 5m",)),
    ("bad default", _bad_default, ("task Defaulted: params.seen: cannot serialize frozenset (the field's default)",)),
    ("ambiguous union", _ambiguous_union, ("task Ambiguous: params.items: list[int] and tuple[int, ...]",)),
    ("unresolvable annotation", _unresolvable_annotation, ("task Unresolved:", "name 'Moment' is not defined")),
    ("same module name twice", _same_module_name_twice,
     ("the module name 'clashing_tasks' is already taken by", "one/clashing_tasks.py", "rename the file")),
    ("file shadows the standard library", _shadows_the_standard_library,
     ("'json' is the name of a standard-library module", "rename the file")),
    ("no such file", _fixed("register", "tests/fixtures/missing.py"), ("no such file tests/fixtures/missing.py",)),
    ("no such module", _fixed("register", "bgproc_no_such_module"), ("no module named 'bgproc_no_such_module'",)),
    ("duplicate name, registered", _fixed("register", str(DUP_B)),
     ("task name 'Duplicate' is already registered from module dup_a",)),
    ("duplicate name, together", _fixed("register", str(GOOD), str(DUP_B), str(DUP_A)),
     ("two tasks are named 'Duplicate'", "dup_b:Duplicate", "dup_a:Duplicate")),
    ("broken among good", _fixed("register", str(GOOD), str(BROKEN)), ("cannot import",)),
    # parameters
    ("unknown field", _fixed("schedule", "Greet", "-p", "who=a", "-p", "whom=b"),
     ("params.whom: unknown field; GreetParams has: who, times",)),
    ("unknown field in JSON", _fixed("schedule", "Greet", "--params-json", '{"who": "a", "x": 1}'),
     ("params.x: unknown field",)),
    ("unknown nested field", _fixed("schedule", "EveryType", "-p", "name=a", "-p", 'inner={"label": "a", "lbl": 1}'),
     ("params.inner.lbl: unknown field; Inner has: label, weight",)),
    ("missing field", _fixed("schedule", "Greet"), ("params.who: missing required field (str)", "-p who=")),
    ("missing nested field", _fixed("schedule", "EveryType", "-p", "name=a", "-p", "inner={}"),
     ("params.inner.label: missing required field",)),
    ("not a pair", _fixed("schedule", "Greet", "-p", "who"), ("params: 'who' is not field=value",)),
    ("field given twice", _fixed("schedule", "Greet", "-p", "who=a", "-p", "who=b"),
     ("params.who: given twice with -p",)),
    ("JSON key given twice", _fixed("schedule", "Greet", "--params-json", '{"who": "a", "who": "b"}'),
     ("params: key 'who' is given twice in a JSON object",)),
    ("impossible date", _fixed("schedule", "EveryType", "-p", "name=a", "-p", "day=2026-02-30"),
     ("params.day: '2026-02-30' is not a real date: day is out of range for month",)),
    ("impossible time in JSON", _fixed("schedule", "EveryType", "--params-json", '{"name": "a", "at": "25:00"}'),
     ("params.at: '25:00' is not a real time",)),
    ("wrong int", _fixed("schedule", "Greet", "-p", "who=a", "-p", "times=many"),
     ("params.times: 'many' is not an int",)),
    ("wrong bool", _fixed("schedule", "EveryType", "-p", "name=a", "-p", "enabled=maybe"),
     ("params.enabled: 'maybe' is not a bool",)),
    ("wrong float", _fixed("schedule", "EveryType", "-p", "name=a", "-p", "ratio=half"),
     ("params.ratio: 'half' is not a float",)),
    ("wrong date", _fixed("schedule", "EveryType", "-p", "name=a", "-p", "day=Tuesday"),
     ("params.day: 'Tuesday' is not an ISO 8601 date",)),
    ("wrong datetime", _fixed("schedule", "EveryType", "-p", "name=a", "-p", "when=soon"),
     ("params.when: 'soon' is not an ISO 8601 date-time",)),
    ("wrong uuid", _fixed("schedule", "EveryType", "-p", "name=a", "-p", "ident=123"),
     ("params.ident: '123' is not a UUID",)),
    ("wrong decimal", _fixed("schedule", "EveryType", "-p", "name=a", "-p", "amount=1,5"),
     ("params.amount: '1,5' is not a decimal number",)),
    ("wrong enum", _fixed("schedule", "EveryType", "-p", "name=a", "-p", "priority=urgent"),
     ("params.priority: 'urgent' is not one of Priority: LOW, HIGH",)),
    ("wrong base64", _fixed("schedule", "EveryType", "-p", "name=a", "-p", "blob=base64:***"),
     ("params.blob:", "base64")),
    ("wrong list item", _fixed("schedule", "EveryType", "-p", "name=a", "-p", "tags=[1]"),
     ("params.tags[0]: expected str, got a number (1)",)),
    ("wrong tuple length", _fixed("schedule", "EveryType", "-p", "name=a", "-p", "pair=[1]"),
     ("params.pair: expected 2 items, got 1",)),
    ("list not JSON", _fixed("schedule", "EveryType", "-p", "name=a", "-p", "tags=a,b"),
     ("params.tags: invalid JSON at line 1 column 1",)),
    ("wrong JSON type", _fixed("schedule", "Greet", "--params-json", '{"who": 5}'),
     ("params.who: expected str, got a number (5)",)),
    ("int over 64 bits", _fixed("schedule", "Greet", "-p", "who=a", "-p", "times=18446744073709551616"),
     ("params.times: integer 18446744073709551616 does not fit in 64 bits",)),
    ("lone surrogate from argv", _fixed("schedule", "Greet", "-p", "who=\udcff"),
     ("params.who: text holds a lone surrogate",)),
    ("deep JSON", _fixed("schedule", "EveryType", "-p", "name=a", "-p", "extra=" + "[" * 40 + "]" * 40),
     ("params.extra", "deeper than 32 levels")),
    ("unparsable JSON", _fixed("schedule", "Greet", "--params-json", "{who: 1}"),
     ("params: invalid JSON at line 1 column 2",)),
    ("JSON not an object", _fixed("schedule", "Greet", "--params-json", '["who"]'),
     ("params: expected a JSON object, got an array",)),
    ("unreadable params file", _fixed("schedule", "Greet", "--params-file", "/nonexistent/params.json"),
     ("cannot read --params-file /nonexistent/params.json",)),
    ("params file is a directory", _params_file_dir, ("cannot read --params-file",)),
    ("params file not UTF-8", _params_file_binary, ("cannot read --params-file",)),
    ("both JSON and file", _fixed("schedule", "Greet", "--params-json", "{}", "--params-file", "x.json"),
     ("give --params-json or --params-file, not both",)),
    ("oversized params", _oversized, ("params:", "bytes serialized, over the limit of 1048576")),
    ("oversized params file", _oversized_file,
     ("big.json holds more than 1048576 bytes, the limit for parameters (1 MiB)",)),
    ("params file that never ends", _fixed("schedule", "Greet", "--params-file", "/dev/zero"),
     ("--params-file /dev/zero holds more than 1048576 bytes, the limit for parameters (1 MiB)",)),
    ("bad timing", _fixed("schedule", "Greet", "-p", "who=a", "--every", "often"), ("--every",)),
    ("two timings", _fixed("schedule", "Greet", "-p", "who=a", "--every", "5m", "--daily"), ("choose one timing",)),
    ("bad timeout option", _fixed("schedule", "Greet", "-p", "who=a", "--timeout", "soon"),
     ("--timeout 'soon' is not a duration",)),
    # request ids
    ("unschedule unknown id", _fixed("unschedule", "999"), ("no request with id 999",)),
    ("reschedule unknown id", _fixed("reschedule", "999"), ("no request with id 999",)),
    ("reschedule unknown id with timing", _fixed("reschedule", "999", "--every", "5m"), ("no request with id 999",)),
    ("upcoming unknown id", _fixed("upcoming", "999"), ("no request with id 999",)),
    ("request id not a number", _fixed("unschedule", "abc"), ("REQUEST", "integer")),
    ("request id beyond SQLite", _fixed("unschedule", "99999999999999999999"), ("REQUEST",)),
    ("run id beyond SQLite", _fixed("monitor", "99999999999999999999"), ("RUN",)),
    ("cancel id beyond SQLite", _fixed("cancel", "99999999999999999999"), ("RUN",)),
    ("--request beyond SQLite", _fixed("monitor", "--request", "99999999999999999999"), ("--request",)),
    ("empty --host", _fixed("monitor", "--host", " "), ("--host is empty", "bgproc monitor RUN")),
    ("empty --task", _fixed("monitor", "--task", ""), ("--task is empty", "bgproc tasks")),
    ("run id with --host", _fixed("monitor", "1", "--host", "nothere"),
     ("`bgproc monitor 1` shows that one run, so --host would be ignored", "drop it, or drop RUN")),
    ("run id with --follow --task", _fixed("monitor", "1", "--follow", "--task", "Other"),
     ("so --task would be ignored",)),
    ("run id with several filters", _fixed("monitor", "1", "--status", "error", "--since", "1h", "--limit", "5"),
     ("so --status, --since, --limit would be ignored", "drop them")),
    ("repeated --status", _fixed("monitor", "--status", "error", "--status", "success"),
     ("--status is given 2 times (--status error --status success); give it once",)),
    ("repeated --task", _fixed("monitor", "--task", "Greet", "--task", "Other"), ("--task is given 2 times",)),
    ("repeated --request", _fixed("monitor", "--request", "1", "--request", "2"), ("--request is given 2 times",)),
    ("--since too far back", _fixed("monitor", "--since", "99999999999d"), ("--since",)),
    ("--since not a time", _fixed("monitor", "--since", "yesterday"),
     ("--since 'yesterday' is not a time", "duration back from now")),
    ("--since in the future", _fixed("monitor", "--since", "+1h"), ("--since '+1h' is in the future",)),
    ("--since out of range", _fixed("monitor", "--since", "1800-01-01"),
     ("--since 1800-01-01 is out of range; give a time between the years 1900 and 8999",)),
    ("infinite timeout", _fixed("schedule", "Greet", "-p", "who=a", "--timeout", "inf"),
     ("--timeout inf must be a positive, finite duration",)),
    ("empty zone", _fixed("schedule", "Greet", "-p", "who=a", "--daily", "--tz", ""), ("unknown time zone ''",)),
    ("-n without --dry-run", _fixed("schedule", "Greet", "-p", "who=a", "-n", "3"), ("add --dry-run or drop -n",)),
    ("not a .py file", _fixed("register", "pyproject.toml"), ("pyproject.toml is not a .py file",)),
    ("--at out of range",
     _fixed("schedule", "Greet", "-p", "who=a", "--at", "9999-12-31T23:59:59", "--tz", "Etc/GMT+12"),
     ("is out of range; give a time between the years 1900 and 8999",)),
    ("--finish out of range", _fixed("schedule", "Greet", "-p", "who=a", "--daily", "--finish", "9999-12-31T23:00"),
     ("--finish 9999-12-31T23:00 is out of range",)),
    ("nested missing field hint", _fixed("schedule", "EveryType", "-p", "name=a", "-p", "inner={}"),
     ('add "label" to the JSON object of params.inner',)),
    # numbers in ASCII digits only: other scripts' digits (٣, ３) and superscripts are refused
    ("cron with Arabic-Indic digit", _fixed("schedule", "Greet", "-p", "who=a", "--cron", "\u0663 * * * *"),
     ("bad minute field", "is not a number from 0 to 59")),
    ("cron with a superscript digit", _fixed("schedule", "Greet", "-p", "who=a", "--cron", "\u00b2 * * * *"),
     ("bad minute field", "is not a number from 0 to 59")),
    ("cron step in fullwidth digits", _fixed("schedule", "Greet", "-p", "who=a", "--cron", "*/\uff15 * * * *"),
     ("bad minute field", "the step after '/' must be a positive number")),
    ("cron nth in other digits", _fixed("schedule", "Greet", "-p", "who=a", "--cron", "0 9 * * fri#\u0663"),
     ("bad day of week field", "fri#3")),
    ("--every in other digits", _fixed("schedule", "Greet", "-p", "who=a", "--every", "\u0663m"),
     ("is not an interval; write 30s, 5m, 2h or 3d",)),
    ("relative --at in other digits", _fixed("schedule", "Greet", "-p", "who=a", "--at", "+\u0663m"),
     ("is not a relative time",)),
    ("time of day in other digits", _fixed("schedule", "Greet", "-p", "who=a", "--at", "\u0660\u0669:30"),
     ("--at", "is not a date-time")),
    ("--day in other digits", _fixed("schedule", "Greet", "-p", "who=a", "--monthly", "--day", "\u0663"),
     ("is not a day of the month; use 1 to 31 or last",)),
    ("--day with an underscore", _fixed("schedule", "Greet", "-p", "who=a", "--monthly", "--day", "1_5"),
     ("--day '1_5' is not a day of the month",)),
    ("--timeout in other digits", _fixed("schedule", "Greet", "-p", "who=a", "--timeout", "\u0663m"),
     ("is not a duration",)),
    ("--since in other digits", _fixed("monitor", "--since", "\u0663h"), ("is not a time",)),
    # one bound, in the same words, for every duration typed
    ("--every past 100 years", _fixed("schedule", "Greet", "-p", "who=a", "--every", "36526d"),
     ("--every '36526d' is longer than 100 years, the longest duration bgproc takes; give at most 36525d",)),
    ("--timeout past 100 years", _fixed("schedule", "Greet", "-p", "who=a", "--timeout", "876601h"),
     ("--timeout '876601h' is longer than 100 years, the longest duration bgproc takes; give at most 36525d",)),
    ("--timeout of 1e20 seconds", _fixed("schedule", "Greet", "-p", "who=a", "--timeout", "1e20"),
     ("--timeout '1e20' is longer than 100 years",)),
    ("relative --at past 100 years", _fixed("schedule", "Greet", "-p", "who=a", "--at", "+36526d"),
     ("--at '+36526d' is longer than 100 years, the longest duration bgproc takes; give at most 36525d",)),
    ("--since past 100 years", _fixed("monitor", "--since", "36526d"),
     ("--since '36526d' is longer than 100 years, the longest duration bgproc takes; give at most 36525d",)),
    ("-n in other digits", _fixed("schedule", "Greet", "-p", "who=a", "--dry-run", "-n", "\u0663"), ("'-n'",)),
    ("--limit in other digits", _fixed("monitor", "--limit", "\uff13"), ("'--limit'",)),
]


@pytest.mark.parametrize(("make_args", "words"), [pytest.param(m, w, id=i) for i, m, w in BAD_INPUTS])
def test_bad_input_is_the_same_line_on_both_stores_and_writes_nothing(
    worlds: dict[str, Target], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    make_args: Callable[[Path], list[str]], words: tuple[str, ...], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(ROOT)
    line = refused_on_both(worlds, capsys, *make_args(tmp_path))
    for word in words:
        assert word in line, f"{word!r} not in {line!r}"


@pytest.mark.parametrize(
    ("command", "words"),
    [
        (("unschedule", "{unscheduled}"),
         ("request {unscheduled} is unscheduled, not scheduled; nothing to unschedule",)),
        (("reschedule", "{scheduled}"), ("request {scheduled} is already scheduled",)),
        (("reschedule", "{unscheduled}", "--at", "2001-01-01T00:00:00Z"), ("--at",)),
    ],
)
def test_state_errors_are_the_same_line_on_both_stores_and_write_nothing(
    worlds: dict[str, Target], capsys: pytest.CaptureFixture[str], command: tuple[str, ...], words: tuple[str, ...]
) -> None:
    line = refused_on_both(worlds, capsys, *(c.format(**WORLD) for c in command))
    for word in words:
        assert word.format(**WORLD) in line, line


def test_a_past_one_time_request_is_not_rescheduled_without_a_new_timing(cli: Cli, db: Path) -> None:
    ok(cli("register", str(GOOD)))
    at = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    rid = schedule_id(cli("schedule", "Greet", "-p", "who=a", "--at", at))
    ok(cli("unschedule", str(rid)))
    # pretend time has moved on well past the `at`
    import bgproc.clock as clock

    later = datetime.now(UTC) + timedelta(hours=1)
    original = clock.utcnow
    try:
        clock.utcnow = lambda: later  # type: ignore[assignment]
        before = snapshot(db)
        assert_refused(cli("reschedule", str(rid)), f"request {rid} was to run once at", "past")
        assert snapshot(db) == before
        assert ok(cli("reschedule", str(rid), "--now", "--json")).json()["status"] == "scheduled"
    finally:
        clock.utcnow = original  # type: ignore[assignment]


# ---------------------------------------------------------------------------
# The sample from the design's user path


def test_the_sample_registers_schedules_lists_unschedules_and_reschedules(cli: Cli, db: Path) -> None:
    out = ok(cli("register", str(SAMPLE))).out
    assert "registered sample_tasks.activities: BackgroundActivityCreator, CountWithProgress" in out
    fields = {t["name"]: t["params"] for t in ok(cli("tasks", "--json")).json()}["BackgroundActivityCreator"]
    assert [(f["name"], f["type"], f["required"]) for f in fields] == [
        ("title", "str", True), ("type_id", "UUID", False), ("delay_s", "float", False),
    ]
    rid = schedule_id(cli("schedule", "BackgroundActivityCreator", "-p", "title=Activity created by background task"))
    listed = requests_json(cli)
    assert [r["id"] for r in listed] == [rid]
    assert listed[0]["task"] == "BackgroundActivityCreator"
    assert listed[0]["params"] == {
        "title": "Activity created by background task",
        "type_id": "6f1f2c0e-3b7a-4c8e-9a55-0d4c1e7b2a10",
        "delay_s": 30.0,
    }
    assert "BackgroundActivityCreator" in ok(cli("requests")).out
    ok(cli("unschedule", str(rid)))
    assert requests_json(cli) == []
    assert request_json(cli, rid)["status"] == "unscheduled"
    ok(cli("reschedule", str(rid)))
    assert [r["status"] for r in requests_json(cli)] == ["scheduled"]
    again = ok(cli("reschedule", str(rid), "--every", "5m", "--json")).json()
    assert again["timing"]["every"] == "5m"

    from sample_tasks.activities import ActivityData

    assert P.decode(ActivityData, stored_params(db, rid)) == ActivityData("Activity created by background task")
    assert_refused(cli("schedule", "BackgroundActivityCreator"), "params.title: missing required field")


def _task_module(*classes: str) -> str:
    lines = ["from dataclasses import dataclass", "from bgproc import BackgroundTask", "",
             "@dataclass", "class P:", "    n: int = 0", ""]
    for cls in classes:
        lines += [f"class {cls}(BackgroundTask[P]):", "    def run(self, params: P) -> None:", "        pass", ""]
    return "\n".join(lines)


@pytest.mark.parametrize("order", [("mva.py", "mvb.py"), ("mvb.py", "mva.py")])
def test_a_task_moving_between_modules_of_one_batch_is_updated_in_either_order(cli, tmp_path, order):
    """Moving a class between two modules registered together keeps its requests."""
    import sys

    for name in ("mva", "mvb"):
        sys.modules.pop(name, None)
    (tmp_path / "mva.py").write_text(_task_module("Moving"))
    (tmp_path / "mvb.py").write_text(_task_module("Other"))
    assert cli("register", str(tmp_path / "mva.py"), str(tmp_path / "mvb.py")).code == 0
    request = int(cli("schedule", "Moving", "--hourly").out)

    (tmp_path / "mva.py").write_text(_task_module("Stays"))
    (tmp_path / "mvb.py").write_text(_task_module("Other", "Moving"))
    for name in ("mva", "mvb"):
        sys.modules.pop(name, None)
    result = cli("register", *(str(tmp_path / name) for name in order))
    assert result.code == 0, result.err
    assert "Moving is no longer" not in result.out
    shown = cli("requests", "--json").json()
    assert [(r["id"], r["status"]) for r in shown] == [(request, "scheduled")]
    tasks = {t["name"]: t["module"] for t in cli("tasks", "--json").json()}
    assert tasks["Moving"] == "mvb"


@pytest.mark.parametrize(
    "args",
    [("schedule", "Greet", "-p", "who=a"), ("requests",), ("monitor",), ("tasks",), ("unschedule", "1"),
     ("upcoming", "1"), ("run", "1"), ("cancel", "1"), ("unregister", "Greet")],
)
@pytest.mark.sqlite_only  # about files (a missing server database: test_postgres.py)
def test_commands_on_a_mistyped_database_path_refuse_and_create_nothing(
    cli: Cli, tmp_path: Path, args: tuple[str, ...]
) -> None:
    missing = tmp_path / "typo" / "bgproc.db"
    line = assert_refused(cli("--db", str(missing), *args))
    assert f"no bgproc database at {missing}" in line
    assert not missing.parent.exists()


@pytest.mark.sqlite_only  # about files
@pytest.mark.parametrize("content", ["empty", "foreign", "foreign with a version"])
def test_reading_commands_leave_a_file_that_is_not_a_bgproc_database_alone(
    cli: Cli, tmp_path: Path, content: str
) -> None:
    import sqlite3

    other = tmp_path / "other.db"
    other.touch(mode=0o600)
    if content.startswith("foreign"):
        with sqlite3.connect(other) as conn:
            conn.execute("CREATE TABLE notes (body TEXT)")
            if content.endswith("version"):
                conn.execute("PRAGMA user_version = 1")
    before = other.read_bytes()
    commands = [("requests",), ("monitor",), ("tasks",)]
    if content.startswith("foreign"):  # not even `register` adopts another program's database
        commands.append(("register", str(GOOD)))
    for args in commands:
        assert_refused(cli("--db", str(other), *args), f"{other} is not a bgproc database")
    assert other.read_bytes() == before
    if content == "foreign":
        line = assert_refused(cli("--db", str(other), "register", str(GOOD)), "another program's tables: notes")
        assert "new file" in line
    if content == "empty":  # an empty file is a new database: register sets it up
        ok(cli("--db", str(other), "register", str(GOOD)))
        ok(cli("--db", str(other), "tasks"))


def test_reschedule_with_only_a_zone_start_or_finish_keeps_the_timing_kind(cli: Cli) -> None:
    ok(cli("register", str(GOOD)))
    rid = schedule_id(cli("schedule", "Greet", "-p", "who=a", "--weekly", "--days", "mon,fri",
                          "--start", "2026-01-05T08:00", "--tz", "Europe/Berlin"))
    moved = cli("reschedule", str(rid), "--tz", "Asia/Tokyo", "--json").json()
    assert moved["timing"]["kind"] == "weekly" and moved["timing"]["days"] == ["mon", "fri"]
    assert moved["timezone"] == "Asia/Tokyo" and moved["start"].startswith("2026-01-05T08:00:00+09:00")
    later = cli("reschedule", str(rid), "--start", "2026-01-05T09:15", "--json").json()
    assert later["timing"]["text"] == "every Monday and Friday at 09:15 (Asia/Tokyo)"
    ended = cli("reschedule", str(rid), "--finish", "2099-01-01T00:00", "--json").json()
    assert ended["timing"]["kind"] == "weekly" and ended["finish"].startswith("2099-01-01T00:00:00+09:00")


def test_a_new_timing_keeps_the_zone_start_and_finish_it_does_not_give(cli: Cli) -> None:
    ok(cli("register", str(GOOD)))
    rid = schedule_id(cli("schedule", "Greet", "-p", "who=a", "--daily", "--start", "2026-05-01T09:30",
                          "--tz", "Europe/Berlin", "--finish", "2099-01-01T00:00"))
    weekly = ok(cli("reschedule", str(rid), "--weekly", "--days", "mon,wed", "--json")).json()
    assert weekly["timezone"] == "Europe/Berlin" and weekly["finish"] == "2099-01-01T00:00:00+01:00"
    assert weekly["timing"]["kind"] == "weekly"
    fire = datetime.fromisoformat(weekly["next_run_at"]).astimezone(__import__("zoneinfo").ZoneInfo("Europe/Berlin"))
    assert (fire.hour, fire.minute, fire.weekday() in (0, 2)) == (9, 30, True)
    # given options win; a one-time timing takes no start or finish
    tokyo = ok(cli("reschedule", str(rid), "--cron", "0 8 * * *", "--tz", "Asia/Tokyo", "--json")).json()
    assert tokyo["timezone"] == "Asia/Tokyo" and tokyo["finish"] is not None
    once = ok(cli("reschedule", str(rid), "--at", "+1h", "--json")).json()
    assert once["timing"]["kind"] == "at" and once["finish"] is None and once["timezone"] == "Asia/Tokyo"


def test_reschedule_dry_run_shows_the_new_fires_and_writes_nothing(cli: Cli, db: Path) -> None:
    ok(cli("register", str(GOOD)))
    rid = schedule_id(cli("schedule", "Greet", "-p", "who=a", "--daily", "--start", "2026-05-01T09:30",
                          "--tz", "Europe/Berlin"))
    before = snapshot(db)
    plan = ok(cli("reschedule", str(rid), "--weekly", "--days", "fri", "--dry-run", "-n", "3", "--json")).json()
    assert plan["request"]["id"] == rid and plan["request"]["timing"]["kind"] == "weekly"
    fires = [datetime.fromisoformat(f) for f in plan["next"]]
    assert len(fires) == 3 and all((f.weekday(), f.hour, f.minute) == (4, 9, 30) for f in fires)
    assert plan["request"]["next_run_at"] == plan["next"][0]
    shown = ok(cli("reschedule", str(rid), "--every", "2h", "--dry-run")).out
    assert f"dry run: request {rid} would be every 2 hours; nothing written" in shown
    assert_refused(cli("reschedule", str(rid), "--cron", "0 0 30 2 *", "--dry-run"), "can never fire")
    assert snapshot(db) == before


def test_a_class_without_run_is_named_when_nothing_can_be_registered(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "norun_tasks.py").write_text(
        "from bgproc import BackgroundTask\nclass Lazy(BackgroundTask):\n    pass\n"
    )
    assert_refused(cli("register", str(tmp_path / "norun_tasks.py")), "Lazy does not implement run(params)")


def test_registering_parameters_that_no_longer_fit_pending_requests_is_refused(
    cli: Cli, db: Path, tmp_path: Path
) -> None:
    module = tmp_path / "evolving_tasks.py"
    template = (
        "from dataclasses import dataclass\nfrom bgproc import BackgroundTask\n"
        "@dataclass\nclass P:\n    {field}: int\n"
        "class Keep(BackgroundTask[P]):\n    def run(self, params: P) -> None:\n        pass\n"
    )
    module.write_text(template.format(field="n"))
    ok(cli("register", str(module)))
    rid = schedule_id(cli("schedule", "Keep", "-p", "n=5", "--daily"))
    module.write_text(template.format(field="k"))
    sys.modules.pop("evolving_tasks", None)
    before = snapshot(db)
    line = assert_refused(cli("register", str(module)), "task Keep: its new parameters do not fit 1 pending request")
    assert f"bgproc unschedule {rid}" in line and "params.n: unknown field" in line
    assert snapshot(db) == before
    ok(cli("unschedule", str(rid)))
    sys.modules.pop("evolving_tasks", None)
    ok(cli("register", str(module)))
    assert_refused(cli("run", str(rid)), f"request {rid}: its parameters no longer fit task Keep")


def test_a_manual_run_of_an_unregistered_task_is_refused(cli: Cli, db: Path) -> None:
    ok(cli("register", str(GOOD)))
    rid = schedule_id(cli("schedule", "Greet", "-p", "who=a", "--daily"))
    ok(cli("unregister", "Greet"))
    before = snapshot(db)
    assert_refused(cli("run", str(rid)), "runs task 'Greet', which is not registered")
    assert snapshot(db) == before


def test_unschedule_withdraws_a_pending_manual_run(cli: Cli) -> None:
    ok(cli("register", str(GOOD)))
    rid = schedule_id(cli("schedule", "Greet", "-p", "who=a", "--daily"))
    assert cli("run", str(rid), "--json").json()["manual_run_at"] is not None
    ok(cli("unschedule", str(rid)))
    shown = cli("requests", "--all", "--json").json()[0]
    assert shown["status"] == "unscheduled" and shown["manual_run_at"] is None
    # a manual run of a request that is not scheduled can be withdrawn the same way
    assert ok(cli("run", str(rid))).out.strip() == f"request {rid}: a manual run is due now"
    assert ok(cli("run", str(rid))).out.strip() == f"request {rid}: a manual run was already waiting; still one"
    ok(cli("unschedule", str(rid)))
    shown = cli("requests", "--all", "--json").json()[0]
    assert shown["status"] == "unscheduled" and shown["manual_run_at"] is None
    assert_refused(cli("unschedule", str(rid)), f"request {rid} is unscheduled, not scheduled")


def test_a_manual_run_asked_while_a_run_goes_says_it_waits_for_it(cli: Cli, db: Path) -> None:
    ok(cli("register", str(GOOD)))
    rid = schedule_id(cli("schedule", "Greet", "-p", "who=a", "--daily"))
    now = datetime.now(UTC)
    (run_id,) = insert_runs(db, dict(request_id=rid, task="Greet", status="running", now=now,
                                     reason="schedule", planned_at=now, started_at=now, daemon_id="d"))
    said = ok(cli("run", str(rid))).out.strip()
    assert said == f"request {rid}: a manual run is due; it starts when run {run_id} ends"


def test_monitor_filters_by_host_and_shows_the_host_of_a_run(cli: Cli, db: Path) -> None:
    ok(cli("register", str(GOOD)))
    rids = [schedule_id(cli("schedule", "Greet", "-p", f"who={who}", "--daily")) for who in "abc"]
    now = datetime.now(UTC)
    *made, unknown = insert_runs(
        db,
        *(
            dict(request_id=rid, task="Greet", status=status, now=now, reason="schedule",
                 planned_at=now, started_at=now, daemon_id=f"{host}:1:aaaaaa", host=host)
            for rid, status, host in zip(rids, ["success", "error", "success"], ["alpha", "beta", "alpha"], strict=True)
        ),
        dict(request_id=rids[0], task="Greet", status="missed", now=now),
    )
    alpha = ok(cli("monitor", "--host", "alpha", "--json")).json()
    assert [(r["id"], r["host"]) for r in alpha] == [(made[2], "alpha"), (made[0], "alpha")]
    assert [r["id"] for r in ok(cli("monitor", "--host", "alpha", "--request", str(rids[0]), "--json")).json()] == [
        made[0]
    ]
    assert ok(cli("monitor", "--host", "beta", "--status", "success", "--json")).json() == []
    assert ok(cli("monitor", "--host", "alph")).out.strip() == "no executions match these filters"
    assert ok(cli("monitor", str(unknown), "--json")).json()["host"] is None
    detail = ok(cli("monitor", str(made[1]))).out
    assert any(line.split() == ["host", "beta"] for line in detail.splitlines())


def test_an_unusable_tz_is_refused_where_wall_times_need_it(
    cli: Cli, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok(cli("register", str(GOOD)))
    monkeypatch.setenv("TZ", "CET-1CEST,M3.5.0,M10.5.0/3")  # a POSIX rule, not an IANA name
    before = snapshot(db)
    assert_refused(cli("schedule", "Greet", "-p", "who=a", "--daily", "--start", "09:00"),
                   "TZ='CET-1CEST,M3.5.0,M10.5.0/3' is not an IANA time zone name", "pass --tz ZONE")
    assert snapshot(db) == before
    daily = ok(cli("schedule", "Greet", "-p", "who=a", "--daily", "--start", "09:00", "--tz", "Europe/Berlin",
                   "--json")).json()
    assert daily["timezone"] == "Europe/Berlin"
    # --now reads no wall time: the zone /etc/localtime names is stored
    from bgproc.localzone import system_zone_name

    assert ok(cli("schedule", "Greet", "-p", "who=a", "--json")).json()["timezone"] == system_zone_name()
    for usable in (":/etc/localtime", "/usr/share/zoneinfo/Asia/Tokyo"):
        if not Path(usable.lstrip(":")).exists():
            continue  # a system without tz files (zones from the tzdata package)
        monkeypatch.setenv("TZ", usable)
        ok(cli("schedule", "Greet", "-p", "who=a", "--daily", "--start", "09:00", "--dry-run"))


def test_json_stays_pure_when_a_task_module_prints_on_import(cli: Cli, tmp_path: Path) -> None:
    module = tmp_path / "chatty_tasks.py"
    module.write_text(
        "print('hello from import')\nfrom bgproc import BackgroundTask\n"
        "class Chatty(BackgroundTask):\n    def run(self, params) -> None:\n        pass\n"
    )
    for name in ("chatty_tasks",):
        sys.modules.pop(name, None)
    json.loads(ok(cli("register", str(module), "--json")).out)
    sys.modules.pop("chatty_tasks", None)
    rid = json.loads(ok(cli("schedule", "Chatty", "--json")).out)["id"]
    sys.modules.pop("chatty_tasks", None)
    json.loads(ok(cli("schedule", "Chatty", "--dry-run", "--json")).out)
    sys.modules.pop("chatty_tasks", None)
    json.loads(ok(cli("run", str(rid), "--json")).out)


def test_a_locked_database_is_one_line_not_a_traceback(
    cli: Cli, db: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok(cli("register", str(GOOD)))
    if is_url(db):
        import bgproc.store.postgres.connection

        monkeypatch.setattr(bgproc.store.postgres.connection, "BUSY_TIMEOUT_MS", 50)
        with pgserver.lock_everything(str(db)):
            assert_refused(cli("schedule", "Greet", "-p", "who=a"), "the database is busy (")
        return
    import sqlite3

    import bgproc.store.sqlite.connection

    monkeypatch.setattr(bgproc.store.sqlite.connection, "BUSY_TIMEOUT_MS", 50)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        assert_refused(cli("schedule", "Greet", "-p", "who=a"), "the database is busy (database is locked)")
    finally:
        holder.execute("ROLLBACK")
        holder.close()


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("123", ("Numbered", "is int 123, not a string")),
        ('""', ("Numbered", "is empty")),
        ('"monthly report"', ("Numbered", "contains whitespace")),
        ('"tab\\there"', ("Numbered", "contains whitespace")),
        ('"bell\\x07"', ("Numbered", "control or invisible character")),
        ('"rtl\\u202eover"', ("Numbered", "control or invisible character")),
        ('"--help"', ("Numbered", "starts with '-'")),
        ('"x" * 201', ("Numbered", "more than 200")),
    ],
)
def test_a_task_name_that_is_not_one_printable_word_is_refused_at_register(
    cli: Cli, db: Path, tmp_path: Path, value: str, words: tuple[str, ...]
) -> None:
    ok(cli("register", str(GOOD)))
    before = snapshot(db)
    (tmp_path / "named_tasks.py").write_text(
        "from bgproc import BackgroundTask\n"
        f"class Numbered(BackgroundTask):\n    name = {value}\n    def run(self, params):\n        pass\n"
    )
    line = assert_refused(cli("register", str(tmp_path / "named_tasks.py")), *words, "set `name`")
    assert "TypeError" not in line
    assert snapshot(db) == before


def test_a_task_name_of_one_printable_word_registers_and_schedules(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "named_ok_tasks.py").write_text(
        "from bgproc import BackgroundTask\n"
        "class Named(BackgroundTask):\n    name = 'reports.monthly-v2:é'\n    def run(self, params):\n        pass\n"
    )
    ok(cli("register", str(tmp_path / "named_ok_tasks.py")))
    ok(cli("schedule", "reports.monthly-v2:é"))


@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_db_option_is_refused_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    from bgproc.cli import run

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BGPROC_DB", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data-home"))  # the default database: none
    for command in (["tasks"], ["register", str(GOOD)]):
        code = run(["--db", value, *command])
        out, err = capsys.readouterr()
        what = "is blank" if value else "is empty"
        line = assert_refused(Result(code, out, err), "'--db'", what, "leave --db out")
        assert "not a regular file" not in line
    monkeypatch.setenv("BGPROC_DB", value)
    code = run(["tasks"])
    out, err = capsys.readouterr()
    if value:  # blank: refused, naming the variable
        assert_refused(Result(code, out, err), "BGPROC_DB", "is blank", "unset BGPROC_DB")
    else:  # empty: unset, so the default database (none here)
        assert "not a regular file" not in err and "BGPROC_DB:" not in err
    assert list(tmp_path.iterdir()) == []
