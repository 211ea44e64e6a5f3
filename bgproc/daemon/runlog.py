"""A run's process log while it is captured: timestamped lines, bounded in size.

The first half of the limit keeps the head of the log, the second half its
latest lines; what falls between is counted and dropped, so a task that
floods its output costs bounded memory and database space.

A line is recorded when it ends. Text that has waited longer than a moment
for its newline (``print(".", end="")``, a prompt, a progress counter) is
recorded as it is, so that the monitor shows it while the run goes on.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime

MAX_LINE = 64 * 1024


def stamp(when: datetime) -> str:
    """A log line's time: local, to the millisecond."""
    return when.astimezone().strftime("%H:%M:%S.%f")[:-3]


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace").rstrip("\r")


def _utf8_cut(data: bytes) -> int:
    """Where to cut ``data`` so as not to split a UTF-8 character at its end."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte < 0x80:
            return len(data)  # ASCII: complete
        if byte >= 0xC0:  # a lead byte: how long its character is
            need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return len(data) if back >= need else len(data) - back
    return len(data)


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
        self._version = 0  # counts changes to the tail or the dropped count
        self._partial = b""
        self._partial_since: datetime | None = None
        self.last_line = ""

    def feed(self, data: bytes, when: datetime) -> None:
        """Add raw output; complete lines get the time they were read."""
        data = self._partial + data
        lines = data.split(b"\n")
        partial = lines.pop()
        if len(partial) > MAX_LINE:  # a line without end: cut it
            cut = _utf8_cut(partial)
            lines.append(partial[:cut])
            partial = partial[cut:]
        if not partial:
            self._partial_since = None
        elif lines or self._partial_since is None:
            self._partial_since = when  # a new unfinished line began
        self._partial = partial
        if lines:
            at_text = stamp(when)
            if self._tail:
                lines = self._skip_flood(lines, len(at_text) + 2)
            for raw in lines:
                self.add(at_text, _text(raw))

    def _skip_flood(self, lines: list[bytes], overhead: int) -> list[bytes]:
        """Once the head is full, lines that the tail would only push out again are
        counted as dropped without being decoded and stored (a flood costs little)."""
        kept, size = len(lines), 0
        while kept > 0:
            size += len(lines[kept - 1]) + overhead
            if size > self.tail_limit:
                break
            kept -= 1
        if kept:
            for raw in reversed(lines[:kept]):
                if raw.strip():
                    self.last_line = _text(raw)
                    break
            self.dropped += sum(len(raw) + overhead for raw in lines[:kept])
            self._dropped_dirty = True
            self._version += 1
        return lines[kept:]

    def flush_partial(self, when: datetime) -> None:
        """At the end of the run: the last line may lack its newline."""
        if self._partial:
            self.feed(b"\n", when)

    def flush_stale(self, when: datetime, max_age_s: float) -> None:
        """Record text still waiting for its newline after ``max_age_s``, as a line."""
        if not self._partial or self._partial_since is None:
            return
        if (when - self._partial_since).total_seconds() < max_age_s:
            return
        cut = _utf8_cut(self._partial)
        if cut:
            line, self._partial = self._partial[:cut], self._partial[cut:]
            self._partial_since = when if self._partial else None
            self.add(stamp(when), _text(line))

    def add(self, stamp: str, text: str) -> None:
        # NUL stays visible but is not stored as such: SQLite's text functions
        # (the monitor's last-line excerpt) stop at it.
        text = text.replace("\x00", "\\x00")
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
        self._version += 1
        while self._tail_bytes > self.tail_limit:
            _, old = self._tail.popleft()
            self._tail_bytes -= old
            self.dropped += old
            self._dropped_dirty = True

    @property
    def dirty(self) -> bool:
        return bool(self._pending_head) or self._tail_dirty or self._dropped_dirty

    def pending(self) -> tuple[str, str | None, int, tuple[int, int]]:
        """What to write now, without forgetting it: text to append to the head, the
        whole tail (None if unchanged), the dropped byte count, and a mark to pass to
        ``written`` once the write is committed (a write rolled back is sent again)."""
        head = "".join(self._pending_head)
        tail = "".join(line for line, _ in self._tail) if self._tail_dirty else None
        return head, tail, self.dropped, (len(self._pending_head), self._version)

    def written(self, mark: tuple[int, int]) -> None:
        """What ``pending`` returned with ``mark`` is stored."""
        count, version = mark
        del self._pending_head[:count]
        if version == self._version:
            self._tail_dirty = self._dropped_dirty = False

    def cut(self, keep: int, note: str) -> int:
        """For a database with no room left: of what is not stored yet (the pending
        head and the tail), keep the last whole lines within ``keep`` bytes, after the
        line ``note``; the rest counts as dropped. Returns the bytes dropped now."""
        lines = self._pending_head + [line for line, _ in self._tail]
        kept: list[tuple[str, int]] = []
        size = 0
        for line in reversed(lines):
            length = len(line.encode("utf-8"))
            if size + length > keep:
                break
            kept.append((line, length))
            size += length
        lost = sum(len(line.encode("utf-8")) for line in lines) - size
        self.head_bytes -= sum(len(line.encode("utf-8")) for line in self._pending_head)
        self._pending_head = []
        note_line = f"{note}\n"
        self._tail = deque([(note_line, len(note_line.encode("utf-8"))), *reversed(kept)])
        self._tail_bytes = size + self._tail[0][1]
        self.dropped += lost
        self._tail_dirty = self._dropped_dirty = True
        self._version += 1
        return lost

    def take(self) -> tuple[str, str | None, int]:
        """``pending`` and ``written`` at once (for a write that cannot fail)."""
        head, tail, dropped, mark = self.pending()
        self.written(mark)
        return head, tail, dropped
