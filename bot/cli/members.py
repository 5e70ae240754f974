"""Travellers in a group: `intake member add` and `list` (identifiers kept only as blind
indexes, never printed)."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from bot.cli.common import (
    ADMIN_ACTOR,
    ConfigOption,
    Format,
    FormatOption,
    Refused,
    codename_argument,
    err,
    fail,
    iso,
    member_app,
    not_shredded,
    out,
    plural,
    print_json,
    run,
    when,
    workspace,
)
from storage import audit
from storage.groups import get_group
from storage.identifiers import BadIdentifier, normalise
from storage.members import add_member, members_with
from storage.models import IdentifierKind
from storage.timeutil import utc_now

# The fields of a member, as written in a --from file ("phone: +86 139...") or asked
# at the prompt. Identifiers, names and notes are never command-line arguments: those
# land in /proc/PID/cmdline, where any process on the server reads them, and in the
# admin's shell history.
_IDENTIFIER_FIELDS = {
    "phone": IdentifierKind.PHONE,
    "telegram-id": IdentifierKind.TELEGRAM_ID,
    "username": IdentifierKind.USERNAME,
    "hidden-name": IdentifierKind.HIDDEN_NAME,
}
_TEXT_FIELDS = ("name", "notes")
_IDENTIFIER_WORDS = {
    IdentifierKind.PHONE: "phone number",
    IdentifierKind.TELEGRAM_ID: "Telegram id",
    IdentifierKind.USERNAME: "username",
    IdentifierKind.HIDDEN_NAME: "hidden name",
}
_PROMPTS = {
    "phone": "Phone numbers with country code (+86...), comma-separated",
    "telegram-id": "Numeric Telegram ids, comma-separated",
    "username": "Telegram @usernames, comma-separated",
    "hidden-name": "Names Telegram shows on forwards from hidden accounts, comma-separated",
    "name": "What operators call this traveller (sealed)",
    "notes": "What operators should know (sealed)",
}


def _normalised_identifiers(
    given: dict[str, list[str]],
) -> list[tuple[IdentifierKind, str]]:
    """Every identifier given, normalised and without repeats. A bad one is named by
    its field and place, never echoed."""
    found: set[tuple[IdentifierKind, str]] = set()
    for field, kind in _IDENTIFIER_FIELDS.items():
        values = given.get(field, [])
        for place, value in enumerate(values, start=1):
            where = field + (f" #{place}" if len(values) > 1 else "")
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


def _parse_fields(text: str, source: str) -> dict[str, list[str]]:
    """``field: value`` lines; identifiers may repeat, name and notes may not. A bad
    line is named by its number, never echoed."""
    fields: dict[str, list[str]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition(":")
        field = key.strip().lower().replace("_", "-")
        if not sep or field not in (*_IDENTIFIER_FIELDS, *_TEXT_FIELDS):
            fail(
                f"{source} line {number}: write FIELD: VALUE with a field of "
                f"{', '.join((*_IDENTIFIER_FIELDS, *_TEXT_FIELDS))}"
            )
        if field in _TEXT_FIELDS and field in fields:
            fail(f"{source} line {number}: {field} is given twice")
        if value.strip():
            fields.setdefault(field, []).append(value.strip())
    return fields


def _prompted_fields() -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for field, prompt in _PROMPTS.items():
        answer: str = typer.prompt(prompt, default="", show_default=False)
        if field in _TEXT_FIELDS:
            values = [answer.strip()] if answer.strip() else []
        else:
            values = [v.strip() for v in answer.split(",") if v.strip()]
        if values:
            fields[field] = values
    return fields


def _read_fields(source: str | None) -> dict[str, list[str]]:
    if source == "-":
        return _parse_fields(sys.stdin.read(), "standard input")
    if source is not None:
        try:
            text = Path(source).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"--from: {source}: {getattr(exc, 'strerror', None) or 'not UTF-8 text'}")
        return _parse_fields(text, source)
    if not sys.stdin.isatty():
        fail(
            "no terminal to ask for the member's details; give --from FILE, or --from - for "
            "standard input"
        )
    return _prompted_fields()


@member_app.command("add")
def member_add(
    codename: Annotated[str, typer.Argument(help="The group's codename, like PINE-7.")],
    source: Annotated[
        str | None,
        typer.Option(
            "--from",
            metavar="FILE",
            help="Read the member from FILE (- for standard input): lines of FIELD: VALUE, "
            "with fields phone, telegram-id, username, hidden-name (each may repeat), name "
            "and notes. Without it, the details are asked at the prompt.",
            show_default=False,
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Add a traveller to a group, never from command-line arguments (they show in the
    process list and the shell history): from the prompt, a file, or standard input.

    Identifiers are stored only as keyed blind indexes; name and notes are sealed to
    the group's key. None of them is ever printed.
    """
    target = codename_argument(codename)
    fields = _read_fields(source)
    identifiers = _normalised_identifiers(fields)
    name = next(iter(fields.get("name", [])), None)
    notes = next(iter(fields.get("notes", [])), None)

    async def go() -> tuple[str, int]:
        async with workspace(config) as ws:
            group = not_shredded(await get_group(ws.session, codename=target))
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
    out.print(f"Member added to {added_to} ({plural(len(identifiers), 'identifier')}).")
    if elsewhere:
        err.print(
            f"note: {elsewhere} of them also belong(s) to a member of another group; "
            "a message that only they place may wait in the unlinked queue."
        )


@member_app.command("list")
def member_list(
    codename: Annotated[str, typer.Argument(help="The group's codename, like PINE-7.")],
    output: FormatOption = Format.TABLE,
    config: ConfigOption = None,
) -> None:
    """A group's travellers: for each, when it was added and how many identifiers of
    each kind it has. Identifiers, names and notes are never printed (the server
    cannot open names and notes; identifiers are kept only as blind indexes)."""
    from rich.table import Table
    from sqlalchemy import select

    from storage.models import Member, MemberIdentifier

    target = codename_argument(codename)

    async def go() -> tuple[str, list[tuple[int, datetime, dict[str, int]]]]:
        async with workspace(config) as ws:
            group = not_shredded(await get_group(ws.session, codename=target))
            members = (
                await ws.session.exec(
                    select(Member)
                    .where(Member.group_id == group.id)
                    .order_by(Member.created_at, Member.id)
                )
            ).all()
            kinds: dict[object, dict[str, int]] = {m.id: {} for m in members}
            identifiers = await ws.session.exec(
                select(MemberIdentifier.member_id, MemberIdentifier.kind).where(
                    MemberIdentifier.group_id == group.id
                )
            )
            for member_id, kind in identifiers.all():
                counts = kinds.setdefault(member_id, {})
                word = _IDENTIFIER_WORDS[IdentifierKind(kind)]
                counts[word] = counts.get(word, 0) + 1
            return group.codename, [
                (number, m.created_at, kinds[m.id]) for number, m in enumerate(members, start=1)
            ]

    shown, rows = run(go())
    if output is Format.JSON:
        print_json(
            [
                {"member": number, "added_at": iso(added), "identifiers": counts}
                for number, added, counts in rows
            ]
        )
        return
    if not rows:
        out.print(f"No members in {shown} yet. Add one with `intake member add {shown} ...`.")
        return
    table = Table("#", "added", "identifiers")
    for number, added, counts in rows:
        described = ", ".join(f"{plural(n, word)}" for word, n in sorted(counts.items()))
        table.add_row(str(number), when(added), described or "none")
    out.print(table)
    out.print(f"{plural(len(rows), 'member')} in {shown}.")
