import gzip
from pathlib import Path

import pytest

from iiswatch.errors import IngestError
from iiswatch.ingest.files import expand_inputs, file_identity, iter_lines, open_log


def lines_of(path: Path) -> list[tuple[bytes, int]]:
    with open_log(path) as fh:
        return list(iter_lines(fh))


def test_offsets_point_at_the_first_byte_of_each_line_with_crlf_stripped(tmp_path: Path) -> None:
    p = tmp_path / "a.log"
    data = b"#Fields: a b\r\none 1\r\n\r\ntwo 2\n"
    p.write_bytes(data)
    got = lines_of(p)
    assert got == [(b"#Fields: a b", 0), (b"one 1", 14), (b"", 21), (b"two 2", 23)]
    for line, off in got:
        assert data[off : off + len(line)] == line


def test_last_line_without_newline_is_read_and_invalid_utf8_is_kept_as_bytes(
    tmp_path: Path,
) -> None:
    p = tmp_path / "a.log"
    p.write_bytes(b"x\n\xff\xfe tail")
    assert lines_of(p) == [(b"x", 0), (b"\xff\xfe tail", 2)]


def test_lines_spanning_read_chunks_are_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import iiswatch.ingest.files as files

    monkeypatch.setattr(files, "CHUNK", 7)  # tiny reads: every line crosses a boundary
    p = tmp_path / "a.log"
    p.write_bytes(b"alpha beta\r\ngamma delta epsilon\nz")
    assert lines_of(p) == [(b"alpha beta", 0), (b"gamma delta epsilon", 12), (b"z", 32)]


def test_gzip_files_are_read_with_offsets_in_the_decompressed_stream(tmp_path: Path) -> None:
    p = tmp_path / "u_ex260101.log.gz"
    p.write_bytes(gzip.compress(b"l1\nl2\n"))
    assert lines_of(p) == [(b"l1", 0), (b"l2", 3)]
    assert file_identity(p) == file_identity(_plain(tmp_path, b"l1\nl2\n"))


def _plain(tmp_path: Path, data: bytes) -> Path:
    q = tmp_path / "plain.log"
    q.write_bytes(data)
    return q


def test_file_identity_survives_rename_and_differs_by_content(tmp_path: Path) -> None:
    a = tmp_path / "a.log"
    a.write_bytes(b"#Date: 2026-11-26 00:00:00\nx\n")
    ida = file_identity(a)
    b = a.rename(tmp_path / "renamed.log")
    assert file_identity(b) == ida
    (tmp_path / "c.log").write_bytes(b"#Date: 2026-11-27 00:00:00\nx\n")
    assert file_identity(tmp_path / "c.log") != ida


def test_inputs_expand_directories_and_globs_once_each_and_name_what_matched_nothing(
    tmp_path: Path,
) -> None:
    (tmp_path / "W3SVC1").mkdir()
    for name in ("u_ex1.log", "u_ex2.log.gz", "notes.md"):
        (tmp_path / "W3SVC1" / name).write_bytes(b"x\n")
    got = expand_inputs([str(tmp_path), str(tmp_path / "W3SVC1" / "*.log")])
    assert [p.name for p in got] == ["u_ex1.log", "u_ex2.log.gz"]
    with pytest.raises(IngestError, match="nope"):
        expand_inputs([str(tmp_path / "nope*.log")])
