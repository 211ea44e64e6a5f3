"""The daemon's side of worker processes: starting them, talking to them, reaping them.

Each run gets a process of its own, in its own session, process group and
temporary working directory: forked by the fork server (``forking.py``,
``bgproc/forkserver.py``), which imported bgproc and the task modules once,
or, for a task with ``isolation = "spawn"`` (or with no fork server), a fresh
``python -P -m bgproc.child``. For those, one child may be started ahead
(the *spare*) so that a claimed run need not wait for an interpreter to
start. Either way the run's process is this daemon's own child. The job
goes over the job pipe, which then stays open
as the child's lifeline and carries the renewals of its lease; what the
child prints (``connection.log`` records included) is read into the run's
log, and its events (``protocol.py``) into the run, without ever blocking.
A run's deadline is its start-up limit until the child says it started,
then its timeout from there. The pool polls its own children
(``wait4`` with ``WNOHANG``): one that exited is reaped with its wait status
and resource usage, and whatever it left in its process group is killed.

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
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..store.records import RequestRecord, TaskRecord
from . import forking, protocol
from .active import ActiveRun
from .forking import Forked, ForkServer, become_subreaper, reap_strays
from .pipes import Pipes
from .protocol import Job
from .runlog import RunLog

# Output waiting this long for its newline is shown as it is (RunLog.flush_stale).
PARTIAL_LINE_S = 1.0


@dataclass
class Launched:
    """A child started and waiting for its job on ``job_w``."""

    proc: subprocess.Popen[bytes] | Forked
    job_w: int
    events_r: int
    output_fd: int
    workdir: str


class Pool:
    """The worker processes of one daemon: its runs' children, by run id, and the spare.

    The runs' pipes are registered on the daemon's ``selector`` (``pipes.py``);
    the daemon hands back what is ready to ``ready``. ``now`` and ``mono`` are
    the daemon's clock (wall and monotonic), read at each use.
    """

    def __init__(
        self,
        *,
        target: str,
        app_db: str,
        log_limit: int,
        selector: selectors.BaseSelector,
        now: Callable[[], datetime],
        mono: Callable[[], float],
        forkserver: Callable[[Callable[[], dict[str, str]], selectors.BaseSelector], ForkServer] | None = None,
    ) -> None:
        self.target = target  # the store, as open_store takes it (the worker's BGPROC_DB)
        self.app_db = app_db
        self.log_limit = log_limit
        self.runs: dict[int, ActiveRun] = {}
        self.spare: Launched | None = None
        self._mono = mono
        self._pipes = Pipes(selector, now, mono)
        # The fork server (``forking.py``); None: every run is a fresh interpreter.
        self.forkserver = None
        if forkserver is not None and become_subreaper():
            self.forkserver = forkserver(self._child_env, selector)
        self.spawned = False  # a run was started as a fresh interpreter (a spare is then kept)

    # ------------------------------------------------------------------
    # Starting

    def launch(self) -> Launched:
        """Start a fresh interpreter, waiting for its job. Raises OSError (out of file
        descriptors, a full disk) with nothing left behind."""
        return self._launch(None)

    def launch_for(self, task: TaskRecord) -> Launched:
        """A child for a run of ``task``: forked by the fork server, or for a task with
        ``isolation = "spawn"`` (or no fork server) the spare or a fresh interpreter.
        Raises OSError as ``launch``."""
        if self.forkserver is not None and self.forkserver.isolation(task) == "fork":
            return self._launch(self.forkserver)
        self.spawned = True
        return self.take_spare() or self.launch()

    def wants_spare(self) -> bool:
        """Whether a spare is worth keeping: runs start as fresh interpreters here."""
        return self.forkserver is None or self.forkserver.broken is not None or self.spawned

    def warm(self) -> None:
        """Start the fork server ahead of the first run."""
        if self.forkserver is not None:
            self.forkserver.start()

    def _launch(self, server: ForkServer | None) -> Launched:
        fds: list[int] = []
        workdir = None
        try:
            job_r, job_w = os.pipe()
            fds += (job_r, job_w)
            events_r, events_w = os.pipe()
            fds += (events_r, events_w)
            output_r, output_w = os.pipe()
            fds += (output_r, output_w)
            workdir = tempfile.mkdtemp(prefix=protocol.WORKDIR_PREFIX)
            proc: subprocess.Popen[bytes] | Forked
            if server is not None:
                proc = server.fork(workdir, (job_r, events_w, output_w))
            else:
                proc = subprocess.Popen(
                    # -P: the working directory does not go first on sys.path (a task's
                    # modules come from its recorded search path, after the standard library).
                    [sys.executable, "-P", "-m", "bgproc.child"],
                    stdin=subprocess.DEVNULL, stdout=output_w, stderr=output_w,
                    pass_fds=(job_r, events_w), cwd=workdir, env=self._child_env(job_r, events_w),
                    start_new_session=True, close_fds=True,
                )
        except OSError:
            for fd in fds:
                os.close(fd)
            if workdir is not None:
                shutil.rmtree(workdir, ignore_errors=True)
            raise
        for fd in (job_r, events_w, output_w):
            os.close(fd)
        for fd in (job_w, events_r, output_r):
            os.set_blocking(fd, False)
        return Launched(proc=proc, job_w=job_w, events_r=events_r, output_fd=output_r, workdir=workdir)

    def _child_env(self, job_r: int | None = None, events_w: int | None = None) -> dict[str, str]:
        env = dict(os.environ)
        if job_r is not None:
            env[protocol.FDS_ENV] = f"{job_r},{events_w}"
        env["PYTHONUNBUFFERED"] = "1"
        env["BGPROC_DB"] = self.target
        env["BGPROC_APP_DB"] = self.app_db
        env["PYTHONPATH"] = worker_pythonpath(env.get("PYTHONPATH", ""))
        return env

    def ensure_spare(self) -> None:
        """Start the spare if there is none. Raises OSError as ``launch``."""
        if self.spare is None:
            self.spare = self.launch()

    def take_spare(self) -> Launched | None:
        """The spare, to be given a job (None if there is none or it exited)."""
        spare, self.spare = self.spare, None
        if spare is not None and _reap_if_exited(spare.proc):
            self.discard(spare)
            return None
        return spare

    def reap_spare(self) -> Launched | None:
        """If the spare exited on its own, let it go and return it."""
        if self.spare is None or not _reap_if_exited(self.spare.proc):
            return None
        spare, self.spare = self.spare, None
        self.discard(spare)
        return spare

    def let_helpers_go(self) -> None:
        """At shutdown: let the spare go, and stop the fork server (runs go on)."""
        self.discard_spare()
        self.stop_forkserver()

    def discard_spare(self) -> None:
        """Let the spare go, if there is one."""
        if self.spare is not None:
            spare, self.spare = self.spare, None
            self.discard(spare)

    def discard(self, spare: Launched) -> None:
        """Let a child without a job go: it exits when its job pipe closes."""
        os.close(spare.job_w)
        _kill_group(spare.proc.pid)  # before it is reaped, or just after (``_reap_if_exited``)
        if spare.proc.returncode is None:
            try:
                _, status = os.waitpid(spare.proc.pid, 0)
                spare.proc.returncode = os.waitstatus_to_exitcode(status)
            except ChildProcessError:
                spare.proc.returncode = -1
        os.close(spare.events_r)
        os.close(spare.output_fd)
        shutil.rmtree(spare.workdir, ignore_errors=True)

    def start(
        self,
        launched: Launched,
        *,
        run_id: int,
        request: RequestRecord,
        task: TaskRecord,
        timeout_s: float,
        startup_s: float,
        lease: tuple[float, float] | None = None,
    ) -> ActiveRun:
        """Send a claimed run's job to ``launched`` and watch its pipes from now on.
        ``startup_s``: how long the child may take to start (``Started``), and then
        ``timeout_s`` to run. ``lease``: how long the child goes on without a renewal
        (``renew``), and the grace its task then gets, in seconds."""
        lease_s, grace_s = lease or (None, None)
        job = Job(
            run_id=run_id, request_id=request.id, task=task.name, import_path=task.import_path,
            search_path=task.search_path, params=request.params, user=request.user, app_db=self.app_db,
            lease_s=lease_s, lease_grace_s=grace_s,
        )
        # Never block on the child: what does not fit in the pipe now (large
        # parameters) is written as the child reads it.
        job_data = job.pack()
        try:
            job_data = job_data[os.write(launched.job_w, job_data):]
        except BlockingIOError:
            pass
        except OSError:
            job_data = b""  # the child died at once; reaping records it
        spawned = self._mono()
        active = ActiveRun(
            run_id=run_id, request_id=request.id, task=request.task, proc=launched.proc,
            output_fd=launched.output_fd, events_fd=launched.events_r, lifeline_fd=launched.job_w,
            workdir=launched.workdir, timeout_s=timeout_s, deadline=spawned + startup_s,
            log=RunLog(self.log_limit), spawned_mono=spawned, startup_s=startup_s, lease_s=lease_s,
        )
        self.runs[run_id] = active
        self._pipes.watch(active, job_data)
        return active

    # ------------------------------------------------------------------
    # Pipes

    def ready(self, kind: str, run: ActiveRun) -> None:
        """One of a run's pipes is ready (``kind`` as registered): read or write it; or
        the fork server's socket."""
        if kind == forking.KIND:
            if self.forkserver is not None:
                self.forkserver.readable()
            return
        self._pipes.ready(kind, run)

    def drain(self, run: ActiveRun) -> None:
        """Read what is left in a reaped run's pipes, boundedly."""
        self._pipes.drain(run)

    def renew(self, run: ActiveRun) -> None:
        """Renew the child's lease (one ``protocol.RENEWAL`` on its job pipe), never blocking."""
        self._pipes.renew(run)

    def sample(self, now: datetime) -> None:
        """Show output long waiting for its newline; note each live child's peak memory
        (sampled while it runs, so that a run that crashes still has a peak)."""
        for run in self.runs.values():
            run.log.flush_stale(now, PARTIAL_LINE_S)
            run.sample_peak()
        if self.forkserver is not None:
            known = {run.pid for run in self.runs.values() if not run.reaped}
            known |= {pid for pid in (self.forkserver.pid, self.spare and self.spare.proc.pid) if pid}
            reap_strays(known)

    def stop_forkserver(self) -> None:
        """Stop the fork server, if there is one (its runs go on)."""
        if self.forkserver is not None:
            self.forkserver.stop()

    # ------------------------------------------------------------------
    # Signalling, reaping, closing

    def signal_group(self, run: ActiveRun, signum: int) -> None:
        """Signal the run's process group (the child and whatever the task started)."""
        if not run.reaped:  # else its pid may belong to someone else now
            _signal_group(run.pid, signum)

    def poll(self, run: ActiveRun) -> bool:
        """Reap the run's child if it has exited, then kill what it left in its process
        group; returns whether the run is reaped."""
        if run.reaped:
            return True
        try:
            pid, status, usage = os.wait4(run.pid, os.WNOHANG)
        except ChildProcessError:
            pid, status, usage = run.pid, 0, None
        if pid == 0:
            return False
        self._reaped(run, status, usage)
        if usage is not None:
            _kill_group(run.pid)
        return True

    def kill(self, run: ActiveRun) -> None:
        """Kill the run's process group now and reap its child (waiting for it)."""
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
        self._pipes.close(run)
        shutil.rmtree(run.workdir, ignore_errors=True)
        self.runs.pop(run.run_id, None)


def _reap_if_exited(proc: subprocess.Popen[bytes] | Forked) -> bool:
    """Whether our child ``proc`` has exited; reaped then, its exit code on ``proc``."""
    if proc.returncode is not None:
        return True
    try:
        pid, status = os.waitpid(proc.pid, os.WNOHANG)
    except ChildProcessError:
        proc.returncode = -1
        return True
    if pid == 0:
        return False
    proc.returncode = os.waitstatus_to_exitcode(status)
    return True


def _kill_group(pgid: int) -> None:
    """Kill what a child just reaped left in its process group. The group's id is
    not given to another process while any process of the group is left (POSIX),
    so this hits those only; with none left, another group could have that id only
    if the system's pids had wrapped around since the child was reaped."""
    _signal_group(pgid, signal.SIGKILL)


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def worker_pythonpath(current: str) -> str:
    """The child's PYTHONPATH: bgproc itself first (a daemon started from a checkout
    that is not installed), then the daemon's entries made absolute, since the child
    runs in its own working directory."""
    import site

    bgproc_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    installed = {os.path.abspath(p) for p in [*site.getsitepackages(), site.getusersitepackages()]}
    # An installed bgproc is found anyway; site-packages ahead of the standard
    # library on PYTHONPATH could shadow it.
    entries = [] if bgproc_root in installed else [bgproc_root]
    entries += [os.path.abspath(p) for p in current.split(os.pathsep) if p]
    return os.pathsep.join(dict.fromkeys(entries))
