"""What wakes the daemon's loop between passes, on one selector: the store's
notifier (a request changed, a cancel asked for), signals, and the workers'
pipes (registered by the pool). Signal handlers only note the signal
(``received``); the loop acts on it.
"""

from __future__ import annotations

import os
import selectors
import signal
from collections.abc import Callable
from typing import Any

from ..errors import StoreError
from ..store import Notifier, Store
from .active import ActiveRun


class Wakeups:
    """The loop's selector, with the store's notifier and a signal pipe on it."""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.received: list[int] = []  # SIGTERM and SIGINT, noted in order
        self._notifier: Notifier | None = None
        self._notifier_fd = -1  # its descriptor as registered
        self._notifier_seen: tuple[int, int] = (-1, 0)  # its descriptor and generation then
        self._signal_fds: tuple[int, int] | None = None
        self._old_wakeup = -1
        self._old_handlers: dict[int, Any] = {}

    def listen(self, store: Store, name: str, say: Callable[[str], None]) -> bool:
        """Wake on the store's notifier, as ``name``; False where there is none (why is
        told to ``say`` when it could not be set up safely)."""
        try:
            self._notifier = store.listen(name)
        except StoreError as exc:
            say(f"{exc}; watching the database instead")
            return False
        if self._notifier is None:
            return False
        self._watch_notifier()
        return True

    def _watch_notifier(self) -> None:
        """The notifier's descriptor on the selector: again if it changed (a server's
        listening connection made anew after it was lost: its ``generation`` moves,
        since a new descriptor may have the old one's number)."""
        if self._notifier is None:
            return
        now = (self._notifier.fileno(), getattr(self._notifier, "generation", 0))
        if now == self._notifier_seen:
            return
        if self._notifier_fd >= 0:
            self.selector.unregister(self._notifier_fd)  # closed already, perhaps: ignored
        self._notifier_seen = now
        self._notifier_fd = now[0]
        self.selector.register(self._notifier_fd, selectors.EVENT_READ, ("wake", None))

    def catch_signals(self) -> None:
        """Note SIGTERM and SIGINT; let every signal (SIGCHLD too) wake the selector.
        Only in the main thread (tests may run a daemon in another)."""
        read, write = os.pipe()
        os.set_blocking(read, False)
        os.set_blocking(write, False)
        try:
            self._old_wakeup = signal.set_wakeup_fd(write)
        except ValueError:  # not the main thread
            os.close(read)
            os.close(write)
            return
        self._signal_fds = (read, write)
        self.selector.register(read, selectors.EVENT_READ, ("signal", None))

        def note(signum: int, frame: Any) -> None:
            self.received.append(signum)

        self._old_handlers = {signum: signal.signal(signum, note) for signum in (signal.SIGTERM, signal.SIGINT)}
        self._old_handlers[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, lambda s, f: None)

    def wait(self, timeout: float, ready: Callable[[str, ActiveRun], None]) -> None:
        """Wait up to ``timeout`` seconds for anything; a worker's pipe that is ready
        goes to ``ready`` (its kind, its run)."""
        self._watch_notifier()
        for key, _ in self.selector.select(timeout):
            kind, run = key.data
            if kind == "wake" and self._notifier is not None:
                self._notifier.drain()
            elif kind == "signal":
                _drain(key.fd)
            else:
                ready(kind, run)

    def close(self) -> None:
        """Stop listening, and give the signals back their handlers."""
        if self._notifier is not None:
            if self._notifier_fd >= 0:
                self.selector.unregister(self._notifier_fd)
                self._notifier_fd = -1
            self._notifier.close()
            self._notifier = None
        if self._signal_fds is None:
            return
        signal.set_wakeup_fd(self._old_wakeup)
        for signum, handler in self._old_handlers.items():
            signal.signal(signum, handler)
        self.selector.unregister(self._signal_fds[0])
        for fd in self._signal_fds:
            os.close(fd)
        self._signal_fds = None


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except (BlockingIOError, InterruptedError):
        pass
