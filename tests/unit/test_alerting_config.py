"""The alerting config file: the README's example loads, every problem is reported with
where it is, secrets come from the environment or files and are never echoed."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from iiswatch.alerting.config import (
    CommandDestination,
    RequestTrackerDestination,
    WebhookDestination,
    load_config,
    parse_config,
    resolve_secret,
)
from iiswatch.errors import ConfigError

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_example() -> str:
    """The alerting config block of README.md, as a reader would copy it."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Alerting: scheduled rules") :]
    start = section.index("```toml\n") + len("```toml\n")
    return section[start : section.index("```", start)]


def test_the_readme_example_loads_with_each_kind_of_destination() -> None:
    cfg = parse_config(readme_example(), "README.md")
    assert isinstance(cfg.destinations["servicedesk"], RequestTrackerDestination)
    assert isinstance(cfg.destinations["soc-slack"], WebhookDestination)
    assert isinstance(cfg.destinations["ticket-script"], CommandDestination)
    assert cfg.delivery.deadline == timedelta(hours=2)
    assert cfg.delivery.backoff_base == timedelta(seconds=2)
    rt = cfg.destinations["servicedesk"]
    assert isinstance(rt, RequestTrackerDestination)
    assert rt.priority["critical"] == 100 and rt.queue == "Security"
    assert cfg.service.catch_up == timedelta(hours=1)
    assert cfg.service.error_destinations == ["servicedesk"]
    assert cfg.service.deadman.silent_for == timedelta(minutes=15)


def test_every_problem_is_reported_with_its_place() -> None:
    text = """
[delivery]
deadline = "soon"
[destinations.rt]
type = "request_tracker"
url = "not a url"
[destinations.hook]
type = "webhook"
url = "https://example.org/x"
"""
    with pytest.raises(ConfigError) as e:
        parse_config(text, "alerting.toml")
    msg = e.value.message
    # each with the line that sets it (or, for a missing key, its table's header)
    assert "alerting.toml:3: delivery.deadline: not a duration" in msg
    assert "alerting.toml:6: destinations.rt.request_tracker.url: must be an http" in msg
    assert "alerting.toml:7: destinations.hook.webhook.body: Field required" in msg
    assert msg.startswith("3 problem(s)")


def test_a_misspelt_secret_key_is_reported_without_its_value() -> None:
    text = """
[destinations.rt]
type = "request_tracker"
url = "https://rt.example.org"
tokn = "1-14-topsecretvalue"
"""
    with pytest.raises(ConfigError) as e:
        parse_config(text)
    assert "tokn" in e.value.message
    assert "topsecret" not in e.value.message


def test_secrets_resolve_from_the_environment_and_files_and_never_print(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_file = tmp_path / "token"
    secret_file.write_text("1-14-fromfile\n")
    monkeypatch.setenv("IISWATCH_TEST_SECRET", "s3cr3t")
    cfg = parse_config(
        f"""
[destinations.rt]
type = "request_tracker"
url = "https://rt.example.org"
token = "${{file:{secret_file}}}"
[destinations.hook]
type = "webhook"
url = "https://hooks.example.org/${{env:IISWATCH_TEST_SECRET}}"
body = "slack.json"
headers = {{ "X-Api-Key" = "key ${{env:IISWATCH_TEST_SECRET}}" }}
"""
    )
    rt = cfg.destinations["rt"]
    hook = cfg.destinations["hook"]
    assert isinstance(rt, RequestTrackerDestination) and isinstance(hook, WebhookDestination)
    assert rt.token is not None
    assert resolve_secret(rt.token, "t") == "1-14-fromfile"
    assert resolve_secret(hook.url, "u") == "https://hooks.example.org/s3cr3t"
    assert resolve_secret(hook.headers["X-Api-Key"], "h") == "key s3cr3t"
    printed = repr(cfg) + str(cfg) + cfg.model_dump_json()
    assert "IISWATCH_TEST_SECRET" not in printed and "fromfile" not in printed


def test_a_missing_secret_names_the_variable_or_file_not_a_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("IISWATCH_NOT_SET", raising=False)
    with pytest.raises(ConfigError, match="environment variable IISWATCH_NOT_SET is not set"):
        resolve_secret("Bearer ${env:IISWATCH_NOT_SET}", "destination x")
    with pytest.raises(ConfigError, match="cannot read secret file /nonexistent/iiswatch"):
        resolve_secret("${file:/nonexistent/iiswatch}", "destination x")


def test_basic_auth_needs_a_password_and_excludes_a_token() -> None:
    base = '[destinations.rt]\ntype = "request_tracker"\nurl = "https://rt.example.org"\n'
    with pytest.raises(ConfigError, match="`user` needs `password`"):
        parse_config(base + 'user = "iiswatch"\n')
    with pytest.raises(ConfigError, match="exactly one of"):
        parse_config(base + 'user = "iiswatch"\npassword = "x"\ntoken = "y"\n')
    cfg = parse_config(base + 'user = "iiswatch"\npassword = "${env:RT_PASSWORD}"\n')
    assert isinstance(cfg.destinations["rt"], RequestTrackerDestination)


def test_the_services_own_section_of_the_same_file_is_left_to_it() -> None:
    cfg = parse_config(
        '[service]\nsettle = "2s"\n[destinations.x]\ntype = "command"\nargv = ["true"]\n'
    )
    assert list(cfg.destinations) == ["x"]


def test_an_unknown_destination_name_lists_the_known_ones() -> None:
    cfg = parse_config('[destinations.x]\ntype = "command"\nargv = ["true"]\n')
    with pytest.raises(ConfigError, match=r"no destination named 'servicedesk' \(known: x\)"):
        cfg.destination("servicedesk")


def test_framing_headers_are_refused() -> None:
    with pytest.raises(ConfigError, match="set by iiswatch: content-length"):
        parse_config(
            '[destinations.h]\ntype = "webhook"\nurl = "https://x.example"\nbody = "slack.json"\n'
            'headers = { "Content-Length" = "1" }\n'
        )


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("250ms", 0.25), ("10s", 10), ("5m", 300), ("1w", 604800), (3, 3)],
)
def test_durations_use_the_one_grammar_or_plain_seconds(text: object, seconds: float) -> None:
    config = parse_config(f"[delivery]\ndeadline = {text!r}\n".replace("'", '"'))
    assert config.delivery.deadline.total_seconds() == seconds


def test_a_missing_config_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no alerting config at") as e:
        load_config(tmp_path / "nope.toml")
    assert e.value.hint and "--config" in e.value.hint


def test_a_toml_syntax_error_names_its_line_and_column() -> None:
    with pytest.raises(ConfigError, match=r"^alerting.toml:3:5: Expected") as e:
        parse_config('[delivery]\ndeadline = "2h"\nbad line = \n', "alerting.toml")
    assert e.value.hint == "fix the TOML syntax"


def test_the_service_section_is_part_of_the_alerting_config() -> None:
    config = parse_config('[service]\nsettle = "5s"\n[service.deadman]\nsilent_for = "1h"\n')
    assert config.service.settle == timedelta(seconds=5)
    assert config.service.deadman.silent_for == timedelta(hours=1)
    with pytest.raises(ConfigError, match=r"cfg:1: service: lease_ttl must be longer than zero"):
        parse_config('[service]\nlease_ttl = "0s"\n', "cfg")
    with pytest.raises(ConfigError, match="no destination named 'pager'"):
        parse_config('[service]\nerror_destinations = ["pager"]\n')
