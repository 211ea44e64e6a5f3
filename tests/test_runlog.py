"""RunLog: a run's process log while captured, bounded to head + tail."""

from __future__ import annotations

from datetime import UTC, datetime

from bgproc.daemon.runlog import MAX_LINE, RunLog
from bgproc.store.records import RunRecord

WHEN = datetime(2026, 5, 1, 7, 30, 0, 123000, tzinfo=UTC)


def stored(log: RunLog) -> tuple[str, str, int]:
    """What the store would hold after every take(): head appended, tail replaced."""
    head, tail, dropped = "", "", 0
    while log.dirty:
        more, new_tail, dropped = log.take()
        head += more
        if new_tail is not None:
            tail = new_tail
    return head, tail, dropped


def shown(head: str, tail: str, dropped: int) -> str:
    """The log as the monitor shows it (RunRecord.log)."""
    record = RunRecord(
        id=1, request_id=1, task="T", status="success", reason=None, planned_at=None,
        started_at=None, ended_at=None, exit_code=0, signal=None, daemon_id=None, pid=None,
        cpu_s=None, max_rss_kb=None, detail=None, missed_count=None, missed_until=None,
        progress_done=None, progress_total=None, progress_message=None,
        cancel_requested_at=None, log_head=head, log_tail=tail, log_dropped=dropped,
    )
    return record.log


def texts(log_text: str) -> list[str]:
    """Lines without their timestamps."""
    return [line.split(" ", 1)[1] if " " in line else "" for line in log_text.splitlines()]


def test_small_log_is_kept_whole_with_timestamps() -> None:
    log = RunLog(1024)
    log.feed(b"one\ntwo\n", WHEN)
    head, tail, dropped = stored(log)
    stamp = WHEN.astimezone().strftime("%H:%M:%S.%f")[:-3]
    assert head == f"{stamp} one\n{stamp} two\n"
    assert tail == "" and dropped == 0
    assert log.last_line == "two"


def test_lines_split_across_reads_are_joined() -> None:
    log = RunLog(1024)
    log.feed(b"hel", WHEN)
    assert not log.dirty  # nothing complete yet
    log.feed(b"lo\nwor", WHEN)
    log.feed(b"ld\n", WHEN)
    assert texts(stored(log)[0]) == ["hello", "world"]


def test_partial_line_at_end_is_kept() -> None:
    log = RunLog(1024)
    log.feed(b"done\nno newline at the end", WHEN)
    log.flush_partial(WHEN)
    assert texts(stored(log)[0]) == ["done", "no newline at the end"]
    log.flush_partial(WHEN)  # nothing more: no empty line
    assert not log.dirty


def test_flood_keeps_head_and_tail_and_counts_the_rest() -> None:
    limit = 4096
    log = RunLog(limit)
    total = 0
    for i in range(5000):
        chunk = f"line {i:05d}\n".encode()
        total += len(chunk)
        log.feed(chunk, WHEN)
    head, tail, dropped = stored(log)
    assert len(head.encode()) <= limit // 2
    assert len(tail.encode()) <= limit - limit // 2
    assert texts(head)[0] == "line 00000"
    assert texts(tail)[-1] == "line 04999"
    # Contiguous on each side: the head is the start, the tail the end.
    head_n = [int(t.split()[1]) for t in texts(head)]
    tail_n = [int(t.split()[1]) for t in texts(tail)]
    assert head_n == list(range(len(head_n)))
    assert tail_n == list(range(5000 - len(tail_n), 5000))
    stamp_len = len(" ".join(["00:00:00.000", ""]))
    kept = len(head_n) + len(tail_n)
    assert dropped == (5000 - kept) * (len("line 00000\n") + stamp_len)
    text = shown(head, tail, dropped)
    assert f"[... {dropped} bytes of log dropped ...]" in text
    assert len(text.encode()) <= limit + 64


def test_take_sends_head_once_and_tail_only_when_changed() -> None:
    log = RunLog(200)
    log.feed(b"a" * 50 + b"\n", WHEN)
    first, tail, _ = log.take()
    assert "a" * 50 in first and tail is None
    log.feed(b"b" * 50 + b"\n" + b"c" * 50 + b"\n", WHEN)
    head, tail, dropped = log.take()
    assert "a" not in head  # the head already taken is not sent again
    assert tail is not None and "c" * 50 in tail
    assert not log.dirty
    assert log.take()[1] is None


def test_huge_single_line_is_cut_and_counted() -> None:
    limit = 64 * 1024
    log = RunLog(limit)
    log.feed(b"start\n", WHEN)
    log.feed(b"y" * (10 * 1024 * 1024) + b"\nend\n", WHEN)
    head, tail, dropped = stored(log)
    assert texts(head) == ["start"]
    assert texts(tail)[-1] == "end"
    assert len(head.encode()) + len(tail.encode()) <= limit
    assert dropped > 10 * 1024 * 1024 - limit
    assert "..." in tail  # the cut is marked


def test_endless_line_without_newline_stays_bounded() -> None:
    log = RunLog(256 * 1024)
    for _ in range(200):  # 12.5 MiB in 64 KiB reads, never a newline
        log.feed(b"z" * 65536, WHEN)
        assert len(log._partial) <= 2 * MAX_LINE
    log.flush_partial(WHEN)
    head, tail, dropped = stored(log)
    assert len(head.encode()) + len(tail.encode()) <= 256 * 1024
    assert len(head.encode()) + len(tail.encode()) + dropped >= 200 * 65536


def test_invalid_utf8_and_carriage_returns() -> None:
    log = RunLog(1024)
    log.feed(b"caf\xc3\xa9 \xff\xfe\r\nok\r\n", WHEN)
    assert texts(stored(log)[0]) == ["caf\u00e9 \ufffd\ufffd", "ok"]


def test_added_records_share_the_bound() -> None:
    log = RunLog(2048)
    for i in range(200):
        log.add("12:00:00.000", f"[INFO] record {i}")
    head, tail, dropped = stored(log)
    assert texts(head)[0] == "[INFO] record 0"
    assert texts(tail)[-1] == "[INFO] record 199"
    assert len(head.encode()) + len(tail.encode()) <= 2048
    assert dropped > 0


def test_nul_is_stored_escaped() -> None:
    log = RunLog(1024)
    log.feed(b"before\x00after\n", WHEN)
    head = stored(log)[0]
    assert "\x00" not in head
    assert texts(head) == ["before\\x00after"]


def test_text_waiting_for_its_newline_is_shown_after_a_moment() -> None:
    from datetime import timedelta

    log = RunLog(1024)
    log.feed(b"line\nwork", WHEN)
    log.feed(b"ing...", WHEN + timedelta(seconds=0.5))
    log.flush_stale(WHEN + timedelta(seconds=0.9), 1.0)
    assert texts(stored(log)[0]) == ["line"]  # not yet: it began at WHEN
    log.flush_stale(WHEN + timedelta(seconds=1.0), 1.0)
    assert texts(stored(log)[0]) == ["working..."]
    log.feed(b" done\n", WHEN + timedelta(seconds=2))
    log.flush_partial(WHEN + timedelta(seconds=2))
    assert texts(stored(log)[0]) == [" done"]  # the rest, as its own line


def test_cuts_never_split_a_utf8_character() -> None:
    from datetime import timedelta

    log = RunLog(1024)
    log.feed("caf\u00e9".encode()[:-1], WHEN)  # the é half read
    log.flush_stale(WHEN + timedelta(seconds=5), 1.0)
    log.feed("caf\u00e9".encode()[-1:] + b"\n", WHEN + timedelta(seconds=5))
    head = stored(log)[0]
    assert "\ufffd" not in head
    assert texts(head) == ["caf", "\u00e9"]
    big = RunLog(1024 * 1024)
    big.feed(("\u20ac" * 30_000).encode(), WHEN)  # 90 kB without a newline: cut
    big.flush_partial(WHEN)
    assert "\ufffd" not in stored(big)[0]


def test_a_flood_past_the_head_is_counted_without_storing_what_the_tail_would_drop() -> None:
    from datetime import UTC, datetime

    log = RunLog(4096)
    when = datetime(2026, 5, 1, tzinfo=UTC)
    log.feed(b"".join(b"head line %04d\n" % i for i in range(200)), when)  # fills the head, starts the tail
    flood = b"".join(b"flood line %06d\n" % i for i in range(100_000))
    log.feed(flood, when)
    head, tail, dropped, _ = log.pending()
    assert len(head.encode()) <= 2048 and len(tail.encode()) <= 2048
    assert tail.endswith("flood line 099999\n") and "head line 0000" in head
    total = sum(len(line) + len(" 00:00:00.000 ") for line in
                [b"head line %04d" % i for i in range(200)] + [b"flood line %06d" % i for i in range(100_000)])
    assert dropped == total - len(head.encode()) - len(tail.encode())
