"""Retries and recovery, by choice: the pure decision and backoff, the options and
task attributes that set them, and what the monitor and JSON show. (The daemon's
side is in test_daemon_tick.py and, end to end, test_daemon.py.)"""

from __future__ import annotations

import re
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import Result, created, snapshot

from bgproc.reruns import RETRY_DELAY_CAP_S, RetryPolicy, backoff_s, follow_up

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)

# The command-line tests (those taking db) run on each store.
pytestmark = pytest.mark.both_stores


# ----------------------------------------------------------------------
# Backoff


def test_backoff_doubles_from_the_retry_delay() -> None:
    assert [backoff_s(n, 10, 0.0) for n in (1, 2, 3, 4)] == [10, 20, 40, 80]


def test_jitter_adds_up_to_a_quarter() -> None:
    assert backoff_s(1, 10, 1.0) == pytest.approx(12.5)
    assert backoff_s(2, 10, 0.5) == pytest.approx(22.5)
    assert backoff_s(1, 10, 7.0) == pytest.approx(12.5)  # a jitter out of range is clamped


def test_backoff_is_capped_at_an_hour_jitter_included() -> None:
    assert backoff_s(7, 60, 0.0) == RETRY_DELAY_CAP_S  # 64 min
    assert backoff_s(6, 60, 1.0) == 2400  # 32 min and a quarter
    assert backoff_s(6, 100, 1.0) == RETRY_DELAY_CAP_S  # 53 min and a quarter: past the cap
    assert backoff_s(1000, 60, 1.0) == RETRY_DELAY_CAP_S  # no overflow


def test_a_retry_delay_longer_than_the_cap_is_kept_but_not_doubled() -> None:
    assert backoff_s(1, 7200, 0.0) == 7200
    assert backoff_s(3, 7200, 1.0) == 7200


# ----------------------------------------------------------------------
# The decision


def decide(status: str, attempt: int = 1, reason: str | None = "schedule", **policy: Any) -> Any:
    base = {"registered": True, "unscheduled": False}
    flags = {k: policy.pop(k) for k in list(policy) if k in base}
    return follow_up(
        status=status, reason=reason, attempt=attempt, policy=RetryPolicy(**policy), now=NOW, jitter=0.0,
        **{**base, **flags},
    )


@pytest.mark.parametrize("status", ["error", "timeout"])
def test_a_failed_run_is_retried_as_the_next_attempt_after_the_backoff(status: str) -> None:
    first = decide(status, retries=3, retry_delay_s=5)
    assert (first.reason, first.attempt, first.due_at) == ("retry", 2, NOW + timedelta(seconds=5))
    assert first.note.startswith("retry as attempt 2 of 4 at ")
    third = decide(status, attempt=3, retries=3, retry_delay_s=5)
    assert (third.attempt, third.due_at) == (4, NOW + timedelta(seconds=20))


def test_no_retry_past_the_last_attempt() -> None:
    last = decide("error", attempt=4, retries=3)
    assert last.reason is None and last.note == "attempt 4 of 4: no retries left"


@pytest.mark.parametrize("status", ["success", "cancelled", "skipped", "missed"])
def test_never_a_retry_of_a_run_that_did_not_fail(status: str) -> None:
    assert decide(status, retries=3, recover=True) == follow_up(
        status=status, reason=None, attempt=1, policy=RetryPolicy(), registered=True, unscheduled=False,
        now=NOW, jitter=0.0,
    )
    assert decide(status, retries=3, recover=True).reason is None


def test_at_most_once_is_the_default() -> None:
    for status in ("error", "timeout", "interrupted"):
        assert decide(status).reason is None and decide(status).note == ""


def test_never_a_retry_for_a_task_unregistered_or_a_request_unscheduled() -> None:
    gone = decide("error", retries=3, registered=False)
    assert gone.reason is None and gone.note == "not retried: its task is no longer registered"
    stopped = decide("timeout", retries=3, unscheduled=True)
    assert stopped.reason is None and stopped.note == "not retried: its request was unscheduled"
    assert decide("interrupted", recover=True, unscheduled=True).note == "not recovered: its request was unscheduled"


def test_an_interrupted_run_is_recovered_once_at_once_as_the_same_attempt() -> None:
    recovery = decide("interrupted", attempt=2, recover=True, retries=3)
    assert (recovery.reason, recovery.attempt, recovery.due_at) == ("recovery", 2, NOW)
    again = decide("interrupted", attempt=2, reason="recovery", recover=True)
    assert again.reason is None and "not recovered again" in again.note
    # Retries are for failures: an interruption is recovered only by choice.
    assert decide("interrupted", retries=3).reason is None
    # A recovery run that fails is retried like any run.
    assert decide("error", reason="recovery", retries=1).reason == "retry"


def test_the_requests_values_win_over_the_tasks() -> None:
    task = RetryPolicy(retries=5, retry_delay_s=60, recover=True)
    assert RetryPolicy.of(retries=None, retry_delay_s=None, recover=None, task=task) == task
    assert RetryPolicy.of(retries=0, retry_delay_s=2, recover=False, task=task) == RetryPolicy(
        retries=0, retry_delay_s=2, recover=False
    )
    assert RetryPolicy.of(retries=None, retry_delay_s=None, recover=None) == RetryPolicy()


# ----------------------------------------------------------------------
# Options, task attributes, JSON and the monitor


TASKS = """
    from datetime import timedelta
    from bgproc import BackgroundTask

    class Plain(BackgroundTask):
        def run(self, params):
            pass

    class Sturdy(BackgroundTask):
        retries = 4
        retry_delay = timedelta(minutes=2)
        recover = True

        def run(self, params):
            pass
"""


@pytest.fixture
def registered(cli: Any, tmp_path: Path) -> Any:
    module = tmp_path / "mod" / f"sturdy_{tmp_path.name}.py"  # a module name of its own: imported afresh
    module.parent.mkdir()
    module.write_text(textwrap.dedent(TASKS))
    result = cli("register", str(module))
    assert result.code == 0, result.err
    return cli


def refused(result: Result, *words: str) -> None:
    assert result.code != 0 and result.out == ""
    (line,) = result.err.splitlines()
    assert line.startswith("bgproc: error:") and "Traceback" not in result.err
    for word in words:
        assert word in line, line


@pytest.mark.parametrize(
    ("attribute", "seconds"),
    [("timeout = '5m'", 300), ("timeout = '1h30m'", 5400), ("timeout = 90", 90), ("timeout = 2.5", 2.5),
     ("import datetime\n    timeout = datetime.timedelta(minutes=2)", 120), ("retry_delay = '10s'", 30)],
)
def test_timeout_takes_what_retry_delay_takes(cli: Any, tmp_path: Path, attribute: str, seconds: float) -> None:
    module = tmp_path / "mod" / f"timed_{tmp_path.name}.py"
    module.parent.mkdir()
    module.write_text(
        "from bgproc import BackgroundTask\n\n"
        f"class Timed(BackgroundTask):\n    {attribute}\n\n    def run(self, params):\n        pass\n"
    )
    assert cli("register", str(module)).code == 0
    (task,) = cli("tasks", "--json").json()
    assert task["timeout_s"] == (3600 if attribute.startswith("retry_delay") else seconds)


def test_task_attributes_are_recorded_at_registration(registered: Any) -> None:
    tasks = {t["name"]: t for t in registered("tasks", "--json").json()}
    assert (tasks["Sturdy"]["retries"], tasks["Sturdy"]["retry_delay"], tasks["Sturdy"]["recover"]) == (4, 120, True)
    assert (tasks["Plain"]["retries"], tasks["Plain"]["retry_delay"], tasks["Plain"]["recover"]) == (0, 30, False)


def test_request_json_shows_the_policy_that_applies(registered: Any) -> None:
    plain = registered("schedule", "Plain", "--retries", "3", "--retry-delay", "1.5m", "--recover", "--json").json()
    assert (plain["retries"], plain["retry_delay"], plain["recover"]) == (3, 90, True)
    sturdy = registered("schedule", "Sturdy", "--json").json()
    assert (sturdy["retries"], sturdy["retry_delay"], sturdy["recover"]) == (4, 120, True)
    own = registered("schedule", "Sturdy", "--retries", "0", "--no-recover", "--json").json()
    assert (own["retries"], own["retry_delay"], own["recover"]) == (0, 120, False)
    listed = {r["id"]: r for r in registered("requests", "--json").json()}
    assert listed[own["id"]]["retries"] == 0 and listed[sturdy["id"]]["retries"] == 4
    dry = registered("schedule", "Sturdy", "--retries", "7", "--dry-run", "--json").json()["request"]
    assert (dry["retries"], dry["retry_delay"]) == (7, 120)


def test_reschedule_changes_the_policy_and_keeps_the_timing(registered: Any) -> None:
    request = registered("schedule", "Plain", "--every", "5m", "--json").json()
    moved = registered("reschedule", str(request["id"]), "--retries", "2", "--retry-delay", "10s", "--json").json()
    assert (moved["retries"], moved["retry_delay"]) == (2, 10)
    assert moved["next_run_at"] == request["next_run_at"] and moved["timing"] == request["timing"]
    text = registered("reschedule", str(request["id"]), "--recover")
    assert text.code == 0 and "retries 2 (first after 10.0s); recover" in text.out
    dry = registered("reschedule", str(request["id"]), "--retries", "9", "--dry-run", "--json").json()
    assert dry["request"]["retries"] == 9
    assert registered("requests", "--json").json()[0]["retries"] == 2  # a dry run writes nothing


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--retry-delay", "soon"], ["--retry-delay 'soon' is not a duration", "90s"]),
        (["--retry-delay", "0s"], ["--retry-delay 0s must be a positive"]),
        (["--retry-delay", "-5m"], ["--retry-delay -5m must be a positive"]),
        (["--retries", "-1"], ["--retries"]),
        (["--retries", "1001"], ["--retries"]),
        (["--retries", "two"], ["--retries"]),
    ],
)
def test_bad_retry_options_are_one_line_and_write_nothing(
    registered: Any, db: Path, args: list[str], words: list[str]
) -> None:
    request = registered("schedule", "Plain", "--every", "1h").out.strip()
    before = snapshot(db)
    refused(registered("schedule", "Plain", *args), *words)
    refused(registered("reschedule", request, *args), *words)
    assert snapshot(db) == before


@pytest.mark.parametrize(
    ("attribute", "words"),
    [
        ("retries = -1", ["retries -1 must be a whole number from 0 to 1000"]),
        ("retries = True", ["retries True"]),
        ("retry_delay = 'later'", ["retry_delay 'later' is not a duration"]),
        ("retry_delay = 0", ["retry_delay 0 must be a positive"]),
        ("recover = 'yes'", ["recover 'yes' must be True or False"]),
        ("timeout = -5", ["timeout -5 must be a positive duration, not a negative one; write 30s, 5m"]),
        ("timeout = '5M'", ["timeout '5M' has an upper-case unit"]),
        ("timeout = True", ["timeout True is not a duration"]),
        ("timeout = '0s'", ["timeout 0s must be a positive duration"]),
        ("description = 5", ["description 5 is not a string; set it to one line of text, or remove it"]),
        ("description = None", ["description None is not a string"]),
    ],
)
def test_bad_task_attributes_are_refused_at_registration(
    cli: Any, tmp_path: Path, db: Path, attribute: str, words: list[str]
) -> None:
    module = tmp_path / "mod" / f"bad_{tmp_path.name}.py"
    module.parent.mkdir()
    module.write_text(
        "from bgproc import BackgroundTask\n\n"
        f"class Odd(BackgroundTask):\n    {attribute}\n\n    def run(self, params):\n        pass\n"
    )
    refused(cli("register", str(module)), "task Odd:", *words)
    assert not created(db)


def test_the_monitor_shows_attempts(tmp_path: Path) -> None:
    from rich.console import Console

    from bgproc import views
    from bgproc.cli import render
    from bgproc.store.records import RunRecord

    def run(**fields: Any) -> RunRecord:
        base: dict[str, Any] = {
            "id": 18, "request_id": 3, "task": "T", "status": "error", "reason": "retry", "planned_at": NOW,
            "started_at": NOW, "ended_at": NOW, "exit_code": 1, "signal": None, "daemon_id": "d", "pid": 9,
            "cpu_s": None, "max_rss_kb": None, "detail": None, "missed_count": None, "missed_until": None,
            "progress_done": None, "progress_total": None, "progress_message": None, "cancel_requested_at": None,
            "attempt": 2, "retry_of": 17, "retries": 3, "followed_by": 19,
        }
        return RunRecord(**{**base, **fields})

    def shown(renderable: Any) -> str:
        console = Console(file=None, width=160, color_system=None)
        with console.capture() as capture:
            console.print(renderable)
        return capture.get()

    detail = shown(render.run_detail(run(), NOW))
    assert re.search(r"attempt +2 of 4, retries run 17", detail) and re.search(r"followed by +run 19 \(retry\)", detail)
    recovered = shown(render.run_detail(run(reason="recovery", attempt=1, retries=0, followed_by=None), NOW))
    assert re.search(r"attempt +1, recovers run 17", recovered)
    table = shown(render.runs_table([run(), run(id=20, reason="recovery", retry_of=19)], NOW))
    assert "error 2/4" in table and "error recovery" in table
    plain = shown(render.runs_table([run(reason="now", attempt=1, retries=0, retry_of=None)], NOW))
    assert "1/1" not in plain
    document = views.run_json(run())
    assert (document["attempt"], document["retry_of"]) == (2, 17)
