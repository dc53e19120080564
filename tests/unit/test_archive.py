"""The forensic archive: durable appends, idempotent re-sends, byte-identical exports, and
every kind of tampering caught by `verify_archive` with the segment and byte range named."""

from __future__ import annotations

import io
import os
import shutil
import stat
from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from iiswatch.errors import ConfigError
from iiswatch.ingest.archive.export import export_file, find_file, list_files
from iiswatch.ingest.archive.keys import ArchiveKey, load_key, load_or_create_key
from iiswatch.ingest.archive.layout import (
    ArchiveError,
    Record,
    canonical,
    chain_hash,
    genesis,
    parse_journal,
    uncovered,
)
from iiswatch.ingest.archive.verify import verify_archive
from iiswatch.ingest.archive.writer import ArchiveWriter, Chunk

HOST, SITE, FID = "web01", "W3SVC1", "0123456789abcdef0123456789abcdef"
PATH = r"C:\inetpub\logs\LogFiles\W3SVC1\u_ex240514.log"


def log_bytes(n: int) -> bytes:
    head = b"#Software: Microsoft Internet Information Services 10.0\r\n#Version: 1.0\r\n"
    lines = b"".join(
        f"2024-05-14 00:00:{i % 60:02d} 10.0.1.20 GET /page/{i} - 443 - 192.0.2.{i % 250} "
        f"Mozilla/5.0 - 200 0 0 {i % 97}\r\n".encode()
        for i in range(n)
    )
    return head + lines


def chunks_of(data: bytes, size: int) -> list[Chunk]:
    """Whole lines, about `size` bytes each, as an agent would send them."""
    out, start = [], 0
    while start < len(data):
        end = data.find(b"\n", start + size)
        end = len(data) if end < 0 else end + 1
        out.append(Chunk(HOST, SITE, FID, PATH, start, data[start:end], "web01", f"b{start}"))
        start = end
    return out


@pytest.fixture
def key() -> ArchiveKey:
    return ArchiveKey(bytes(range(32)))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "archive"


def fdir(root: Path) -> Path:
    return root / "hosts" / HOST / SITE / FID


def exported(root: Path, start: int = 0, end: int | None = None) -> bytes:
    buf = io.BytesIO()
    export_file(find_file(root, HOST, FID), buf, start, end)
    return buf.getvalue()


def problems(root: Path, key: ArchiveKey) -> list[str]:
    return [str(p) for p in verify_archive(root, key).problems]


@pytest.fixture
def data() -> bytes:
    return log_bytes(400)


@pytest.fixture
def archived(root: Path, key: ArchiveKey, data: bytes) -> ArchiveWriter:
    """About 40 KB in chunks of ~2 KB, segments of 8 KB: several sealed, one open."""
    w = ArchiveWriter(root, key, segment_bytes=8192)
    for c in chunks_of(data, 2000):
        w.append([c])
    return w


def test_export_is_byte_identical_and_verify_passes(root, key, data, archived):
    assert exported(root) == data
    report = verify_archive(root, key)
    assert report.ok, report.problems
    assert report.segments >= 4 and report.sealed == report.segments - 1
    assert report.bytes == len(data)


def test_export_of_a_range_and_by_file_name(root, data, archived):
    assert exported(root, 100, 5000) == data[100:5000]
    f = find_file(root, HOST, "u_ex240514.log")
    assert f.file_id == FID and f.ranges == ((0, len(data)),)


def test_re_sending_the_same_chunks_archives_nothing(root, key, data, archived):
    before = {p.name: p.read_bytes() for p in fdir(root).iterdir()}
    result = archived.append(chunks_of(data, 2000))
    assert result.archived == 0 and result.skipped == len(data)
    assert {p.name: p.read_bytes() for p in fdir(root).iterdir()} == before


def test_a_partly_overlapping_chunk_is_trimmed_to_its_new_bytes(root, key, data):
    w = ArchiveWriter(root, key)
    w.append([Chunk(HOST, SITE, FID, PATH, 0, data[:1000])])
    r = w.append([Chunk(HOST, SITE, FID, PATH, 500, data[500:3000])])
    assert (r.archived, r.skipped) == (2000, 500)
    # a chunk covering a hole and both sides of it fills only the hole
    w.append([Chunk(HOST, SITE, FID, PATH, 4000, data[4000:5000])])
    r = w.append([Chunk(HOST, SITE, FID, PATH, 2500, data[2500:6000])])
    assert (r.archived, r.skipped) == (2000, 1500)
    assert exported(root, 0, 6000) == data[:6000]
    assert verify_archive(root, key).ok


def test_a_restarted_writer_still_skips_what_it_holds(root, key, data, archived):
    archived.close()
    fresh = ArchiveWriter(root, key, segment_bytes=8192)
    r = fresh.append([Chunk(HOST, SITE, FID, PATH, 0, data)])
    assert r.archived == 0
    r = fresh.append([Chunk(HOST, SITE, FID, PATH, len(data), b"more\r\n")])
    assert r.archived == 6
    assert exported(root) == data + b"more\r\n"
    assert verify_archive(root, key).ok


def test_a_gap_is_an_export_error_naming_the_missing_range(root, key, data):
    w = ArchiveWriter(root, key)
    w.append([Chunk(HOST, SITE, FID, PATH, 0, data[:1000])])
    w.append([Chunk(HOST, SITE, FID, PATH, 2000, data[2000:3000])])
    with pytest.raises(ArchiveError, match="bytes 1000-2000"):
        exported(root)
    assert exported(root, 2000) == data[2000:3000]


def test_a_crash_mid_append_is_cut_off_on_the_next_open(root, key, data, archived):
    d = fdir(root)
    open_seg = sorted(d.glob("seg-*.jsonl"))[-1]
    with open_seg.open("ab") as f:
        f.write(b'{"seq": 99, "offs')  # torn journal line
    with open_seg.with_suffix(".data").open("ab") as f:
        f.write(b"bytes never acknowledged")
    assert verify_archive(root, key).problems  # as left by the crash: not clean
    archived.close()
    w = ArchiveWriter(root, key, segment_bytes=8192)
    w.append([Chunk(HOST, SITE, FID, PATH, len(data), b"after\r\n")])
    assert exported(root) == data + b"after\r\n"
    assert verify_archive(root, key).ok


def test_records_written_but_not_acknowledged_are_kept_when_intact(root, key, data):
    w = ArchiveWriter(root, key)
    w.append([Chunk(HOST, SITE, FID, PATH, 0, data[:1000])])
    head = (fdir(root) / "head.json").read_bytes()
    w.append([Chunk(HOST, SITE, FID, PATH, 1000, data[1000:2000])])
    (fdir(root) / "head.json").write_bytes(head)  # crash before the head was replaced
    w.close()
    fresh = ArchiveWriter(root, key)
    assert fresh.append([Chunk(HOST, SITE, FID, PATH, 0, data[:2000])]).archived == 0
    assert verify_archive(root, key).ok


def test_chain_links_every_chunk_to_the_previous(root, key, data, archived):
    recs = []
    for j in sorted(fdir(root).glob("seg-*.jsonl")):
        recs += parse_journal(j.read_bytes())[0]
    prev = genesis(HOST, FID)
    blob = b"".join(p.read_bytes() for p in sorted(fdir(root).glob("seg-*.data")))
    for r in recs:
        assert chain_hash(prev, r.meta(), blob[r.offset : r.end]).hex() == r.chain
        prev = bytes.fromhex(r.chain)
    head = orjson.loads((fdir(root) / "head.json").read_bytes())
    assert head["head"] == prev.hex() and head["seq"] == len(recs)


# -- tampering --------------------------------------------------------------------------


def writable(p: Path) -> Path:
    p.chmod(0o600)
    return p


def segment_range(root: Path, n: int) -> tuple[int, int]:
    m = orjson.loads((fdir(root) / f"seg-{n:06d}.manifest.json").read_bytes())
    return m["ranges"][0][0], m["ranges"][-1][1]


def test_a_flipped_byte_in_a_sealed_segment_names_the_segment_and_range(root, key, archived):
    p = writable(fdir(root) / "seg-000002.data")
    raw = bytearray(p.read_bytes())
    raw[100] ^= 0x01
    p.write_bytes(bytes(raw))
    m = orjson.loads((fdir(root) / "seg-000002.manifest.json").read_bytes())
    chunk = next(c for c in m["chunks"] if c["pos"] <= 100 < c["pos"] + c["length"])
    found = problems(root, key)
    assert found == [
        f"hosts/{HOST}/{SITE}/{FID}/seg-000002.data: file bytes "
        f"{chunk['offset']}-{chunk['offset'] + chunk['length']}: bytes differ from what was "
        f"archived (chunk {chunk['seq']})"
    ]


def test_a_flipped_byte_in_the_open_segment_is_caught(root, key, archived):
    p = sorted(fdir(root).glob("seg-*.data"))[-1]
    raw = bytearray(p.read_bytes())
    raw[-3] ^= 0x20
    p.write_bytes(bytes(raw))
    (found,) = problems(root, key)
    assert p.name in found and "bytes differ" in found


def test_a_truncated_segment_names_the_bytes_lost(root, key, archived):
    p = writable(fdir(root) / "seg-000001.data")
    size = p.stat().st_size
    os.truncate(p, size - 10)
    _, end = segment_range(root, 1)
    found = problems(root, key)
    assert f"seg-000001.data: file bytes {end - 10}-{end}: truncated: 10 bytes missing" in found[0]


def test_a_deleted_segment_is_named_with_the_range_it_held(root, key, archived):
    start, end = segment_range(root, 2)
    for p in fdir(root).glob("seg-000002.*"):
        p.unlink()
    found = problems(root, key)
    assert found == [
        f"hosts/{HOST}/{SITE}/{FID}/seg-000002: file bytes {start}-{end}: "
        "missing (seg-000002): deleted or moved"
    ]


def test_deleting_the_last_segments_is_caught_by_the_sealed_head(root, key, archived):
    last = sorted(fdir(root).glob("seg-*.data"))[-1].name[:10]
    for p in fdir(root).glob(f"{last}.*"):
        p.unlink()
    found = problems(root, key)
    assert any(f"{last}: " in f and "missing" in f for f in found), found


def test_reordered_segments_are_caught(root, key, archived):
    d = fdir(root)
    for kind in ("data", "jsonl", "manifest.json"):
        a, b = d / f"seg-000002.{kind}", d / f"seg-000003.{kind}"
        tmp = d / "swap"
        a.rename(tmp)
        b.rename(a)
        tmp.rename(b)
    found = problems(root, key)
    assert any("seg-000002" in f and "manifest is that of segment 3" in f for f in found), found
    assert any("seg-000003" in f and "segment 2" in f for f in found), found


def forge(root: Path, n: int, pos: int) -> tuple[int, int]:
    """Edit a byte of sealed segment `n` and recompute every hash after it, journal and
    manifest alike, as someone without the key would: return the forged chunk's range."""
    d = fdir(root)
    attacker = ArchiveKey(b"x" * 32)
    data_p = writable(d / f"seg-{n:06d}.data")
    raw = bytearray(data_p.read_bytes())
    raw[pos] = ord("X")
    data_p.write_bytes(bytes(raw))
    m = orjson.loads(writable(d / f"seg-{n:06d}.manifest.json").read_bytes())
    prev = bytes.fromhex(m["prev_head"])
    recs = []
    for c in m["chunks"]:
        r = Record.from_json(c)
        h = chain_hash(prev, r.meta(), bytes(raw[r.pos : r.pos + r.length]))
        recs.append(replace(r, chain=h.hex(), mac=attacker.mac(b"iiswatch-record\0" + h)))
        prev = h
    m["chunks"] = [r.to_json() for r in recs]
    m["head"] = prev.hex()
    m["key_id"] = key_id = ArchiveKey(bytes(range(32))).key_id  # claims the real key
    assert key_id
    m["mac"] = attacker.seal(m)
    (d / f"seg-{n:06d}.manifest.json").write_bytes(canonical(m))
    writable(d / f"seg-{n:06d}.jsonl").write_bytes(
        b"".join(canonical(r.to_json()) + b"\n" for r in recs)
    )
    hit = next(r for r in recs if r.pos <= pos < r.pos + r.length)
    return hit.offset, hit.end


def test_a_forged_manifest_is_caught_without_the_key(root, key, archived):
    start, end = segment_range(root, 2)
    forge(root, 2, 50)
    found = problems(root, key)
    assert found[0] == (
        f"hosts/{HOST}/{SITE}/{FID}/seg-000002.manifest.json: file bytes {start}-{end}: "
        "its seal does not match: edited or forged without the key"
    )


def test_a_forged_record_in_the_open_segment_is_caught(root, key, archived):
    d = fdir(root)
    jsonl = sorted(d.glob("seg-*.jsonl"))[-1]
    recs = parse_journal(jsonl.read_bytes())[0]
    data_p = jsonl.with_suffix(".data")
    raw = bytearray(data_p.read_bytes())
    raw[recs[0].pos] = ord("X")
    data_p.write_bytes(bytes(raw))
    r = recs[0]
    manifest = sorted(d.glob("seg-*.manifest.json"))[-1]
    prev = bytes.fromhex(orjson.loads(manifest.read_bytes())["head"])
    forged = [replace(r, chain=chain_hash(prev, r.meta(), bytes(raw[: r.length])).hex())]
    jsonl.write_bytes(b"".join(canonical(x.to_json()) + b"\n" for x in forged + recs[1:]))
    found = problems(root, key)
    assert any(
        f"{jsonl.name}: file bytes {r.offset}-{r.end}: chunk {r.seq}: its seal does not match" in f
        for f in found
    ), found


def test_another_key_is_reported_as_such(root, archived):
    found = problems(root, ArchiveKey(b"k" * 32))
    assert found and all(
        "sealed with another key" in f or "seal does not match" in f for f in found
    )
    assert "sealed with another key" in found[0]


def test_list_files_shows_paths_and_ranges(root, data, archived):
    (f,) = list_files(root, HOST)
    assert (f.site, f.paths, f.ranges) == (SITE, (PATH,), ((0, len(data)),))


def test_a_second_writer_on_the_same_archive_is_refused(root, key, archived):
    with pytest.raises(ArchiveError, match="another collector"):
        ArchiveWriter(root, key)
    archived.close()
    ArchiveWriter(root, key).close()


def test_unsafe_names_are_refused(root, key):
    w = ArchiveWriter(root, key)
    for host, site, fid in [("../etc", SITE, FID), (HOST, "a/b", FID), (HOST, SITE, "zz")]:
        with pytest.raises(ArchiveError, match="unsafe"):
            w.append([Chunk(host, site, fid, PATH, 0, b"x\n")])


def test_uncovered_ranges():
    assert uncovered(0, 10, []) == [(0, 10)]
    assert uncovered(0, 10, [(2, 4), (6, 8)]) == [(0, 2), (4, 6), (8, 10)]
    assert uncovered(3, 7, [(0, 10)]) == []
    assert uncovered(5, 15, [(0, 10)]) == [(10, 15)]


# -- the key -------------------------------------------------------------------------------


def test_the_key_is_created_once_0600_and_kept(tmp_path):
    p = tmp_path / "state" / "archive.key"
    k1 = load_or_create_key(p)
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert load_or_create_key(p).key_id == k1.key_id


def test_a_key_inside_the_archive_or_readable_by_others_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="inside the archive"):
        load_or_create_key(tmp_path / "archive" / "k", archive=tmp_path / "archive")
    p = tmp_path / "k"
    load_or_create_key(p)
    p.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by other users"):
        load_key(p)


def test_a_copied_archive_verifies_elsewhere(root, key, archived, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    assert verify_archive(copy, key).ok
