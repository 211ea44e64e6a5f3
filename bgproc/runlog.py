"""A run's process log while it is captured: timestamped lines, bounded in size.

The first half of the limit keeps the head of the log, the second half its
latest lines; what falls between is counted and dropped, so a task that
floods its output costs bounded memory and database space.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime

MAX_LINE = 64 * 1024


class RunLog:
    def __init__(self, limit: int) -> None:
        self.head_limit = limit // 2
        self.tail_limit = limit - self.head_limit
        self.head_bytes = 0
        self._pending_head: list[str] = []
        self._tail: deque[tuple[str, int]] = deque()
        self._tail_bytes = 0
        self._tail_dirty = False
        self.dropped = 0
        self._dropped_dirty = False
        self._partial = b""
        self.last_line = ""

    def feed(self, data: bytes, when: datetime) -> None:
        """Add raw output; complete lines get the time they were read."""
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()
        if len(self._partial) > MAX_LINE:  # a line without end: cut it
            lines.append(self._partial)
            self._partial = b""
        if lines:
            stamp = when.astimezone().strftime("%H:%M:%S.%f")[:-3]
            for raw in lines:
                self.add(stamp, raw.decode("utf-8", "replace").rstrip("\r"))

    def flush_partial(self, when: datetime) -> None:
        """At the end of the run: the last line may lack its newline."""
        if self._partial:
            self.feed(b"\n", when)

    def add(self, stamp: str, text: str) -> None:
        line = f"{stamp} {text}\n"
        size = len(line.encode("utf-8"))
        if text.strip():
            self.last_line = text
        if self.head_bytes + size <= self.head_limit and not self._tail:
            self._pending_head.append(line)
            self.head_bytes += size
            return
        if size > self.tail_limit:
            line = line[: self.tail_limit // 4] + "...\n"
            self.dropped += size - len(line.encode("utf-8"))
            size = len(line.encode("utf-8"))
            self._dropped_dirty = True
        self._tail.append((line, size))
        self._tail_bytes += size
        self._tail_dirty = True
        while self._tail_bytes > self.tail_limit:
            _, old = self._tail.popleft()
            self._tail_bytes -= old
            self.dropped += old
            self._dropped_dirty = True

    @property
    def dirty(self) -> bool:
        return bool(self._pending_head) or self._tail_dirty or self._dropped_dirty

    def take(self) -> tuple[str, str | None, int]:
        """What to write now: text to append to the head, the whole tail (None if
        unchanged), and the dropped byte count."""
        head = "".join(self._pending_head)
        self._pending_head.clear()
        tail = "".join(line for line, _ in self._tail) if self._tail_dirty else None
        self._tail_dirty = self._dropped_dirty = False
        return head, tail, self.dropped
