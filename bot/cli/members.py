"""Travellers in a group: `intake member add` and `list` (identifiers kept only as blind
indexes, never printed)."""

from __future__ import annotations

from datetime import datetime
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
    target = codename_argument(codename)
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
    from sqlmodel import col, select

    from storage.models import Member, MemberIdentifier

    target = codename_argument(codename)

    async def go() -> tuple[str, list[tuple[int, datetime, dict[str, int]]]]:
        async with workspace(config) as ws:
            group = not_shredded(await get_group(ws.session, codename=target))
            members = (
                await ws.session.exec(
                    select(Member)
                    .where(Member.group_id == group.id)
                    .order_by(col(Member.created_at), col(Member.id))
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
