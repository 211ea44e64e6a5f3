"""README stays true: every command is documented, and CI runs README's test command."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from bgproc.cli import app

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _commands() -> dict[str, object]:
    group = typer.main.get_command(app)
    return dict(group.commands)  # type: ignore[attr-defined]


def test_every_command_has_help_and_a_readme_section() -> None:
    commands = _commands()
    assert {"register", "tasks", "unregister", "schedule", "requests", "unschedule", "reschedule",
            "upcoming", "monitor", "daemon", "cancel", "demo"} <= set(commands)
    for name, command in commands.items():
        assert (command.help or "").strip(), f"bgproc {name} has no help text"
        assert re.search(rf"^### bgproc {name}\b", README, re.M), f"README has no section for bgproc {name}"


def test_every_option_has_help() -> None:
    for name, command in _commands().items():
        for param in command.params:  # type: ignore[attr-defined]
            if param.param_type_name == "option":
                assert (param.help or "").strip(), f"bgproc {name} {param.opts[0]} has no help"


def test_ci_runs_the_test_command_that_readme_gives() -> None:
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    command = ci[-1].strip()
    assert command == "python -m pytest -q"
    quickstart = re.findall(r"```sh\n(.*?)\n```", README, re.S)
    assert quickstart[0].endswith("bgproc demo"), "the first quickstart command runs the sample"
    assert quickstart[1].endswith(command), "the second quickstart command runs the tests as CI does"
    assert "install -e '.[test]'" in quickstart[1] and "install -e '.[test]'" in "\n".join(ci)
    assert "ruff check bgproc tests benchmarks sample_tasks" in ci and "mypy bgproc" in ci, "CI lints and types"


def test_readme_layout_names_every_module() -> None:
    """README's layout table matches the code: every module named, none that is gone
    (a package's ``__init__.py`` that only re-exports need not be)."""
    layout = README[README.index("## Layout"):]
    rows = [line for line in layout.splitlines() if line.startswith("| `")]
    named = {name for row in rows for name in re.findall(r"`([\w/]+\.py)`", row.split("|")[1])}
    package = ROOT / "bgproc"
    modules = {path.relative_to(package).as_posix() for path in package.rglob("*.py")}
    missing = {m for m in modules - named if not m.endswith("__init__.py")}
    assert not missing, f"README's layout omits {sorted(missing)}"
    assert named <= modules, f"README's layout names modules that are gone: {sorted(named - modules)}"


def test_readme_says_a_recurring_first_fire_may_have_passed_within_the_grace() -> None:
    from datetime import UTC, datetime

    from bgproc.timing import TimingOptions, parse_timing
    from bgproc.timing.model import AT_GRACE

    text = " ".join(README.split())
    seconds = int(AT_GRACE.total_seconds())
    assert f"first fire may be one that passed within the last {seconds} seconds" in text
    # README's example: rescheduled at 16:31:45, an every-10s request runs its 16:31:39 slot.
    assert "`reschedule` at 16:31:45 of an every-10s request runs its 16:31:39 slot" in text
    now = datetime(2026, 5, 4, 16, 31, 45, tzinfo=UTC)
    timing = parse_timing(TimingOptions(every="10s", start="2026-05-04T16:00:09"), now, "UTC")
    assert timing.due_from(now) == datetime(2026, 5, 4, 16, 31, 39, tzinfo=UTC)


def test_readme_names_every_daemon_duration_option_as_a_duration() -> None:
    text = " ".join(README.split())
    for option in ("--grace", "--kill-after", "--startup-timeout"):
        assert f"[{option} D]" in README, f"README's daemon synopsis takes {option} as a DURATION"
        assert f"`{option}`" in text
    assert "`daemon --grace`, `--kill-after` and `--startup-timeout`" in text


def test_readme_says_what_a_sqlite_url_names() -> None:
    from bgproc.store import sqlite_path

    text = " ".join(README.split())
    assert "`sqlite:///tmp/x.db` is the file `/tmp/x.db` (not SQLAlchemy's convention" in text
    assert "`sqlite:////tmp/x.db` names the same file `/tmp/x.db`" in text
    assert sqlite_path("sqlite:///tmp/x.db") == Path("/tmp/x.db")
    assert sqlite_path("sqlite:////tmp/x.db").resolve() == Path("/tmp/x.db").resolve()
    assert sqlite_path("sqlite:///tmp/a%20b.db") == Path("/tmp/a b.db")


def test_readme_says_the_years_a_when_may_name() -> None:
    from datetime import UTC, datetime

    from bgproc.timing.options import EARLIEST, LATEST

    text = " ".join(README.split())
    assert "A WHEN (`--at`, `--start`, `--finish`, `monitor --since`) must fall in the years 1900 to 8999" in text
    assert "up to 9999-01-01, where bgproc's calendar ends" in text
    assert (EARLIEST, LATEST) == (datetime(1900, 1, 1, tzinfo=UTC), datetime(9000, 1, 1, tzinfo=UTC))
