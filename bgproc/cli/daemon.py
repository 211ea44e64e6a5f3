"""Commands that run work: daemon, and demo (the sample end to end)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import BgprocError
from .app import app, db_target, open_store, stdout_console


@app.command()
def daemon(
    ctx: typer.Context,
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=1, max=1024, metavar="N", help="Runs at once (default: the number of CPUs)."),
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="Run what is due now, wait for it, exit.")] = False,
    grace: Annotated[
        str,
        typer.Option(
            "--grace", metavar="DURATION", help="On SIGTERM/SIGINT, how long running runs may finish (30s, 2m, 0)."
        ),
    ] = "30s",
    kill_after: Annotated[
        str,
        typer.Option(
            "--kill-after", metavar="DURATION", help="After SIGTERM to a run, how long before SIGKILL (5s, 1m, 0)."
        ),
    ] = "5s",
    log_limit: Annotated[
        int,
        typer.Option(
            "--log-limit", min=1024, max=1 << 30, metavar="BYTES", help="Process log kept per run (head and tail)."
        ),
    ] = 1024 * 1024,
    spare: Annotated[
        bool, typer.Option("--spare/--no-spare", help="Keep one worker started ahead, so a run starts in milliseconds.")
    ] = True,
    startup_timeout: Annotated[
        str,
        typer.Option(
            "--startup-timeout", metavar="DURATION",
            help="How long a worker may take to start its task (imports, loading; 1s or more); "
            "the timeout counts from then.",
        ),
    ] = "60s",
) -> None:
    """Run due work, each run in its own subprocess, until stopped (or --once)."""
    import os

    from ..clock import SkewedClock
    from ..daemon import TEST_CONFIG_ENV, Daemon, DaemonConfig, overrides_for_tests

    grace_s = _seconds(grace, "--grace")
    kill_after_s = _seconds(kill_after, "--kill-after")
    startup_timeout_s = _seconds(startup_timeout, "--startup-timeout", at_least=1)
    try:
        intervals, hostname = overrides_for_tests(os.environ.get(TEST_CONFIG_ENV, ""))
    except ValueError as exc:
        raise BgprocError(f"{exc}; unset it (it is for bgproc's own tests)") from None
    skew = intervals.pop("clock_skew_s", 0.0)
    config = DaemonConfig(
        workers=workers or os.cpu_count() or 1,
        once=once,
        grace_s=grace_s,
        kill_after_s=kill_after_s,
        log_limit=log_limit,
        spare=spare,
        startup_timeout_s=startup_timeout_s,
        **intervals,  # type: ignore[arg-type]
    )
    with open_store(ctx, create=True) as store:
        code = Daemon(store, config, clock=SkewedClock(skew) if skew else None, hostname=hostname).run()
    raise typer.Exit(code)


def _seconds(text: str, option: str, *, at_least: float = 0) -> float:
    """A DURATION option in seconds, read by the one grammar (a bare number is seconds)."""
    from ..errors import TimingError
    from ..timing import parse_duration

    seconds = parse_duration(text, option, least="zero" if at_least == 0 else "positive").total_seconds()
    if seconds < at_least:
        raise TimingError(f"{option} {text!r} is shorter than {at_least:g}s; give {at_least:g}s or more")
    return seconds


@app.command()
def demo(
    ctx: typer.Context,
    delay: Annotated[float, typer.Option("--delay", metavar="SECONDS", help="The sample task's wait.")] = 3.0,
) -> None:
    """Register the sample, schedule it, run the daemon once, and show the monitor."""
    from .. import store as stores
    from .demo import MAX_DELAY_S, run_demo

    if not 0 <= delay <= MAX_DELAY_S:  # NaN too
        raise typer.BadParameter(
            f"{delay:g} is not a wait from 0 to {MAX_DELAY_S:g} seconds (the sample task times out at 300 s); "
            "give one such as --delay 3",
            param_hint="'--delay'",
        )

    # Without --db or BGPROC_DB the demo keeps to its own file in the current directory.
    target = db_target(ctx) or Path("bgproc-demo.db")
    with stores.open_store(target) as store:
        code = run_demo(store, delay, stdout_console())
    raise typer.Exit(code)

