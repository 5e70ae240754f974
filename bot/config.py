"""Typed settings, read once from a TOML file.

Every section and every setting is optional; anything unknown is an error. Secrets (the bot
token, the webhook secret token, the server secret) are never written in the file itself: the
file holds a reference, ``"env:NAME"`` (an environment variable) or ``"file:PATH"`` (a file,
relative paths taken from the config file's folder), resolved when the settings are loaded.

Everything a user can get wrong comes out as one :class:`ConfigError`, whose message is one line
that starts with the config file's path and names the setting as ``[section] key``.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import tomllib
from collections.abc import Mapping
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretBytes,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from bot.durations import DURATION_HINT, parse_duration

__all__ = [
    "CONFIG_ENV_VAR",
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

_CONTEXT_PATH = "config_path"
# Validation context keys: whether to read the bot token (only `intake run` and
# `intake doctor` need it), and the list that collects every secret file read.
_CONTEXT_TOKEN = "read_token"  # noqa: S105 (a key name, not a secret)
_CONTEXT_FILES = "secret_files"
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

    def __init__(self, path: Path | str, message: str, *, setting: str | None = None) -> None:
        self.path = Path(path)
        self.setting = setting
        self.message = " ".join(message.split("\n"))
        line = f"{path}: {setting}: {self.message}" if setting else f"{path}: {self.message}"
        super().__init__(" ".join(line.splitlines()))


# --- reading references ---------------------------------------------------------------------


def _config_path(info: ValidationInfo) -> Path:
    context = info.context
    if isinstance(context, Mapping):
        path = context.get(_CONTEXT_PATH)
        if isinstance(path, Path):
            return path
    return Path.cwd() / DEFAULT_CONFIG_NAME


def _config_dir(info: ValidationInfo) -> Path:
    return _config_path(info).parent


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
            raise ValueError(f"environment variable {name} is not set")
        value = value.strip()
        if not value:
            raise ValueError(f"environment variable {name} is empty")
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
        raise ValueError(f"cannot read {path}: {reason}") from None
    except UnicodeDecodeError:
        raise ValueError(f"cannot read {path}: it is not UTF-8 text") from None
    value = text.strip()
    if not value:
        raise ValueError(f"file {path} is empty")
    return value


def _note_secret_file(reference: str, info: ValidationInfo) -> None:
    """Remember a ``file:`` reference's path, so that its mode can be checked."""
    context = info.context
    if not reference.startswith(_FILE_PREFIX) or not isinstance(context, dict):
        return
    files = context.get(_CONTEXT_FILES)
    if isinstance(files, list):
        path = Path(reference.removeprefix(_FILE_PREFIX)).expanduser()
        if not path.is_absolute():
            path = _config_dir(info) / path
        files.append(Path(os.path.normpath(path)))


def _secret_text(
    value: object, info: ValidationInfo, *, kinds: tuple[str, ...] = (_ENV_PREFIX, _FILE_PREFIX)
) -> str:
    """Resolve a secret setting's reference; refuse literal values and placeholders."""
    use = " or ".join(f'"{kind}{"NAME" if kind == _ENV_PREFIX else "PATH"}"' for kind in kinds)
    if isinstance(value, SecretStr):  # built in code, not read from a file
        text = value.get_secret_value()
    elif isinstance(value, str):
        if not value.startswith(kinds):
            if _is_reference(value):
                raise ValueError(f"must be a {use} reference")
            raise ValueError(f"secrets are never written in the config file; use {use}")
        text = _read_reference(value, _config_dir(info))
        _note_secret_file(value, info)
    else:
        raise ValueError(f"must be a reference in quotes: {use}")
    if text.lower() in _PLACEHOLDERS:
        source = f" from {value}" if isinstance(value, str) else ""
        raise ValueError(f"the value{source} is a placeholder; put the real secret there")
    return text


# --- field types ----------------------------------------------------------------------------


def _duration(value: object) -> timedelta:
    if isinstance(value, timedelta):
        if value <= timedelta(0):
            raise ValueError(f"a duration must be more than 0s; {DURATION_HINT}")
        return value
    if isinstance(value, str):
        return parse_duration(value)
    shown = str(value).lower() if isinstance(value, bool) else str(value)
    raise ValueError(f'{shown} is not a duration; write it in quotes, like "24h" (45s, 90m or 3d)')


def _http_url(value: str, *, https_only: bool = False) -> str:
    parts = urlsplit(value)
    schemes = ("https",) if https_only else ("http", "https")
    if parts.scheme not in schemes or not parts.hostname:
        wanted = "an https:// URL" if https_only else "an http:// or https:// URL"
        raise ValueError(f"must be {wanted}")
    return value


Duration = Annotated[timedelta, BeforeValidator(_duration)]


def _time_zone_name(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (use a name like Asia/Seoul)") from None
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, hide_input_in_errors=True)


class TelegramSection(_Section):
    """``[telegram]``: how the bot talks to the Telegram Bot API."""

    token: SecretStr | None = None
    username: str | None = None
    base_url: str = "https://api.telegram.org/bot"
    file_base_url: str = "https://api.telegram.org/file/bot"
    mode: Literal["polling", "webhook"] = "polling"

    @field_validator("token", mode="before")
    @classmethod
    def _resolve_token(cls, value: object, info: ValidationInfo) -> SecretStr | None:
        if value is None:
            return None
        context = info.context
        if isinstance(context, Mapping) and context.get(_CONTEXT_TOKEN) is False:
            # Not read: every command but `intake run` works without the token. A
            # literal token in the file is still refused.
            if not (isinstance(value, str) and _is_reference(value)):
                _secret_text(value, info)  # raises the usual message
            return None
        token = _secret_text(value, info)
        if not _TELEGRAM_TOKEN.fullmatch(token):
            raise ValueError(
                "the value does not look like a bot token "
                "(digits, a colon, then 30 or more letters, digits, _ or -, as @BotFather gives it)"
            )
        return SecretStr(token)

    @field_validator("username")
    @classmethod
    def _check_username(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.startswith("@"):
            raise ValueError("write the bot's username without the @")
        if not _USERNAME.fullmatch(value):
            raise ValueError("must be a Telegram username: 5 to 32 letters, digits or _")
        return value

    @field_validator("base_url", "file_base_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return _http_url(value)


class WebhookSection(_Section):
    """``[webhook]``: where the bot listens when ``[telegram] mode = "webhook"``."""

    listen: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(default=8443, ge=1, le=65535)
    public_url: str | None = None
    secret_token: SecretStr | None = None

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value, https_only=True)

    @field_validator("secret_token", mode="before")
    @classmethod
    def _resolve_secret_token(cls, value: object, info: ValidationInfo) -> SecretStr | None:
        if value is None:
            return None
        secret = _secret_text(value, info)
        if not _WEBHOOK_SECRET.fullmatch(secret):
            raise ValueError(
                "the value must be 1 to 256 characters, each A-Z, a-z, 0-9, _ or - "
                "(Telegram's rule for a webhook secret token)"
            )
        return SecretStr(secret)


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


class DatabaseSection(_Section):
    """``[database]``: where the bot keeps its (sealed) data."""

    url: str = Field(default="sqlite:///intake.db", validate_default=True, repr=False)

    @field_validator("url", mode="before")
    @classmethod
    def _resolve_url(cls, value: object, info: ValidationInfo) -> object:
        if not isinstance(value, str):
            return value  # the str type check reports it
        if _is_reference(value):
            url = _read_reference(value, _config_dir(info))
            _note_secret_file(value, info)
        elif _has_password(value):
            raise ValueError(
                "this URL holds a password, and secrets are never written in the config file; "
                'put the whole URL in "env:NAME" or "file:PATH"'
            )
        else:
            url = value
        return _database_url(url, _config_dir(info))


class KeysSection(_Section):
    """``[keys]``: the server's own secret and the sealing algorithm."""

    server_secret: SecretBytes = Field(default="file:server_secret", validate_default=True)
    kem: Literal["MLKEM768_X25519", "X25519"] = "MLKEM768_X25519"

    @field_validator("server_secret", mode="before")
    @classmethod
    def _resolve_server_secret(cls, value: object, info: ValidationInfo) -> SecretBytes:
        if isinstance(value, SecretBytes):  # built in code, not read from a file
            raw = value.get_secret_value()
        else:
            text = _secret_text(value, info, kinds=(_FILE_PREFIX,))
            problem = (
                f"the file must hold {SERVER_SECRET_BYTES} random bytes as base64url text "
                '(make one with "intake init")'
            )
            if not _BASE64URL.fullmatch(text):
                raise ValueError(problem)
            try:
                raw = base64.urlsafe_b64decode(
                    text.rstrip("=") + "=" * (-len(text.rstrip("=")) % 4)
                )
            except (binascii.Error, ValueError):
                raise ValueError(problem) from None
        if len(raw) != SERVER_SECRET_BYTES:
            raise ValueError(
                f"the file must hold {SERVER_SECRET_BYTES} random bytes as base64url text, "
                f"not {len(raw)} bytes"
            )
        return SecretBytes(raw)


class DefaultsSection(_Section):
    """``[defaults]``: the check-in schedule a new group starts with."""

    interval: Duration = timedelta(hours=24)
    grace: Duration = timedelta(hours=6)
    detained_after: Duration = timedelta(days=3)


class AlertsSection(_Section):
    """``[alerts]``: how unacknowledged alerts are repeated and escalated."""

    repeat_every: Duration = timedelta(minutes=15)
    escalate_after: Duration = timedelta(hours=1)
    heartbeat_url: str | None = None
    # Pausing, marking SAFE or clearing a SILENT or DETAINED group waits this
    # long for a second person's confirmation, then lapses.
    confirm_within: Duration = timedelta(minutes=30)
    # The longest a pause lasts; after it the schedule resumes by itself.
    max_pause: Duration = timedelta(days=7)
    # The engine and the sender sleep until the next stored deadline and are woken
    # by writes (on PostgreSQL across processes by LISTEN/NOTIFY); this slow look
    # covers a wake-up that was lost.
    safety_look: Duration = timedelta(seconds=30)
    notifications: bool = True

    @field_validator("repeat_every", "escalate_after", "confirm_within", "max_pause", "safety_look")
    @classmethod
    def _check_positive(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=1):
            raise ValueError("must be at least 1s")
        return value

    @field_validator("heartbeat_url")
    @classmethod
    def _check_heartbeat_url(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value)


class AuditSection(_Section):
    """``[audit]``: the audit chain's checkpoints, kept off the server."""

    checkpoint_every: Duration = timedelta(hours=24)

    @field_validator("checkpoint_every")
    @classmethod
    def _check_positive(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=1):
            raise ValueError("must be at least 1s")
        return value


class IntakeSection(_Section):
    """``[intake]``: what happens to forwarded messages."""

    delete_forwarded: bool = True
    receipt_ttl: Duration = timedelta(seconds=60)
    # How long the follow-up question under a receipt can be answered before it deletes
    # itself (at most Telegram's 48 hours, like receipt_ttl).
    question_ttl: Duration = timedelta(minutes=15)
    max_attachment_mb: int = Field(default=20, ge=1, le=2000)
    rate_limit_per_hour: int = Field(default=120, ge=1)
    # Attachments of people with no role (strangers) kept per person and day; beyond it,
    # their details only (a stranger could otherwise fill the disk).
    stranger_attachment_mb_per_day: int = Field(default=20, ge=0)
    # Attachments the whole installation keeps; beyond it, details only, and the admins
    # are told once.
    attachments_budget_mb: int = Field(default=10_240, ge=1)

    @field_validator("receipt_ttl", "question_ttl")
    @classmethod
    def _check_receipt_ttl(cls, value: timedelta) -> timedelta:
        if value > _MAX_RECEIPT_TTL:
            raise ValueError(
                "must be at most 48h: Telegram lets a bot delete a message only within 48 hours"
            )
        return value


class InvitesSection(_Section):
    """``[invites]``: one-time invite codes."""

    ttl: Duration = timedelta(days=7)


class RetentionSection(_Section):
    """``[retention]``: how long data is kept."""

    after_safe: Duration = timedelta(days=30)


class LoggingSection(_Section):
    """``[logging]``: how much the bot logs (never message text, identifiers or the token)."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class DisplaySection(_Section):
    """``[display]``: how times and words are shown to people who chose none themselves."""

    # The zone of every time shown (alerts, /status, /group, pictures, the CLI) unless a
    # person chose their own with /timezone (or the CLI's --tz).
    timezone: str = "UTC"
    # The language of someone whose Telegram app is in neither English nor Korean.
    language: Literal["en", "ko"] = "en"

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        return _time_zone_name(value)


class Settings(_Section):
    """All settings. Build it with :func:`load_settings`.

    Secret references are resolved during validation, relative to the folder of the config file
    named in the validation context (``{"config_path": Path}``); ``config_path`` and
    ``config_dir`` say which file that was.
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

    _config_path: Path = PrivateAttr(default_factory=lambda: Path.cwd() / DEFAULT_CONFIG_NAME)
    _secret_files: tuple[Path, ...] = PrivateAttr(default=())
    _token_read: bool = PrivateAttr(default=True)

    @model_validator(mode="before")
    @classmethod
    def _fill_sections(cls, data: object) -> object:
        # Missing sections are validated as empty tables, so their defaults (which may be
        # references, like keys.server_secret) are resolved against the config folder too.
        if isinstance(data, Mapping):
            return {name: {} for name in cls.model_fields} | dict(data)
        return data

    @model_validator(mode="after")
    def _check_webhook(self, info: ValidationInfo) -> Self:
        self._config_path = _config_path(info)
        context = info.context
        if isinstance(context, Mapping):
            files = context.get(_CONTEXT_FILES)
            if isinstance(files, list):
                self._secret_files = tuple(dict.fromkeys(files))
            self._token_read = context.get(_CONTEXT_TOKEN) is not False
        if self.telegram.mode == "webhook":
            missing = [
                name
                for name in ("public_url", "secret_token")
                if getattr(self.webhook, name) is None
            ]
            if missing:
                both = " and ".join(f"[webhook] {name}" for name in missing)
                raise PydanticCustomError(
                    "setting",
                    "{message}",
                    {
                        "section": "webhook",
                        "key": missing[0],
                        "message": f'[telegram] mode = "webhook" needs {both}',
                    },
                )
        return self

    @property
    def config_path(self) -> Path:
        """The config file these settings were read from."""
        return self._config_path

    @property
    def secret_files(self) -> tuple[Path, ...]:
        """Every file a ``file:`` reference was read from (token, secrets, database URL)."""
        return self._secret_files

    @property
    def config_dir(self) -> Path:
        """The folder relative paths in the config file are taken from."""
        return self._config_path.parent

    def require_token(self) -> str:
        """The bot token, or ConfigError if the config file does not set one."""
        if self.telegram.token is None and not self._token_read:
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


def _error_message(error: Mapping[str, Any], data: Mapping[str, Any]) -> tuple[str | None, str]:
    """``(setting, message)`` for pydantic's first error, in the config file's words."""
    loc = [str(part) for part in error["loc"]]
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "setting":
        return f"[{ctx['section']}] {ctx['key']}", str(ctx["message"])
    if not loc:
        return None, str(error["msg"])
    section = loc[0]
    if len(loc) == 1:
        if kind == "extra_forbidden":
            if isinstance(data.get(section), Mapping):
                return f"[{section}]", "unknown section"
            return section, "unknown setting outside any [section]"
        if kind in ("model_type", "dict_type", "model_attributes_type"):
            return f"[{section}]", "must be a table of settings: write [section] on its own line"
        return f"[{section}]", str(error["msg"])
    setting = f"[{section}] {'.'.join(loc[1:])}"
    if kind == "extra_forbidden":
        return setting, "unknown setting"
    if kind == "value_error" and "error" in ctx:
        return setting, str(ctx["error"])
    if kind == "bool_type":
        return setting, "must be true or false"
    if kind == "string_type":
        return setting, "must be text in quotes"
    if kind == "int_type":
        return setting, "must be a whole number, without quotes"
    if kind == "greater_than_equal" and "ge" in ctx:
        return setting, f"must be at least {ctx['ge']}"
    if kind == "less_than_equal" and "le" in ctx:
        return setting, f"must be at most {ctx['le']}"
    if kind == "string_too_short":
        return setting, "must not be empty"
    message = str(error["msg"])
    if message.startswith("Input should be"):
        message = "must be" + message.removeprefix("Input should be")
    if kind == "literal_error":
        message = message.replace("'", '"')
    return setting, message


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
    config_path = Path(os.path.normpath(path.absolute()))
    try:
        context = {_CONTEXT_PATH: config_path, _CONTEXT_TOKEN: read_token, _CONTEXT_FILES: []}
        return Settings.model_validate(data, context=context)
    except ValidationError as error:
        first = error.errors(include_url=False, include_input=False)[0]
        setting, message = _error_message(first, data)
        # "from None": the pydantic error is not chained, so no traceback can show an input.
        raise ConfigError(path, message, setting=setting) from None


def example_config_text() -> str:
    """The commented example configuration shipped with the package: bot/config.example.toml."""
    return resources.files("bot").joinpath(_EXAMPLE_NAME).read_text(encoding="utf-8")
