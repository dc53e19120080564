"""The agent's follower on real files: whole lines only, rollover, renames, deletes,
truncation, CRLF, header blocks mid-file, file identity, and resuming from checkpoints."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from iiswatch.ingest.agent.config import InputConfig
from iiswatch.ingest.agent.follow import Batch, Follower
from iiswatch.ingest.files import file_identity

FIELDS_A = (
    b"#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip "
    b"cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status time-taken\r\n"
)
FIELDS_B = b"#Fields: date time c-ip cs-method cs-uri-stem sc-status\r\n"


def header(fields: bytes = FIELDS_A, second: int = 0) -> bytes:
    return (
        b"#Software: Microsoft Internet Information Services 10.0\r\n#Version: 1.0\r\n"
        + f"#Date: 2026-11-26 00:00:{second:02d}\r\n".encode()
        + fields
    )


def line(i: int) -> bytes:
    return (
        f"2026-11-26 00:{i // 60 % 60:02d}:{i % 60:02d} 10.0.0.1 GET /page/{i} q={i} 443 - "
        f"203.0.113.{i % 250} Mozilla/5.0+(Windows+NT+10.0) - 200 0 0 {i}\r\n"
    ).encode()


def lines(a: int, b: int) -> bytes:
    return b"".join(line(i) for i in range(a, b))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def follower(tmp_path: Path, clock: Clock, records=(), pattern: str = "*.log", **kw) -> Follower:
    spec = InputConfig(path=str(tmp_path / pattern))
    return Follower([spec], records, host="web01", clock=clock, **kw)


def take(f: Follower, max_bytes: int = 1 << 20, max_lines: int = 5000) -> Batch:
    f.scan()
    b = Batch(max_bytes, max_lines)
    f.fill(b)
    return b


def shipped(b: Batch) -> dict[str, bytes]:
    return {c.file.path.name: c.data for c in b.chunks.values()}


def drain(f: Follower, clock: Clock | None = None, rounds: int = 50) -> dict[str, bytes]:
    """Take and acknowledge batches until nothing is left; the bytes shipped per file name."""
    out: dict[str, bytes] = {}
    for _ in range(rounds):
        b = take(f)
        if not b:
            if clock is not None:
                clock.now += 10
            continue
        for c in b.chunks.values():
            out[c.file.path.name] = out.get(c.file.path.name, b"") + c.data
        f.acknowledge(b)
    return out


def test_only_whole_lines_are_shipped_and_a_partial_line_waits_for_its_newline(
    tmp_path: Path, clock: Clock
) -> None:
    log = tmp_path / "u_ex261126.log"
    body = header() + lines(0, 10)
    log.write_bytes(body + line(10)[:25])
    f = follower(tmp_path, clock)
    b = take(f)
    assert shipped(b) == {"u_ex261126.log": body}
    f.acknowledge(b)
    assert not take(f)  # the half line stays in the file
    with log.open("ab") as fh:
        fh.write(line(10)[25:])
    b = take(f)
    (chunk,) = b.chunks.values()
    assert chunk.offset == len(body) and chunk.data == line(10)


def test_crlf_lines_are_shipped_byte_for_byte(tmp_path: Path, clock: Clock) -> None:
    data = header() + lines(0, 30) + b"2026-11-26 00:00:00 LF only line\n"
    (tmp_path / "u_ex1.log").write_bytes(data)
    assert drain(follower(tmp_path, clock)) == {"u_ex1.log": data}


def test_file_id_is_the_fingerprint_ingest_gives_and_never_changes_as_it_grows(
    tmp_path: Path, clock: Clock
) -> None:
    log = tmp_path / "u_ex1.log"
    log.write_bytes(header() + lines(0, 10))
    f = follower(tmp_path, clock)
    first = take(f)
    (chunk,) = first.chunks.values()
    assert chunk.file_id == file_identity(log)
    f.acknowledge(first)
    with log.open("ab") as fh:
        fh.write(lines(10, 20))
    (later,) = take(f).chunks.values()
    assert later.file_id == chunk.file_id == file_identity(log)


def test_a_file_under_1_kib_waits_until_it_settles_then_keeps_that_id(
    tmp_path: Path, clock: Clock
) -> None:
    log = tmp_path / "u_ex1.log"
    small = header() + line(0)
    assert len(small) < 1024
    log.write_bytes(small)
    f = follower(tmp_path, clock, identity_settle=2.0)
    assert not take(f)  # too young: its id could still be made of more bytes
    clock.now += 1
    assert not take(f)
    clock.now += 1.5
    b = take(f)
    (chunk,) = b.chunks.values()
    assert chunk.data == small and chunk.file.id_bytes == len(small)
    f.acknowledge(b)
    with log.open("ab") as fh:
        fh.write(lines(1, 20))
    (later,) = take(f).chunks.values()
    assert later.file_id == chunk.file_id and later.offset == len(small)
    # and after a restart, the short id is recognised again
    again = follower(tmp_path, clock, records=f.records())
    (resumed,) = take(again).chunks.values()
    assert resumed.file_id == chunk.file_id and resumed.offset == len(small)


def test_growth_resets_the_settle_timer(tmp_path: Path, clock: Clock) -> None:
    log = tmp_path / "u_ex1.log"
    log.write_bytes(header())
    f = follower(tmp_path, clock, identity_settle=2.0)
    assert not take(f)
    clock.now += 1.5
    with log.open("ab") as fh:
        fh.write(line(0))
    assert not take(f)
    clock.now += 1.5
    assert not take(f)  # 1.5 s since it last grew
    clock.now += 1
    assert take(f)


def test_iis_rollover_to_a_new_file_follows_both(tmp_path: Path, clock: Clock) -> None:
    old = tmp_path / "u_ex261126.log"
    old.write_bytes(header() + lines(0, 20))
    f = follower(tmp_path, clock)
    f.acknowledge(take(f))
    with old.open("ab") as fh:
        fh.write(lines(20, 25))
    new = tmp_path / "u_ex261127.log"
    new.write_bytes(header(second=1) + lines(100, 120))
    got = shipped(take(f))
    assert got == {"u_ex261126.log": lines(20, 25), "u_ex261127.log": new.read_bytes()}


def test_file_renamed_while_followed_keeps_its_place(tmp_path: Path, clock: Clock) -> None:
    log = tmp_path / "u_ex1.log"
    log.write_bytes(header() + lines(0, 20))
    f = follower(tmp_path, clock)
    b = take(f)
    f.acknowledge(b)
    (chunk,) = b.chunks.values()
    log.rename(tmp_path / "u_ex1-old.log")
    with (tmp_path / "u_ex1-old.log").open("ab") as fh:
        fh.write(lines(20, 22))
    (after,) = take(f).chunks.values()
    assert after.file.path.name == "u_ex1-old.log"
    assert after.file_id == chunk.file_id and after.data == lines(20, 22)


def test_file_renamed_out_of_the_glob_is_read_to_its_end_then_let_go(
    tmp_path: Path, clock: Clock
) -> None:
    log = tmp_path / "u_ex1.log"
    log.write_bytes(header() + lines(0, 20))
    f = follower(tmp_path, clock, identity_settle=1.0)
    f.acknowledge(take(f))
    with log.open("ab") as fh:
        fh.write(lines(20, 30))  # written, not yet read, when it is moved away
    log.rename(tmp_path / "u_ex1.log.done")
    got = drain(f, clock, rounds=5)
    assert got == {"u_ex1.log": lines(20, 30)}
    assert not f.files and not f.draining  # released: IIS or a clean-up job may delete it
    assert [r.path for r in f.records()] == [str(log)]  # remembered, in case it comes back


@pytest.mark.skipif(os.name == "nt", reason="Windows refuses to delete a file held open")
def test_file_deleted_while_open_is_read_to_its_end(tmp_path: Path, clock: Clock) -> None:
    log = tmp_path / "u_ex1.log"
    log.write_bytes(header() + lines(0, 20))
    f = follower(tmp_path, clock, identity_settle=1.0)
    f.acknowledge(take(f))
    with log.open("ab") as fh:
        fh.write(lines(20, 40))
    log.unlink()
    assert drain(f, clock, rounds=5) == {"u_ex1.log": lines(20, 40)}
    assert not f.draining


def test_truncated_file_is_read_again_from_the_start_as_a_new_file(
    tmp_path: Path, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    log = tmp_path / "u_ex1.log"
    log.write_bytes(header() + lines(0, 40))
    f = follower(tmp_path, clock)
    b = take(f)
    f.acknowledge(b)
    (before,) = b.chunks.values()
    log.write_bytes(header(second=5) + lines(500, 510))  # shorter than what was read
    with caplog.at_level(logging.WARNING):
        got = drain(f)
    assert "truncated" in caplog.text
    assert got == {"u_ex1.log": log.read_bytes()}
    (rec,) = f.records()
    assert rec.file_id != before.file_id and rec.file_id == file_identity(log)


def test_header_block_mid_file_sets_the_parser_state_of_later_chunks(
    tmp_path: Path, clock: Clock
) -> None:
    log = tmp_path / "u_ex1.log"
    log.write_bytes(header() + lines(0, 10))
    f = follower(tmp_path, clock)
    b = take(f)
    (first,) = b.chunks.values()
    assert first.parser_state["format"] is None  # nothing read yet at offset 0
    assert first.end_state["parser"]["fields"][:3] == ["date", "time", "s-ip"]
    f.acknowledge(b)
    # IIS restarted with another field set: a new header block in the same file
    with log.open("ab") as fh:
        fh.write(header(FIELDS_B, second=9) + b"2026-11-26 00:09:00 198.51.100.7 GET /x 200\r\n")
        fh.write(b"2026-11-26 00:09:01 198.51.100.7 GET /y 404\r\n")
    b = take(f)
    (second,) = b.chunks.values()
    assert second.parser_state["parser"]["fields"][:3] == ["date", "time", "s-ip"]
    assert second.end_state["parser"]["fields"] == [
        "date",
        "time",
        "c-ip",
        "cs-method",
        "cs-uri-stem",
        "sc-status",
    ]
    f.acknowledge(b)
    (rec,) = f.records()
    assert rec.parser_state == second.end_state and rec.offset == log.stat().st_size


def test_restart_resumes_at_the_checkpoint_with_the_fields_in_force_there(
    tmp_path: Path, clock: Clock
) -> None:
    log = tmp_path / "u_ex1.log"
    log.write_bytes(header() + lines(0, 10) + header(FIELDS_B, second=3))
    f = follower(tmp_path, clock)
    f.acknowledge(take(f))
    records = f.records()
    f.close()
    tail = b"2026-11-26 00:09:00 198.51.100.7 GET /x 200\r\n"
    with log.open("ab") as fh:
        fh.write(tail)
    again = follower(tmp_path, clock, records=records)
    (chunk,) = take(again).chunks.values()
    assert chunk.data == tail
    assert chunk.parser_state["parser"]["fields"][2] == "c-ip"


def test_unacknowledged_lines_are_read_again_after_a_restart(tmp_path: Path, clock: Clock) -> None:
    log = tmp_path / "u_ex1.log"
    log.write_bytes(header() + lines(0, 10))
    f = follower(tmp_path, clock)
    f.acknowledge(take(f))
    records = f.records()
    with log.open("ab") as fh:
        fh.write(lines(10, 15))
    assert take(f)  # read, sent, never acknowledged: then the agent died
    again = follower(tmp_path, clock, records=records)
    assert shipped(take(again)) == {"u_ex1.log": lines(10, 15)}


def test_file_renamed_while_the_agent_was_stopped_resumes_at_its_offset(
    tmp_path: Path, clock: Clock
) -> None:
    log = tmp_path / "u_ex1.log"
    log.write_bytes(header() + lines(0, 10))
    f = follower(tmp_path, clock)
    f.acknowledge(take(f))
    records = f.records()
    f.close()
    log.rename(tmp_path / "archived-u_ex1.log")
    with (tmp_path / "archived-u_ex1.log").open("ab") as fh:
        fh.write(lines(10, 12))
    again = follower(tmp_path, clock, records=records)
    (chunk,) = take(again).chunks.values()
    assert chunk.data == lines(10, 12) and chunk.file_id == records[0].file_id


def test_a_copy_of_a_followed_file_is_followed_from_its_start(tmp_path: Path, clock: Clock) -> None:
    log = tmp_path / "u_ex1.log"
    log.write_bytes(header() + lines(0, 10))
    f = follower(tmp_path, clock)
    f.acknowledge(take(f))
    records = f.records()
    f.close()
    (tmp_path / "copy.log").write_bytes(log.read_bytes())
    again = follower(tmp_path, clock, records=records)
    assert shipped(take(again)) == {"copy.log": log.read_bytes()}  # same id: the collector dedups


def test_another_file_under_a_known_path_is_a_new_file(tmp_path: Path, clock: Clock) -> None:
    log = tmp_path / "u_ex1.log"
    log.write_bytes(header() + lines(0, 40))
    f = follower(tmp_path, clock)
    f.acknowledge(take(f))
    records = f.records()
    f.close()
    log.unlink()
    log.write_bytes(header(second=7) + lines(900, 950))  # longer than before, other bytes
    again = follower(tmp_path, clock, records=records)
    assert shipped(take(again)) == {"u_ex1.log": log.read_bytes()}


def test_batches_stop_at_the_line_and_byte_limits(tmp_path: Path, clock: Clock) -> None:
    data = header() + lines(0, 100)
    (tmp_path / "u_ex1.log").write_bytes(data)
    f = follower(tmp_path, clock)
    got = b""
    b = take(f, max_lines=10)
    assert b.lines == 10
    got += shipped(b)["u_ex1.log"]
    f.acknowledge(b)
    b = take(f, max_bytes=4096)
    assert 4096 - len(line(0)) < b.size <= 4096 and shipped(b)["u_ex1.log"].endswith(b"\r\n")
    got += shipped(b)["u_ex1.log"]
    f.acknowledge(b)
    got += drain(f)["u_ex1.log"]
    assert got == data


def test_a_line_longer_than_a_batch_is_sent_alone(tmp_path: Path, clock: Clock) -> None:
    long = b"2026-11-26 00:00:00 " + b"x" * 10000 + b"\r\n"
    data = header() + long + line(1)
    (tmp_path / "u_ex1.log").write_bytes(data)
    f = follower(tmp_path, clock)
    first = take(f, max_bytes=4096)
    assert shipped(first)["u_ex1.log"] == header()
    f.acknowledge(first)
    second = take(f, max_bytes=4096)
    assert shipped(second)["u_ex1.log"] == long
    f.acknowledge(second)
    assert shipped(take(f, max_bytes=4096))["u_ex1.log"] == line(1)


def test_rewind_forgets_what_was_read_but_not_acknowledged(tmp_path: Path, clock: Clock) -> None:
    data = header() + lines(0, 50)
    (tmp_path / "u_ex1.log").write_bytes(data)
    f = follower(tmp_path, clock)
    first = take(f, max_lines=10)
    f.rewind()
    again = take(f, max_lines=10)
    assert shipped(again) == shipped(first)
    assert next(iter(again.chunks.values())).parser_state == {"format": None, "parser": None}


def test_busy_files_take_turns(tmp_path: Path, clock: Clock) -> None:
    for n in range(3):
        (tmp_path / f"u_ex{n}.log").write_bytes(header(second=n) + lines(0, 200))
    f = follower(tmp_path, clock)
    seen: set[str] = set()
    for _ in range(3):
        b = take(f, max_lines=50)
        seen |= set(shipped(b))
        f.acknowledge(b)
    assert seen == {"u_ex0.log", "u_ex1.log", "u_ex2.log"}


def test_idle_fully_shipped_files_are_closed_and_reopened_when_they_grow(
    tmp_path: Path, clock: Clock
) -> None:
    log = tmp_path / "u_ex1.log"
    log.write_bytes(header() + lines(0, 10))
    f = follower(tmp_path, clock, close_inactive=60)
    f.acknowledge(take(f))
    clock.now += 61
    take(f)
    (followed,) = f.files.values()
    assert followed.fh is None  # Windows can delete or rename it now
    with log.open("ab") as fh:
        fh.write(lines(10, 12))
    assert shipped(take(f)) == {"u_ex1.log": lines(10, 12)}
