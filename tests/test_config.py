"""Settings come from flags, then EVENTPLAN_* variables, then a TOML file."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventplan.config import ConfigError, load_settings
from tests.conftest import OPENCHAT


def test_flags_beat_the_environment_which_beats_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "eventplan.toml"
    config.write_text(f'''
db = "from-file.duckdb"
port = 9001
host = "0.0.0.0"
api_keys = ["phx_file"]

[[projects]]
name = "shop"
plan = "{OPENCHAT}"
tokens = ["phc_shop"]
enforcement = "quarantine"
''')
    monkeypatch.setenv("EVENTPLAN_PORT", "9002")
    monkeypatch.setenv("EVENTPLAN_TOKEN", "phc_env_a,phc_env_b")
    monkeypatch.setenv("EVENTPLAN_MEMORY_LIMIT", "1GB")
    settings = load_settings(
        {"plan": str(OPENCHAT), "host": "127.0.0.2", "port": None, "max_pending_events": 40_000},
        config,
    )
    assert settings.host == "127.0.0.2"  # flag
    assert settings.max_pending_events == 40_000
    assert settings.port == 9002  # environment
    assert str(settings.db) == "from-file.duckdb"  # file
    assert settings.memory_limit == "1GB"
    assert settings.api_keys == ("phx_file",)
    default, shop = settings.projects
    assert default.tokens == ("phc_env_a", "phc_env_b")
    assert (shop.name, shop.tokens, shop.enforcement) == ("shop", ("phc_shop",), "quarantine")


@pytest.mark.parametrize(
    ("flags", "env", "message"),
    [
        ({}, {}, "no plan"),
        ({"plan": str(OPENCHAT)}, {}, "no project token"),
        ({"plan": str(OPENCHAT), "token": ["t"]}, {"EVENTPLAN_PORT": "eighty"}, "whole number"),
        ({"plan": str(OPENCHAT), "token": ["t"], "enforcement": "block"}, {}, "enforcement"),
        ({"plan": str(OPENCHAT), "token": ["t"], "forward": "http://x"}, {}, "--forward-token"),
        (
            {"plan": str(OPENCHAT), "token": ["t"]},
            {"EVENTPLAN_CAPTURE_PROCESSES": "two"},
            "capture_processes must be a whole number",
        ),
        ({"plan": str(OPENCHAT), "token": ["t"], "capture_processes": -1}, {}, "negative"),
    ],
)
def test_bad_settings_say_what_is_wrong(
    flags: dict[str, object], env: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("EVENTPLAN_TOKEN", "EVENTPLAN_PLAN", "EVENTPLAN_CONFIG"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match=message):
        load_settings(flags)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b'port = "abc"', "port must be a whole number"),
        (b"max_body_bytes = -5", "max_body_bytes is -5; it cannot be negative"),
        (b'trusted_proxies = ["not-a-net"]', "trusted proxy 'not-a-net' is not an address"),
        (b'[[projects]]\nplan = "p.yaml"\ntokens = [1]', "tokens must be a string or a list"),
        (b'[[projects]]\nplan = 5\ntokens = ["phc_a"]', "plan must be a file name"),
        (
            b'[[projects]]\nplan = "p.yaml"\ntokens = ["phc_a"]\napi_keys = [1]',
            "api_keys must be a string or a list",
        ),
        (b"\xff\xfe", "is not UTF-8 text"),
    ],
)
def test_a_bad_config_file_says_what_is_wrong(
    tmp_path: Path, text: bytes, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("EVENTPLAN_TOKEN", "EVENTPLAN_PLAN", "EVENTPLAN_CONFIG", "EVENTPLAN_PORT"):
        monkeypatch.delenv(key, raising=False)
    config = tmp_path / "eventplan.toml"
    config.write_bytes(text)
    with pytest.raises(ConfigError, match=message):
        load_settings({"plan": str(OPENCHAT), "token": ("phc_x",)}, config)


def test_one_token_written_as_a_string_is_one_token_not_its_characters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EVENTPLAN_TOKEN", raising=False)
    config = tmp_path / "eventplan.toml"
    config.write_text(f'[[projects]]\nplan = "{OPENCHAT}"\ntokens = "phc_one"\n')
    assert [p.tokens for p in load_settings({}, config).projects] == [("phc_one",)]
    config.write_text("secure_cookies = true\n" + config.read_text())  # a switch may be a bool
    assert load_settings({}, config).secure_cookies is True


@pytest.mark.parametrize(
    ("db", "wal", "log"),
    [
        ("data/eventplan.duckdb", None, "data/eventplan.duckdb.log"),
        ("chdb:data/clickhouse", None, "data/clickhouse.log"),
        (
            "clickhouse://u:secret@ch1:8123/analytics",
            None,
            "data/clickhouse-ch1-8123-analytics.log",
        ),
        (
            "clickhouse://u:secret@ch1:8123/analytics",
            "/var/lib/eventplan/wal",
            "/var/lib/eventplan/wal",
        ),
    ],
)
def test_the_write_ahead_log_stays_local_whatever_the_store(
    db: str, wal: str | None, log: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if wal:
        monkeypatch.setenv("EVENTPLAN_WAL", wal)
    settings = load_settings({"plan": str(OPENCHAT), "db": db, "token": ("phc_x",)})
    assert settings.wal_dir == Path(log)
    assert "secret" not in str(settings.wal_dir)
