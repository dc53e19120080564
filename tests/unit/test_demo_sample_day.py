"""The sample day and the bench lines: what the demo, the rule tests and the benches rely on.

The files are read back here with a small reader of their own, not the project's parser, so
a parser bug cannot hide a generator bug (one test then runs the real parser on them).
"""

from __future__ import annotations

import itertools
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from iiswatch.cli.demo.bench_lines import generate_w3c_lines
from iiswatch.cli.demo.sample_day import SampleManifest, write_sample_day
from iiswatch.cli.demo.w3c import W3C_DEFAULT_FIELDS, w3c_header
from iiswatch.ingest.formats.w3c import W3CParser
from iiswatch.ingest.model import DeadLetter, Source

DAY = date(2024, 5, 14)
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Read:
    lines: list[bytes]
    directives: list[str]
    events: list[dict[str, str]]
    malformed: list[bytes]


def read_w3c(path: Path) -> Read:
    raw = path.read_bytes()
    assert raw.endswith(b"\r\n")
    lines = raw.split(b"\r\n")[:-1]
    fields: list[str] = []
    out = Read(lines, [], [], [])
    for line in lines:
        if line.startswith(b"#"):
            text = line.decode("ascii")
            out.directives.append(text)
            if text.startswith("#Fields: "):
                fields = text.split()[1:]
            continue
        try:
            tokens = line.decode("utf-8").split(" ")
        except UnicodeDecodeError:
            out.malformed.append(line)
            continue
        if len(tokens) != len(fields):
            out.malformed.append(line)
            continue
        out.events.append(dict(zip(fields, tokens, strict=True)))
    return out


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> tuple[SampleManifest, Read]:
    manifest = write_sample_day(tmp_path_factory.mktemp("sample"), day=DAY)
    return manifest, read_w3c(manifest.access_log)


def stamp(event: dict[str, str]) -> datetime:
    return datetime.fromisoformat(f"{event['date']}T{event['time']}+00:00")


def test_same_seed_writes_byte_identical_files_and_another_seed_does_not(tmp_path: Path) -> None:
    a = write_sample_day(tmp_path / "a", day=DAY, seed=3, requests=4000)
    b = write_sample_day(tmp_path / "b", day=DAY, seed=3, requests=4000)
    c = write_sample_day(tmp_path / "c", day=DAY, seed=4, requests=4000)
    for pa, pb, pc in zip(a.paths, b.paths, c.paths, strict=True):
        assert pa.read_bytes() == pb.read_bytes()
        assert pa.read_bytes() != pc.read_bytes()
    assert a.attacker_ip == b.attacker_ip and a.shell_path == b.shell_path


def test_files_are_laid_out_and_named_as_iis_writes_them(day: tuple[SampleManifest, Read]) -> None:
    manifest, _ = day
    assert manifest.access_log.parent.name == "W3SVC1"
    assert manifest.access_log.name == "u_ex240514.log"
    assert manifest.httperr_log.relative_to(manifest.access_log.parents[1]) == Path(
        "HTTPERR/httperr1.log"
    )
    assert manifest.paths == (manifest.access_log, manifest.httperr_log)


def test_every_line_ends_with_crlf(day: tuple[SampleManifest, Read]) -> None:
    manifest, _ = day
    for path in manifest.paths:
        raw = path.read_bytes()
        assert raw.count(b"\n") == raw.count(b"\r\n") == raw.count(b"\r")


def test_manifest_counts_match_the_access_log(day: tuple[SampleManifest, Read]) -> None:
    manifest, read = day
    assert manifest.total_lines == len(read.lines)
    assert manifest.header_lines == len(read.directives) == 8
    assert manifest.events == len(read.events) == 20000
    assert manifest.malformed_lines == len(read.malformed) == 3
    assert manifest.total_lines == manifest.header_lines + manifest.events + 3
    assert manifest.distinct_client_ips == len({e["c-ip"] for e in read.events})


def test_header_block_restarts_mid_file_with_a_different_field_set(
    day: tuple[SampleManifest, Read],
) -> None:
    manifest, read = day
    fields = [d.split()[1:] for d in read.directives if d.startswith("#Fields:")]
    assert [tuple(f) for f in fields] == list(manifest.field_sets)
    assert tuple(fields[0]) == W3C_DEFAULT_FIELDS
    assert {"cs-host", "sc-bytes", "cs-bytes", "X-Forwarded-For"} <= set(fields[1])
    assert [d for d in read.directives if d.startswith("#Software")] == [
        "#Software: Microsoft Internet Information Services 10.0"
    ] * 2
    dates = [d for d in read.directives if d.startswith("#Date")]
    assert dates[1] == f"#Date: {manifest.layout_changed_at:%Y-%m-%d %H:%M:%S}"
    second = read.lines.index(b"#Fields: " + " ".join(fields[1]).encode())
    assert 1000 < second < len(read.lines) - 1000  # well inside the file
    # The partner proxy's X-Forwarded-For shows from the change on, as "a,+b" when chained.
    forwarded = [e["X-Forwarded-For"] for e in read.events if e.get("X-Forwarded-For", "-") != "-"]
    assert forwarded and all(f.startswith("10.") for f in forwarded)
    assert any(",+" in f for f in forwarded)


def test_times_are_utc_on_the_day_and_never_go_back(day: tuple[SampleManifest, Read]) -> None:
    _, read = day
    times = [stamp(e) for e in read.events]
    assert times == sorted(times)
    assert {t.date() for t in times} == {DAY}
    hours = [t.hour for t in times]
    assert hours.count(10) > 3 * hours.count(3)  # busier by day than at night


def test_attackers_requests_match_the_manifest(day: tuple[SampleManifest, Read]) -> None:
    manifest, read = day
    attack = [e for e in read.events if e["c-ip"] == manifest.attacker_ip]
    assert manifest.attacker_ip.startswith("203.0.113.")
    assert len(attack) == manifest.attack_requests
    assert stamp(attack[0]) == manifest.attack_first
    assert stamp(attack[-1]) == manifest.attack_last
    assert 11 <= manifest.attack_first.hour <= 14
    assert 10 * 60 < (manifest.attack_last - manifest.attack_first).total_seconds() < 45 * 60
    assert {e["cs(User-Agent)"] for e in attack} == {manifest.attacker_user_agent}
    steps = [(e["cs-method"], e["cs-uri-stem"], e["sc-status"]) for e in attack]
    recon = [s for s in steps[: steps.index(("GET", "/upload.aspx", "200"))] if s[2] == "404"]
    assert {"/.git/config", "/web.config.bak", "/~1/", "/admin.php"} <= {s[1] for s in recon}
    upload = steps.index(("POST", "/upload.aspx", "200"))
    assert steps[upload + 1] == ("GET", manifest.shell_path, "200")
    shell = [e for e in attack if e["cs-uri-stem"] == manifest.shell_path]
    assert len(shell) == manifest.shell_requests
    queries = [e["cs-uri-query"] for e in shell]
    assert queries[0] == "-"
    assert "cmd=Cmd.ExE+/c+whoami" in queries
    assert "cmd=%43md.exe%20%2Fc%20dir" in queries
    assert any(q.startswith("cmd=powershell+-enc+") for q in queries)
    assert manifest.shell_path.startswith("/uploads/") and manifest.shell_path.endswith(".aspx")


def test_attacker_is_the_only_client_that_requests_the_shell(
    day: tuple[SampleManifest, Read],
) -> None:
    manifest, read = day
    assert {e["c-ip"] for e in read.events if e["cs-uri-stem"] == manifest.shell_path} == {
        manifest.attacker_ip
    }
    scripts = {
        e["c-ip"]
        for e in read.events
        if e["cs-uri-stem"].startswith("/uploads/")
        and e["cs-uri-stem"].lower().endswith((".aspx", ".ashx", ".asp"))
    }
    assert scripts == {manifest.attacker_ip}
    others = {e["cs(User-Agent)"] for e in read.events if e["c-ip"] != manifest.attacker_ip}
    assert manifest.attacker_user_agent not in others


def test_at_least_200_distinct_clients_with_ipv6_and_a_busy_corporate_nat(
    day: tuple[SampleManifest, Read],
) -> None:
    manifest, read = day
    clients = [e["c-ip"] for e in read.events]
    assert manifest.distinct_client_ips >= 200
    assert sum(":" in ip for ip in set(clients)) >= 20
    busiest = max(set(clients), key=clients.count)
    assert busiest == manifest.corporate_nat_ip
    assert len({e["cs(User-Agent)"] for e in read.events if e["c-ip"] == busiest}) >= 4


def test_benign_traffic_holds_the_tricky_cases(day: tuple[SampleManifest, Read]) -> None:
    manifest, read = day
    benign = [e for e in read.events if e["c-ip"] != manifest.attacker_ip]
    queries = {e["cs-uri-query"] for e in benign}
    for q in (
        "q=O'Brien",
        "q=O%27Brien",
        "q=select+a+plan",
        "q=union+station",
        "name=Drop+Table+Tennis",
    ):
        assert q in queries
    health = [stamp(e) for e in benign if e["c-ip"] == "10.0.0.4" and e["cs-uri-stem"] == "/health"]
    assert len(health) == 1440 and {(b - a).seconds for a, b in itertools.pairwise(health)} == {60}
    agents = {e["cs(User-Agent)"] for e in benign}
    assert any("Googlebot/2.1" in ua for ua in agents) and any("bingbot/2.0" in ua for ua in agents)
    admin = [
        e for e in benign if e["cs-uri-stem"].startswith("/admin/") and e["sc-status"] == "200"
    ]
    assert admin and all(e["cs-username"].startswith("CORP\\") for e in admin)
    uploaders = {
        e["c-ip"] for e in benign if (e["cs-method"], e["cs-uri-stem"]) == ("POST", "/upload.aspx")
    }
    assert len(uploaders) >= 10
    assert any(
        e["cs-uri-stem"].endswith(".jpg") and e["cs-uri-stem"].startswith("/uploads/")
        for e in benign
    )
    errors = {e["c-ip"] for e in benign if e["sc-status"] == "500"}
    assert len(errors) >= 3
    assert {e["cs-method"] for e in benign} >= {"GET", "POST", "HEAD", "OPTIONS"}
    assert {"/favicon.ico", "/robots.txt"} <= {
        e["cs-uri-stem"] for e in benign if e["sc-status"] == "404"
    }
    assert set(manifest.tricky_categories) >= {
        "corporate_nat",
        "health_checks",
        "search_crawlers",
        "legit_admin",
        "sqli_lookalike_queries",
        "legit_uploads",
        "static_assets",
        "favicon_robots_404",
        "server_errors_500",
        "login_failures_then_success",
        "options_head",
        "ipv6_clients",
    }


def test_logins_fail_then_succeed_for_real_users(day: tuple[SampleManifest, Read]) -> None:
    _, read = day
    by_client: dict[str, list[str]] = {}
    for e in read.events:
        if (e["cs-method"], e["cs-uri-stem"]) == ("POST", "/account/login.aspx"):
            by_client.setdefault(e["c-ip"], []).append(e["sc-status"])
    assert any(
        s[:2] == ["200", "302"] or s[:3] == ["200", "200", "302"] for s in by_client.values()
    )


def test_malformed_lines_are_cut_short_binary_and_missing_fields(
    day: tuple[SampleManifest, Read],
) -> None:
    _, read = day
    binary = [b for b in read.malformed if b.startswith(b"\x00")]
    assert len(binary) == 1
    with pytest.raises(UnicodeDecodeError):
        binary[0].decode("utf-8")
    texts = sorted((b.decode("ascii") for b in read.malformed if b not in binary), key=len)
    assert len(texts[0].split(" ")) == 9  # stops after c-ip
    assert len(texts[1].split(" ")) == 10 and "+" in texts[1].split(" ")[-1]  # inside the UA


def test_the_project_parser_reads_every_event_and_dead_letters_the_malformed_lines(
    day: tuple[SampleManifest, Read],
) -> None:
    manifest, read = day
    parser = W3CParser(Source(str(manifest.access_log), "web01", "sample"))
    results, offset = [], 0
    for line in read.lines:
        results.append(parser.feed(line, offset))
        offset += len(line) + 2
    dead = [r for r in results if isinstance(r, DeadLetter)]
    events = [r for r in results if r is not None and not isinstance(r, DeadLetter)]
    assert len(events) == manifest.events
    assert len(dead) == manifest.malformed_lines


def test_httperr_log_is_written_as_http_sys_does(day: tuple[SampleManifest, Read]) -> None:
    manifest, _ = day
    read = read_w3c(manifest.httperr_log)
    assert read.directives[0] == "#Software: Microsoft HTTP API 2.0"
    assert read.directives[3] == (
        "#Fields: date time c-ip c-port s-ip s-port cs-version cs-method cs-uri sc-status"
        " s-siteid s-reason s-queuename"
    )
    assert not read.malformed and len(read.events) == manifest.httperr_events >= 10
    reasons = {e["s-reason"] for e in read.events}
    assert {"Timer_ConnectionIdle", "BadRequest", "Connection_Abandoned_By_ReqQueue"} <= reasons
    assert [stamp(e) for e in read.events] == sorted(stamp(e) for e in read.events)


def test_too_few_requests_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 1000"):
        write_sample_day(tmp_path, day=DAY, requests=10)


def test_w3c_header_is_the_four_directives_iis_writes() -> None:
    text = w3c_header(W3C_DEFAULT_FIELDS, datetime(2024, 5, 14, 1, 2, 3))
    assert text.split("\r\n") == [
        "#Software: Microsoft Internet Information Services 10.0",
        "#Version: 1.0",
        "#Date: 2024-05-14 01:02:03",
        "#Fields: " + " ".join(W3C_DEFAULT_FIELDS),
        "",
    ]


def test_generated_lines_are_deterministic_default_layout_and_ascending() -> None:
    lines = list(generate_w3c_lines(5000, seed=2))
    assert lines == list(generate_w3c_lines(5000, seed=2))
    assert lines != list(generate_w3c_lines(5000, seed=3))
    assert all(len(line.split(" ")) == len(W3C_DEFAULT_FIELDS) for line in lines)
    assert not any(line.endswith(("\r", "\n")) for line in lines)
    stamps = [line[:19] for line in lines]
    assert stamps == sorted(stamps)
    assert stamps[0] == "2024-05-14 00:00:00" and stamps[-1].startswith("2024-05-14 23:59")
    assert len({line.split(" ")[8] for line in lines}) >= 100


def test_generated_lines_start_where_asked_and_cross_midnight() -> None:
    lines = list(generate_w3c_lines(100, start=datetime(2024, 5, 14, 23, 0, tzinfo=UTC)))
    assert lines[0].startswith("2024-05-14 23:00:00 ")
    assert lines[-1].startswith("2024-05-15 ")
    assert list(generate_w3c_lines(0)) == []


def test_bench_script_writes_a_header_and_n_lines(tmp_path: Path) -> None:
    out = tmp_path / "bench.log"
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "gen_lines.py"), "2500", str(out), "--seed", "4"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "2500 lines" in done.stdout
    read = read_w3c(out)
    assert len(read.directives) == 4 and len(read.events) == 2500 and not read.malformed
