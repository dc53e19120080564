"""Checking the archive against its external witness in Elasticsearch (`collector/integrity.py`
writes it): what local checks cannot see, because what is left on disk is self-consistent.

Caught: a file folder rolled back to an older copy (fewer chunks than witnessed, or another
chain head at a witnessed length), a file's folder deleted, a host's folder deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from elasticsearch import Elasticsearch

from iiswatch.elastic.indices import INTEGRITY_INDEX
from iiswatch.ingest.archive.layout import HOSTS, Record, parse_journal, segment_numbers
from iiswatch.ingest.archive.verify import Problem
from iiswatch.ingest.collector.integrity import head_id


@dataclass(frozen=True, slots=True)
class Witnessed:
    host: str
    site: str
    file_id: str
    seq: int  # the longest chain witnessed
    head: str  # its head


def witnessed_files(
    es: Elasticsearch, archive: str, index: str = INTEGRITY_INDEX
) -> list[Witnessed]:
    """The longest witnessed chain of every file of the archive whose key id is `archive`
    (a composite aggregation, paged, then the head documents by id)."""
    if not es.indices.exists(index=index):
        return []
    # no refresh (the reader may not): what was witnessed in the last second may be missed
    heads = [{"term": {"kind": "head"}}, {"term": {"archive": archive}}]
    longest: list[tuple[str, str, int]] = []
    after: dict[str, Any] | None = None
    while True:
        composite: dict[str, Any] = {
            "size": 1000,
            "sources": [
                {"host": {"terms": {"field": "host"}}},
                {"file_id": {"terms": {"field": "file_id"}}},
            ],
        }
        if after:
            composite["after"] = after
        resp = es.search(
            index=index,
            size=0,
            query={"bool": {"filter": heads}},
            aggs={"files": {"composite": composite, "aggs": {"seq": {"max": {"field": "seq"}}}}},
        )
        agg = resp["aggregations"]["files"]
        for b in agg["buckets"]:
            longest.append((b["key"]["host"], b["key"]["file_id"], int(b["seq"]["value"])))
        after = agg.get("after_key")
        if not agg["buckets"] or not after:
            break
    out = []
    for i in range(0, len(longest), 500):
        part = longest[i : i + 500]
        ids = [head_id(archive, h, f, s) for h, f, s in part]
        for doc in es.mget(index=index, ids=ids)["docs"]:
            src = doc.get("_source")
            if src:
                out.append(
                    Witnessed(
                        src["host"], src.get("site", ""), src["file_id"], src["seq"], src["head"]
                    )
                )
    return out


def _chains(d: Path) -> list[str]:
    """Every record's chain hash in seq order, as the archive holds them now."""
    chains: dict[int, str] = {}
    for n in segment_numbers(d):
        manifest = d / f"seg-{n:06d}.manifest.json"
        recs: list[Record]
        try:
            if manifest.exists():
                recs = [Record.from_json(c) for c in orjson.loads(manifest.read_bytes())["chunks"]]
            else:
                journal = d / f"seg-{n:06d}.jsonl"
                recs = parse_journal(journal.read_bytes())[0] if journal.exists() else []
        except (OSError, ValueError, KeyError, TypeError):
            continue  # the local checks report an unreadable segment
        chains.update((r.seq, r.chain) for r in recs)
    out: list[str] = []
    while len(out) in chains:
        out.append(chains[len(out)])
    return out


def check_witness(root: Path, witnessed: list[Witnessed]) -> list[Problem]:
    problems = []
    for w in witnessed:
        found = sorted((root / HOSTS / w.host).glob(f"*/{w.file_id}"))
        where = f"{HOSTS}/{w.host}/{w.site or '_'}/{w.file_id}"
        if not (root / HOSTS / w.host).is_dir():
            problems.append(
                Problem(
                    f"{HOSTS}/{w.host}",
                    f"host folder missing, but Elasticsearch witnessed {w.seq} chunks of its "
                    f"file {w.file_id}: deleted",
                )
            )
            continue
        if not found:
            problems.append(
                Problem(where, f"missing, but Elasticsearch witnessed {w.seq} chunks: deleted")
            )
            continue
        where = found[0].relative_to(root).as_posix()
        chains = _chains(found[0])
        if len(chains) < w.seq:
            problems.append(
                Problem(
                    where,
                    f"holds {len(chains)} chunks, Elasticsearch witnessed {w.seq}: rolled back "
                    "to an older copy, or chunks were removed",
                )
            )
        elif chains[w.seq - 1] != w.head:
            problems.append(
                Problem(
                    where,
                    f"the chain after {w.seq} chunks differs from the head Elasticsearch "
                    "witnessed: this file's archive was replaced",
                )
            )
    return problems
