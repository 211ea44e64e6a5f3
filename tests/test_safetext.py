"""What a task or a user writes cannot spoof the terminal: control, format and
separator characters are shown escaped everywhere text is shown (monitor,
follow mode, the daemon's event lines, the command line's messages), and
written as JSON escapes in --json output."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import ROOT, bgproc_env, run_bgproc, wait_until
from rich.console import Console

from bgproc.child import record_lines
from bgproc.cli import render
from bgproc.daemon.reporter import Reporter
from bgproc.safetext import escape, json_text
from bgproc.store.records import RunRecord, TaskRecord

FIXTURE = str(Path(__file__).resolve().parent / "fixtures" / "spoof_tasks.py")
NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
# One of each kind: bidi override and isolate, zero-width space, line and paragraph
# separators, NEL (C1), an escape sequence (C0), a BOM, a tag character past the BMP.
SPOOF = "a\u202eb\u2066c\u200bd\u2028e\u2029f\x85g\x1b[31mh\ufeffi\U000e0041j"
SHOWN = "a\\u202eb\\u2066c\\u200bd\\u2028e\\u2029f\\x85g\\x1b[31mh\\ufeffi\\U000e0041j"
RAW = ("\u202e", "\u2066", "\u200b", "\u2028", "\u2029", "\x85", "\x1b", "\ufeff", "\U000e0041")
RLO = "\u202e"
TASK = f"Spoof{RLO}exe.txt"


def _clean(text: str) -> bool:
    """No character in ``text`` that could act on a terminal."""
    return not any(c in text for c in RAW) and RLO not in text


def _text(renderable: object, width: int = 200) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def _run(**changes: object) -> RunRecord:
    base: dict[str, object] = dict(
        id=7, request_id=3, task=TASK, status="error", reason="schedule",
        planned_at=NOW - timedelta(seconds=65), started_at=NOW - timedelta(seconds=64),
        ended_at=NOW, exit_code=1, signal=None, daemon_id=f"host{RLO}:1:abc", pid=4321, cpu_s=0.25,
        max_rss_kb=40960, detail=f"exit code 1 {SPOOF}", missed_count=None, missed_until=None,
        progress_done=None, progress_total=None, progress_message=None, cancel_requested_at=None,
        log_head=f"12:00:00.000 first {SPOOF}\n12:00:01.000 last {SPOOF}\n", log_tail="", log_dropped=0,
    )
    base.update(changes)
    return RunRecord(**base)  # type: ignore[arg-type]


# ----------------------------------------------------------------------
# The one escaping function


def test_control_format_and_separator_characters_are_shown_visibly() -> None:
    assert escape(SPOOF) == SHOWN
    assert escape("tab\there\nnext") == "tab\\x09here\\x0anext"  # one line
    shown = escape("\ud800 lone surrogate, soft\u00adhyphen, \x7f\x9b")
    assert shown == "\\ud800 lone surrogate, soft\\xadhyphen, \\x7f\\x9b"


def test_printable_text_of_any_script_is_kept() -> None:
    text = "Grüße, 日本語, עברית, emoji 🎉, nbsp\u00a0and ideographic\u3000space"
    assert escape(text) == text
    assert escape(text, lines=True) == text


def test_log_lines_keep_their_newlines_and_tabs() -> None:
    assert escape(f"one\tcol\n{SPOOF}\r\n", lines=True) == f"one\tcol\n{SHOWN}\\x0d\n"


def test_json_escapes_them_and_keeps_the_data() -> None:
    document = {"task": TASK, "log": f"{SPOOF}\nnext\ttab", "n": [1, "日本"]}
    for indent in (None, 2):
        text = json_text(document, indent=indent)
        assert _clean(text) and "日本" in text
        assert "\\u202e" in text and "\\u2028" in text and "\\u0085" in text and "\\udb40\\udc41" in text
        assert json.loads(text) == document


def test_connection_log_records_are_split_on_newlines_only() -> None:
    assert record_lines(f"one {SPOOF} line") == [f"one {SPOOF} line"]
    assert record_lines("a\nb\r\nc\n") == ["a", "b", "c"]
    assert record_lines("") == [""]
    assert record_lines("a\n\n") == ["a", ""]


# ----------------------------------------------------------------------
# Each place that shows text


def test_the_monitor_shows_them_escaped() -> None:
    run = _run()
    table = _text(render.runs_table([run], NOW, width=200))
    assert _clean(table) and "Spoof\\u202eexe.txt" in table and f"last {SHOWN}"[:40] in table
    detail = _text(render.run_detail(run, NOW))
    assert _clean(detail)
    for shown in ("Spoof\\u202eexe.txt", "host\\u202e:1:abc", f"exit code 1 {SHOWN}", f"first {SHOWN}"):
        assert shown in detail
    # Nothing from the run is read as markup either.
    marked = _text(render.runs_table([_run(task="[bold]T[/bold]", log_head="", detail="[red]x")], NOW))
    assert "[bold]T[/bold]" in marked and "[red]x" in marked


def test_progress_messages_are_shown_escaped() -> None:
    run = _run(status="running", ended_at=None, progress_done=1.0, progress_total=2.0, progress_message=SPOOF)
    assert render.progress_line(run) == f"1/2 (50%) {SHOWN}"
    for renderable in (render.runs_table([run], NOW, width=200), render.run_detail(run, NOW)):
        assert _clean(_text(renderable))


def test_the_last_log_line_is_whole_across_a_line_separator() -> None:
    assert render.last_line(f"12:00:00.000 before\u2028after {RLO}\n") == "before\\u2028after \\u202e"


def test_the_tasks_table_shows_them_escaped() -> None:
    task = TaskRecord(
        name=TASK, import_path=f"spoof{RLO}:Spoof", module="spoof", description=f"d{RLO}\u2028e",
        fields=[{"name": "note", "type": "str", "required": False, "default": RLO}], timeout_s=60,
        search_path=None, registered_at=NOW, updated_at=NOW, params_type="SpoofParams",
    )
    text = _text(render.tasks_table([task]))
    assert _clean(text) and "Spoof\\u202eexe.txt" in text and "d\\u202e\\u2028e" in text


def test_the_daemons_event_lines_show_them_escaped() -> None:
    from bgproc.clock import FakeClock

    stream = io.StringIO()
    reporter = Reporter(stream, live=False, clock=FakeClock(NOW))
    reporter.finished(1, TASK, "error", SPOOF, 0.5)
    line = stream.getvalue()
    assert _clean(line) and line.count("\n") == 1
    assert f"finished run 1 (Spoof\\u202eexe.txt): error in 0.50s, {SHOWN}" in line


def test_piped_follow_of_a_run_shows_them_escaped() -> None:
    from bgproc.cli.follow import follow_run

    class OneRun:
        def get_run(self, run_id: int) -> RunRecord:
            return _run(progress_done=1.0, progress_total=2.0, progress_message=SPOOF)

    out = io.StringIO()
    console = Console(file=out, width=200, color_system=None, force_terminal=False)
    follow_run(OneRun(), 7, console)  # type: ignore[arg-type]
    text = out.getvalue()
    assert _clean(text)
    assert f"first {SHOWN}" in text and f"[progress] 1/2 (50%) {SHOWN}" in text
    assert f"run 7 error after 1m 04s: exit code 1 {SHOWN}" in text


def test_follow_json_writes_them_as_json_escapes() -> None:
    from bgproc.cli.follow import follow_json
    from bgproc.clock import FakeClock

    class OneRun:
        def get_run(self, run_id: int) -> RunRecord:
            return _run(progress_done=1.0, progress_total=2.0, progress_message=SPOOF)

    out = io.StringIO()
    follow_json(OneRun(), {}, out, run_id=7, clock=FakeClock(NOW))  # type: ignore[arg-type]
    (line,) = out.getvalue().splitlines()
    assert _clean(line)
    document = json.loads(line)
    assert document["task"] == TASK and document["progress"]["message"] == SPOOF and document["detail"].endswith(SPOOF)


# ----------------------------------------------------------------------
# The command line


@pytest.fixture
def older_bgproc(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register as a bgproc before names were checked did: such a name can be in a
    database still, and everything that shows it must show it escaped."""
    import bgproc.registry

    monkeypatch.setattr(bgproc.registry, "task_name", lambda cls: cls.name)


def test_registering_a_spoofing_name_is_refused_in_a_clean_line(cli) -> None:  # type: ignore[no-untyped-def]
    refused = cli("register", FIXTURE)
    assert refused.code == 1 and refused.out == "" and refused.err.count("\n") == 1
    assert _clean(refused.err) and "'Spoof\\u202eexe.txt' contains a control or invisible character" in refused.err


def test_command_line_lines_show_them_escaped(cli, older_bgproc) -> None:  # type: ignore[no-untyped-def]
    registered = cli("register", FIXTURE)
    assert registered.code == 0, registered.err
    assert registered.out == "registered spoof_tasks: Spoof\\u202eexe.txt\n"

    listed = cli("tasks")
    assert _clean(listed.out) and "Spoof\\u202eexe.txt" in listed.out and "spoofs\\u202e the" in listed.out
    as_json = cli("tasks", "--json")
    assert _clean(as_json.out) and as_json.json()[0]["name"] == TASK

    dry = cli("schedule", TASK, "--dry-run", "-n", "1")
    assert dry.code == 0, dry.err
    assert dry.out.startswith("dry run: Spoof\\u202eexe.txt, once, now; nothing written")

    scheduled = cli("schedule", TASK, "--user", f"mallory{RLO}\u2028", "-p", f"note={SPOOF}", "--json")
    assert scheduled.code == 0, scheduled.err
    assert _clean(scheduled.out)
    assert scheduled.json()["user"] == f"mallory{RLO}\u2028" and scheduled.json()["params"]["note"] == SPOOF
    requests = cli("requests", "--json")
    assert _clean(requests.out) and requests.json()[0]["task"] == TASK
    table = cli("requests")
    assert _clean(table.out) and "Spoof\\u202eexe.txt" in table.out

    unknown = cli("schedule", f"Nope{RLO}\u2028x\x1b[2J")
    assert unknown.code != 0 and unknown.err.count("\n") == 1
    assert _clean(unknown.err) and "Nope\\u202e\\u2028x\\x1b[2J" in unknown.err
    usage = cli(f"monitor{RLO}")
    assert usage.code == 2 and _clean(usage.err) and "monitor\\u202e" in usage.err

    gone = cli("unregister", TASK)
    assert gone.code == 0, gone.err
    assert gone.out == "unregistered Spoof\\u202eexe.txt; unscheduled 1 request\n"


@pytest.mark.daemon
def test_a_run_that_writes_them_is_shown_escaped_end_to_end(cli, db: Path, older_bgproc) -> None:  # type: ignore[no-untyped-def]
    assert cli("register", FIXTURE).code == 0  # in this process, as an older bgproc would
    scheduled = run_bgproc(db, "schedule", TASK)
    assert scheduled.code == 0, scheduled.err
    done = run_bgproc(db, "daemon", "--once", timeout=60)
    assert done.code == 0, done.err
    assert _clean(done.err) and "Spoof\\u202eexe.txt" in done.err  # the daemon's event lines

    listed = run_bgproc(db, "monitor", "--json")
    assert _clean(listed.out)
    (run,) = listed.json()
    assert run["status"] == "success" and run["task"] == TASK
    # The record is one line of the log, whatever separators it holds.
    (record,) = [line for line in run["log"].split("\n") if "[INFO] record" in line]
    assert record.endswith(f"[INFO] record {SPOOF} one line")
    assert run["progress"]["message"] == f"progress {SPOOF}"

    table = run_bgproc(db, "monitor")
    assert table.code == 0 and _clean(table.out) and "Spoof\\u202eexe.txt" in table.out
    detail = run_bgproc(db, "monitor", str(run["id"]))
    assert detail.code == 0 and _clean(detail.out)
    for shown in ("Spoof\\u202eexe.txt", "printed a\\u202eb", "stderr a\\u202eb", "[INFO] record a\\u202eb"):
        assert shown in detail.out
    followed = run_bgproc(db, "monitor", str(run["id"]), "--follow")
    assert followed.code == 0 and _clean(followed.out)
    assert "printed a\\u202eb\\u2066c\\u200bd\\u2028e\\u2029f\\x85g\\x1b[31m" in followed.out

    # The piped executions view runs until stopped: its first table, then SIGTERM.
    piped = db.parent / "follow.out"
    with piped.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bgproc", "monitor", "--follow"], stdout=out, stderr=subprocess.DEVNULL,
            env=bgproc_env(db), cwd=str(ROOT),
        )
        try:
            wait_until(lambda: "last a" in piped.read_text(errors="replace"), 30)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    text = piped.read_text()
    assert proc.returncode == 0 and _clean(text) and "Spoof\\u202eexe.txt" in text
