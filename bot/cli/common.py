"""What every ``intake`` command shares: the root command and its sub-commands,
the consoles, the one-line errors, and one database transaction per command."""

from __future__ import annotations

import contextlib
import enum
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

# Imported where used: `intake --help` must not pay for the database and crypto stacks.
if TYPE_CHECKING:
    from rich.console import Console

    from bot.config import Settings
    from storage import keyfile
    from storage.crypto import PrivateKey, ServerKeys, SigningKey
    from storage.models import Group
    from storage.sealing import Keyring
    from storage.session import AsyncSession
    from storage.signers import Signers

PASSPHRASE_ENV = "INTAKE_PASSPHRASE"  # noqa: S105 (the name of a variable, not a secret)
ADMIN_ACTOR = "admin@cli"

app = typer.Typer(
    name="intake",
    help="Check-in intake: seal covert check-ins, watch for silence, alert activists.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"intake {version('checkin-intake')}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", is_eager=True, callback=_version
        ),
    ] = False,
    tz: Annotated[
        str | None,
        typer.Option(
            "--tz",
            help="Show times in this zone (Asia/Seoul) instead of [display] timezone.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Check-in intake: seal covert check-ins, watch for silence, alert activists."""
    if tz is not None:
        _display.zone = _zone(tz, "--tz")
        _display.chosen = True


# --------------------------------------------------------------------------- times shown


@dataclass(slots=True)
class _Display:
    """The zone every time is shown in: ``intake --tz``, else [display] timezone (read
    with the settings, in ``workspace``), else UTC."""

    zone: tzinfo = UTC
    chosen: bool = False


_display = _Display()


def _zone(name: str, where: str) -> tzinfo:
    from storage.timeutil import zone_named

    zone = zone_named(name)
    if zone is None:
        fail(f"{where}: unknown time zone (use a name like Asia/Seoul)")
    return zone


def chosen_zone() -> tzinfo | None:
    """The zone ``intake --tz`` chose, if it chose one."""
    return _display.zone if _display.chosen else None


def use_display_zone(settings: Settings) -> None:
    if not _display.chosen:
        _display.zone = _zone(settings.display.timezone, "[display] timezone")


def display_zone() -> tzinfo:
    """The zone times are shown in (``intake --tz``, else [display] timezone, else UTC);
    read once the settings are (``workspace``, ``prepare``)."""
    return _display.zone


def zone_name() -> str:
    """The display zone's name (Asia/Seoul, UTC), for a heading over short times."""
    return str(_display.zone)


def short_when(moment: datetime | None) -> str:
    """Month, day and time in the display zone, for a table column headed with
    ``zone_name()``: a year is rarely in doubt there."""
    return "—" if moment is None else f"{moment.astimezone(_display.zone):%m-%d %H:%M}"


def when(moment: datetime | None) -> str:
    """A time for people: in the display zone, to the minute, always with its zone."""
    if moment is None:
        return "—"
    local = moment.astimezone(_display.zone)
    label = local.tzname() or ""
    if not label.isalpha():  # "+07" says less than the zone's name
        label = str(_display.zone)
    return f"{local:%Y-%m-%d %H:%M} {label}"


class Format(enum.StrEnum):
    TABLE = "table"
    JSON = "json"


FormatOption = Annotated[
    Format, typer.Option("--format", help="A table for people, or JSON for scripts.")
]


def print_json(value: object) -> None:
    """JSON for scripts: times in UTC, ISO 8601 (``iso``)."""

    print(json.dumps(value, indent=2, ensure_ascii=False))


group_app = typer.Typer(help="Travel groups, known only by codename.", no_args_is_help=True)
operator_app = typer.Typer(
    help="Operators: the keys that open the sealed inbox.", no_args_is_help=True
)
member_app = typer.Typer(
    help="Travellers in a group: identifiers kept only as blind indexes.", no_args_is_help=True
)
codebook_app = typer.Typer(
    help="Agreed phrases and what each one signals (sealed; never printed).",
    no_args_is_help=True,
)
app.add_typer(group_app, name="group")
app.add_typer(operator_app, name="operator")
app.add_typer(member_app, name="member")
app.add_typer(codebook_app, name="codebook")


class _Console:
    """A rich console made on first use: `intake --help` and the commands that print
    plain lines do not load rich (issue #16: help within 0.3 s)."""

    __slots__ = ("_console", "_stderr")

    def __init__(self, *, stderr: bool) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    @property
    def rich(self) -> Console:
        """The console itself (for a progress bar, or its width)."""
        if self._console is None:
            from rich.console import Console

            # markup off: messages carry "[section] key", which rich would take for a tag.
            self._console = Console(
                stderr=self._stderr, highlight=False, soft_wrap=True, markup=False
            )
        return self._console

    def print(self, *objects: Any, **options: Any) -> None:
        self.rich.print(*objects, **options)

    @property
    def is_terminal(self) -> bool:
        return self.rich.is_terminal


out = _Console(stderr=False)
err = _Console(stderr=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="Config file (else $INTAKE_CONFIG, else ./config.toml).",
        show_default=False,
        dir_okay=False,
    ),
]


class Refused(Exception):
    """A request the stored data refuses (a duplicate, a shredded group)."""


# The mistakes a user can make, each of which prints its own message as one line, named
# by module so that checking one imports nothing (an exception of a module that was never
# imported cannot have been raised).
USER_ERRORS: tuple[tuple[str, str], ...] = (
    ("bot.config", "ConfigError"),
    ("storage.db", "DatabaseError"),
    ("storage.keyfile", "KeyFileError"),
    ("storage.crypto", "CryptoError"),
    ("bot.schedules", "BadSchedule"),
    ("bot.group_import", "ImportFileError"),
    ("storage.groups", "GroupExists"),
    ("storage.groups", "UnknownGroup"),
    ("storage.operators", "OperatorExists"),
    ("storage.sealing", "NoRecipients"),
    ("storage.sealing", "NotReadable"),
    ("storage.people", "InviteError"),
    ("storage.identifiers", "BadIdentifier"),
    ("storage.legs", "BadLegName"),
    ("storage.legs", "LegExists"),
    ("bot.phrases", "UnmatchablePhrase"),
    ("storage.signers", "SignersFileError"),
    ("storage.audit", "CheckpointsFileError"),
    (__name__, "Refused"),
)


def is_user_error(exc: BaseException) -> bool:
    for module, name in USER_ERRORS:
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type) and isinstance(exc, cls):
            return True
    return False


class UsageError(Exception):
    pass


def fail(message: str) -> NoReturn:
    raise UsageError(message)


T = TypeVar("T")


def run(coro: Awaitable[T]) -> T:
    import asyncio  # here: `intake --help` needs no event loop

    async def wrapper() -> T:
        return await coro

    return asyncio.run(wrapper())


@dataclass(frozen=True, slots=True)
class Workspace:
    settings: Settings
    server: ServerKeys
    session: AsyncSession


@dataclass(frozen=True, slots=True)
class Prepared:
    """What every command reads and checks before its database: the settings (the
    display zone taken from them), the server keys and the pinned signers file."""

    settings: Settings
    server: ServerKeys
    pins: Path
    signers: Signers | None


def prepare(config: Path | None) -> Prepared:
    """The settings, server keys and signers of ``workspace``, with its checks and
    errors, for a command that reads the database another way (`intake status`)."""
    from bot.config import load_settings, resolve_config_path
    from storage.crypto import ServerKeys
    from storage.signers import Signers, signers_path

    settings = load_settings(resolve_config_path(config), read_token=False)
    use_display_zone(settings)
    server = ServerKeys(settings.server_secret_bytes())
    pins = signers_path(settings.config_dir)
    return Prepared(settings=settings, server=server, pins=pins, signers=Signers.load(pins))


@contextlib.asynccontextmanager
async def workspace(
    config: Path | None, prepared: Prepared | None = None
) -> AsyncIterator[Workspace]:
    """Settings, server keys and one database transaction: committed if the command
    finishes, rolled back if it fails. ``prepared``: ``prepare(config)`` already done."""
    import sqlalchemy as sa

    from storage.db import DatabaseError, open_database, reason, session_factory

    prepared = prepared or prepare(config)
    settings, server = prepared.settings, prepared.server
    from storage.trust import Trust, bind

    try:
        async with open_database(settings.database.url, must_exist=True) as engine:
            # Every session on this engine keys the audit chain and checks signatures.
            bind(engine, server=server, trust=Trust(prepared.signers, prepared.pins))
            async with session_factory(engine)() as session, session.begin():
                yield Workspace(settings=settings, server=server, session=session)
    except (OSError, sa.exc.DBAPIError) as exc:
        raise DatabaseError(f"database: {reason(exc)}") from None


def duration_option(value: str | None, name: str) -> timedelta | None:
    from bot.durations import parse_duration

    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        fail(f"{name}: {exc}")


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


# --------------------------------------------------------------------------- the operator's key

KEY_ENV = "INTAKE_KEY"

KeyOption = Annotated[
    Path | None,
    typer.Option(
        "--key",
        help="The operator's key file (else $INTAKE_KEY, else ./operator.key).",
        show_default=False,
        dir_okay=False,
    ),
]


def key_path(key: Path | None) -> Path:
    return key or Path(os.environ.get(KEY_ENV) or "operator.key")


def unlock_operator_key(key: Path | None) -> PrivateKey:
    """Read and unlock the operator's key file, asking for its passphrase once
    (or taking it from $INTAKE_PASSPHRASE in scripts)."""
    return unlock_operator_keys(key).private


def unlock_operator_keys(key: Path | None) -> keyfile.OperatorKeys:
    """``unlock_operator_key``, with the signing key the file holds (None in a file
    made before signing keys: `intake operator sign` adds one)."""
    from storage import keyfile

    path = key_path(key)
    return keyfile.unlock_keys(keyfile.read(path), passphrase_for(path))


def passphrase_for(path: Path) -> str:
    passphrase = os.environ.get(PASSPHRASE_ENV)
    if not passphrase:
        if not sys.stdin.isatty():
            fail(
                f"no terminal to ask for the passphrase of {path}; set {PASSPHRASE_ENV} in scripts"
            )
        passphrase = typer.prompt(f"Passphrase for {path}", hide_input=True)
    return passphrase


SignKeyOption = Annotated[
    Path | None,
    typer.Option(
        "--key",
        help="An operator's key file: sign the new row at once (else the bot does not use it "
        "until an operator runs `intake operator sign --key FILE`).",
        show_default=False,
        dir_okay=False,
    ),
]


def signing_key_of(key: Path | None) -> SigningKey | None:
    """The signing key of ``--key`` when given (unlocked before any transaction)."""
    if key is None:
        return None
    signing = unlock_operator_keys(key).signing
    if signing is None:
        fail(f"{key} holds no signing key yet: run `intake operator sign --key {key}` first")
    return signing


def note_unsigned(what: str, signing: SigningKey | None) -> None:
    if signing is None:
        err.print(
            f"note: {what} is not signed, so the bot does not use it until an operator runs "
            "`intake operator sign --key FILE` (or give --key now)"
        )


@dataclass(frozen=True, slots=True)
class OperatorWorkspace:
    ws: Workspace
    keyring: Keyring


@contextlib.asynccontextmanager
async def operator_workspace(
    config: Path | None, private_key: PrivateKey, signing: SigningKey | None = None
) -> AsyncIterator[OperatorWorkspace]:
    """``workspace`` plus the keyring of the operator whose key was unlocked.
    Unlock the key before calling (the passphrase prompt must not hold a transaction)."""
    from storage.sealing import Keyring

    async with workspace(config) as ws:
        keyring = await Keyring.for_key(ws.session, private_key, signing)
        yield OperatorWorkspace(ws=ws, keyring=keyring)


# --------------------------------------------------------------------------- operator reads


def local_audit_path(key: Path | None) -> Path:
    """The operator's own audit file, beside their key file: every read is written
    there too, so that a read on a copy of the database (audited only into the copy)
    is still on record; `intake audit merge` brings it into the real log."""
    path = key_path(key)
    return path.with_name(path.name + ".audit")


async def audit_read(
    session: AsyncSession,
    keyring: Keyring,
    key: Path | None,
    *,
    action: str,
    subject: str | None,
    details: dict[str, object],
) -> None:
    """Audit an operator's read in the database and in their local audit file."""
    from storage import audit
    from storage.timeutil import utc_now

    await audit.append_operator_act(
        session,
        local_audit_path(key),
        actor=keyring.operator.fingerprint[:16],
        action=action,
        subject=subject,
        at=utc_now(),
        details=details,
    )


# --------------------------------------------------------------------------- shared by the commands


def codename_argument(text: str) -> str:
    # Never echo the argument: in these commands a misplaced phone number or phrase
    # would otherwise land on the screen and in the scrollback.
    from bot.schedules import BadSchedule, normalise_codename

    try:
        return normalise_codename(text)
    except BadSchedule:
        fail("CODENAME: use 2 to 32 letters, digits and dashes, like PINE-7")


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def not_shredded(group: Group) -> Group:
    if group.shredded_at is not None:
        raise Refused(f"group {group.codename} was shredded")
    return group
