"""Settings: from flags, `EVENTPLAN_*` environment variables, or a TOML file.

Flags win over the environment, the environment over the file. Every setting is
listed once in `SETTINGS` with its help, which the CLI and the docs read.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from eventplan.errors import EventplanError
from eventplan.store import local_base

Enforcement = Literal["flag", "quarantine"]
ENFORCEMENTS = get_args(Enforcement)


# Where the TOML file spells a setting otherwise (plural, as a list reads).
FILE_KEYS = {"token": "tokens", "api_key": "api_keys", "trusted_proxy": "trusted_proxies"}


class ConfigError(EventplanError):
    code = "config_invalid"


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting("plan", None, "the plan file for the default project"),
    Setting(
        "db",
        "data/eventplan.duckdb",
        "the store: a DuckDB file, clickhouse://user:pass@host:8123/database or chdb:DIR",
    ),
    Setting(
        "wal", None, "the write-ahead log folder (default: beside the store, see docs/scale.md)"
    ),
    Setting(
        "log_reserve",
        64 * 1024 * 1024,
        "bytes of free disk the write-ahead log keeps: below it capture answers 503",
    ),
    Setting(
        "memory_limit",
        "96MB",
        "DuckDB's memory while serving (its buffer pool; larger queries spill to disk)",
    ),
    Setting("host", "127.0.0.1", "address to listen on"),
    Setting("port", 8000, "port to listen on"),
    Setting("token", [], "project token(s) accepted for the default project (repeatable)"),
    Setting("api_key", [], "personal API key(s) for /api/* (repeatable; kept only hashed)"),
    Setting("api_key_sha256", [], "SHA-256 (hex) of personal API key(s), to keep no key in config"),
    Setting(
        "enforcement", "flag", "flag: store everything, marked; quarantine: hold back bad events"
    ),
    Setting("trusted_proxy", [], "networks whose X-Forwarded-For is believed (repeatable)"),
    Setting("max_body_bytes", 20 * 1024 * 1024, "largest request body, after decompression"),
    Setting("max_pending_events", 250_000, "acknowledged but unstored events before 503"),
    Setting("token_rate", 0, "events per second per token before 503 (0: no budget)"),
    Setting(
        "capture_processes",
        None,
        "processes that read capture requests beside the server (default: 1 with more than "
        "one core; 0: the server reads them itself)",
    ),
    Setting("hash_salt", None, "salt for `hash` privacy (default: generated once, kept in the db)"),
    Setting("alert_interval", 300, "seconds between alert checks while serving (0: never)"),
    Setting("query_timeout", 60, "seconds an /api/sql or HogQL query may run (0: no limit)"),
    Setting(
        "webhook", None, "URL that gets a JSON POST (Slack-style `text`) when an alert changes"
    ),
    Setting("forward", None, "gateway mode: a PostHog host to forward accepted events to"),
    Setting("forward_token", None, "the PostHog project token to forward with"),
    Setting("secure_cookies", 0, "1: session cookies only over HTTPS (set it behind TLS)"),
)


@dataclass(frozen=True)
class ProjectConfig:
    name: str
    plan: Path
    tokens: tuple[str, ...]
    enforcement: Enforcement = "flag"
    forward: str | None = None
    forward_token: str | None = None
    api_keys: tuple[str, ...] = ()  # personal API keys that read this project alone


@dataclass(frozen=True)
class Settings:
    db: str
    host: str
    port: int
    projects: tuple[ProjectConfig, ...]
    api_keys: tuple[str, ...] = ()
    api_key_hashes: tuple[str, ...] = ()
    trusted_proxies: tuple[str, ...] = ()
    max_body_bytes: int = 20 * 1024 * 1024
    max_pending_events: int = 250_000
    token_rate: int = 0
    capture_processes: int = 0
    hash_salt: str | None = None
    alert_interval: int = 300
    query_timeout: int = 60
    webhook: str | None = None
    secure_cookies: bool = False
    wal: str | None = None
    log_reserve: int = 64 * 1024 * 1024
    memory_limit: str | None = "96MB"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def wal_dir(self) -> Path:
        if self.wal:
            return Path(self.wal)
        base = local_base(self.db)
        return base.with_name(base.name + ".log")


def _env(name: str, default: Any) -> Any:
    value = os.environ.get(f"EVENTPLAN_{name.upper()}")
    if value is None:
        return default
    if isinstance(default, list):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(default, int):
        try:
            return int(value)
        except ValueError as exc:
            raise ConfigError(
                f"EVENTPLAN_{name.upper()} has value {value!r}; expected a whole number"
            ) from exc
    return value


def load_settings(flags: dict[str, Any], config_file: Path | None = None) -> Settings:
    """Settings from flags (None or empty = not given), the environment, then the file."""
    config_file = config_file or (
        Path(os.environ["EVENTPLAN_CONFIG"]) if os.environ.get("EVENTPLAN_CONFIG") else None
    )
    file_values = _read_file(config_file)
    values = {
        setting.name: _value(setting, flags, file_values, config_file) for setting in SETTINGS
    }
    _check_values(values)
    return _settings(values, _projects(values, file_values))


def _settings(values: dict[str, Any], projects: list[ProjectConfig]) -> Settings:
    return Settings(
        db=str(values["db"]),
        host=str(values["host"]),
        port=int(values["port"]),
        projects=tuple(projects),
        api_keys=tuple(values["api_key"]),
        api_key_hashes=tuple(values["api_key_sha256"]),
        trusted_proxies=tuple(values["trusted_proxy"]),
        max_body_bytes=int(values["max_body_bytes"]),
        max_pending_events=int(values["max_pending_events"]),
        token_rate=int(values["token_rate"]),
        capture_processes=_capture_processes(values["capture_processes"]),
        hash_salt=values["hash_salt"],
        alert_interval=int(values["alert_interval"]),
        query_timeout=int(values["query_timeout"]),
        webhook=values["webhook"],
        secure_cookies=bool(int(values["secure_cookies"])),
        wal=values["wal"],
        log_reserve=int(values["log_reserve"]),
        memory_limit=values["memory_limit"] or None,
    )


def _capture_processes(value: Any) -> int:
    """The setting, or by default one capture process when the machine has a core to
    spare for it (on one core it would only add the hand-over)."""
    if value is None:
        return 1 if (os.cpu_count() or 1) > 1 else 0
    try:
        return int(value)  # a negative count is refused with the other numbers
    except ValueError:
        raise ConfigError(f"capture_processes must be a whole number, not {value!r}") from None


def _read_file(config_file: Path | None) -> dict[str, Any]:
    if config_file is None:
        return {}
    try:
        return tomllib.loads(config_file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {config_file}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{config_file} is not UTF-8 text: {exc.reason}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{config_file} is not valid TOML: {exc}") from exc


def _value(
    setting: Setting, flags: dict[str, Any], file_values: dict[str, Any], config_file: Path | None
) -> Any:
    """One setting: its flag, else its environment variable, else the file's value."""
    given = flags.get(setting.name)
    if given not in (None, [], ()):
        return list(given) if isinstance(given, tuple) else given
    from_env = _env(setting.name, [] if isinstance(setting.default, list) else None)
    if from_env not in (None, []):
        if isinstance(setting.default, int) and not isinstance(setting.default, bool):
            try:
                return int(from_env)
            except ValueError as exc:
                raise ConfigError(
                    f"EVENTPLAN_{setting.name.upper()} has value {from_env!r}; "
                    "expected a whole number"
                ) from exc
        return from_env
    file_key = FILE_KEYS.get(setting.name, setting.name)
    return _from_file(setting, file_key, file_values.get(file_key), config_file)


def _check_values(values: dict[str, Any]) -> None:
    for setting in SETTINGS:
        value = values[setting.name]
        if isinstance(value, int) and not isinstance(value, bool) and value < 0:
            raise ConfigError(f"{setting.name} is {value}; it cannot be negative")
    if values["max_body_bytes"] == 0 or values["port"] > 65535:
        raise ConfigError("max_body_bytes must be at least 1, and port at most 65535")
    for network in values["trusted_proxy"]:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError as exc:
            raise ConfigError(f"trusted proxy {network!r} is not an address or network") from exc
    if values["enforcement"] not in ENFORCEMENTS:
        raise ConfigError(f"enforcement is {values['enforcement']!r}; expected flag or quarantine")


def _projects(values: dict[str, Any], file_values: dict[str, Any]) -> list[ProjectConfig]:
    """The file's [[projects]], after the one the flags name (--plan, --token)."""
    projects = [_project(p, i) for i, p in enumerate(file_values.get("projects", []))]
    if values["plan"] is not None:
        tokens = tuple(values["token"])
        if not tokens:
            raise ConfigError("no project token: pass --token or set EVENTPLAN_TOKEN")
        flagged = ProjectConfig(
            "",
            Path(values["plan"]),
            tokens,
            values["enforcement"],
            values["forward"],
            values["forward_token"],
        )
        projects.insert(0, flagged)
    if not projects:
        raise ConfigError("no plan: pass --plan (and --token), or list [[projects]] in a TOML file")
    seen: set[str] = set()
    for project in projects:
        if project.forward and not project.forward_token:
            raise ConfigError("--forward needs --forward-token (the PostHog project token)")
        for token in project.tokens:
            if token in seen:
                raise ConfigError(f"token {token[:6]}… is given to two projects")
            seen.add(token)
    return projects


def _strings(value: Any, what: str) -> list[str]:
    """A list of strings; one string is a list of one (never its characters)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    raise ConfigError(f"{what} must be a string or a list of strings")


def _from_file(setting: Setting, key: str, value: Any, config_file: Path | None) -> Any:
    """A value from the TOML file, of the setting's kind, or a ConfigError naming it."""
    if value is None:
        return setting.default
    what = f"{config_file}: {key}"
    if isinstance(setting.default, list):
        return _strings(value, what)
    if isinstance(setting.default, int):
        if isinstance(value, bool) and setting.name == "secure_cookies":  # a 0/1 switch
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{what} must be a whole number")
        return value
    if not isinstance(value, str):
        raise ConfigError(f"{what} must be a string")
    return value


def _project(raw: Any, index: int) -> ProjectConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"[[projects]] entry {index + 1} must be a table")
    try:
        tokens = _strings(raw["tokens"], f"[[projects]] entry {index + 1}: tokens")
        plan = raw["plan"]
    except KeyError as exc:
        raise ConfigError(f"[[projects]] entry {index + 1} needs `{exc.args[0]}`") from exc
    if not isinstance(plan, str):
        raise ConfigError(f"[[projects]] entry {index + 1}: plan must be a file name")
    enforcement = raw.get("enforcement", "flag")
    if enforcement not in ENFORCEMENTS:
        raise ConfigError(f"[[projects]] entry {index + 1}: enforcement {enforcement!r}")
    forward, forward_token = raw.get("forward"), raw.get("forward_token")
    if forward and not forward_token:
        raise ConfigError(f"[[projects]] entry {index + 1}: forward needs forward_token")
    keys = _strings(raw.get("api_keys", []), f"[[projects]] entry {index + 1}: api_keys")
    return ProjectConfig(
        str(raw.get("name", "")),
        Path(plan),
        tuple(tokens),
        enforcement,
        forward,
        forward_token,
        tuple(keys),
    )
