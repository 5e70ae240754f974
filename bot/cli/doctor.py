"""`intake doctor`: is this installation ready to run? One line per check, each with
the fix when it fails; exit status 0 only when every check holds.

It reads everything `intake run` would (the token included) and asks Telegram who the
bot is, but changes nothing: not the database (no migration), not the webhook.
"""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bot.cli.common import ConfigOption, app, out, run

if TYPE_CHECKING:
    from bot.config import Settings
    from storage.session import AsyncSession
    from storage.trust import Rejected

MIN_FREE_BYTES = 500 * 1024 * 1024  # room for a backlog of attachments and a VACUUM
MAX_CLOCK_SKEW_S = 30.0  # schedules are in minutes; alerts quote times to the minute


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str


FormatOption = Annotated[
    str,
    typer.Option("--format", help="text (default) or json.", show_default=False),
]


@app.command()
def doctor(config: ConfigOption = None, format: FormatOption = "text") -> None:
    """Check the installation: config, secrets, file modes, database, operators, the
    operators' signatures on what the bot trusts, the bot token at Telegram, the webhook,
    disk space and the clock. Changes nothing."""
    if format not in ("text", "json"):
        raise typer.BadParameter("use text or json", param_hint="--format")
    checks = run(diagnose(config))
    if format == "json":
        print(json.dumps({"ok": all(c.ok for c in checks), "checks": [asdict(c) for c in checks]}))
    else:
        width = max(len(c.name) for c in checks)
        for c in checks:
            out.print(f"{'ok  ' if c.ok else 'FAIL'}  {c.name:<{width}}  {c.detail}")
    if not all(c.ok for c in checks):
        raise typer.Exit(1)


async def diagnose(config: Path | None) -> list[Check]:
    from bot.config import ConfigError, load_settings, resolve_config_path

    checks: list[Check] = []
    path = resolve_config_path(config)
    try:
        settings = load_settings(path, read_token=False)
    except ConfigError as exc:
        if exc.unresolved:  # the file is right; a secret it names cannot be read
            return [Check("config", True, f"{path} parses"), Check("secrets", False, str(exc))]
        return [Check("config", False, str(exc))]
    checks.append(Check("config", True, f"{settings.config_path} parses"))
    token: str | None = None
    secret_files = settings.secret_files
    try:
        with_token = load_settings(path)
        token = with_token.require_token()
        secret_files = with_token.secret_files
        checks.append(Check("secrets", True, "the token and every secret reference resolve"))
    except ConfigError as exc:
        checks.append(Check("secrets", False, str(exc)))
    checks.append(_modes(settings.config_path, secret_files, settings.database.url))
    checks += await _database(settings.database.url, settings.config_dir)
    if token is not None:
        checks += await _telegram(settings, token)
    if settings.telegram.mode == "webhook":
        checks.append(await _listener(settings.webhook.listen, settings.webhook.port))
    checks.append(_disk(settings.database.url, settings.config_dir))
    return checks


async def _listener(host: str, port: int) -> Check:
    """Whether `intake run` can listen where [webhook] says: the port is free, or this
    installation's own bot already serves it (its /healthz answers). A port another
    program holds would stop the bot at start (it binds before it touches the webhook)."""
    import errno
    import socket

    import aiohttp

    where = f"{host}:{port}"
    probe = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind((host, port))
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            return Check("listener", False, f"cannot listen on {where}: {exc.strerror}")
    else:
        return Check("listener", True, f"{where} is free for the webhook listener")
    finally:
        probe.close()
    try:
        timeout = aiohttp.ClientTimeout(total=3)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(f"http://{where}/healthz") as resp,
        ):
            if resp.status == 200 and (await resp.text()).strip() == "ok":
                return Check("listener", True, f"{where} is served by a running intake")
    except (aiohttp.ClientError, TimeoutError):
        pass
    return Check(
        "listener",
        False,
        f"another program listens on {where}: stop it, or change [webhook] port",
    )


def _modes(config_path: Path, secret_files: tuple[Path, ...], url: str) -> Check:
    from bot.startup import too_open
    from storage.db import sqlite_file

    files = [config_path, *secret_files]
    database = sqlite_file(url)
    if database is not None and database.exists():
        files.append(database)
    problems = [p for p in (too_open(f) for f in files) if p is not None]
    if problems:
        return Check("file modes", False, "; ".join(problems))
    return Check("file modes", True, f"{len(files)} files readable by their owner alone")


async def _database(url: str, config_dir: Path) -> list[Check]:
    from sqlalchemy import func, select
    from sqlalchemy.exc import SQLAlchemyError

    from bot.startup import database_kind
    from storage.db import (
        DatabaseError,
        current_revision,
        head_revision,
        open_database,
        reason,
        session_factory,
    )
    from storage.models import Operator

    kind = database_kind(url)
    try:
        async with open_database(url, migrate_to_head=False, must_exist=True) as engine:
            current = await current_revision(engine)
            head = head_revision()
            checks = [Check("database", True, f"{kind} answers")]
            if current != head:
                checks.append(
                    Check(
                        "migration",
                        False,
                        f"at {current or 'no revision'}, the package needs {head}: "
                        "run any intake command once (it upgrades), e.g. `intake status`",
                    )
                )
                return checks
            checks.append(Check("migration", True, f"at the latest revision ({head})"))
            async with engine.connect() as conn:
                count = (await conn.execute(select(func.count()).select_from(Operator))).scalar()
            if not count:
                checks.append(
                    Check("operators", False, "no operator key: run `intake operator add`")
                )
            else:
                checks.append(Check("operators", True, f"{count} operator key(s)"))
            async with session_factory(engine)() as session:
                checks.append(await _signatures(session, config_dir))
            return checks
    except DatabaseError as exc:
        return [Check("database", False, str(exc))]
    except (OSError, SQLAlchemyError) as exc:
        return [Check("database", False, f"{kind}: {reason(exc)}")]


async def _signatures(session: AsyncSession, config_dir: Path) -> Check:
    """The rows the bot would refuse, as ``intake audit verify`` finds them
    (storage.trust): named by fingerprint, codename or count, never by a phrase."""
    from storage.trust import Signers, SignersFileError, Trust, signers_path, unverified

    path = signers_path(config_dir)
    try:
        signers = Signers.load(path)
    except SignersFileError as exc:
        return Check("signatures", False, str(exc))
    if signers is None:
        return Check(
            "signatures",
            False,
            f"no {path.name} file: nothing the bot trusts is checked; an operator runs "
            "`intake operator sign --key FILE` once",
        )
    refused = await unverified(session, Trust(signers))
    if not refused:
        return Check("signatures", True, "every operator, group key and codebook entry verifies")
    return Check("signatures", False, refused_summary(refused))


def refused_summary(refused: Sequence[Rejected]) -> str:
    """One line: what the bot refuses to use, and how to fix it. Operators by their
    key's fingerprint, groups by codename, codebook entries counted per group."""
    parts = []
    for unsigned, how in ((True, "unsigned"), (False, "signature fails")):
        rows = [r for r in refused if r.unsigned is unsigned]
        if not rows:
            continue
        named = [f"operator {r.name}" for r in rows if r.table == "operators"]
        named += [f"group {r.name}" for r in rows if r.table == "groups"]
        entries = Counter(r.name for r in rows if r.table == "codebook_entries")
        named += [
            f"{n} codebook entr{'y' if n == 1 else 'ies'} "
            + (f"of {codename}" if codename else "organisation-wide")
            for codename, n in sorted(entries.items())
        ]
        parts.append(f"{how}: {', '.join(named)}")
    hints = []
    if any(r.unsigned for r in refused):
        hints.append(
            "sign them with `intake operator sign --key FILE` (each operator signs their own key)"
        )
    if not all(r.unsigned for r in refused):
        hints.append(
            "a failing signature means the row changed after signing or a key not pinned "
            "signed it: restore it from a backup, or remove it and add it again"
        )
    return f"the bot does not use {'; '.join(parts)}: {'; '.join(hints)}"


async def _telegram(settings: Settings, token: str) -> list[Check]:
    import aiohttp

    from bot.startup import telegram_host

    host = telegram_host(settings)
    base = f"{settings.telegram.base_url}{token}"
    try:
        timeout = aiohttp.ClientTimeout(total=15)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(f"{base}/getMe") as resp:
                me = await resp.json(content_type=None)
                date = resp.headers.get("Date")
                received = time.time()
            async with session.get(f"{base}/getWebhookInfo") as resp:
                hook = await resp.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        # Never the exception's text: it may hold the URL, and the URL holds the token.
        return [Check("telegram", False, f"cannot reach Telegram at {host} ({type(exc).__name__})")]
    if not me.get("ok"):
        return [
            Check(
                "token",
                False,
                f"Telegram at {host} refused the bot token: check [telegram] token",
            )
        ]
    checks = [Check("token", True, f"the bot is @{me['result'].get('username')}")]
    url = str(hook.get("result", {}).get("url", "")) if hook.get("ok") else ""
    if settings.telegram.mode == "polling":
        checks.append(
            Check("webhook", True, "none set, as polling needs")
            if not url
            else Check(
                "webhook",
                False,
                "a webhook is set but the mode is polling: `intake run` takes it down at start; "
                "if another process set it, two bots share one token",
            )
        )
    else:
        public = settings.webhook.public_url
        if url == public:
            checks.append(Check("webhook", True, f"set to {public}"))
        else:
            checks.append(
                Check(
                    "webhook",
                    False,
                    f"Telegram delivers to {url or 'nothing'}, not {public}: "
                    "`intake run` sets it at start",
                )
            )
    checks.append(_clock(date, received))
    return checks


def _clock(date: str | None, received: float) -> Check:
    if date is None:
        return Check("clock", False, "Telegram's answer carried no Date header to compare with")
    try:
        theirs = parsedate_to_datetime(date).timestamp()
    except (TypeError, ValueError):
        return Check("clock", False, "Telegram's Date header could not be read")
    skew = received - theirs
    # The Date header has whole seconds: allow one more.
    if abs(skew) > MAX_CLOCK_SKEW_S + 1:
        return Check(
            "clock",
            False,
            f"this machine's clock is {abs(skew):.0f}s {'ahead of' if skew > 0 else 'behind'} "
            "Telegram's: turn on time sync (systemd-timesyncd or chrony)",
        )
    return Check("clock", True, f"within {MAX_CLOCK_SKEW_S:.0f}s of Telegram's")


def _disk(url: str, config_dir: Path) -> Check:
    from storage.db import sqlite_file

    database = sqlite_file(url)
    where = database.parent if database is not None else config_dir
    try:
        free = shutil.disk_usage(where).free
    except OSError as exc:
        return Check("disk", False, f"cannot read the free space of {where}: {exc.strerror}")
    shown = f"{free / 2**30:.1f} GiB free in {where}"
    if free < MIN_FREE_BYTES:
        return Check("disk", False, f"only {shown}; free some space")
    return Check("disk", True, shown)
