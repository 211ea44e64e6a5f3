"""Rendering runs and requests: escaped logs, progress, durations, JSON views."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rich.console import Console

from bgproc import views
from bgproc.cli import render
from bgproc.store.records import RunRecord

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def _run(**changes: object) -> RunRecord:
    base: dict[str, object] = dict(
        id=7, request_id=3, task="Report", status="success", reason="schedule",
        planned_at=NOW - timedelta(seconds=65), started_at=NOW - timedelta(seconds=64),
        ended_at=NOW, exit_code=0, signal=None, daemon_id="host:1:abc", pid=4321, cpu_s=0.25,
        max_rss_kb=40960, detail=None, missed_count=None, missed_until=None, progress_done=None,
        progress_total=None, progress_message=None, cancel_requested_at=None,
        log_head="12:00:00.000 hello\n", log_tail="", log_dropped=0,
    )
    base.update(changes)
    return RunRecord(**base)  # type: ignore[arg-type]


def _text(renderable: object, width: int = 140) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_control_characters_in_logs_are_shown_escaped() -> None:
    run = _run(log_head="12:00:00.000 \x1b[31mred\x1b[0m and a bell\x07\n")
    text = _text(render.run_detail(run, NOW))
    assert "\x1b" not in text and "\x07" not in text
    assert "\\x1b[31mred" in text and "\\x07" in text


def test_markup_in_logs_is_not_interpreted() -> None:
    run = _run(log_head="12:00:00.000 [bold]not bold[/bold]\n")
    assert "[bold]not bold[/bold]" in _text(render.run_detail(run, NOW))


def test_detail_shows_provenance_lateness_cpu_and_memory() -> None:
    text = _text(render.run_detail(_run(host="web-1"), NOW))
    for expected in ("schedule", "1.0s", "1m 04s", "pid 4321", "0.250s", "40.0 MiB", "code 0"):
        assert expected in text
    lines = [line.split() for line in text.splitlines()]
    assert ["host", "web-1"] in lines and ["daemon", "host:1:abc"] in lines
    assert ["host", "-"] in [line.split() for line in _text(render.run_detail(_run(), NOW)).splitlines()]


def test_dropped_log_is_marked_between_head_and_tail() -> None:
    run = _run(log_head="12:00:00.000 first\n", log_tail="12:00:09.000 last\n", log_dropped=1234)
    assert run.log == "12:00:00.000 first\n[... 1234 bytes of log dropped ...]\n12:00:09.000 last\n"
    assert "1234 bytes dropped" in _text(render.run_detail(run, NOW))


def test_table_shows_the_last_log_line_without_its_timestamp() -> None:
    run = _run(log_head=None, log_tail="12:00:00.000 one\n12:00:01.000 two\n\n")
    text = _text(render.runs_table([run], NOW))
    assert "two" in text and "12:00:01.000" not in text


def test_running_runs_show_elapsed_time_and_a_progress_bar() -> None:
    run = _run(status="running", ended_at=None, exit_code=None, progress_done=3, progress_total=4,
               progress_message="step 3 of 4")
    text = _text(render.runs_table([run], NOW))
    assert "running" in text and "1m 04s" in text and "75%" in text and "step 3 of 4" in text


def test_killed_runs_name_the_signal() -> None:
    text = _text(render.run_detail(_run(status="error", exit_code=None, signal=11), NOW))
    assert "killed by SIGSEGV" in text


def test_durations_read_well() -> None:
    assert render.duration_text(None) == "-"
    assert render.duration_text(2.25) == "2.2s"
    assert render.duration_text(125) == "2m 05s"
    assert render.duration_text(3 * 3600 + 61) == "3h 01m"


def test_run_json_carries_the_documented_keys() -> None:
    document = views.run_json(_run())
    for key in ("id", "request_id", "task", "status", "started_at", "ended_at", "duration_s", "exit_code", "log"):
        assert key in document
    assert document["duration_s"] == 64.0
    assert document["started_at"] == "2026-05-01T11:58:56+00:00"
    assert document["host"] is None and views.run_json(_run(host="web-1"))["host"] == "web-1"


def _store_with_a_running_run(tmp_path):  # type: ignore[no-untyped-def]
    from bgproc.store.sqlite import SQLiteStore as Store
    from bgproc.store.sqlite import ts
    from bgproc.timing import Timing

    store = Store.open(tmp_path / "bg.db")
    store.conn.execute(
        "INSERT INTO tasks (name, import_path, module, params_type, fields, timeout_s, registered_at, updated_at) "
        "VALUES ('Report', 'm:Report', 'm', 'm:P', '[]', 60, ?, ?)", (ts(NOW), ts(NOW)),
    )
    timing = Timing(kind="now", zone="UTC", start=NOW)
    request_id = store.insert_request(
        task="Report", params=b"\x80", timing=timing, next_run_at=NOW, timeout_s=None,
        allow_overlap=False, user="u", now=NOW,
    )
    with store.immediate():
        run_id = store.insert_run(request_id=request_id, task="Report", status="running", now=NOW,
                                  reason="now", planned_at=NOW, started_at=NOW, daemon_id="d")
        store.write_log(run_id, append_head="12:00:00.000 first line\n", tail=None, dropped=0)
    return store, run_id


def test_following_a_run_through_a_pipe_streams_its_log_then_its_outcome(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from bgproc.cli.follow import follow_run
    from bgproc.clock import FakeClock

    store, run_id = _store_with_a_running_run(tmp_path)

    class RunEndsWhileWeWait(FakeClock):
        calls = 0

        def sleep(self, seconds: float) -> None:
            super().sleep(seconds)
            self.calls += 1
            with store.immediate():
                if self.calls <= 2:  # the same progress twice: said once
                    store.set_progress(run_id, 3, 4, "step 3")
                else:
                    store.write_log(run_id, append_head="12:00:01.000 second line\n", tail=None, dropped=0)
                    store.finish_run(run_id, status="success", ended_at=NOW + timedelta(seconds=2), exit_code=0)

    console = Console(width=100, record=True, color_system=None, force_terminal=False)
    follow_run(store, run_id, console, clock=RunEndsWhileWeWait(NOW))
    text = console.export_text()
    assert text.index("first line") < text.index("[progress] 3/4 (75%) step 3") < text.index("second line")
    assert text.index("second line") < text.index("run 1 success after 2.0s")
    assert text.count("first line") == 1 and text.count("[progress]") == 1
    store.close()


def test_following_executions_through_a_pipe_prints_a_table_per_change(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from bgproc.cli.follow import follow_runs
    from bgproc.clock import FakeClock
    from bgproc.store.sqlite import SQLiteStore as Store

    store, run_id = _store_with_a_running_run(tmp_path)

    class Scripted(FakeClock):
        calls = 0

        def sleep(self, seconds: float) -> None:
            super().sleep(seconds)
            self.calls += 1
            if self.calls == 1:  # progress alone is no reason for a new table in a file
                with Store.open(store.path) as daemon_side, daemon_side.immediate():
                    daemon_side.set_progress(run_id, 1, 2, "half")
            if self.calls == 2:  # the daemon, another connection, records the outcome
                with Store.open(store.path) as daemon_side, daemon_side.immediate():
                    daemon_side.finish_run(run_id, status="error", ended_at=NOW + timedelta(seconds=1), exit_code=3)
            if self.calls == 4:
                raise KeyboardInterrupt  # Ctrl-C

    console = Console(width=140, record=True, color_system=None, force_terminal=False)
    follow_runs(store, {"limit": 10}, console, clock=Scripted(NOW))
    text = console.export_text()
    assert text.count("Executions (Ctrl-C to stop)") == 2
    assert text.index("running") < text.index("error")
    store.close()


def test_a_followed_log_whose_tail_rolls_says_what_was_dropped_and_repeats_nothing() -> None:
    from bgproc.cli.follow import _LogStream

    stream = _LogStream()
    first = _run(log_head="h1\nh2\n", log_tail="t1\nt2\n", log_dropped=10)
    assert stream.new_text(first) == "h1\nh2\n[... 10 bytes of log dropped ...]\nt1\nt2\n"
    # The window moved on by one line: only the new line, no marker.
    assert stream.new_text(_run(log_head="h1\nh2\n", log_tail="t2\nt3\n", log_dropped=13)) == "t3\n"
    # It rolled past everything shown: the gap is said, then the window.
    rolled = _run(log_head="h1\nh2\n", log_tail="t8\nt9\n", log_dropped=40)
    assert stream.new_text(rolled) == "[... 30 bytes of log dropped ...]\nt8\nt9\n"
    assert stream.new_text(rolled) == ""


def test_following_as_json_streams_a_line_per_change(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import io
    import json

    from bgproc.cli.follow import follow_json
    from bgproc.clock import FakeClock

    store, run_id = _store_with_a_running_run(tmp_path)

    class Scripted(FakeClock):
        calls = 0

        def sleep(self, seconds: float) -> None:
            super().sleep(seconds)
            self.calls += 1
            with store.immediate():
                if self.calls == 1:
                    store.set_progress(run_id, 1, 2, "half")
                elif self.calls == 3:
                    store.finish_run(run_id, status="success", ended_at=NOW + timedelta(seconds=3), exit_code=0)

    out = io.StringIO()
    follow_json(store, {}, out, run_id=run_id, clock=Scripted(NOW))
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(d["status"], d["progress"] and d["progress"]["done"]) for d in lines] == [
        ("running", None), ("running", 1), ("success", 1)
    ]
    assert all("log" not in d and d["id"] == run_id for d in lines)
    store.close()


def test_following_as_json_tells_the_end_of_a_run_that_left_the_filter(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import io
    import json

    from bgproc.cli.follow import follow_json
    from bgproc.clock import FakeClock

    store, run_id = _store_with_a_running_run(tmp_path)

    class Scripted(FakeClock):
        calls = 0

        def sleep(self, seconds: float) -> None:
            super().sleep(seconds)
            self.calls += 1
            if self.calls == 1:
                with store.immediate():
                    store.finish_run(run_id, status="error", ended_at=NOW + timedelta(seconds=1), exit_code=2)
            if self.calls == 3:
                raise KeyboardInterrupt

    out = io.StringIO()
    follow_json(store, {"status": "running", "limit": 10}, out, clock=Scripted(NOW))
    assert [json.loads(line)["status"] for line in out.getvalue().splitlines()] == ["running", "error"]
    store.close()


def test_following_as_json_keeps_to_one_host(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import io
    import json

    from bgproc.cli.follow import follow_json
    from bgproc.clock import FakeClock

    store, run_id = _store_with_a_running_run(tmp_path)  # no host recorded
    request_id = store.get_run(run_id).request_id

    def record(host: str) -> int:
        with store.immediate():
            return store.insert_run(request_id=request_id, task="Report", status="missed", now=NOW, host=host)

    beta = record("beta")

    class Scripted(FakeClock):
        calls = 0

        def sleep(self, seconds: float) -> None:
            super().sleep(seconds)
            self.calls += 1
            if self.calls == 1:
                record("alpha")
                record("beta")
            if self.calls == 3:
                raise KeyboardInterrupt

    out = io.StringIO()
    follow_json(store, {"host": "beta", "limit": 10}, out, clock=Scripted(NOW))
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [d["host"] for d in lines] == ["beta", "beta"] and lines[0]["id"] == beta
    store.close()
