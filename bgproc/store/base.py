"""The store interface: every operation bgproc performs on its database, each a
whole unit of work with its contract written here, once.

An implementation (``sqlite/``, ``postgres/``) keeps its driver to
itself: it raises the ``BgprocError`` family only (``StoreError``; a condition
of the database as a ``StoreFault``: ``StoreBusy``, ``StoreFull``,
``StoreReadOnly``, ``StoreIOError``, ``StoreCorrupt``), and an operation that
raises a ``StoreFault`` wrote nothing, so that it can be called again.
``tests/test_store_contract.py`` holds every implementation to these words.

Instants go in and come out as aware datetimes (UTC out). "Now" is always an
argument: no operation reads a clock, but the database's own (``clock_offset``, and
a server's heartbeats: ``beat``).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from ..timing import Timing
from .records import DaemonRecord, RequestRecord, RunRecord, TaskRecord

# Why a daemon is dead (its words, for the record and the operator), or None while
# it may be alive: the rule the daemon and the command line share (``daemon.membership``).
Judge = Callable[[DaemonRecord], "str | None"]


class ClaimedRun(NamedTuple):
    """A run recorded ``running`` for a daemon, for it to start."""

    run_id: int
    request: RequestRecord
    task: TaskRecord


@dataclass(frozen=True, kw_only=True)
class ClaimResult:
    """What one claim pass did, told once it is committed."""

    runs: list[ClaimedRun] = field(default_factory=list)
    # What the operator is told: runs claimed, slots skipped, requests complete or
    # rejected, follow-ups dropped.
    events: list[str] = field(default_factory=list)
    # Due work that could start was left behind while workers were free (the batch
    # was full, or rows could not be handled): another pass at once is worth it.
    more: bool = False
    # When a pass next has something to do (None: nothing is scheduled).
    next_due: datetime | None = None
    # The daemon's row says it stopped: it was declared dead, and claimed nothing.
    declared_dead: bool = False


@dataclass(frozen=True, kw_only=True)
class LogWrite:
    """New output of a running run: text appended to its log's head, its tail
    replaced (None: left as it is), and the bytes dropped between them so far (None:
    the log is left as it is); its latest progress (done, total, message), if it
    changed."""

    run_id: int
    append_head: str = ""
    tail: str | None = None
    dropped: int | None = None
    progress: tuple[float, float | None, str | None] | None = None


@dataclass(frozen=True, kw_only=True)
class DeadDaemon:
    """A daemon ``settle_orphans`` declared dead, why, and its runs it interrupted."""

    id: str
    why: str
    runs: list[int]


@dataclass(frozen=True, kw_only=True)
class Settled:
    """What ``settle_orphans`` found and did."""

    live: list[DaemonRecord]  # the daemons live before it judged them
    dead: list[DeadDaemon] = field(default_factory=list)
    # Runs left ``running`` under a daemon that had stopped, now interrupted:
    # (run id, daemon id).
    orphans: list[tuple[int, str | None]] = field(default_factory=list)


@dataclass(frozen=True)
class DatabaseProblem:
    """What happened to a database since it was opened; ``gone``: the database there
    now is not the one opened, and nothing more may be written through this store."""

    text: str
    gone: bool


class Watch(Protocol):
    def check(self) -> DatabaseProblem | None:
        """What happened to the database since the watch began (deleted, replaced,
        truncated, opened to other users), or None. Cheap: a daemon calls it at every
        pass of its loop."""
        ...


class Notifier(Protocol):
    """Wake-ups between processes on one database: a change that daemons should act
    on (a request made, a cancel asked for) wakes them within milliseconds."""

    def notify(self) -> None:
        """Wake every daemon listening on this database. Best effort: never raises."""
        ...

    def fileno(self) -> int:
        """A descriptor that selects readable once this listener was woken."""
        ...

    def drain(self) -> None:
        """Take the pending wake-ups, so that the descriptor blocks until the next."""
        ...

    def close(self) -> None:
        """Stop listening (other listeners are not woken for this one any more)."""
        ...


class Store(Protocol):
    """bgproc's database. Open one with ``bgproc.store.open_store(target)``."""

    # Where a retry's jitter comes from (0 to 1); tests make it steady.
    jitter: Callable[[], float]

    # ------------------------------------------------------------------
    # The store itself

    @property
    def target(self) -> str:
        """What ``open_store`` takes to open this database again (a worker's ``BGPROC_DB``);
        also how messages name it."""
        ...

    @property
    def path(self) -> Path | None:
        """The file the database is kept in (the default application database), or
        None for a database on a server."""
        ...

    def close(self) -> None:
        """Release the connection and whatever the store holds open."""
        ...

    def __enter__(self) -> Store: ...

    def __exit__(self, *exc: object) -> None: ...

    def set_busy_timeout(self, ms: int) -> None:
        """How long an operation waits for a lock that another connection holds before
        it raises ``StoreBusy`` (a daemon keeps it short: its loop must not stall)."""
        ...

    def changes(self) -> Hashable:
        """A cheap marker that differs from the last one returned whenever another
        connection has committed a change since (this store's own commits need not
        move it). For watching without wake-ups."""
        ...

    def clock_offset(self, wall: Callable[[], datetime]) -> float:
        """How far the database's clock is ahead of ``wall`` (this host's wall clock), in
        seconds, measured with a round trip; 0.0 for a database without a clock of its
        own (a file: this host's clock is the one every daemon on it reads)."""
        ...

    @property
    def heartbeats_expire(self) -> bool:
        """Whether a daemon is declared dead once its heartbeat is older than the expiry
        by the database's clock (a server: True), so that one whose heartbeats are not
        taken must stop its runs first; False where a judge needs its own heartbeats
        written meanwhile, or checks pids on one host (a file)."""
        ...

    def listen(self, name: str) -> Notifier | None:
        """Start listening for wake-ups as ``name`` (a daemon, unique among those on
        the database); None where this platform offers none. Raises ``StoreError``
        (saying why) when they cannot be set up safely."""
        ...

    def watch(self) -> Watch:
        """Begin watching that the database stays the one opened. Raises ``StoreError``."""
        ...

    # ------------------------------------------------------------------
    # Tasks

    def save_modules(self, modules: list[tuple[str, list[TaskRecord]]], now: datetime) -> list[list[str]]:
        """Record the tasks of each module (name, tasks), as one unit. A task that moved
        between two modules of the batch is updated; a registered task of these
        modules that no module of the batch defines any more is unregistered (its
        scheduled requests unscheduled), and its name returned per module. A name
        registered from a module outside the batch is refused (``RegistryError``) and
        nothing is written."""
        ...

    def get_task(self, name: str, *, include_unregistered: bool = False) -> TaskRecord | None:
        """A registered task by name (or an unregistered one, if asked), or None."""
        ...

    def find_task_by_import_path(self, import_path: str) -> TaskRecord | None:
        """The registered task with this ``module:Class`` path, or None."""
        ...

    def list_tasks(self) -> list[TaskRecord]:
        """The registered tasks, by name."""
        ...

    def pending_request_params(self, task: str) -> list[tuple[int, bytes]]:
        """(id, parameter bytes) of the task's requests that may still run (scheduled,
        a manual run asked for, a retry or recovery waiting), by id."""
        ...

    def unregister_task(self, name: str, now: datetime) -> int:
        """Unregister a task and unschedule its scheduled requests; returns how many.
        ``NotFound`` for a name not registered."""
        ...

    # ------------------------------------------------------------------
    # Requests (each change wakes the daemons once committed)

    def insert_request(
        self,
        *,
        task: str,
        params: bytes,
        timing: Timing,
        next_run_at: datetime | None,
        timeout_s: float | None,
        allow_overlap: bool,
        user: str,
        now: datetime,
        retries: int | None = None,
        retry_delay_s: float | None = None,
        recover: bool | None = None,
    ) -> int:
        """Record a new request, ``scheduled``, due at ``next_run_at``; returns its id.
        Retry policy values left None follow its task's."""
        ...

    def get_request(self, request_id: int) -> RequestRecord:
        """One request, with its last run's status and start, its task's retry
        policy and the retry or recovery waiting, if any. ``NotFound`` for an unknown id."""
        ...

    def list_requests(self, *, include_all: bool = False, limit: int | None = None) -> list[RequestRecord]:
        """Scheduled requests and those with a retry or recovery waiting (with
        ``include_all``, every request), by id."""
        ...

    def set_request_schedule(
        self,
        request_id: int,
        *,
        status: str,
        next_run_at: datetime | None,
        now: datetime,
        timing: Timing | None = None,
        expect_status: tuple[str, ...] | None = None,
        policy: dict[str, Any] | None = None,
    ) -> None:
        """Set a request's status and next fire, and its timing and retry policy values
        (``retries``, ``retry_delay_s``, ``recover`` in ``policy``) if given. ``NotFound``
        for an unknown id; ``StateError`` (nothing written) if its status is not one of
        ``expect_status``. Unscheduling drops a pending manual run too."""
        ...

    def unschedule_requests(self, request_ids: list[int], now: datetime) -> None:
        """No future runs for these requests: fires, a manual run, a retry or recovery
        waiting, nor a follow-up of a run going (a run going finishes). Refused as a
        whole (``NotFound``, ``StateError``) when one is unknown or has nothing that
        could still run."""
        ...

    def request_manual_run(self, request_id: int, now: datetime) -> RequestRecord:
        """Ask for one run of a request now, outside its timing (reason ``manual``);
        asking again before it started changes nothing. ``NotFound`` for an unknown id."""
        ...

    def last_planned_at(self, request_id: int) -> datetime | None:
        """The latest slot of a request a daemon has handled (ran, skipped or
        coalesced), so that rescheduling never plans it again."""
        ...

    def next_due_at(self, after: datetime | None = None) -> datetime | None:
        """The earliest fire, manual run, retry or recovery a daemon can act on (strictly
        after ``after`` if given). What waits for its request's run going to end (a
        one-time or manual run, a follow-up) is left out: that run ending is what
        makes it claimable, not the time."""
        ...

    # ------------------------------------------------------------------
    # Claiming

    def claim_due(
        self,
        daemon: str,
        now: datetime,
        due_by: datetime,
        free: int,
        *,
        limit: int = 100,
        registered: bool = True,
        host: str | None = None,
    ) -> ClaimResult:
        """One claim pass for ``daemon``: in one transaction, what is due by ``due_by``
        (at ``now``) is decided by ``decide`` and recorded: up to ``min(free, limit)``
        runs recorded ``running`` under ``daemon`` (fires, catch-ups with a ``missed``
        row, manual runs, retries and recoveries, oldest first), slots skipped behind
        a run going (one ``skipped`` row per run that blocks them), and requests moved
        to their next fire or complete. Each due slot is claimed by exactly one
        caller, however many stores share the database; the schema refuses a second
        record of one occurrence. A request that cannot be loaded or handled gets an
        error run saying why and is unscheduled; the others are claimed all the same.

        Every row the pass writes (runs, skipped, missed and error rows) records
        ``host``, the daemon's plain host name (``liveness.host_name``).

        A ``registered`` daemon whose row says it stopped (declared dead) claims
        nothing: ``declared_dead``. A pass with nothing due by ``due_by`` takes no
        write lock. ``next_due`` is ``next_due_at(after=max(now, due_by))`` as the
        pass left it (when nothing was due: ``next_due_at()``)."""
        ...

    # ------------------------------------------------------------------
    # Runs

    def get_run(self, run_id: int, *, with_log: bool = True) -> RunRecord:
        """One run (its whole log unless ``with_log`` is off). ``NotFound`` for an unknown id."""
        ...

    def list_runs(
        self,
        *,
        task: str | None = None,
        status: str | None = None,
        request_id: int | None = None,
        since: datetime | None = None,
        host: str | None = None,
        limit: int = 50,
        with_log: bool = False,
    ) -> list[RunRecord]:
        """Runs matching every filter given (``since``: created at or after; ``host``:
        recorded by a daemon on that host, exactly), newest first; without
        ``with_log``, a run's log is its last line only."""
        ...

    def running_runs(self, daemon_id: str | None = None) -> list[RunRecord]:
        """Runs recorded ``running`` (of one daemon, if given), oldest first."""
        ...

    def set_run_pid(self, run_id: int, pid: int) -> None:
        """Record the process that runs a run (before it is told to start)."""
        ...

    def write_logs(self, writes: list[LogWrite]) -> None:
        """Record the new output and progress of running runs, together."""
        ...

    def finish_run(
        self,
        run_id: int,
        *,
        status: str,
        ended_at: datetime,
        exit_code: int | None = None,
        signal: int | None = None,
        cpu_s: float | None = None,
        max_rss_kb: int | None = None,
        detail: str | None = None,
        log: LogWrite | None = None,
    ) -> bool:
        """Record how a run ended, once: only a run still ``running`` changes (True);
        a run recorded ended already keeps that record (False). In the same
        transaction: the rest of its log (``log``, written either way), and the retry
        or recovery its outcome calls for under its request's policy (a linked run
        due later, claimed like other due work), said in its detail."""
        ...

    def request_cancel(self, run_id: int, now: datetime) -> RunRecord:
        """Ask the daemon running a run to stop it (``cancel_requested``), and wake it.
        ``NotFound``; ``StateError`` for a run not running."""
        ...

    def cancel_requested(self, run_ids: list[int]) -> list[int]:
        """Those of ``run_ids`` whose cancel was asked for."""
        ...

    # ------------------------------------------------------------------
    # Daemons

    def register_daemon(self, daemon: DaemonRecord) -> None:
        """Record a daemon starting, live (its first heartbeat: as ``beat``)."""
        ...

    def beat(self, daemon_id: str, now: datetime) -> bool:
        """Record that a daemon lives (its heartbeat: ``now``, or the database's own
        time on a store whose database keeps one); False, writing nothing, if its row
        says it stopped (declared dead) or is gone."""
        ...

    def get_daemon(self, daemon_id: str) -> DaemonRecord | None:
        """A daemon's row, or None (never recorded, or pruned). On a store whose
        database keeps the time, ``silent_s`` is the seconds since its heartbeat."""
        ...

    def live_daemons(self) -> list[DaemonRecord]:
        """The daemons not recorded stopped, oldest first (``silent_s`` as ``get_daemon``)."""
        ...

    def prune_daemons(self, stopped_before: datetime) -> int:
        """Forget daemons stopped before ``stopped_before``; returns how many."""
        ...

    def interrupt_daemon_runs(self, daemon_id: str, now: datetime, detail: str) -> list[int]:
        """In one transaction: a daemon recorded stopped (if it was not), its runs still
        ``running`` recorded ``interrupted`` with ``detail``, and the recovery of those
        that opted in scheduled. Returns the runs interrupted."""
        ...

    def settle_orphans(self, now: datetime, judge: Judge, *, daemon: str | None = None) -> Settled:
        """Interrupt what dead daemons left ``running``, as ``interrupt_daemon_runs`` does
        (detail ``interrupted: daemon ID WHY; not re-run``): each live daemon but
        ``daemon`` (the caller) that ``judge`` says is dead, judged again on its row
        as read under the write lock (it may have beaten, or been settled by another,
        meanwhile); and runs left ``running`` under a daemon that had stopped (not
        ``daemon``'s own: it learns at its next ``beat``). Takes no write lock when
        there is nothing to settle; wakes the daemons when it settled something."""
        ...
