"""The worker processes one daemon runs: starting them, talking to them, reaping them.

Each run gets a process of its own, ``python -m bgproc.worker``, in its own
process group and its own temporary working directory. One worker may be
started ahead (the *spare*) so that a claimed run need not wait for an
interpreter to start. The job goes over the job pipe, which then stays open
as the worker's lifeline and carries the renewals of its lease; what the
worker prints (``connection.log`` records included) is read into the run's
log, and the events it sends (progress, ``lease``, and ``ended`` with its peak
memory) into the run, without ever blocking. A
worker that exits is reaped with its wait status and resource usage after
whatever it left in its process group is killed.

Nothing here decides or records anything: the daemon says when to start,
stop or reap a run, and writes its outcome.
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgpack

from . import liveness
from .daemon.runlog import RunLog, stamp
from .records import RequestRecord, TaskRecord
from .worker import EXIT_CANCELLED, FDS_ENV, WORKDIR_PREFIX, pack_job, peak_rss_kb

READ_CHUNK = 64 * 1024
# Output read per wake-up before the loop looks at everything else again.
READ_BURST = 16
# Events (progress, ended) one run may have buffered, unparsed, at once.
EVENTS_BUFFER = 8 * 1024 * 1024
# Output waiting this long for its newline is shown as it is (RunLog.flush_stale).
PARTIAL_LINE_S = 1.0


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
    """A worker process that this daemon started and whose outcome is not recorded yet."""

    run_id: int
    request_id: int
    task: str
    proc: subprocess.Popen
    output_fd: int
    events_fd: int  # -1 once closed (the run wrote what could not be read)
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
    worker_ended: bool = False  # the worker said run() came back: exit 0 is then a success
    events_lost: bool = False  # the events pipe was given up on (the task wrote garbage to it)
    lease_s: float | None = None  # how long the worker goes on without a renewal (None: no lease)
    lease_expired: bool = False  # the worker heard nothing within its lease and stopped its task
    job_pending: bytes = b""  # the rest of the job message, while the pipe is full
    # Once reaped (its wait status and usage kept until the outcome is committed).
    reaped: bool = False
    wait_status: int = 0
    usage: Any = None
    ended_at: datetime | None = None
    ended_mono: float | None = None
    outcome: str | None = None  # decided when reaped; written when the database allows
    noted: bool = False  # the log says the outcome came after the run was recorded ended

    @property
    def pid(self) -> int:
        return int(self.proc.pid)

    def exit_status(self) -> tuple[int | None, int | None]:
        """Once reaped: (exit code, signal that killed it); both None when its status
        is unknown (it was reaped elsewhere)."""
        code = os.waitstatus_to_exitcode(self.wait_status) if self.usage is not None else None
        signum = -code if code is not None and code < 0 else None
        exit_code = code if code is not None and code >= 0 else None
        return exit_code, signum

    def how_ended(self) -> str:
        """How the process ended, for a run's detail ("" for a plain exit 0 or unknown)."""
        exit_code, signum = self.exit_status()
        if (self.stop_reason is not None or self.lease_expired) and exit_code == EXIT_CANCELLED:
            return "ended on SIGTERM"
        if signum is not None:
            try:
                return f"killed by {signal.Signals(signum).name}"
            except ValueError:
                return f"killed by signal {signum}"
        if exit_code not in (None, 0):
            return f"exit code {exit_code}"
        if exit_code == 0 and self.exited_early():
            return "exited with code 0 before run() returned (os._exit in the task?)"
        return ""

    def exited_early(self) -> bool:
        """Exit 0, but the worker never said run() came back: something in the task
        ended the process (``os._exit(0)``), so the work may be half done."""
        exit_code, _ = self.exit_status()
        return exit_code == 0 and not self.worker_ended and not self.events_lost

    def cpu_s(self) -> float | None:
        """CPU time used, user and system, once reaped."""
        return (self.usage.ru_utime + self.usage.ru_stime) if self.usage is not None else None

    def max_rss_kb(self) -> int | None:
        """Peak resident memory in KiB: the worker's own (reported, or sampled while it
        ran), else none. Never ``ru_maxrss``: on Linux it carries the daemon's own
        peak across fork and exec (see ``peak_rss_kb``), which is not the run's."""
        return self.peak_rss_kb


class Workers:
    """The worker processes of one daemon: its runs' workers, by run id, and the spare.

    Pipes are registered on the daemon's ``selector`` with ``(kind, run)`` as
    data; the daemon hands back what is ready to ``ready``.
    """

    def __init__(
        self,
        *,
        db_path: str,
        app_db: str,
        log_limit: int,
        selector: selectors.BaseSelector,
        now: Callable[[], datetime],
    ) -> None:
        self.db_path = db_path
        self.app_db = app_db
        self.log_limit = log_limit
        self.runs: dict[int, ActiveRun] = {}
        self.spare: Launched | None = None
        self._selector = selector
        # Read through the daemon on each use: tests swap its clock.
        self._now = now

    # ------------------------------------------------------------------
    # Starting

    def launch(self) -> Launched:
        """Start a worker process, waiting for its job. Raises OSError (out of file
        descriptors, a full disk) with nothing left behind."""
        fds: list[int] = []
        workdir = None
        try:
            job_r, job_w = os.pipe()
            fds += (job_r, job_w)
            events_r, events_w = os.pipe()
            fds += (events_r, events_w)
            workdir = tempfile.mkdtemp(prefix=WORKDIR_PREFIX)
            env = dict(os.environ)
            env[FDS_ENV] = f"{job_r},{events_w}"
            env["PYTHONUNBUFFERED"] = "1"
            env["BGPROC_DB"] = self.db_path
            env["BGPROC_APP_DB"] = self.app_db
            env["PYTHONPATH"] = worker_pythonpath(env.get("PYTHONPATH", ""))
            proc = subprocess.Popen(
                # -P: the working directory does not go first on sys.path (a task's
                # modules come from its recorded search path, after the standard library).
                [sys.executable, "-P", "-m", "bgproc.worker"],
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

    def ensure_spare(self) -> None:
        """Start the spare if there is none. Raises OSError as ``launch``."""
        if self.spare is None:
            self.spare = self.launch()

    def take_spare(self) -> Launched | None:
        """The spare, to be given a job (None if there is none or it exited)."""
        spare, self.spare = self.spare, None
        if spare is not None and liveness.exited(spare.proc.pid):
            self.discard(spare)
            return None
        return spare

    def reap_spare(self) -> Launched | None:
        """If the spare exited on its own, let it go and return it."""
        if self.spare is None or not liveness.exited(self.spare.proc.pid):
            return None
        spare, self.spare = self.spare, None
        self.discard(spare)
        return spare

    def discard_spare(self) -> None:
        """Let the spare go, if there is one."""
        if self.spare is not None:
            spare, self.spare = self.spare, None
            self.discard(spare)

    def discard(self, spare: Launched) -> None:
        """Let a worker without a job go: it exits when its job pipe closes."""
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

    def start(
        self,
        launched: Launched,
        *,
        run_id: int,
        request: RequestRecord,
        task: TaskRecord,
        timeout_s: float,
        deadline: float,
        lease: tuple[float, float] | None = None,
    ) -> ActiveRun:
        """Send a claimed run's job to ``launched`` and watch its pipes from now on.
        ``lease``: how long the worker goes on without a renewal (``renew``), and the
        grace its task then gets, in seconds."""
        lease_s, grace_s = lease or (None, None)
        job = {
            "run_id": run_id, "request_id": request.id, "task": task.name,
            "import_path": task.import_path, "search_path": task.search_path,
            "params": request.params, "user": request.user, "app_db": self.app_db,
            "lease_s": lease_s, "lease_grace_s": grace_s,
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
            run_id=run_id, request_id=request.id, task=request.task, proc=launched.proc,
            output_fd=launched.output_fd, events_fd=launched.events_r, lifeline_fd=launched.job_w,
            workdir=launched.workdir, timeout_s=timeout_s, deadline=deadline,
            log=RunLog(self.log_limit), lease_s=lease_s,
        )
        active.job_pending = job_data
        self.runs[run_id] = active
        if job_data:
            self._selector.register(launched.job_w, selectors.EVENT_WRITE, ("job", active))
        self._selector.register(launched.output_fd, selectors.EVENT_READ, ("output", active))
        self._selector.register(launched.events_r, selectors.EVENT_READ, ("events", active))
        return active

    # ------------------------------------------------------------------
    # Pipes

    def ready(self, kind: str, run: ActiveRun) -> None:
        """One of a run's pipes is ready (``kind`` as registered): read or write it."""
        if kind == "output":
            for _ in range(READ_BURST):
                if not self._read_output(run):
                    break
        elif kind == "events":
            for _ in range(READ_BURST):
                if not self._read_events(run):
                    break
        elif kind == "job":
            self._write_job(run)

    def drain(self, run: ActiveRun) -> None:
        """Read what is left in a reaped run's pipes. A grandchild may hold them open
        (and keep writing): read what is there, boundedly, and do not wait for EOF."""
        for _ in range(1024):
            if not self._read_output(run):
                break
        for _ in range(1024):
            if not self._read_events(run):
                break

    def sample(self, now: datetime) -> None:
        """Show output long waiting for its newline; note each live worker's peak memory
        (sampled while it runs, so that a run that crashes still has a peak)."""
        for run in self.runs.values():
            run.log.flush_stale(now, PARTIAL_LINE_S)
            self._sample_peak(run)

    def _sample_peak(self, run: ActiveRun) -> None:
        """Note the worker's own peak memory, if it can be read now (not once it has
        exited: a zombie has none)."""
        peak = None if run.reaped else peak_rss_kb(run.pid)
        if peak is not None:
            run.peak_rss_kb = max(run.peak_rss_kb or 0, peak)

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
        run.log.feed(data, self._now())
        return True

    def _read_events(self, run: ActiveRun) -> bool:
        if run.events_fd < 0:
            return False
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
            # own outcome is still recorded when it ends. Close our end: a worker
            # blocked writing more events gets EPIPE (which it ignores) and goes on.
            run.log.add(stamp(self._now()), f"[bgproc] events from the run ignored from here on: {exc!r}")
            run.events_lost = True
            self._sample_peak(run)  # its own word on its peak (the ended event) is lost with them
            self._close_events(run)
            return False
        return True

    def _close_events(self, run: ActiveRun) -> None:
        if run.events_fd < 0:
            return
        self._unregister_fd(run.events_fd)
        try:
            os.close(run.events_fd)
        except OSError:
            pass
        run.events_fd = -1  # never read again: the number may be reused

    def _event(self, run: ActiveRun, event: dict[str, Any]) -> None:
        kind = event.get("t")
        if kind == "lease":
            run.lease_expired = True
        elif kind == "ended":
            run.worker_ended = True
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

    def renew(self, run: ActiveRun) -> None:
        """Renew the worker's lease: one byte on its job pipe, never blocking. Not while
        the job itself is still going over (the worker's lease starts once it has it)."""
        if run.reaped or run.job_pending:
            return
        try:
            os.write(run.lifeline_fd, b"\0")
        except OSError:
            pass  # full (the worker reads it as fast as it comes) or the worker is gone

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

    # ------------------------------------------------------------------
    # Signalling, reaping, closing

    def signal_group(self, run: ActiveRun, signum: int) -> None:
        """Signal the run's process group (the worker and whatever the task started)."""
        if run.reaped:
            return  # its pid may belong to someone else now
        try:
            os.killpg(run.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    def poll(self, run: ActiveRun) -> bool:
        """Reap the run's worker if it has exited, after killing what it left in its
        process group; returns whether the run is reaped."""
        if run.reaped:
            return True
        try:
            # Look without reaping: while the worker is an unreaped zombie its
            # pid (its process group's id) cannot be reused, so whatever the
            # task left running in its group can be stopped safely first.
            if os.waitid(os.P_PID, run.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
                return False
            self.signal_group(run, signal.SIGKILL)
            _, status, usage = os.wait4(run.pid, 0)
        except ChildProcessError:
            status, usage = 0, None
        self._reaped(run, status, usage)
        return True

    def kill(self, run: ActiveRun) -> None:
        """Kill the run's process group now and reap its worker (waiting for it)."""
        if run.reaped:
            return
        self.signal_group(run, signal.SIGKILL)
        try:
            _, status, usage = os.wait4(run.pid, 0)
        except ChildProcessError:
            status, usage = 0, None
        self._reaped(run, status, usage)

    def _reaped(self, run: ActiveRun, status: int, usage: Any) -> None:
        run.reaped, run.wait_status, run.usage = True, status, usage
        run.proc.returncode = os.waitstatus_to_exitcode(status) if usage is not None else -1

    def close(self, run: ActiveRun) -> None:
        """Done with a run: close its pipes, remove its working directory, forget it."""
        self._unregister_fd(run.output_fd)
        self._close_events(run)
        self._unregister_fd(run.lifeline_fd)
        try:
            os.close(run.lifeline_fd)
        except OSError:
            pass
        if run.proc.stdout is not None:
            run.proc.stdout.close()
        shutil.rmtree(run.workdir, ignore_errors=True)
        self.runs.pop(run.run_id, None)


def worker_pythonpath(current: str) -> str:
    """The worker's PYTHONPATH: bgproc itself first (a daemon started from a checkout
    that is not installed), then the daemon's entries made absolute, since the worker
    runs in its own working directory."""
    import site

    bgproc_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    installed = {os.path.abspath(p) for p in [*site.getsitepackages(), site.getusersitepackages()]}
    # An installed bgproc is found anyway; site-packages ahead of the standard
    # library on PYTHONPATH could shadow it.
    entries = [] if bgproc_root in installed else [bgproc_root]
    entries += [os.path.abspath(p) for p in current.split(os.pathsep) if p]
    return os.pathsep.join(dict.fromkeys(entries))
