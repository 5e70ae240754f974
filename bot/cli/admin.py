"""Setting up: the installation, operators' keys, groups, members, codebook, invites,
status, and running the bot.

Each command is thin: read the settings once, open the database in one place,
call a data function from ``storage``, print. Every mistake a user can make
ends in one line on stderr and exit status 1 (2 for wrong usage), never a
traceback.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy as sa
import typer
from rich.table import Table
from sqlmodel import col, select

from bot.cli.common import (
    ADMIN_ACTOR,
    PASSPHRASE_ENV,
    ConfigOption,
    Refused,
    Workspace,
    app,
    codebook_app,
    duration_option,
    err,
    fail,
    group_app,
    iso,
    member_app,
    operator_app,
    out,
    run,
    unlock_operator_key,
    when,
    workspace,
)
from bot.config import (
    example_config_text,
    load_settings,
    resolve_config_path,
)
from bot.durations import format_duration
from bot.group_import import Defaults, read_groups
from bot.phrases import SIGNAL_STRENGTH, BadMeaning, UnmatchablePhrase, fold, parse_means
from bot.schedules import BadSchedule, describe, make_schedule, next_due, normalise_codename
from storage import audit, keyfile
from storage.age_export import age_identity
from storage.codebook import add_phrase, phrases_for
from storage.crypto import KemName, PrivateKey, PublicKey, ServerKeys
from storage.db import open_database, session_factory
from storage.groups import create_group, get_group, list_groups
from storage.identifiers import BadIdentifier, normalise
from storage.legs import add_leg, find_leg
from storage.members import add_member, members_with
from storage.models import CodebookEntry, Group, IdentifierKind, Leg, Role, Signal
from storage.operators import add_operator
from storage.people import create_invite
from storage.timeutil import utc_now

# --------------------------------------------------------------------------- init


@app.command()
def init(
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="Folder to set up (default: the current one).", file_okay=False),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Set up a new installation: config.toml, the server secret, and the database."""
    if (
        config is not None
        and directory is not None
        and config.parent.resolve() != directory.resolve()
    ):
        fail("--config and --dir name different folders")
    target = directory or (config.parent if config else Path.cwd())
    config_path = config or target / "config.toml"
    target.mkdir(parents=True, exist_ok=True)
    secret_path = target / "server_secret"
    for path in (config_path, secret_path):
        if path.exists():
            fail(f"{path} already exists; intake init never overwrites an installation")
    secret = base64.urlsafe_b64encode(ServerKeys.generate_secret()).decode()
    _create_private(secret_path, secret + "\n")
    _create_private(config_path, example_config_text())
    settings = load_settings(config_path)

    async def migrate() -> None:
        async with (
            open_database(settings.database.url) as engine,
            session_factory(engine)() as session,
            session.begin(),
        ):
            await audit.append(session, actor=ADMIN_ACTOR, action="init", at=utc_now())

    run(migrate())
    out.print(f"Wrote {config_path} and {secret_path} (mode 0600: keep it out of backups).")
    out.print(f"Database ready: {_safe_url(settings.database.url)}")
    out.print("Next: on the operator's own machine, `intake keygen --out operator.key`;")
    out.print(
        "then here, `intake operator add PUBLIC_KEY --name NAME` and `intake group add CODENAME`."
    )


def _create_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def _safe_url(url: str) -> str:
    # Never print a password that a PostgreSQL URL may carry.
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# --------------------------------------------------------------------------- keys


def _new_passphrase() -> str:
    from_env = os.environ.get(PASSPHRASE_ENV)
    if from_env:
        return from_env
    if not sys.stdin.isatty():
        fail(f"no terminal to ask for a passphrase; set {PASSPHRASE_ENV} in scripts")
    passphrase: str = typer.prompt(
        "Passphrase for the new key", hide_input=True, confirmation_prompt=True
    )
    if len(passphrase) < 12:
        fail("choose a passphrase of at least 12 characters")
    return passphrase


@app.command()
def keygen(
    output: Annotated[
        Path | None, typer.Option("--out", help="Where to write the key file.", dir_okay=False)
    ] = None,
    kem: Annotated[
        KemName, typer.Option(help="Key type: the post-quantum hybrid (default) or X25519 alone.")
    ] = KemName.MLKEM768_X25519,
    age: Annotated[
        Path | None,
        typer.Option(
            "--age",
            help="Instead: print the age identity of this existing key file, which opens "
            "`intake inbox export` files with `age -d -i`.",
            dir_okay=False,
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Make an operator key pair. Run it on the operator's own machine, never on the server."""
    del config  # accepted on every command; keygen needs no installation
    if age is not None:
        out.print(age_identity(unlock_operator_key(age)))
        err.print("keep it as secret as the key file itself")
        return
    if output is None:
        fail("give --out FILE for the new key (or --age FILE to print an existing key's identity)")
    if output.exists():
        fail(f"{output} already exists; choose another --out")  # before asking for a passphrase
    passphrase = _new_passphrase()
    key = PrivateKey.generate(kem)
    keyfile.write(output, keyfile.lock(key, passphrase))
    public = key.public_key()
    out.print(public.to_text(), soft_wrap=True)
    err.print(f"fingerprint {public.fingerprint()}  (key file {output}, mode 0600)")


@operator_app.command("add")
def operator_add(
    public_key: Annotated[
        str, typer.Argument(help="The line `intake keygen` printed (ckpk1:...).")
    ],
    name: Annotated[
        str, typer.Option("--name", help="Who this operator is (sealed in the database).")
    ],
    share_key: Annotated[
        Path | None,
        typer.Option(
            "--key",
            help="An existing operator's key file: share every group key with the new one at "
            "once (else later, with `intake operator share`).",
            dir_okay=False,
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Register an operator's public key: new content is sealed to it from now on."""
    key = PublicKey.from_text(public_key)
    sharer = unlock_operator_key(share_key) if share_key else None  # before any transaction

    async def go() -> int:
        async with workspace(config) as ws:
            op = await add_operator(
                ws.session, server=ws.server, public_key=key, name=name, now=utc_now()
            )
            await audit.append(
                ws.session,
                actor=ADMIN_ACTOR,
                action="operator.add",
                subject=op.fingerprint,
                at=utc_now(),
            )
            return len(await list_groups(ws.session))

    groups = run(go())
    out.print(f"Operator {key.fingerprint()} added.")
    if sharer is not None:
        from bot.cli.operators import share_with  # only this option needs it

        shared = run(share_with(config, sharer, key.fingerprint()))
        out.print(f"Shared {shared} group key(s) with {key.fingerprint()}.")
    elif groups:
        err.print(
            f"note: {groups} existing group(s) are not yet readable with this key; an existing "
            f"operator shares them with `intake operator share {key.fingerprint()} --key FILE`."
        )


# --------------------------------------------------------------------------- groups


@group_app.command("add")
def group_add(
    codename: Annotated[str, typer.Argument(help="The group's codename, like PINE-7.")],
    interval: Annotated[
        str | None, typer.Option(help="A check-in is due every so long (24h).")
    ] = None,
    cron: Annotated[
        str | None, typer.Option(help='Check-ins due at cron times ("0 8,20 * * *").')
    ] = None,
    tz: Annotated[str | None, typer.Option(help="Time zone of --cron (Asia/Shanghai).")] = None,
    grace: Annotated[
        str | None, typer.Option(help="How late a check-in may be before SILENT.")
    ] = None,
    detained_after: Annotated[
        str | None, typer.Option(help="Silent this long means DETAINED.")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Add a travel group, with its own key pair sealed to every operator."""
    name = normalise_codename(codename)

    async def go() -> Group:
        async with workspace(config) as ws:
            d = ws.settings.defaults
            schedule = make_schedule(
                interval=duration_option(interval, "--interval") or (None if cron else d.interval),
                cron=cron,
                tz=tz,
                grace=duration_option(grace, "--grace") or d.grace,
                detained_after=duration_option(detained_after, "--detained-after")
                or d.detained_after,
            )
            group = await create_group(
                ws.session,
                codename=name,
                schedule=schedule,
                kem=KemName(ws.settings.keys.kem),
                now=utc_now(),
            )
            await audit.append(
                ws.session, actor=ADMIN_ACTOR, action="group.add", subject=name, at=utc_now()
            )
            return group

    group = run(go())
    grace_text = format_duration(timedelta(seconds=group.grace_s))
    detained_text = format_duration(timedelta(seconds=group.detained_after_s))
    out.print(
        f"Group {group.codename} added: {describe(group)}, grace {grace_text}, "
        f"detained after {detained_text}."
    )


@group_app.command("list")
def group_list(config: ConfigOption = None) -> None:
    """List groups and their schedules."""

    async def go() -> list[Group]:
        async with workspace(config) as ws:
            return list(await list_groups(ws.session))

    table = Table("codename", "schedule", "grace", "detained after", "status", "created")
    for g in run(go()):
        table.add_row(
            g.codename,
            describe(g),
            format_duration(timedelta(seconds=g.grace_s)),
            format_duration(timedelta(seconds=g.detained_after_s)),
            g.status.value + (" (shredded)" if g.shredded_at else ""),
            when(g.created_at),
        )
    out.print(table)


@group_app.command("import")
def group_import(
    file: Annotated[Path, typer.Argument(help="A .csv or .toml file of groups.", dir_okay=False)],
    config: ConfigOption = None,
) -> None:
    """Add many groups at once; nothing is added unless every group in the file is valid."""

    async def go() -> int:
        async with workspace(config) as ws:
            d = ws.settings.defaults
            specs = read_groups(
                file,
                defaults=Defaults(
                    interval=d.interval, grace=d.grace, detained_after=d.detained_after
                ),
            )
            now = utc_now()
            for spec in specs:
                await create_group(
                    ws.session,
                    codename=spec.codename,
                    schedule=spec.schedule,
                    kem=KemName(ws.settings.keys.kem),
                    now=now,
                )
            await audit.append(
                ws.session,
                actor=ADMIN_ACTOR,
                action="group.import",
                at=now,
                details={"groups": [s.codename for s in specs]},
            )
            return len(specs)

    out.print(f"Imported {run(go())} group(s).")


# --------------------------------------------------------------------------- members and codebooks


def _codename_argument(text: str) -> str:
    # Never echo the argument: in these commands a misplaced phone number or phrase
    # would otherwise land on the screen and in the scrollback.
    try:
        return normalise_codename(text)
    except BadSchedule:
        fail("CODENAME: use 2 to 32 letters, digits and dashes, like PINE-7")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _not_shredded(group: Group) -> Group:
    if group.shredded_at is not None:
        raise Refused(f"group {group.codename} was shredded")
    return group


_IDENTIFIER_OPTIONS = {
    IdentifierKind.PHONE: "--phone",
    IdentifierKind.TELEGRAM_ID: "--telegram-id",
    IdentifierKind.USERNAME: "--username",
    IdentifierKind.HIDDEN_NAME: "--hidden-name",
}
_IDENTIFIER_WORDS = {
    IdentifierKind.PHONE: "phone number",
    IdentifierKind.TELEGRAM_ID: "Telegram id",
    IdentifierKind.USERNAME: "username",
    IdentifierKind.HIDDEN_NAME: "hidden name",
}


def _normalised_identifiers(
    given: dict[IdentifierKind, list[str] | None],
) -> list[tuple[IdentifierKind, str]]:
    """Every identifier given, normalised and without repeats. A bad one is named by
    its option and place, never echoed."""
    found: set[tuple[IdentifierKind, str]] = set()
    for kind, values in given.items():
        values = values or []
        for place, value in enumerate(values, start=1):
            where = _IDENTIFIER_OPTIONS[kind] + (f" #{place}" if len(values) > 1 else "")
            if kind is IdentifierKind.PHONE and not value.strip().startswith("+"):
                raise BadIdentifier(
                    f"{where}: write the number with its country code, starting with + "
                    "(like +86 139...)"
                )
            try:
                found.add((kind, normalise(kind, value)))
            except BadIdentifier as exc:
                raise BadIdentifier(f"{where}: {exc}") from None
    return sorted(found)


@member_app.command("add")
def member_add(
    codename: Annotated[str, typer.Argument(help="The group's codename, like PINE-7.")],
    phone: Annotated[
        list[str] | None,
        typer.Option(
            "--phone", help="A phone number with its country code (+86...).", show_default=False
        ),
    ] = None,
    telegram_id: Annotated[
        list[str] | None,
        typer.Option("--telegram-id", help="A numeric Telegram user id.", show_default=False),
    ] = None,
    username: Annotated[
        list[str] | None,
        typer.Option("--username", help="A Telegram @username.", show_default=False),
    ] = None,
    hidden_name: Annotated[
        list[str] | None,
        typer.Option(
            "--hidden-name",
            help="The name Telegram shows on a forward from a hidden account.",
            show_default=False,
        ),
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="What operators call this traveller (sealed).")
    ] = None,
    notes: Annotated[
        str | None, typer.Option("--notes", help="What operators should know (sealed).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Add a traveller to a group. Every option but --name and --notes may be repeated.

    Identifiers are stored only as keyed blind indexes; name and notes are sealed to
    the group's key. None of them is ever printed.
    """
    target = _codename_argument(codename)
    identifiers = _normalised_identifiers(
        {
            IdentifierKind.PHONE: phone,
            IdentifierKind.TELEGRAM_ID: telegram_id,
            IdentifierKind.USERNAME: username,
            IdentifierKind.HIDDEN_NAME: hidden_name,
        }
    )
    name = (name or "").strip() or None
    notes = (notes or "").strip() or None

    async def go() -> tuple[str, int]:
        async with workspace(config) as ws:
            group = _not_shredded(await get_group(ws.session, codename=target))
            elsewhere = 0
            for kind, value in identifiers:
                holders = await members_with(ws.session, server=ws.server, kind=kind, value=value)
                if any(h.group_id == group.id for h in holders):
                    raise Refused(
                        f"{group.codename} already has a member with that {_IDENTIFIER_WORDS[kind]}"
                    )
                elsewhere += bool(holders)
            now = utc_now()
            await add_member(
                ws.session,
                server=ws.server,
                group=group,
                identifiers=identifiers,
                name=name,
                notes=notes,
                now=now,
            )
            await audit.append(
                ws.session,
                actor=ADMIN_ACTOR,
                action="member.add",
                subject=group.codename,
                at=now,
                details={"identifiers": len(identifiers)},
            )
            return group.codename, elsewhere

    added_to, elsewhere = run(go())
    out.print(f"Member added to {added_to} ({_plural(len(identifiers), 'identifier')}).")
    if elsewhere:
        err.print(
            f"note: {elsewhere} of them also belong(s) to a member of another group; "
            "a message that only they place may wait in the unlinked queue."
        )


def _codebook_target(words: list[str], org_wide: bool) -> tuple[str | None, str]:
    """(codename or None for --all, phrase) from the command's arguments."""
    if org_wide:
        if len(words) != 1:
            fail('with --all, give the phrase alone, in quotes: --all "PHRASE"')
        return None, words[0]
    if len(words) == 1:
        fail("give the group's CODENAME, or --all for the organisation-wide codebook")
    if len(words) != 2:
        fail('give CODENAME and the phrase in quotes: CODENAME "PHRASE"')
    return _codename_argument(words[0]), words[1]


def _read_phrase() -> str:
    """The phrase from standard input (``-``), so that it stays out of shell history."""
    if sys.stdin.isatty():
        typed: str = typer.prompt("Phrase", hide_input=True, confirmation_prompt=True)
        return typed
    return sys.stdin.readline().rstrip("\r\n")


def _meaning(signal: Signal, leg: Leg | None, new_leg: bool = False) -> str:
    if leg is None:
        return signal.value
    return f"stage (leg {leg.position}{', new' if new_leg else ''})"


def _owner(codenames: dict[uuid.UUID, str], group_id: uuid.UUID | None) -> str:
    return (
        "the organisation-wide codebook"
        if group_id is None
        else (f"{codenames[group_id]}'s codebook")
    )


@codebook_app.command("add")
def codebook_add(
    words: Annotated[
        list[str],
        typer.Argument(
            metavar="[CODENAME] PHRASE",
            help="The group and the phrase, in quotes (with --all, the phrase alone). "
            "A phrase of - is read from standard input, which keeps it out of shell history.",
            show_default=False,
        ),
    ],
    means: Annotated[
        str,
        typer.Option(
            "--means",
            metavar="checkin|duress|detained|safe|stage:NAME",
            help="What the phrase signals; stage:NAME is reaching the leg NAME of the route.",
        ),
    ],
    org_wide: Annotated[
        bool, typer.Option("--all", help="The organisation-wide codebook, for every group.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Add a code phrase to a group's codebook (or to every group's, with --all).

    The phrase is sealed with the server secret and never printed. It is matched on
    folded text (Unicode NFKC, case-folded, spaces and punctuation ignored), so a
    phrase that differs from one already there only in those is refused.
    """
    codename, phrase = _codebook_target(words, org_wide)
    try:
        signal, stage = parse_means(means)
    except BadMeaning as exc:
        fail(f"--means: {exc}")
    if stage is not None and codename is None:
        fail("a stage belongs to one group's route: give its CODENAME instead of --all")
    if phrase == "-":
        phrase = _read_phrase()
    phrase = phrase.strip()
    if not phrase:
        fail("the phrase is empty")
    folded = fold(phrase)
    if not folded:
        raise UnmatchablePhrase(
            "the phrase has no letters or digits (spaces, punctuation, symbols and emoji are "
            "ignored when matching), so it could never match"
        )

    async def go() -> str:
        async with workspace(config) as ws:
            now = utc_now()
            group = (
                _not_shredded(await get_group(ws.session, codename=codename)) if codename else None
            )
            leg: Leg | None = None
            new_leg = False
            if group is not None and stage is not None:
                leg = await find_leg(ws.session, server=ws.server, group=group, name=stage)
                if leg is None:
                    leg = await add_leg(
                        ws.session, server=ws.server, group=group, name=stage, now=now
                    )
                    new_leg = True
                    await audit.append(
                        ws.session,
                        actor=ADMIN_ACTOR,
                        action="leg.add",
                        subject=group.codename,
                        at=now,
                        details={"position": leg.position},
                    )
            await _refuse_clash(ws, group, folded, signal, leg.id if leg else None)
            await add_phrase(
                ws.session,
                server=ws.server,
                group=group,
                phrase=phrase,
                means=signal,
                leg_id=leg.id if leg else None,
                now=now,
            )
            details: dict[str, object] = {"means": signal.value}
            if leg is not None:
                details["leg"] = leg.position
            await audit.append(
                ws.session,
                actor=ADMIN_ACTOR,
                action="codebook.add",
                subject=group.codename if group else "*",
                at=now,
                details=details,
            )
            where = f"{group.codename}'s" if group else "the organisation-wide"
            return f"Phrase added to {where} codebook: it means {_meaning(signal, leg, new_leg)}."

    out.print(run(go()))


async def _refuse_clash(
    ws: Workspace,
    group: Group | None,
    folded: str,
    signal: Signal,
    leg_id: uuid.UUID | None,
) -> None:
    """Refuse a phrase that a message could not tell apart from one already in use.

    A phrase for a group meets that group's phrases and the organisation-wide ones; an
    organisation-wide phrase meets every group's. Equal folded forms clash. So does a
    phrase inside another of a different meaning when the inner one wins or ties
    (``SIGNAL_STRENGTH``): the outer one would never be read as itself; a check-in
    phrase that contains a duress phrase would read as duress every time.
    """
    groups = [group] if group is not None else list(await list_groups(ws.session))
    codenames = {g.id: g.codename for g in groups}
    seen: set[uuid.UUID] = set()
    existing = []
    for scope in [*groups, None]:
        for p in await phrases_for(ws.session, server=ws.server, group=scope):
            if p.entry_id not in seen:
                seen.add(p.entry_id)
                existing.append(p)
    for p in existing:
        other = fold(p.text)
        if not other:
            continue
        owner = _owner(codenames, p.group_id)
        if other == folded:
            raise Refused(f"that phrase is already in {owner}")
        if (p.means, p.leg_id) == (signal, leg_id):
            continue
        if other in folded and SIGNAL_STRENGTH[p.means] >= SIGNAL_STRENGTH[signal]:
            raise Refused(
                f"that phrase contains a {p.means.value} phrase of {owner}, so a message "
                f"with it could never be read as {signal.value}"
            )
        if folded in other and SIGNAL_STRENGTH[signal] >= SIGNAL_STRENGTH[p.means]:
            raise Refused(
                f"a {p.means.value} phrase of {owner} contains that phrase, so a message "
                f"with it could never be read as {p.means.value}"
            )


@codebook_app.command("list")
def codebook_list(
    codename: Annotated[
        str | None, typer.Argument(help="The group's codename (or --all).", show_default=False)
    ] = None,
    org_wide: Annotated[
        bool, typer.Option("--all", help="The organisation-wide codebook alone.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """How many phrases mean what. Phrases themselves are never printed here."""
    if (codename is not None) == org_wide:
        fail("give a CODENAME or --all, not both" if org_wide else "give a CODENAME or --all")
    target = _codename_argument(codename) if codename else None

    async def go() -> tuple[str | None, list[tuple[str, int, int]]]:
        async with workspace(config) as ws:
            group = await get_group(ws.session, codename=target) if target else None
            org = col(CodebookEntry.group_id).is_(None)
            condition = (
                org if group is None else sa.or_(org, col(CodebookEntry.group_id) == group.id)
            )
            entries = (await ws.session.exec(select(CodebookEntry).where(condition))).all()
            positions: dict[uuid.UUID, int] = {}
            if group is not None:
                legs = await ws.session.exec(select(Leg).where(Leg.group_id == group.id))
                positions = {leg.id: leg.position for leg in legs}
            counts: dict[tuple[int, int, str], list[int]] = {}
            order = {s: n for n, s in enumerate(Signal)}
            for e in entries:
                position = positions.get(e.leg_id, 0) if e.leg_id else 0
                label = (
                    f"stage (leg {position})"
                    if e.means is Signal.STAGE and position
                    else e.means.value
                )
                row = counts.setdefault((order[e.means], position, label), [0, 0])
                row[0 if e.group_id is not None else 1] += 1
            return (
                group.codename if group else None,
                [(label, own, org) for (_, _, label), (own, org) in sorted(counts.items())],
            )

    shown, rows = run(go())
    if not rows:
        where = (
            f"{shown}'s codebook or the organisation-wide one"
            if shown
            else ("the organisation-wide codebook")
        )
        out.print(f"No phrases in {where} yet.")
        return
    if shown:
        table = Table("means", shown, "organisation-wide")
        for label, own, everyone in rows:
            table.add_row(label, str(own), str(everyone))
    else:
        table = Table("means", "phrases")
        for label, _, everyone in rows:
            table.add_row(label, str(everyone))
    out.print(table)


# --------------------------------------------------------------------------- invites


@app.command()
def invite(
    role: Annotated[Role, typer.Option("--role", help="What the invite grants.")],
    group: Annotated[
        str | None, typer.Option("--group", help="The group (relatives and activists).")
    ] = None,
    ttl: Annotated[
        str | None,
        typer.Option("--ttl", help="How long the code stays valid (default [invites] ttl)."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Make a one-time invite code; the person redeems it with /start CODE."""

    async def go() -> tuple[str, datetime, str | None]:
        async with workspace(config) as ws:
            target = (
                await get_group(ws.session, codename=normalise_codename(group)) if group else None
            )
            now = utc_now()
            lifetime = duration_option(ttl, "--ttl") or ws.settings.invites.ttl
            inv, code = await create_invite(
                ws.session, server=ws.server, role=role, group=target, ttl=lifetime, now=now
            )
            await audit.append(
                ws.session,
                actor=ADMIN_ACTOR,
                action="invite.create",
                subject=str(inv.id),
                at=now,
                details={"role": role.value, "group": target.codename if target else None},
            )
            return code, inv.expires_at, ws.settings.telegram.username

    code, expires, username = run(go())
    out.print(code)
    if username:
        out.print(f"https://t.me/{username}?start={code}")
    else:
        out.print(f"t.me/<bot>?start={code}   (set [telegram] username to get the full link)")
    err.print(f"one use, valid until {when(expires)}")


# --------------------------------------------------------------------------- status


def _status_rows(groups: list[Group], now: datetime) -> list[dict[str, Any]]:
    rows = []
    for g in groups:
        due = None
        if g.last_checkin_at is not None and g.shredded_at is None:
            due = next_due(g, after=g.last_checkin_at)
        rows.append(
            {
                "codename": g.codename,
                "status": g.status.value,
                "status_since": g.status_since,
                "basis": g.status_basis,
                "last_checkin": g.last_checkin_at,
                "next_due": due,
                "overdue": due is not None and due < now,
            }
        )
    return rows


@app.command()
def status(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON array instead of a table.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Every group's status, last check-in and next due time."""

    async def go() -> list[Group]:
        async with workspace(config) as ws:
            return list(await list_groups(ws.session))

    groups = run(go())
    rows = _status_rows(groups, utc_now())
    if as_json:
        print(
            json.dumps(
                [
                    {k: iso(v) if isinstance(v, datetime) else v for k, v in row.items()}
                    for row in rows
                ],
                indent=2,
            )
        )
        return
    if not rows:
        out.print("No groups yet. Add one with `intake group add CODENAME`.")
        return
    table = Table("codename", "status", "since", "last check-in", "next due")
    for row, g in zip(rows, groups, strict=True):
        due = (
            "—"
            if row["next_due"] is None
            else when(next_due(g, after=g.last_checkin_at))
            if g.last_checkin_at
            else "—"
        )
        table.add_row(
            g.codename, g.status.value, when(g.status_since), when(g.last_checkin_at), due
        )
    out.print(table)


# --------------------------------------------------------------------------- run


@app.command("run")
def run_bot(config: ConfigOption = None) -> None:
    """Run the bot (polling or webhook, as configured) until SIGINT or SIGTERM."""
    from bot import app as bot_app
    from bot import logs

    settings = load_settings(resolve_config_path(config))
    settings.require_token()
    logs.configure(settings.logging.level)
    bot_app.run_forever(settings)
