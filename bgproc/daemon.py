"""The daemon: claims due runs, starts workers, reaps them, enforces timeouts,
records outcomes, handles signals.

One loop, driven by a selector over: the wake-up FIFO (a request changed),
a signal pipe (SIGTERM, SIGINT, SIGCHLD), and each worker's output and
event pipes. Between events it sleeps until the earliest thing it must do:
the next due fire, a timeout, a log flush, a heartbeat. Signal handlers
only note the signal; the loop acts on it.

Claiming a slot is one ``BEGIN IMMEDIATE`` transaction that creates the run
row and advances the request, so each slot is claimed once however many
daemons share the database. The daemon, never the worker, records how a
run ended.
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import msgpack

from .clock import Clock
from .errors import BgprocError
from .records import DaemonRecord, RequestRecord, TaskRecord
from .reporter import Reporter
from .runlog import RunLog
from .store import Store
from .timing import BACKLOG_LIMIT
from .wakeup import Waker
from .worker import EXIT_CANCELLED, FDS_ENV, pack_job, peak_rss_kb

READ_CHUNK = 64 * 1024
# Output read per wake-up before the loop looks at everything else again.
READ_BURST = 16
# Events (connection.log, progress) one run may have buffered, unparsed, at once.
EVENTS_BUFFER = 8 * 1024 * 1024
# How soon to look again at a request that is due but cannot start yet (a
# one-time request whose previous run is still going).
BLOCKED_RETRY_S = 0.25
# Output waiting this long for its newline is shown as it is (RunLog.flush_stale).
PARTIAL_LINE_S = 1.0


@dataclass
class DaemonConfig:
    workers: int = 1
    once: bool = False
    grace_s: float = 30.0
    kill_after_s: float = 5.0
    log_limit: int = 1024 * 1024
    heartbeat_s: float = 5.0
    heartbeat_expiry_s: float = 30.0
    flush_s: float = 0.25
    poll_s: float = 1.0
    claim_batch: int = 100
    spare: bool = True  # keep a worker started ahead (not with once)


@dataclass
class Launched:
    """A worker process started and waiting for its job on ``job_w``."""

    proc: subprocess.Popen
    job_w: int
    events_r: int
    output_fd: int
    workdir: str


@dataclass
class ActiveRun:
    """A worker process that this daemon started and has not yet reaped."""

    run_id: int
    request_id: int
    task: str
    proc: subprocess.Popen
    output_fd: int
    events_fd: int
    lifeline_fd: int
    workdir: str
    timeout_s: float
    deadline: float
    log: RunLog
    unpacker: Any = field(
        default_factory=lambda: msgpack.Unpacker(raw=False, max_buffer_size=EVENTS_BUFFER)
    )
    stop_reason: str | None = None
    term_at: float | None = None
    killed: bool = False
    progress: tuple[float, float | None, str | None] | None = None
    progress_dirty: bool = False
    peak_rss_kb: int | None = None  # the worker's own peak (VmHWM), sampled and reported
    job_pending: bytes = b""  # the rest of the job message, while the pipe is full

    @property
    def pid(self) -> int:
        return int(self.proc.pid)


class Daemon:
    def __init__(
        self,
        store: Store,
        config: DaemonConfig,
        *,
        clock: Clock | None = None,
        reporter: Reporter | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock or Clock()
        self.reporter = reporter or Reporter()
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.host = socket.gethostname()
        self.active: dict[int, ActiveRun] = {}
        self.stopping = False
        self.stop_deadline: float | None = None
        self._signals: list[int] = []
        self._selector = selectors.DefaultSelector()
        self._waker: Waker | None = None
        self._last_flush = 0.0
        self._last_beat = 0.0
        self._last_poll = 0.0
        self._data_version = -1
        self._started_at: datetime | None = None
        self._backlogged = False  # the last claim pass left claimable work behind
        # Before this (monotonic) time a claim pass would only find the same due
        # work it could not start, unless a run ends or the database changes.
        self._retick_at = 0.0
        self._poll_s = config.poll_s  # how often to look at the database unprompted
        self._events: list[str] = []
        self._spare: Launched | None = None
        self._app_db = os.path.abspath(os.environ.get("BGPROC_APP_DB") or str(store.path))

    # ------------------------------------------------------------------
    # The loop

    def run(self) -> int:
        """Run until stopped (or, with ``once``, until what was due has run). Returns 0."""
        self._start()
        try:
            while True:
                try:
                    if self._step():
                        break
                except sqlite3.OperationalError as exc:
                    # A locked or busy database: say so and try again shortly.
                    self.reporter.event(f"database busy ({exc}); retrying")
                    self.clock.sleep(0.5)
        finally:
            self._shutdown()
        return 0

    def _start(self) -> None:
        now = self.clock.now()
        self._started_at = now
        self.store.register_daemon(
            DaemonRecord(
                id=self.id, host=self.host, pid=os.getpid(), started_at=now, heartbeat_at=now,
                stopped_at=None, workers=self.config.workers,
            )
        )
        self._last_beat = self.clock.monotonic()
        self._install_signals()
        try:
            self._waker = Waker(self.store.path, self.id.replace(":", "_"))
            if self._waker.available:
                self._selector.register(self._waker.fileno(), selectors.EVENT_READ, ("wake", None))
                # Whatever changes requests or asks for a cancel wakes us through the
                # FIFO; looking unprompted is a safety net, as often as the heartbeat.
                self._poll_s = max(self.config.poll_s, self.config.heartbeat_s)
        except OSError as exc:
            self.reporter.event(f"no wake-up FIFO ({exc}); watching the database instead")
            self._waker = None
        self.reap_dead_daemons(now)
        self._ensure_spare()
        mode = "once" if self.config.once else f"{self.config.workers} worker(s)"
        self.reporter.event(f"daemon {self.id} started on {self.store.path} ({mode})")

    def _step(self) -> bool:
        """One pass of the loop; returns True when the daemon should exit."""
        self._handle_signals()
        reaped = self._reap()
        # Read the clock after reaping: runs claimed below must not start
        # "before" the runs that just ended to free their slots.
        now, mono = self.clock.now(), self.clock.monotonic()
        self._enforce_deadlines(mono)
        changed = self._changed()
        if changed or mono - self._last_poll >= self._poll_s:
            self._last_poll = mono
            self._check_cancels()
        claimed: list[int] = []
        if not self.stopping and (reaped or changed or mono >= self._retick_at):
            claimed = self.tick(now, self._started_at if self.config.once else None)
        if mono - self._last_flush >= self.config.flush_s:
            self._flush()
        if mono - self._last_beat >= self.config.heartbeat_s:
            self._last_beat = mono
            self.store.heartbeat(self.id, now)
            self.reap_dead_daemons(now)
        if not self.active and (self.stopping or (self.config.once and not claimed)):
            return True
        if self.reporter.live:
            self.reporter.status(self._status_text())
        self._wait(self._sleep_for(now, mono))
        return False

    def _can_claim(self) -> bool:
        return len(self.active) < self.config.workers

    def _sleep_for(self, now: datetime, mono: float) -> float:
        delays = [self._poll_s, self.config.heartbeat_s - (mono - self._last_beat)]
        if not self.stopping and self._can_claim():
            if self._backlogged:
                delays.append(0.0)
            due = self.store.next_due_at()
            if due is not None and not (self.config.once and self._started_at is not None and due > self._started_at):
                wait = (due - now).total_seconds()
                # Due already yet not claimed in this pass: it waits for its previous
                # run to end. Look again shortly rather than spin.
                delays.append(wait if wait > 0 else BLOCKED_RETRY_S)
        for run in self.active.values():
            if run.term_at is None:
                delays.append(run.deadline - mono)
            elif not run.killed:
                delays.append(run.term_at + self.config.kill_after_s - mono)
            if run.log.dirty or run.progress_dirty:
                delays.append(self.config.flush_s - (mono - self._last_flush))
        if self.stop_deadline is not None and any(r.stop_reason is None for r in self.active.values()):
            delays.append(self.stop_deadline - mono)
        if self.active:
            delays.append(0.5)  # reap even if a SIGCHLD was lost
        return max(0.0, min(delays))

    def _wait(self, timeout: float) -> None:
        for key, _ in self._selector.select(timeout):
            kind, run = key.data
            if kind == "wake" and self._waker is not None:
                self._waker.drain()
            elif kind == "signal":
                try:
                    while os.read(key.fd, 512):
                        pass
                except (BlockingIOError, InterruptedError):
                    pass
            elif kind == "output":
                for _ in range(READ_BURST):
                    if not self._read_output(run):
                        break
            elif kind == "events":
                for _ in range(READ_BURST):
                    if not self._read_events(run):
                        break
            elif kind == "job":
                self._write_job(run)

    def _changed(self) -> bool:
        version = self.store.data_version()
        changed = version != self._data_version
        self._data_version = version
        return changed

    # ------------------------------------------------------------------
    # Claiming

    def tick(self, now: datetime, due_by: datetime | None = None) -> list[int]:
        """Claim what is due by ``due_by`` (default ``now``) as worker slots allow, and
        start it. Returns the ids of the runs started."""
        free = self.config.workers - len(self.active)
        claimed: list[tuple[int, RequestRecord, TaskRecord]] = []
        self._events = []  # told after the commit, never while holding the lock
        self._backlogged = False
        self._retick_at = 0.0
        # A cheap read first: take the write lock only when something is due.
        first = self.store.next_due_at()
        if first is None or first > (due_by or now):
            return []
        with self.store.immediate():
            due = self.store.due_requests(due_by or now, self.config.claim_batch)
            for request in due:
                result = self._claim(request, now, free - len(claimed), due_by or now)
                if result is not None:
                    claimed.append(result)
            self._backlogged = len(due) >= self.config.claim_batch and len(claimed) < free
            left = self.store.next_due_at()
        for message in self._events:
            self.reporter.event(message)
        if left is not None and left <= (due_by or now) and not self._backlogged:
            # What is still due waits for a worker or for its previous run to end.
            self._retick_at = self.clock.monotonic() + BLOCKED_RETRY_S
        for run_id, request, task in claimed:
            self._spawn(run_id, request, task)
        if claimed:
            self._ensure_spare()
        return [c[0] for c in claimed]

    def _claim(
        self, request: RequestRecord, now: datetime, free: int, due_by: datetime
    ) -> tuple[int, RequestRecord, TaskRecord] | None:
        """Decide one due request inside the claim transaction."""
        if request.manual_at is not None and request.manual_at <= due_by:
            return self._claim_manual(request, now, free)
        timing, planned = request.timing, request.next_run_at
        assert planned is not None
        busy = not request.allow_overlap and self.store.running_count(request.id) > 0
        if busy and not timing.recurring:
            return None  # a one-time run waits for the previous run rather than being lost
        if busy:
            later, last = timing.backlog(planned, now)
            detail = "the previous run was still going"
            if later:
                detail += f"; {_slots(later)} after it, up to {_iso(last)}, skipped with it"
            self.store.insert_run(
                request_id=request.id, task=request.task, status="skipped", now=now,
                reason="schedule", planned_at=planned, detail=detail,
            )
            self.store.advance_request(request.id, timing.next_fire(now), now)
            self._events.append(
                f"request {request.id} ({request.task}): slot {_iso(planned)} skipped, previous run still going"
            )
            return None
        if free <= 0:
            return None
        task = self.store.get_task(request.task)
        later, last = timing.backlog(planned, now) if timing.recurring else (0, None)
        reason = "catch-up" if later else ("now" if timing.kind == "now" else "schedule")
        run_id = self.store.insert_run(
            request_id=request.id, task=request.task, status="running", now=now, reason=reason,
            planned_at=planned, started_at=now, daemon_id=self.id,
        )
        if later:
            self.store.insert_run(
                request_id=request.id, task=request.task, status="missed", now=now,
                planned_at=planned, missed_count=later, missed_until=last,
                detail=f"{_slots(later)} after {_iso(planned)} up to {_iso(last)} fell due before a "
                f"daemon could run them; coalesced into run {run_id}",
            )
        self.store.advance_request(request.id, timing.next_fire(now) if timing.recurring else None, now)
        if task is None:
            self.store.finish_run(
                run_id, status="error", ended_at=now,
                detail=f"task {request.task!r} is not registered; register its module again",
            )
            self._events.append(f"run {run_id}: task {request.task} is not registered")
            return None
        self._events.append(
            f"claimed run {run_id} (request {request.id}, {request.task}, {reason}, planned {_iso(planned)})"
        )
        return run_id, request, task

    def _claim_manual(
        self, request: RequestRecord, now: datetime, free: int
    ) -> tuple[int, RequestRecord, TaskRecord] | None:
        """A run asked for by hand (`bgproc run`): once, now, the request's timing untouched.
        Like a one-time run it waits for the request's previous run rather than skip."""
        if not request.allow_overlap and self.store.running_count(request.id) > 0:
            return None
        if free <= 0:
            return None
        task = self.store.get_task(request.task)
        run_id = self.store.insert_run(
            request_id=request.id, task=request.task, status="running", now=now, reason="manual",
            planned_at=request.manual_at, started_at=now, daemon_id=self.id,
        )
        self.store.clear_manual_run(request.id)
        if task is None:
            self.store.finish_run(
                run_id, status="error", ended_at=now,
                detail=f"task {request.task!r} is not registered; register its module again",
            )
            self._events.append(f"run {run_id}: task {request.task} is not registered")
            return None
        self._events.append(f"claimed run {run_id} (request {request.id}, {request.task}, manual)")
        return run_id, request, task

    # ------------------------------------------------------------------
    # Workers

    def _launch(self) -> Launched:
        """Start a worker process, waiting for its job. Raises OSError (out of file
        descriptors, a full disk) with nothing left behind."""
        fds: list[int] = []
        workdir = None
        try:
            job_r, job_w = os.pipe()
            fds += (job_r, job_w)
            events_r, events_w = os.pipe()
            fds += (events_r, events_w)
            workdir = tempfile.mkdtemp(prefix="bgproc-run-")
            env = dict(os.environ)
            env[FDS_ENV] = f"{job_r},{events_w}"
            env["PYTHONUNBUFFERED"] = "1"
            env["BGPROC_DB"] = str(self.store.path)
            env["BGPROC_APP_DB"] = self._app_db
            proc = subprocess.Popen(
                [sys.executable, "-m", "bgproc.worker"],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                pass_fds=(job_r, events_w), cwd=workdir, env=env, start_new_session=True,
                close_fds=True,
            )
        except OSError:
            for fd in fds:
                os.close(fd)
            if workdir is not None:
                shutil.rmtree(workdir, ignore_errors=True)
            raise
        os.close(job_r)
        os.close(events_w)
        assert proc.stdout is not None
        for fd in (job_w, events_r, proc.stdout.fileno()):
            os.set_blocking(fd, False)
        return Launched(proc=proc, job_w=job_w, events_r=events_r, output_fd=proc.stdout.fileno(), workdir=workdir)

    def _ensure_spare(self) -> None:
        """Keep one worker started ahead, so that a claimed run need not wait for an
        interpreter to start (it still gets a process of its own)."""
        if self._spare is not None or not self.config.spare or self.config.once or self.stopping:
            return
        try:
            self._spare = self._launch()
        except OSError as exc:
            self.reporter.event(f"could not start a spare worker ({exc}); starting workers on demand")

    def _take_spare(self) -> Launched | None:
        spare, self._spare = self._spare, None
        if spare is not None and _exited(spare.proc.pid):
            self._discard(spare)
            return None
        return spare

    def _discard(self, spare: Launched) -> None:
        """Let a spare worker go: without a job it exits when its job pipe closes."""
        os.close(spare.job_w)
        try:
            os.killpg(spare.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            _, status, _ = os.wait4(spare.proc.pid, 0)
            spare.proc.returncode = os.waitstatus_to_exitcode(status)
        except ChildProcessError:
            spare.proc.returncode = -1
        os.close(spare.events_r)
        if spare.proc.stdout is not None:
            spare.proc.stdout.close()
        shutil.rmtree(spare.workdir, ignore_errors=True)

    def _spawn(self, run_id: int, request: RequestRecord, task: TaskRecord) -> None:
        timeout_s = request.timeout_s or task.timeout_s
        launched = self._take_spare()
        if launched is None:
            try:
                launched = self._launch()
            except OSError as exc:
                # The run fails, the daemon does not.
                with self.store.immediate():
                    self.store.finish_run(
                        run_id, status="error", ended_at=self.clock.now(),
                        detail=f"could not start the worker: {exc}",
                    )
                self.reporter.event(f"run {run_id}: could not start the worker: {exc}")
                return
        proc = launched.proc
        job = {
            "run_id": run_id, "request_id": request.id, "task": task.name,
            "import_path": task.import_path, "search_path": task.search_path,
            "params": request.params, "user": request.user, "app_db": self._app_db,
        }
        # Never block on the worker: what does not fit in the pipe now (large
        # parameters) is written as the worker reads it.
        job_data = pack_job(job)
        try:
            job_data = job_data[os.write(launched.job_w, job_data):]
        except BlockingIOError:
            pass
        except OSError:
            job_data = b""  # the worker died at once; reaping records it
        active = ActiveRun(
            run_id=run_id, request_id=request.id, task=request.task, proc=proc,
            output_fd=launched.output_fd, events_fd=launched.events_r, lifeline_fd=launched.job_w,
            workdir=launched.workdir, timeout_s=timeout_s, deadline=self.clock.monotonic() + timeout_s,
            log=RunLog(self.config.log_limit),
        )
        active.job_pending = job_data
        self.active[run_id] = active
        if job_data:
            self._selector.register(launched.job_w, selectors.EVENT_WRITE, ("job", active))
        self._selector.register(launched.output_fd, selectors.EVENT_READ, ("output", active))
        self._selector.register(launched.events_r, selectors.EVENT_READ, ("events", active))
        with self.store.immediate():
            self.store.set_run_pid(run_id, proc.pid)
        self.reporter.event(f"started run {run_id} ({request.task}) as pid {proc.pid}")

    def _read_output(self, run: ActiveRun) -> bool:
        """Read what the worker printed; returns False when nothing more is there now."""
        try:
            data = os.read(run.output_fd, READ_CHUNK)
        except BlockingIOError:
            return False
        except OSError:
            data = b""
        if not data:
            self._unregister_fd(run.output_fd)
            return False
        run.log.feed(data, self.clock.now())
        return True

    def _read_events(self, run: ActiveRun) -> bool:
        try:
            data = os.read(run.events_fd, READ_CHUNK)
        except BlockingIOError:
            return False
        except OSError:
            data = b""
        if not data:
            self._unregister_fd(run.events_fd)
            return False
        try:
            run.unpacker.feed(data)
            for event in run.unpacker:
                if isinstance(event, dict):
                    self._event(run, event)
        except Exception as exc:  # noqa: BLE001 - the task may write anything to the pipe
            # Whatever the task wrote there, the daemon carries on; the run's
            # own outcome is still recorded when it ends.
            run.log.add(_stamp(self.clock.now()), f"[bgproc] events from the run ignored from here on: {exc!r}")
            self._unregister_fd(run.events_fd)
            return False
        return True

    def _event(self, run: ActiveRun, event: dict[str, Any]) -> None:
        kind = event.get("t")
        if kind == "log":
            at = event.get("at")
            when = datetime.fromtimestamp(float(at)).astimezone() if isinstance(at, int | float) else self.clock.now()
            stamp = _stamp(when)
            level = str(event.get("level", "INFO"))
            for line in str(event.get("msg", "")).splitlines() or [""]:
                run.log.add(stamp, f"[{level}] {line}")
        elif kind == "peak":
            value = event.get("rss_kb")
            if isinstance(value, int) and value > 0:
                run.peak_rss_kb = max(run.peak_rss_kb or 0, value)
        elif kind == "progress":
            done, total, message = event.get("done"), event.get("total"), event.get("msg")
            run.progress = (
                float(done) if isinstance(done, int | float) else 0.0,
                float(total) if isinstance(total, int | float) else None,
                None if message is None else str(message),
            )
            run.progress_dirty = True

    def _write_job(self, run: ActiveRun) -> None:
        try:
            run.job_pending = run.job_pending[os.write(run.lifeline_fd, run.job_pending):]
        except BlockingIOError:
            return
        except OSError:
            run.job_pending = b""  # the worker is gone; reaping records it
        if not run.job_pending:
            self._unregister_fd(run.lifeline_fd)

    def _unregister_fd(self, fd: int) -> None:
        try:
            self._selector.unregister(fd)
        except (KeyError, ValueError):
            pass

    def _reap(self) -> int:
        """Reap the workers that exited and record their outcomes; returns how many."""
        count = 0
        if self._spare is not None and _exited(self._spare.proc.pid):
            spare, self._spare = self._spare, None
            self._discard(spare)
            self.reporter.event(f"the spare worker exited (code {spare.proc.returncode}); starting workers on demand")
        for run in list(self.active.values()):
            try:
                # Look without reaping: while the worker is an unreaped zombie its
                # pid (its process group's id) cannot be reused, so whatever the
                # task left running in its group can be stopped safely first.
                if os.waitid(os.P_PID, run.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
                    continue
                self._signal_group(run, signal.SIGKILL)
                _, status, usage = os.wait4(run.pid, 0)
            except ChildProcessError:
                status, usage = 0, None
            run.proc.returncode = os.waitstatus_to_exitcode(status) if usage is not None else -1
            self._finish(run, status, usage)
            count += 1
        return count

    def _finish(self, run: ActiveRun, status: int, usage: Any) -> None:
        # Drain what is left in the pipes. A grandchild may hold them open (and
        # keep writing): read what is there, boundedly, and do not wait for EOF.
        for _ in range(1024):
            if not self._read_output(run):
                break
        for _ in range(1024):
            if not self._read_events(run):
                break
        now = self.clock.now()
        run.log.flush_partial(now)
        code = os.waitstatus_to_exitcode(status) if usage is not None else None
        signum = -code if code is not None and code < 0 else None
        exit_code = code if code is not None and code >= 0 else None
        if run.stop_reason is not None:
            outcome = run.stop_reason
        elif code == 0:
            outcome = "success"
        else:
            outcome = "error"
        detail = self._detail(run, outcome, exit_code, signum)
        cpu = (usage.ru_utime + usage.ru_stime) if usage is not None else None
        rss = run.peak_rss_kb
        if rss is None and usage is not None:
            # No /proc: ru_maxrss, which may include the daemon's own size (see peak_rss_kb).
            rss = int(usage.ru_maxrss / 1024) if sys.platform == "darwin" else int(usage.ru_maxrss)
        with self.store.immediate():
            self._write_log(run)
            self.store.finish_run(
                run.run_id, status=outcome, ended_at=now, exit_code=exit_code, signal=signum,
                cpu_s=cpu, max_rss_kb=rss, detail=detail,
            )
        self._close(run)
        self.reporter.finished(run.run_id, run.task, outcome, detail)

    def _detail(self, run: ActiveRun, outcome: str, exit_code: int | None, signum: int | None) -> str | None:
        how = ""
        if run.stop_reason is not None and exit_code == EXIT_CANCELLED:
            how = "ended on SIGTERM"
        elif signum is not None:
            try:
                how = f"killed by {signal.Signals(signum).name}"
            except ValueError:
                how = f"killed by signal {signum}"
        elif exit_code not in (None, 0):
            how = f"exit code {exit_code}"
        if outcome == "timeout":
            return f"passed its timeout of {run.timeout_s:g}s; stopped ({how or 'exited'})"
        if outcome == "cancelled":
            return f"cancelled on request ({how or 'exited'})"
        if outcome == "interrupted":
            return f"the daemon stopped; run stopped ({how or 'exited'})"
        if outcome == "error":
            return how or "failed"
        return None

    def _close(self, run: ActiveRun) -> None:
        self._unregister_fd(run.output_fd)
        self._unregister_fd(run.events_fd)
        self._unregister_fd(run.lifeline_fd)
        for fd in (run.events_fd, run.lifeline_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        if run.proc.stdout is not None:
            run.proc.stdout.close()
        shutil.rmtree(run.workdir, ignore_errors=True)
        self.active.pop(run.run_id, None)

    # ------------------------------------------------------------------
    # Stopping runs

    def _enforce_deadlines(self, mono: float) -> None:
        for run in self.active.values():
            if run.stop_reason is None and mono >= run.deadline:
                self._stop(run, "timeout", mono)
            elif run.term_at is not None and not run.killed and mono >= run.term_at + self.config.kill_after_s:
                run.log.add(_stamp(self.clock.now()), "[bgproc] still running: SIGKILL sent")
                self._signal_group(run, signal.SIGKILL)
                run.killed = True
        if self.stop_deadline is not None and mono >= self.stop_deadline:
            for run in self.active.values():
                if run.stop_reason is None:
                    self._stop(run, "interrupted", mono)

    def _stop(self, run: ActiveRun, reason: str, mono: float) -> None:
        run.stop_reason = reason
        run.term_at = mono
        why = {
            "timeout": f"passed its timeout of {run.timeout_s:g}s",
            "cancelled": "cancel requested",
            "interrupted": "the daemon is stopping",
        }.get(reason, reason)
        run.log.add(
            _stamp(self.clock.now()),
            f"[bgproc] {why}: SIGTERM sent, SIGKILL in {self.config.kill_after_s:g}s if still running",
        )
        self.reporter.event(f"run {run.run_id}: {reason}; sending SIGTERM to its process group")
        self._signal_group(run, signal.SIGTERM)

    def _signal_group(self, run: ActiveRun, signum: int) -> None:
        try:
            os.killpg(run.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    def _check_cancels(self) -> None:
        ids = self.store.cancel_requested([r for r, run in self.active.items() if run.stop_reason is None])
        mono = self.clock.monotonic()
        for run_id in ids:
            self._stop(self.active[run_id], "cancelled", mono)

    # ------------------------------------------------------------------
    # Logs, progress, heartbeats

    def _flush(self) -> None:
        self._last_flush = self.clock.monotonic()
        now = self.clock.now()
        for run in self.active.values():
            run.log.flush_stale(now, PARTIAL_LINE_S)
            # Sampled while it runs, so a run that crashes still has a peak.
            peak = peak_rss_kb(run.pid)
            if peak is not None:
                run.peak_rss_kb = max(run.peak_rss_kb or 0, peak)
        dirty = [r for r in self.active.values() if r.log.dirty or r.progress_dirty]
        if not dirty:
            return
        with self.store.immediate():
            for run in dirty:
                self._write_log(run)

    def _write_log(self, run: ActiveRun) -> None:
        if run.log.dirty:
            head, tail, dropped = run.log.take()
            self.store.write_log(run.run_id, append_head=head, tail=tail, dropped=dropped)
        if run.progress_dirty and run.progress is not None:
            done, total, message = run.progress
            self.store.set_progress(run.run_id, done, total, message, self.clock.now())
            run.progress_dirty = False

    def reap_dead_daemons(self, now: datetime) -> None:
        """Mark runs of daemons that died (no heartbeat, or gone from this host) interrupted."""
        expiry = timedelta(seconds=self.config.heartbeat_expiry_s)
        for other in self.store.live_daemons():
            if other.id == self.id:
                continue
            # Same host: dead if its process is gone, or if its pid is now ours
            # (a daemon restarted in a fresh container often gets the same pid).
            dead_here = other.host == self.host and (other.pid == os.getpid() or not _pid_alive(other.pid))
            if not dead_here and now - other.heartbeat_at <= expiry:
                continue
            why = "is no longer running" if dead_here else f"stopped heartbeating at {_iso(other.heartbeat_at)}"
            with self.store.immediate():
                ids = self.store.interrupt_daemon_runs(
                    other.id, now, f"interrupted: daemon {other.id} {why}; not re-run"
                )
            for run_id in ids:
                self.reporter.event(f"run {run_id} interrupted: daemon {other.id} {why}")

    # ------------------------------------------------------------------
    # Signals and shutdown

    def _install_signals(self) -> None:
        self._old_handlers: dict[int, Any] = {}
        self._sig_r, self._sig_w = os.pipe()
        os.set_blocking(self._sig_r, False)
        os.set_blocking(self._sig_w, False)
        self._old_wakeup: int | None = None
        try:
            self._old_wakeup = signal.set_wakeup_fd(self._sig_w)
        except ValueError:  # not the main thread (tests may run a daemon in a thread)
            return
        self._selector.register(self._sig_r, selectors.EVENT_READ, ("signal", None))

        def note(signum: int, frame: Any) -> None:
            self._signals.append(signum)

        self._old_handlers = {
            signum: signal.signal(signum, note) for signum in (signal.SIGTERM, signal.SIGINT)
        }
        self._old_handlers[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, lambda s, f: None)

    def _restore_signals(self) -> None:
        if self._old_wakeup is None:
            return
        signal.set_wakeup_fd(self._old_wakeup)
        for signum, handler in self._old_handlers.items():
            signal.signal(signum, handler)
        self._selector.unregister(self._sig_r)
        os.close(self._sig_r)
        os.close(self._sig_w)

    def _handle_signals(self) -> None:
        while self._signals:
            signum = self._signals.pop(0)
            self.request_stop(signal.Signals(signum).name)

    def request_stop(self, why: str = "stop requested") -> None:
        """First call: drain (stop claiming, let runs finish within the grace). Second: stop now."""
        mono = self.clock.monotonic()
        if not self.stopping:
            self.stopping = True
            self.stop_deadline = mono + self.config.grace_s
            self.reporter.event(
                f"{why}: no new runs; waiting up to {self.config.grace_s:g}s for {len(self.active)} running"
            )
        else:
            self.stop_deadline = mono
            self.reporter.event(f"{why} again: stopping running runs now")

    def _shutdown(self) -> None:
        if self._spare is not None:
            spare, self._spare = self._spare, None
            self._discard(spare)
        # Any run still here (an error in the loop) is stopped and recorded.
        deadline = self.clock.monotonic() + self.config.kill_after_s
        for run in self.active.values():
            if run.stop_reason is None:
                self._stop(run, "interrupted", self.clock.monotonic())
        while self.active and self.clock.monotonic() < deadline:
            self._reap()
            time.sleep(0.05)
        for run in list(self.active.values()):
            self._signal_group(run, signal.SIGKILL)
            try:
                _, status, usage = os.wait4(run.pid, 0)
            except ChildProcessError:
                status, usage = 0, None
            self._finish(run, status, usage)
        try:
            self.store.stop_daemon(self.id, self.clock.now())
        except sqlite3.Error:
            pass
        if self._waker is not None:
            self._waker.close()
        self._restore_signals()
        self.reporter.event(f"daemon {self.id} stopped")
        self.reporter.close()

    def _status_text(self) -> str:
        due = self.store.next_due_at() if not self.stopping else None
        parts = [f"{len(self.active)}/{self.config.workers} running"]
        if self.stopping:
            parts.append("stopping")
        elif due is not None:
            parts.append(f"next due {due.astimezone():%Y-%m-%d %H:%M:%S}")
        else:
            parts.append("nothing scheduled")
        return ", ".join(parts)


def _exited(pid: int) -> bool:
    """Whether our child ``pid`` has exited (without reaping it)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _pid_alive(pid: int) -> bool:
    """Whether a process runs (an exited, unreaped zombie does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            state = stat.read().rpartition(b")")[2].split()[0]
    except (OSError, IndexError):
        return True  # no /proc: trust kill(0)
    return state not in (b"Z", b"X")


def _stamp(when: datetime) -> str:
    return when.astimezone().strftime("%H:%M:%S.%f")[:-3]


def _iso(value: datetime | None) -> str:
    return "-" if value is None else value.astimezone().isoformat(timespec="seconds")


def _slots(count: int) -> str:
    return f"{count}{'+' if count >= BACKLOG_LIMIT else ''} more slot{'s' if count != 1 else ''}"


__all__ = ["BgprocError", "Daemon", "DaemonConfig"]
