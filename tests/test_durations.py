"""One duration grammar and one formatter, for every option that takes a duration:
``--every``, ``--timeout``, ``--retry-delay``, ``+WHEN``, ``monitor --since``,
``daemon --grace``, ``--kill-after`` and ``--startup-timeout``, and the task attributes."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import Result

from bgproc.cli import render
from bgproc.errors import BgprocError, TimingError
from bgproc.requests import retry_policy
from bgproc.timing import TimingOptions, format_duration, parse_duration, parse_timing, parse_when

NOW = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
GOOD = Path(__file__).resolve().parent / "fixtures" / "good_tasks.py"
Cli = Callable[..., Result]


def every(text: str) -> timedelta:
    timing = parse_timing(TimingOptions(every=text), NOW, "UTC")
    assert timing.interval is not None
    return timing.interval


def refusal(call: Callable[[], object]) -> str:
    with pytest.raises(BgprocError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message, "a refusal is one line"
    return message


# ----------------------------------------------------------------------
# The grammar


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90), ("90", 90), ("5m", 300), ("1.5h", 5400), ("1h30m", 5400), ("1h 30m", 5400),
        (" 2h ", 7200), ("2d12h", 216000), (".5m", 30), ("1m30.5s", 90.5), ("0.25", 0.25), ("1e3", 1000),
    ],
)
def test_a_duration_is_number_unit_parts_or_a_bare_number_of_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text, "--timeout") == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["1h30", "h", "", "1x", "1hh", "1.2.3s", "1h-30m", "1_000", "\u0663m", "1h\u0663m"])
def test_anything_else_is_refused_in_the_same_words_for_every_option(text: str) -> None:
    tails = set()
    for option in ("--timeout", "--retry-delay", "--every"):
        message = refusal(lambda option=option: parse_duration(text, option))
        head = f"{option} {text!r} is not a duration; "
        assert message.startswith(head), message
        tails.add(message.removeprefix(head))
    assert tails == {"write 30s, 5m, 2h or 3d, combined as 1h30m or 1.5h, or 90 for 90s"}


def test_every_option_refuses_a_bad_duration_with_the_same_example() -> None:
    timeout = refusal(lambda: retry_policy(None, "soon", None))
    interval = refusal(lambda: every("soon"))
    assert timeout == "--retry-delay 'soon' is not a duration; " + timeout.split("; ", 1)[1]
    assert interval.split("; ", 1)[1] == timeout.split("; ", 1)[1]
    assert interval.startswith("--every 'soon' is not an interval; ")


@pytest.mark.parametrize("option", ["--every", "--timeout", "--retry-delay"])
def test_zero_negative_and_infinite_are_refused_in_the_same_words(option: str) -> None:
    examples = "write 30s, 5m, 2h or 3d, combined as 1h30m or 1.5h, or 90 for 90s"
    assert refusal(lambda: parse_duration("0s", option)) == f"{option} 0s must be a positive duration; {examples}"
    assert refusal(lambda: parse_duration("-1h30m", option)) == (
        f"{option} -1h30m must be a positive duration, not a negative one; {examples}"
    )
    assert refusal(lambda: parse_duration("inf", option)).startswith(f"{option} inf must be a positive, finite")
    assert refusal(lambda: parse_duration("36525d1s", option)) == (
        f"{option} '36525d1s' is longer than 100 years, the longest duration bgproc takes; give at most 36525d"
    )


def test_an_upper_case_unit_is_refused_saying_what_to_write() -> None:
    assert refusal(lambda: parse_duration("5M", "--every")) == (
        "--every '5M' has an upper-case unit; units are lower-case s, m, h and d, and none is months "
        "(use --monthly for those): write 5m for minutes"
    )
    assert refusal(lambda: parse_duration(" 2H ", "--timeout")) == (
        "--timeout ' 2H ' has an upper-case unit; units are lower-case s, m, h and d: write 2h"
    )
    assert refusal(lambda: parse_duration("1h30M", "--retry-delay")).endswith("write 1h30m for minutes")
    assert parse_duration("1E3", "--timeout") == timedelta(seconds=1000)  # an exponent, not a unit


@pytest.mark.parametrize(("text", "total"), [("5m5m", "10m"), ("1h30m1h", "150m"), ("1s 1s", "2s")])
def test_a_unit_given_twice_is_refused(text: str, total: str) -> None:
    unit = text.strip()[-1]
    assert refusal(lambda: parse_duration(text, "--every")) == (
        f"--every {text!r} gives the unit {unit} more than once; give each unit once: write {total}"
    )


# ----------------------------------------------------------------------
# Each use, with its own lower bound


def test_every_takes_a_bare_number_a_fraction_and_parts() -> None:
    assert every("90") == timedelta(seconds=90)
    assert every("1.5h") == timedelta(minutes=90)
    assert every("1h30m") == timedelta(minutes=90)
    assert every("0.5m") == timedelta(seconds=30)
    timing = parse_timing(TimingOptions(every="1.5h"), NOW, "UTC")
    assert timing.describe() == "every 90 minutes"
    assert timing.to_dict() == {"kind": "every", "every": "90m", "interval_s": 5400.0}


def test_every_refuses_a_fraction_of_a_second_saying_why() -> None:
    assert refusal(lambda: every("1.5s")) == (
        "--every 1.5s is not a whole number of seconds, and fires fall on whole seconds; write 1s or 2s"
    )
    assert refusal(lambda: every("0.5")) == (
        "--every 0.5 is not a whole number of seconds, and fires fall on whole seconds; write 1s"
    )
    assert refusal(lambda: every("1m0.5s")).endswith("write 1m or 61s")


def test_timeout_and_retry_delay_take_parts_and_fractions() -> None:
    assert parse_duration("1h30m", "--timeout").total_seconds() == 5400
    assert parse_duration("1.5s", "--timeout").total_seconds() == 1.5
    assert retry_policy(None, "2m30s", None) == {"retry_delay_s": 150.0}
    assert retry_policy(None, 90, None) == {"retry_delay_s": 90.0}


def test_relative_when_refuses_a_zero_duration() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    for text in ("+0s", "+0", "+0m0s"):
        assert refusal(lambda text=text: parse_when(text, NOW, berlin, "--at")) == (
            f"--at {text} is a zero duration; write now, or a time after now such as +5m"
        )
    assert refusal(lambda: parse_when("+0s", NOW, berlin, "--start")).startswith("--start +0s is a zero duration")
    assert refusal(lambda: parse_when("+5m5m", NOW, berlin, "--at")).startswith("--at '+5m5m' gives the unit m")


def test_relative_when_takes_any_duration() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    assert parse_when("+1h30m", NOW, berlin, "--at") == NOW + timedelta(minutes=90)
    assert parse_when("+90", NOW, berlin, "--at") == NOW + timedelta(seconds=90)
    assert parse_when("+1.5h", NOW, berlin, "--start") == NOW + timedelta(minutes=90)
    assert parse_when("+0.5s", NOW, berlin, "--at") == NOW + timedelta(seconds=0.5)
    with pytest.raises(TimingError, match=r"--at '\+1h30' is not a relative time; write \+90s"):
        parse_when("+1h30", NOW, berlin, "--at")
    with pytest.raises(TimingError, match=r"--at '\+-5m' is not a relative time"):
        parse_when("+-5m", NOW, berlin, "--at")


# ----------------------------------------------------------------------
# The formatter


@pytest.mark.parametrize(
    ("seconds", "spec", "compact", "words", "rough"),
    [
        (30, "30s", "30.0s", "30 seconds", "30 seconds"),
        (60, "1m", "1m 00s", "minute", "1 minute"),
        (90, "90s", "1m 30s", "90 seconds", "1 minute"),
        (5400, "90m", "1h 30m", "90 minutes", "1 hour"),
        (7200, "2h", "2h 00m", "2 hours", "2 hours"),
        (259200, "3d", "72h 00m", "72 hours", "3 days"),
        (2.25, "2.25s", "2.2s", "2.25 seconds", "2 seconds"),
    ],
)
def test_one_formatter_in_four_styles(seconds: float, spec: str, compact: str, words: str, rough: str) -> None:
    assert [format_duration(seconds, s) for s in ("spec", "compact", "words", "rough")] == [  # type: ignore[arg-type]
        spec, compact, words, rough,
    ]
    assert format_duration(timedelta(seconds=seconds), "spec") == spec
    assert render.duration_text(seconds) == compact


def test_what_the_formatter_writes_the_grammar_reads_back() -> None:
    for seconds in (1, 59, 61, 90, 3600, 5400, 86400, 90061, 36525 * 86400):
        assert parse_duration(format_duration(seconds, "spec"), "--every") == timedelta(seconds=seconds)


# ----------------------------------------------------------------------
# From the command line, and task attributes


@pytest.fixture
def registered(cli: Cli, tmp_path: Path) -> Iterator[Cli]:
    saved_path, before = list(sys.path), set(sys.modules)
    assert cli("register", str(GOOD)).code == 0
    yield cli
    sys.path[:] = saved_path
    for name in set(sys.modules) - before:
        if (getattr(sys.modules[name], "__file__", None) or "").startswith((str(GOOD.parent), str(tmp_path))):
            del sys.modules[name]


def test_the_command_line_takes_the_new_forms(registered: Cli) -> None:
    shown = registered("schedule", "Greet", "-p", "who=a", "--every", "1h30m", "--timeout", "90", "--dry-run")
    assert shown.code == 0, shown.err
    assert "dry run: Greet, every 90 minutes; nothing written" in shown.out
    made = registered("schedule", "Greet", "-p", "who=a", "--every", "90", "--timeout", "1.5h",
                      "--retry-delay", "1m30s", "--json")
    assert made.code == 0, made.err
    request = made.json()
    assert (request["timing"]["every"], request["timeout_s"], request["retry_delay"]) == ("90s", 5400.0, 90)
    assert request["timing"]["text"] == "every 90 seconds"
    for since in ("1h30m", "-1.5h", "90"):
        assert registered("monitor", "--since", since).code == 0


def test_the_command_line_refuses_a_fraction_of_a_second_in_one_line(registered: Cli) -> None:
    result = registered("schedule", "Greet", "-p", "who=a", "--every", "1.5s")
    assert result.code != 0 and result.out == ""
    assert result.err.strip() == (
        "bgproc: error: --every 1.5s is not a whole number of seconds, and fires fall on whole seconds; "
        "write 1s or 2s"
    )
    assert registered("requests", "--json").json() == []


@pytest.mark.parametrize(("args", "said"), [
    (["--at", "+0s"], "--at +0s is a zero duration; write now, or a time after now such as +5m"),
    (["--every", "5M"], "--every '5M' has an upper-case unit; "),
    (["--every", "5m5m"], "--every '5m5m' gives the unit m more than once; give each unit once: write 10m"),
    (["--at", "2026-12-24T10:00:00.123456789"], "gives the second to 9 decimal places; "),
])
def test_the_command_line_refuses_what_the_grammar_refuses_in_one_line(
    registered: Cli, args: list[str], said: str
) -> None:
    result = registered("schedule", "Greet", "-p", "who=a", *args)
    assert result.code != 0 and result.out == ""
    assert said in result.err and result.err.count("\n") == 1 and "Traceback" not in result.err
    assert registered("requests", "--all", "--json").json() == []


def test_task_attributes_read_the_grammar_and_the_bound(cli: Cli, tmp_path: Path) -> None:
    def module(name: str, attribute: str) -> str:
        path = tmp_path / f"{name}.py"
        path.write_text(textwrap.dedent(f'''
            from bgproc import BackgroundTask

            class {name.title()}(BackgroundTask):
                {attribute}
                def run(self, params): pass
        '''))
        return str(path)

    saved_path = list(sys.path)
    try:
        assert cli("register", module("patient", 'retry_delay = "1h30m"')).code == 0
        assert cli("tasks", "--json").json()[0]["retry_delay"] == 5400
        result = cli("register", module("endless", "timeout = 10 ** 12"))
        assert result.code != 0
        assert "task Endless: timeout 1000000000000 is longer than 100 years" in result.err
    finally:
        sys.path[:] = saved_path
        sys.modules.pop("patient", None)
        sys.modules.pop("endless", None)


def test_the_daemons_durations_take_the_grammar_and_bare_seconds(
    cli: Cli, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bgproc.daemon

    configs: list[object] = []

    class Recorded:
        def __init__(self, store: object, config: object, **_: object) -> None:
            configs.append(config)

        def run(self) -> int:
            return 0

    monkeypatch.setattr(bgproc.daemon, "Daemon", Recorded)
    assert cli("daemon", "--grace", "2m", "--kill-after", "1m30s", "--startup-timeout", "1.5m").code == 0
    assert cli("daemon", "--grace", "0", "--kill-after", "2.5", "--startup-timeout", "90").code == 0
    assert cli("daemon").code == 0
    got = [(c.grace_s, c.kill_after_s, c.startup_timeout_s) for c in configs]  # type: ignore[attr-defined]
    assert got == [(120, 90, 90), (0, 2.5, 90), (30, 5, 60)]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--grace", "soon"), "--grace 'soon' is not a duration; write 30s, 5m"),
        (("--grace", "-5s"), "--grace"),
        (("--kill-after", "inf"), "--kill-after inf must be a positive, finite duration"),
        (("--kill-after", "36526d"), "--kill-after '36526d' is longer than 100 years"),
        (("--startup-timeout", "0.5s"), "--startup-timeout '0.5s' is shorter than 1s; give 1s or more"),
    ],
)
def test_a_bad_daemon_duration_is_refused_in_the_grammars_words(
    cli: Cli, db: Path, args: tuple[str, ...], words: str
) -> None:
    result = cli("daemon", *args)
    assert result.code == 1 and result.out == ""
    assert result.err.startswith("bgproc: error: ") and result.err.count("\n") == 1 and words in result.err
    assert not db.exists()
