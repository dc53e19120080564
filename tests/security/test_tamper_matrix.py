"""Attack 6 and the tamper matrix: every way of changing the archive on disk is caught by
`iiswatch archive verify`: the local checks (chains, seals, sealed head) and the witness the
collector kept in Elasticsearch. Before, a folder rolled back to an older copy, or a file's or
a host's folder deleted, verified as intact."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from elasticsearch import Elasticsearch

from iiswatch.elastic.indices import INTEGRITY_INDEX
from iiswatch.ingest.archive.keys import ArchiveKey, load_or_create_key
from iiswatch.ingest.archive.layout import canonical
from iiswatch.ingest.archive.verify import verify_archive
from iiswatch.ingest.archive.witness import check_witness, witnessed_files
from iiswatch.ingest.archive.writer import ArchiveWriter, Chunk
from iiswatch.ingest.collector.integrity import IntegrityLog
from tests.integration.collector_proc import CLI

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("witness_cleanup")]

FID_A, FID_B = "a1" * 16, "b2" * 16
PATH = r"C:\inetpub\logs\LogFiles\W3SVC1\u_ex880101.log"


def log_bytes(n: int, host: str) -> bytes:
    return b"".join(
        f"1988-01-01 00:{i // 60 % 60:02d}:{i % 60:02d} 10.0.1.20 GET /{host}/page/{i} - 443 "
        f"- 192.0.2.{i % 250} Mozilla/5.0 - 200 0 0 {i % 97}\r\n".encode()
        for i in range(n)
    )


class Built:
    def __init__(self, root: Path, key: ArchiveKey, hosts: tuple[str, str], old: Path) -> None:
        self.root, self.key, self.hosts, self.old = root, key, hosts, old

    def file_dir(self, host: str) -> Path:
        return next((self.root / "hosts" / host).glob("*/*"))


@pytest.fixture
def built(
    tmp_path: Path, admin_es: Elasticsearch, writer_es: Elasticsearch, host_name: str
) -> Built:
    """Two hosts' files, several sealed segments each, witnessed as the collector does; and
    an older copy of host A's file folder (half its chunks), as a backup would have it."""
    hosts = (host_name, f"{host_name}-b")
    root = tmp_path / "archive"
    key = load_or_create_key(tmp_path / "keys" / "archive.key", archive=root)
    writer = ArchiveWriter(root, key, segment_bytes=4096)
    witness = IntegrityLog(writer_es, key.key_id)
    old = tmp_path / "old-copy"
    try:
        for host, fid in zip(hosts, (FID_A, FID_B), strict=True):
            data, start, n = log_bytes(300, host), 0, 0
            while start < len(data):
                end = data.index(b"\n", start + 1500) + 1 if start + 1500 < len(data) else len(data)
                c = Chunk(host, "W3SVC1", fid, PATH, start, data[start:end], "web01", f"b{n}")
                witness.witness(writer.append([c]).heads)
                start, n = end, n + 1
                if host == hosts[0] and n == 8:
                    shutil.copytree(root / "hosts" / host / "W3SVC1" / fid, old)
    finally:
        writer.close()
    admin_es.indices.refresh(index=INTEGRITY_INDEX)  # searchable now, not within a second
    return Built(root, key, hosts, old)


def problems(b: Built, reader_es: Elasticsearch) -> list[str]:
    report = verify_archive(b.root, b.key)
    report.problems += check_witness(b.root, witnessed_files(reader_es, b.key.key_id))
    return [str(p) for p in report.problems]


def _writable(d: Path) -> None:
    for p in d.iterdir():
        p.chmod(0o600)


def flip(b: Built) -> None:
    p = b.file_dir(b.hosts[0]) / "seg-000001.data"
    raw = bytearray(p.read_bytes())
    raw[100] ^= 0x01
    p.write_bytes(bytes(raw))


def truncate(b: Built) -> None:
    p = b.file_dir(b.hosts[0]) / "seg-000002.data"
    with p.open("r+b") as f:
        f.truncate(p.stat().st_size - 10)


def delete_segment(b: Built) -> None:
    for p in b.file_dir(b.hosts[0]).glob("seg-000002.*"):
        p.unlink()


def swap(b: Built) -> None:
    d = b.file_dir(b.hosts[0])
    one, two = d / "seg-000001.data", d / "seg-000002.data"
    a, c = one.read_bytes(), two.read_bytes()
    one.write_bytes(c)
    two.write_bytes(a)


def edit_journal(b: Built) -> None:
    d = b.file_dir(b.hosts[0])
    p = sorted(d.glob("seg-*.jsonl"))[-1]
    lines = p.read_bytes().splitlines(keepends=True)
    rec = orjson.loads(lines[0])
    rec["path"] = r"C:\elsewhere\u_ex880101.log"
    lines[0] = canonical(rec) + b"\n"
    p.write_bytes(b"".join(lines))


def edit_manifest(b: Built) -> None:
    p = b.file_dir(b.hosts[0]) / "seg-000001.manifest.json"
    m = orjson.loads(p.read_bytes())
    m["paths"] = [r"C:\elsewhere\u_ex880101.log"]
    p.write_bytes(canonical(m))


def delete_head(b: Built) -> None:
    (b.file_dir(b.hosts[0]) / "head.json").unlink()


def roll_back_folder(b: Built) -> None:
    d = b.file_dir(b.hosts[0])
    shutil.rmtree(d)
    shutil.copytree(b.old, d)


def delete_file_folder(b: Built) -> None:
    shutil.rmtree(b.file_dir(b.hosts[0]))


def delete_host_folder(b: Built) -> None:
    shutil.rmtree(b.root / "hosts" / b.hosts[1])


TAMPERING: list[Callable[[Built], None]] = [
    flip,
    truncate,
    delete_segment,
    swap,
    edit_journal,
    edit_manifest,
    delete_head,
    roll_back_folder,
    delete_file_folder,
    delete_host_folder,
]


def test_the_untouched_archive_verifies(built: Built, reader_es: Elasticsearch) -> None:
    assert len(list(built.file_dir(built.hosts[0]).glob("*.manifest.json"))) >= 3
    assert problems(built, reader_es) == []


@pytest.mark.parametrize("tamper", TAMPERING, ids=lambda f: f.__name__)
def test_every_tampering_is_caught(
    built: Built, reader_es: Elasticsearch, tamper: Callable[[Built], None]
) -> None:
    for d in (built.root / "hosts").glob("*/*/*"):
        _writable(d)
    tamper(built)
    assert problems(built, reader_es), f"{tamper.__name__} went unnoticed"


def verify_cli(b: Built, *extra: str) -> subprocess.CompletedProcess[str]:
    key = b.root.parent / "keys" / "archive.key"
    return subprocess.run(
        [*CLI, "archive", "verify", str(b.root), "--key", str(key), *extra],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ,
    )


def test_verify_checks_the_witness_by_default_and_offline_says_it_did_not(
    built: Built,
) -> None:
    roll_back_folder(built)
    checked = verify_cli(built)
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "rolled back" in checked.stdout
    offline = verify_cli(built, "--offline")
    assert offline.returncode == 0, offline.stdout + offline.stderr
    assert "offline" in offline.stderr and "witness" in offline.stderr
