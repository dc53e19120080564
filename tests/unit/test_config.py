import json
import os
from pathlib import Path

import pytest

from iiswatch.config import (
    Credentials,
    Purpose,
    connection_for,
    load_settings,
    save_local_credentials,
)
from iiswatch.errors import ConfigError


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("IISWATCH_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("IISWATCH_CONFIG", str(tmp_path / "config.toml"))
    for var in (
        "IISWATCH_ES_URL",
        "IISWATCH_ES_API_KEY",
        "IISWATCH_ES_USERNAME",
        "IISWATCH_ES_PASSWORD",
        "IISWATCH_ES_CA_CERTS",
    ):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def _local_node(home: Path) -> None:
    d = home / "state" / "es"
    d.mkdir(parents=True)
    (d / "elastic.password").write_text("pw\n")
    (d / "connection.json").write_text(
        json.dumps(
            {
                "url": "http://127.0.0.1:9250",
                "username": "elastic",
                "password_file": str(d / "elastic.password"),
            }
        )
    )


def test_without_any_configuration_the_error_says_to_start_a_node(home: Path) -> None:
    with pytest.raises(ConfigError) as e:
        connection_for(Purpose.READER)
    assert "iiswatch es up" in (e.value.hint or "")


def test_local_node_admin_uses_elastic_and_others_need_setup(home: Path) -> None:
    _local_node(home)
    admin = connection_for(Purpose.ADMIN)
    assert admin.credentials.username == "elastic"
    assert admin.credentials.resolved_password() == "pw"
    with pytest.raises(ConfigError, match="'writer' credentials") as e:
        connection_for(Purpose.WRITER)
    assert "iiswatch setup" in (e.value.hint or "")
    f = save_local_credentials(Purpose.WRITER, Credentials(username="w", password="p"))
    assert f.stat().st_mode & 0o777 == 0o600
    assert connection_for(Purpose.WRITER).credentials.username == "w"


def test_environment_beats_the_config_file_and_per_purpose_credentials_apply(home: Path) -> None:
    (home / "config.toml").write_text(
        '[elasticsearch]\nurl = "https://file:9200"\napi_key = "k"\n'
        '[elasticsearch.credentials.writer]\nusername = "w"\npassword = "p"\n'
    )
    assert connection_for(Purpose.READER).url == "https://file:9200"
    assert connection_for(Purpose.READER).credentials.api_key == "k"
    assert connection_for(Purpose.WRITER).credentials.username == "w"
    os.environ["IISWATCH_ES_URL"] = "https://env:9200"
    try:
        assert connection_for(Purpose.READER).url == "https://env:9200"
    finally:
        del os.environ["IISWATCH_ES_URL"]


def test_unknown_config_keys_are_errors_naming_the_key(home: Path) -> None:
    (home / "config.toml").write_text('[elasticsearch]\nurll = "x"\n')
    with pytest.raises(ConfigError, match=r"elasticsearch\.urll"):
        load_settings()
