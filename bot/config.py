"""Typed settings, read once from a TOML file.

Every section and every setting is optional; anything unknown is an error. Secrets (the bot
token, the webhook secret token, the server secret) are never written in the file itself: the
file holds a reference, ``"env:NAME"`` (an environment variable) or ``"file:PATH"`` (a file,
relative paths taken from the config file's folder), resolved when the settings are loaded.

Everything a user can get wrong comes out as one :class:`ConfigError`, whose message is one line
that starts with the config file's path and names the setting as ``[section] key``.

The sections are frozen dataclasses; each setting names the function that reads it from the
file's value (checking its type and range, resolving references). Plain Python, not a
validation library: the settings are read once, and a library loaded for that alone would stay
in the memory of the long-running bot (#19).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import urlsplit

from bot.durations import parse_duration
from storage.timeutil import zone_named

__all__ = [
    "CONFIG_ENV_VAR",
    "SECTIONS",
    "AlertsSection",
    "ConfigError",
    "DatabaseSection",
    "DefaultsSection",
    "DisplaySection",
    "IntakeSection",
    "InvitesSection",
    "KeysSection",
    "LoggingSection",
    "RetentionSection",
    "Secret",
    "Settings",
    "TelegramSection",
    "WebhookSection",
    "example_config_text",
    "load_settings",
    "resolve_config_path",
]

CONFIG_ENV_VAR = "INTAKE_CONFIG"
DEFAULT_CONFIG_NAME = "config.toml"
SERVER_SECRET_BYTES = 32
_EXAMPLE_NAME = "config.example.toml"

_ENV_PREFIX = "env:"
_FILE_PREFIX = "file:"
_PLACEHOLDERS = frozenset(
    {
        "changeme",
        "change-me",
        "changethis",
        "placeholder",
        "secret",
        "token",
        "xxx",
        "your-token-here",
        "",
    }
)
_TELEGRAM_TOKEN = re.compile(r"[0-9]+:[A-Za-z0-9_-]{30,}")
_WEBHOOK_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+={0,2}")
_USERNAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{3,31}")
# Telegram lets a bot delete a message only while it is less than 48 hours old.
_MAX_RECEIPT_TTL = timedelta(hours=48)


class ConfigError(Exception):
    """A mistake in the configuration, explained in one line.

    ``str(error)`` is ``"<config path>: <message>"``, where the message names the setting as
    ``[section] key``. It never contains a secret value.
    """

    def __init__(
        self,
        path: Path | str,
        message: str,
        *,
        setting: str | None = None,
        unresolved: bool = False,
    ) -> None:
        self.path = Path(path)
        self.setting = setting
        # The file parses, but an env: or file: reference of ``setting`` cannot be read
        # (`intake doctor` reports it under "secrets", not "config").
        self.unresolved = unresolved
        self.message = " ".join(message.split("\n"))
        line = f"{path}: {setting}: {self.message}" if setting else f"{path}: {self.message}"
        super().__init__(" ".join(line.splitlines()))


class _Mistake(Exception):
    """A setting's mistake, found while reading: ``load_settings`` makes it a ConfigError."""

    def __init__(self, setting: str | None, message: str, *, unresolved: bool = False) -> None:
        super().__init__(message)
        self.setting = setting
        self.message = message
        self.unresolved = unresolved


class _Unresolved(ValueError):
    """An ``env:`` or ``file:`` reference that cannot be read (the setting is written right)."""


T = TypeVar("T", str, bytes)


class Secret(Generic[T]):
    """A secret setting's value: shown as ``**********`` by repr and str, so that no log
    line, traceback or error message can carry it; ``get_secret_value`` gives it."""

    __slots__ = ("_value",)
    _value: T

    def __init__(self, value: T) -> None:
        self._value = value

    def get_secret_value(self) -> T:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    def __str__(self) -> str:
        return "**********"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(slots=True)
class _Reading:
    """What reading one config file needs beside the values: where the file is (relative
    paths start from its folder), whether to read the bot token (only `intake run` and
    `intake doctor` need it), and every secret file read (their modes are checked)."""

    config_path: Path
    read_token: bool
    secret_files: list[Path] = field(default_factory=list)

    @property
    def config_dir(self) -> Path:
        return self.config_path.parent


# --- reading references ---------------------------------------------------------------------


def _is_reference(value: str) -> bool:
    return value.startswith((_ENV_PREFIX, _FILE_PREFIX))


def _read_reference(reference: str, config_dir: Path) -> str:
    """The text an ``env:NAME`` or ``file:PATH`` reference points at, stripped of whitespace.

    Raises ValueError naming the variable or the file, never the value.
    """
    if reference.startswith(_ENV_PREFIX):
        name = reference.removeprefix(_ENV_PREFIX)
        if not name:
            raise ValueError('"env:" needs the name of an environment variable, like "env:NAME"')
        value = os.environ.get(name)
        if value is None:
            raise _Unresolved(f"environment variable {name} is not set")
        value = value.strip()
        if not value:
            raise _Unresolved(f"environment variable {name} is empty")
        return value
    name = reference.removeprefix(_FILE_PREFIX)
    if not name:
        raise ValueError('"file:" needs a path, like "file:PATH"')
    path = Path(name).expanduser()
    if not path.is_absolute():
        path = config_dir / path
    path = Path(os.path.normpath(path))
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise _Unresolved(f"cannot read {path}: {reason}") from None
    except UnicodeDecodeError:
        raise _Unresolved(f"cannot read {path}: it is not UTF-8 text") from None
    value = text.strip()
    if not value:
        raise _Unresolved(f"file {path} is empty")
    return value


def _note_secret_file(reference: str, reading: _Reading) -> None:
    """Remember a ``file:`` reference's path, so that its mode can be checked."""
    if reference.startswith(_FILE_PREFIX):
        path = Path(reference.removeprefix(_FILE_PREFIX)).expanduser()
        if not path.is_absolute():
            path = reading.config_dir / path
        reading.secret_files.append(Path(os.path.normpath(path)))


def _secret_text(
    value: object, reading: _Reading, *, kinds: tuple[str, ...] = (_ENV_PREFIX, _FILE_PREFIX)
) -> str:
    """Resolve a secret setting's reference; refuse literal values and placeholders."""
    use = " or ".join(f'"{kind}{"NAME" if kind == _ENV_PREFIX else "PATH"}"' for kind in kinds)
    if not isinstance(value, str):
        raise ValueError(f"must be a reference in quotes: {use}")
    if not value.startswith(kinds):
        if _is_reference(value):
            raise ValueError(f"must be a {use} reference")
        raise ValueError(f"secrets are never written in the config file; use {use}")
    text = _read_reference(value, reading.config_dir)
    _note_secret_file(value, reading)
    if text.lower() in _PLACEHOLDERS:
        raise ValueError(f"the value from {value} is a placeholder; put the real secret there")
    return text


# --- reading one value ----------------------------------------------------------------------

# A setting's reader: the value from the file in, the setting's value out, or ValueError
# with the message the user sees after "[section] key: ".
Read = Callable[[object, _Reading], Any]


def _reads(read: Read, *, when_unset: str | None = None) -> dict[str, Any]:
    """A section field's metadata: ``read`` reads it from the file. ``when_unset`` is the
    text read when the file does not set it (a reference resolved like one written there);
    else the file leaves the field's default."""
    return {"read": read, "when_unset": when_unset}


def _checked(read: Read, *checks: Callable[[Any], object]) -> Read:
    """``read``, then each check of what it read (each raises ValueError or returns)."""

    def reader(value: object, reading: _Reading) -> Any:
        result = read(value, reading)
        for check in checks:
            check(result)
        return result

    return reader


def _text(value: object, _reading: _Reading) -> str:
    if not isinstance(value, str):
        raise ValueError("must be text in quotes")
    return value


def _not_empty(value: str) -> None:
    if not value:
        raise ValueError("must not be empty")


def _flag(value: object, _reading: _Reading) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _whole(at_least: int, at_most: int | None = None) -> Read:
    """A whole number from ``at_least`` to ``at_most`` (TOML's true is not one)."""

    def reader(value: object, _reading: _Reading) -> int:
        if type(value) is not int:
            raise ValueError("must be a whole number, without quotes")
        if value < at_least:
            raise ValueError(f"must be at least {at_least}")
        if at_most is not None and value > at_most:
            raise ValueError(f"must be at most {at_most}")
        return value

    return reader


def _one_of(*choices: str) -> Read:
    quoted = [f'"{choice}"' for choice in choices]
    wanted = f"must be {', '.join(quoted[:-1])} or {quoted[-1]}"

    def reader(value: object, _reading: _Reading) -> str:
        if value not in choices:
            raise ValueError(wanted)
        return str(value)

    return reader


def _duration(value: object, _reading: _Reading) -> timedelta:
    if isinstance(value, str):
        return parse_duration(value)
    shown = str(value).lower() if isinstance(value, bool) else str(value)
    raise ValueError(f'{shown} is not a duration; write it in quotes, like "24h" (45s, 90m or 3d)')


def _at_least_a_second(value: timedelta) -> None:
    if value < timedelta(seconds=1):
        raise ValueError("must be at least 1s")


def _deletable(value: timedelta) -> None:
    if value > _MAX_RECEIPT_TTL:
        raise ValueError(
            "must be at most 48h: Telegram lets a bot delete a message only within 48 hours"
        )


def _http_url(value: str, *, https_only: bool = False) -> None:
    parts = urlsplit(value)
    schemes = ("https",) if https_only else ("http", "https")
    if parts.scheme not in schemes or not parts.hostname:
        wanted = "an https:// URL" if https_only else "an http:// or https:// URL"
        raise ValueError(f"must be {wanted}")


def _https_url(value: str) -> None:
    _http_url(value, https_only=True)


def _time_zone_name(value: str) -> None:
    if zone_named(value) is None:
        raise ValueError(f"unknown time zone {value!r} (use a name like Asia/Seoul)")


def _username(value: str) -> None:
    if value.startswith("@"):
        raise ValueError("write the bot's username without the @")
    if not _USERNAME.fullmatch(value):
        raise ValueError("must be a Telegram username: 5 to 32 letters, digits or _")


def _token(value: object, reading: _Reading) -> Secret[str] | None:
    if not reading.read_token:
        # Not read: every command but `intake run` works without the token. A
        # literal token in the file is still refused.
        if not (isinstance(value, str) and _is_reference(value)):
            _secret_text(value, reading)  # raises the usual message
        return None
    token = _secret_text(value, reading)
    if not _TELEGRAM_TOKEN.fullmatch(token):
        raise ValueError(
            "the value does not look like a bot token "
            "(digits, a colon, then 30 or more letters, digits, _ or -, as @BotFather gives it)"
        )
    return Secret(token)


def _webhook_secret(value: object, reading: _Reading) -> Secret[str]:
    secret = _secret_text(value, reading)
    if not _WEBHOOK_SECRET.fullmatch(secret):
        raise ValueError(
            "the value must be 1 to 256 characters, each A-Z, a-z, 0-9, _ or - "
            "(Telegram's rule for a webhook secret token)"
        )
    return Secret(secret)


def _database_url(url: str, config_dir: Path) -> str:
    """Normalise a database URL to its async driver; relative SQLite paths use config_dir."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(
            "must be a database URL: sqlite:///PATH or postgresql://USER@HOST/DATABASE"
        )
    scheme = scheme.lower()
    if scheme in ("sqlite", "sqlite+aiosqlite"):
        if not rest.startswith("/"):
            raise ValueError("a SQLite URL is sqlite:///PATH (three slashes, then the file)")
        location, qmark, query = rest[1:].partition("?")
        if not location:
            raise ValueError("a SQLite URL needs a file: sqlite:///PATH")
        if location != ":memory:":
            path = Path(location).expanduser()
            if not path.is_absolute():
                path = config_dir / path
            location = os.path.normpath(path)
        return f"sqlite+aiosqlite:///{location}{qmark}{query}"
    if scheme in ("postgresql", "postgres", "postgresql+asyncpg"):
        if not rest or rest.startswith("/"):
            raise ValueError("a PostgreSQL URL needs a host: postgresql://USER@HOST/DATABASE")
        return f"postgresql+asyncpg://{rest}"
    shown = scheme if re.fullmatch(r"[a-z0-9+.-]{1,40}", scheme) else "?"
    raise ValueError(
        f'unsupported database "{shown}"; use sqlite:///PATH or postgresql://USER@HOST/DATABASE'
    )


def database_url(url: str, config_dir: Path) -> str:
    """A database URL given on the command line, normalised as the config file's is
    (``intake console --database``: a copy of the database, no config file needed)."""
    return _database_url(url, config_dir)


def _has_password(url: str) -> bool:
    try:
        return urlsplit(url).password is not None
    except ValueError:
        return False


def _database(value: object, reading: _Reading) -> str:
    url = _text(value, reading)
    if _is_reference(url):
        resolved = _read_reference(url, reading.config_dir)
        _note_secret_file(url, reading)
        url = resolved
    elif _has_password(url):
        raise ValueError(
            "this URL holds a password, and secrets are never written in the config file; "
            'put the whole URL in "env:NAME" or "file:PATH"'
        )
    return _database_url(url, reading.config_dir)


def _server_secret(value: object, reading: _Reading) -> Secret[bytes]:
    text = _secret_text(value, reading, kinds=(_FILE_PREFIX,))
    problem = (
        f"the file must hold {SERVER_SECRET_BYTES} random bytes as base64url text "
        '(make one with "intake init")'
    )
    if not _BASE64URL.fullmatch(text):
        raise ValueError(problem)
    unpadded = text.rstrip("=")
    try:
        raw = base64.urlsafe_b64decode(unpadded + "=" * (-len(unpadded) % 4))
    except (binascii.Error, ValueError):
        raise ValueError(problem) from None
    if len(raw) != SERVER_SECRET_BYTES:
        raise ValueError(
            f"the file must hold {SERVER_SECRET_BYTES} random bytes as base64url text, "
            f"not {len(raw)} bytes"
        )
    return Secret(raw)


# --- the sections ---------------------------------------------------------------------------

# Readers several settings share.
_AT_LEAST_A_SECOND = _checked(_duration, _at_least_a_second)
_DELETABLE_FOR = _checked(_duration, _deletable)
_HTTP_URL = _checked(_text, _http_url)
_LEVELS = _one_of("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass(frozen=True, kw_only=True, slots=True)
class TelegramSection:
    """``[telegram]``: how the bot talks to the Telegram Bot API."""

    token: Secret[str] | None = field(default=None, metadata=_reads(_token))
    username: str | None = field(default=None, metadata=_reads(_checked(_text, _username)))
    base_url: str = field(default="https://api.telegram.org/bot", metadata=_reads(_HTTP_URL))
    file_base_url: str = field(
        default="https://api.telegram.org/file/bot", metadata=_reads(_HTTP_URL)
    )
    mode: Literal["polling", "webhook"] = field(
        default="polling", metadata=_reads(_one_of("polling", "webhook"))
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class WebhookSection:
    """``[webhook]``: where the bot listens when ``[telegram] mode = "webhook"``."""

    listen: str = field(default="127.0.0.1", metadata=_reads(_checked(_text, _not_empty)))
    port: int = field(default=8443, metadata=_reads(_whole(1, 65535)))
    public_url: str | None = field(default=None, metadata=_reads(_checked(_text, _https_url)))
    secret_token: Secret[str] | None = field(default=None, metadata=_reads(_webhook_secret))


@dataclass(frozen=True, kw_only=True, slots=True)
class DatabaseSection:
    """``[database]``: where the bot keeps its (sealed) data."""

    # Not shown: a URL read from a reference may hold a password.
    url: str = field(repr=False, metadata=_reads(_database, when_unset="sqlite:///intake.db"))


@dataclass(frozen=True, kw_only=True, slots=True)
class KeysSection:
    """``[keys]``: the server's own secret and the sealing algorithm."""

    server_secret: Secret[bytes] = field(
        metadata=_reads(_server_secret, when_unset="file:server_secret")
    )
    kem: Literal["MLKEM768_X25519", "X25519"] = field(
        default="MLKEM768_X25519", metadata=_reads(_one_of("MLKEM768_X25519", "X25519"))
    )
    # kem = "X25519" makes every new group key classical only: refused unless this says
    # the admin accepts it (as `intake keygen` and `intake operator add` want --allow-classical).
    allow_classical: bool = field(default=False, metadata=_reads(_flag))


@dataclass(frozen=True, kw_only=True, slots=True)
class DefaultsSection:
    """``[defaults]``: the check-in schedule a new group starts with."""

    interval: timedelta = field(default=timedelta(hours=24), metadata=_reads(_duration))
    grace: timedelta = field(default=timedelta(hours=6), metadata=_reads(_duration))
    detained_after: timedelta = field(default=timedelta(days=3), metadata=_reads(_duration))


@dataclass(frozen=True, kw_only=True, slots=True)
class AlertsSection:
    """``[alerts]``: how unacknowledged alerts are repeated and escalated."""

    repeat_every: timedelta = field(
        default=timedelta(minutes=15), metadata=_reads(_AT_LEAST_A_SECOND)
    )
    escalate_after: timedelta = field(
        default=timedelta(hours=1), metadata=_reads(_AT_LEAST_A_SECOND)
    )
    heartbeat_url: str | None = field(default=None, metadata=_reads(_HTTP_URL))
    # Pausing, marking SAFE or clearing a SILENT or DETAINED group waits this
    # long for a second person's confirmation, then lapses.
    confirm_within: timedelta = field(
        default=timedelta(minutes=30), metadata=_reads(_AT_LEAST_A_SECOND)
    )
    # The longest a pause lasts; after it the schedule resumes by itself.
    max_pause: timedelta = field(default=timedelta(days=7), metadata=_reads(_AT_LEAST_A_SECOND))
    # The engine and the sender sleep until the next stored deadline and are woken
    # by writes (on PostgreSQL across processes by LISTEN/NOTIFY); this slow look
    # covers a wake-up that was lost.
    safety_look: timedelta = field(
        default=timedelta(seconds=30), metadata=_reads(_AT_LEAST_A_SECOND)
    )
    notifications: bool = field(default=True, metadata=_reads(_flag))


@dataclass(frozen=True, kw_only=True, slots=True)
class AuditSection:
    """``[audit]``: the audit chain's checkpoints, kept off the server."""

    checkpoint_every: timedelta = field(
        default=timedelta(hours=24), metadata=_reads(_AT_LEAST_A_SECOND)
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class IntakeSection:
    """``[intake]``: what happens to forwarded messages."""

    delete_forwarded: bool = field(default=True, metadata=_reads(_flag))
    receipt_ttl: timedelta = field(default=timedelta(seconds=60), metadata=_reads(_DELETABLE_FOR))
    # How long the follow-up question under a receipt can be answered before it deletes
    # itself (at most Telegram's 48 hours, like receipt_ttl).
    question_ttl: timedelta = field(default=timedelta(minutes=15), metadata=_reads(_DELETABLE_FOR))
    max_attachment_mb: int = field(default=20, metadata=_reads(_whole(1, 2000)))
    rate_limit_per_hour: int = field(default=120, metadata=_reads(_whole(1)))
    # Attachments of people with no role (strangers) kept per person and day; beyond it,
    # their details only (a stranger could otherwise fill the disk).
    stranger_attachment_mb_per_day: int = field(default=20, metadata=_reads(_whole(0)))
    # Attachments the whole installation keeps; beyond it, details only, and the admins
    # are told once.
    attachments_budget_mb: int = field(default=10_240, metadata=_reads(_whole(1)))


@dataclass(frozen=True, kw_only=True, slots=True)
class InvitesSection:
    """``[invites]``: one-time invite codes."""

    ttl: timedelta = field(default=timedelta(days=7), metadata=_reads(_duration))


@dataclass(frozen=True, kw_only=True, slots=True)
class RetentionSection:
    """``[retention]``: how long data is kept."""

    after_safe: timedelta = field(default=timedelta(days=30), metadata=_reads(_duration))


@dataclass(frozen=True, kw_only=True, slots=True)
class LoggingSection:
    """``[logging]``: how much the bot logs (never message text, identifiers or the token)."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = field(
        default="INFO", metadata=_reads(_LEVELS)
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class DisplaySection:
    """``[display]``: how times and words are shown to people who chose none themselves."""

    # The zone of every time shown (alerts, /status, /group, pictures, the CLI) unless a
    # person chose their own with /timezone (or the CLI's --tz).
    timezone: str = field(default="UTC", metadata=_reads(_checked(_text, _time_zone_name)))
    # The language of someone whose Telegram app is in neither English nor Korean.
    language: Literal["en", "ko"] = field(default="en", metadata=_reads(_one_of("en", "ko")))


# Every section, in the order they are read (and their mistakes reported).
SECTIONS: dict[str, type[Any]] = {
    "telegram": TelegramSection,
    "webhook": WebhookSection,
    "database": DatabaseSection,
    "keys": KeysSection,
    "defaults": DefaultsSection,
    "alerts": AlertsSection,
    "audit": AuditSection,
    "intake": IntakeSection,
    "invites": InvitesSection,
    "retention": RetentionSection,
    "logging": LoggingSection,
    "display": DisplaySection,
}


@dataclass(frozen=True, kw_only=True, slots=True)
class Settings:
    """All settings. Build it with :func:`load_settings`.

    ``config_path`` is the file they were read from (relative paths in it start from its
    folder, ``config_dir``); ``secret_files`` every file a ``file:`` reference was read from
    (token, secrets, database URL), so that their modes can be checked.
    """

    telegram: TelegramSection
    webhook: WebhookSection
    database: DatabaseSection
    keys: KeysSection
    defaults: DefaultsSection
    alerts: AlertsSection
    audit: AuditSection
    intake: IntakeSection
    invites: InvitesSection
    retention: RetentionSection
    logging: LoggingSection
    display: DisplaySection

    config_path: Path
    secret_files: tuple[Path, ...] = ()
    # Whether the bot token's reference was read (load_settings(read_token=...)).
    token_read: bool = True

    @property
    def config_dir(self) -> Path:
        """The folder relative paths in the config file are taken from."""
        return self.config_path.parent

    def require_token(self) -> str:
        """The bot token, or ConfigError if the config file does not set one."""
        if self.telegram.token is None and not self.token_read:
            # A bug, not a user's mistake: the command loaded its settings without the token.
            raise RuntimeError("the settings were loaded without the bot token")
        if self.telegram.token is None:
            raise ConfigError(
                self.config_path,
                f'[telegram] token is not set: add token = "env:NAME" or "file:PATH" '
                f"to {self.config_path}",
                setting=None,
            )
        return self.telegram.token.get_secret_value()

    def server_secret_bytes(self) -> bytes:
        """The 32-byte server secret."""
        return self.keys.server_secret.get_secret_value()


# --- loading --------------------------------------------------------------------------------


def resolve_config_path(cli_value: Path | None) -> Path:
    """The config file to use: ``--config``, else ``$INTAKE_CONFIG``, else ``./config.toml``."""
    if cli_value is not None:
        return cli_value
    from_env = os.environ.get(CONFIG_ENV_VAR)
    if from_env:
        return Path(from_env)
    return Path.cwd() / DEFAULT_CONFIG_NAME


def _read_section(name: str, table: object, reading: _Reading) -> Any:
    """One ``[section]`` of the file: each setting read in order, then anything unknown."""
    if not isinstance(table, Mapping):
        raise _Mistake(f"[{name}]", "must be a table of settings: write [section] on its own line")
    settings = fields(SECTIONS[name])
    values: dict[str, object] = {}
    for setting in settings:
        when_unset = setting.metadata["when_unset"]
        if setting.name in table:
            value = table[setting.name]
        elif when_unset is not None:
            value = when_unset
        else:
            continue  # the default
        try:
            values[setting.name] = setting.metadata["read"](value, reading)
        except ValueError as error:
            unresolved = isinstance(error, _Unresolved)
            raise _Mistake(f"[{name}] {setting.name}", str(error), unresolved=unresolved) from None
    known = {setting.name for setting in settings}
    for key in table:
        if key not in known:
            raise _Mistake(f"[{name}] {key}", "unknown setting")
    return SECTIONS[name](**values)


def _read_settings(data: Mapping[str, object], reading: _Reading) -> Settings:
    # A missing section is read as an empty table, so that its references (like
    # keys.server_secret's) are resolved against the config folder too.
    sections = {name: _read_section(name, data.get(name, {}), reading) for name in SECTIONS}
    for key, value in data.items():
        if key not in SECTIONS:
            if isinstance(value, Mapping):
                raise _Mistake(f"[{key}]", "unknown section")
            raise _Mistake(key, "unknown setting outside any [section]")
    keys: KeysSection = sections["keys"]
    if keys.kem == "X25519" and not keys.allow_classical:
        raise _Mistake(
            "[keys] kem",
            '"X25519" alone is classical only: what is sealed to it falls to a future quantum '
            "computer; add allow_classical = true to [keys] to accept that",
        )
    webhook: WebhookSection = sections["webhook"]
    if sections["telegram"].mode == "webhook":
        missing = [
            name for name in ("public_url", "secret_token") if getattr(webhook, name) is None
        ]
        if missing:
            both = " and ".join(f"[webhook] {name}" for name in missing)
            raise _Mistake(f"[webhook] {missing[0]}", f'[telegram] mode = "webhook" needs {both}')
    return Settings(
        **sections,
        config_path=reading.config_path,
        secret_files=tuple(dict.fromkeys(reading.secret_files)),
        token_read=reading.read_token,
    )


def load_settings(path: Path, *, read_token: bool = True) -> Settings:
    """Read, check and resolve the config file at ``path``.

    With ``read_token=False`` the bot token's reference is checked but not read, so that
    an unset ``env:`` variable or a missing token file stops only the commands that talk
    to Telegram.

    Raises ConfigError (one line, starting with ``path``) for every mistake a user can make:
    a missing or unreadable file, bad TOML, unknown sections or settings, wrong values, and
    secret references that cannot be read.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            path, 'no such file; run "intake init" first or pass --config PATH'
        ) from None
    except OSError as error:
        raise ConfigError(path, f"cannot read: {error.strerror or type(error).__name__}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(path, "not valid TOML: the file is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(path, f"not valid TOML: {error}") from None
    except (ValueError, RecursionError):  # tomllib's limits, not its syntax errors
        raise ConfigError(
            path, "not valid TOML: a number too long or tables nested too deeply"
        ) from None
    reading = _Reading(config_path=Path(os.path.normpath(path.absolute())), read_token=read_token)
    try:
        return _read_settings(data, reading)
    except _Mistake as mistake:
        failure = ConfigError(
            path, mistake.message, setting=mistake.setting, unresolved=mistake.unresolved
        )
    # Raised outside the handler, so with no exception chain at all: the frames of the
    # mistake's chain hold the values read (a resolved secret among them), and a crash
    # reporter that records local variables would keep them.
    raise failure


def example_config_text() -> str:
    """The commented example configuration shipped with the package: bot/config.example.toml."""
    return resources.files("bot").joinpath(_EXAMPLE_NAME).read_text(encoding="utf-8")
