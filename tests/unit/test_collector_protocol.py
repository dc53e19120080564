"""Agent tokens (hashed, constant-time, re-read on change) and batch decoding (size limits,
gzip bombs, a reason for every malformed batch). No network."""

from __future__ import annotations

import base64
import gzip
import stat

import orjson
import pytest

from iiswatch.errors import UsageError
from iiswatch.ingest.collector.protocol import BatchError, TooLarge, decompress, parse_batch
from iiswatch.ingest.collector.tokens import AgentIdentity, TokenStore

FID = "0123456789abcdef0123456789abcdef"


def batch(**over):
    chunk = {
        "file_id": FID,
        "path": r"C:\inetpub\logs\LogFiles\W3SVC1\u_ex240514.log",
        "site": "W3SVC1",
        "offset": 0,
        "data": base64.b64encode(b"line one\r\nline two\r\n").decode(),
        "parser_state": None,
        "format": None,
    }
    chunk.update(over.pop("chunk", {}))
    b = {"agent": "web01", "host": "web01.corp.example", "batch_id": "web01-1", "chunks": [chunk]}
    b.update(over)
    return orjson.dumps(b)


FAIL = AgentIdentity("", "", frozenset())  # what a failed authentication is compared as


def test_a_token_is_stored_only_as_its_hash_in_a_private_file(tmp_path):
    store = TokenStore(tmp_path)
    token = store.add("web01")
    raw = (tmp_path / "agents.json").read_text()
    assert token not in raw and len(token) >= 40
    assert stat.S_IMODE((tmp_path / "agents.json").stat().st_mode) == 0o600
    assert (store.authenticate(token) or FAIL).name == "web01"
    assert store.authenticate(token + "x") is None
    assert store.authenticate(None) is None and store.authenticate("") is None


def test_tokens_name_their_agent_and_a_new_agent_is_seen_without_restart(tmp_path):
    running = TokenStore(tmp_path)
    assert running.authenticate("anything") is None
    t1 = TokenStore(tmp_path).add("web01")
    t2 = TokenStore(tmp_path).add("web02")
    assert [(running.authenticate(t) or FAIL).name for t in (t1, t2)] == ["web01", "web02"]


def test_re_adding_an_agent_needs_replace_and_revokes_the_old_token(tmp_path):
    store = TokenStore(tmp_path)
    old = store.add("web01")
    with pytest.raises(UsageError, match="already has a token"):
        store.add("web01")
    new = store.add("web01", replace=True)
    assert store.authenticate(old) is None and (store.authenticate(new) or FAIL).name == "web01"


def test_agent_names_must_be_safe(tmp_path):
    with pytest.raises(UsageError, match=r"not a valid agent name: '\.\./web01'"):
        TokenStore(tmp_path).add("../web01")


def test_a_valid_batch_decodes_its_data():
    b = parse_batch(batch())
    assert b.model.host == "web01.corp.example"
    assert b.data == (b"line one\r\nline two\r\n",)


def test_a_gzip_body_is_decompressed_within_the_limit():
    body = gzip.compress(batch())
    assert parse_batch(decompress(body, "gzip", 1 << 20)).model.batch_id == "web01-1"


def test_a_gzip_bomb_is_too_large_without_being_inflated():
    bomb = gzip.compress(b"\0" * (50 << 20))  # 50 MiB of zeros in ~50 KB
    assert len(bomb) < 100_000
    with pytest.raises(TooLarge, match="gzip body expands past the 1048576-byte limit"):
        decompress(bomb, "gzip", 1 << 20)


def test_an_identity_body_over_the_limit_is_too_large():
    with pytest.raises(TooLarge, match="11 bytes is over the 10-byte limit"):
        decompress(b"x" * 11, None, 10)


@pytest.mark.parametrize(
    ("body", "encoding", "reason"),
    [
        (b"not json", None, "body is not JSON"),
        (gzip.compress(b"{}")[:-5], "gzip", "truncated"),
        (b"{}", "br", "unsupported Content-Encoding"),
        (b"\x1f\x8bgarbage", "gzip", "not valid gzip"),
    ],
)
def test_undecodable_bodies_say_why(body, encoding, reason):
    with pytest.raises(BatchError, match=reason):
        parse_batch(decompress(body, encoding, 1 << 20))


@pytest.mark.parametrize(
    ("over", "reason"),
    [
        ({"chunk": {"offset": -1}}, r"chunks\[0\].offset: Input should be greater than"),
        ({"chunk": {"data": "***"}}, r"chunks\[0\].data: not base64"),
        ({"chunk": {"data": base64.b64encode(b"no newline").decode()}}, "whole lines"),
        ({"chunk": {"file_id": "../../etc"}}, r"chunks\[0\].file_id: Value error, must be 16-64"),
        ({"chunk": {"site": "a/b"}}, r"chunks\[0\].site"),
        ({"chunk": {"format": "csv"}}, r"chunks\[0\].format"),
        ({"chunk": {"extra": 1}}, r"chunks\[0\].extra: Extra inputs are not permitted"),
        ({"host": "../x"}, "host: Value error, must be a host name"),
        ({"batch_id": ""}, "batch_id"),
        ({"chunks": "x"}, "chunks: Input should be a valid list"),
    ],
)
def test_malformed_batches_name_the_field(over, reason):
    with pytest.raises(BatchError, match=reason):
        parse_batch(batch(**over))


def test_a_missing_field_is_named():
    obj = orjson.loads(batch())
    del obj["host"]
    with pytest.raises(BatchError, match="host: Field required"):
        parse_batch(orjson.dumps(obj))


def test_the_optional_size_is_accepted():
    assert parse_batch(batch(chunk={"size": 12345})).model.chunks[0].size == 12345
