"""Codebooks: the phrases agreed with a group and what each one signals."""

from __future__ import annotations

import sys
import uuid
from typing import Annotated

import sqlalchemy as sa
import typer
from rich.table import Table
from sqlalchemy import select

from bot.cli.common import (
    ADMIN_ACTOR,
    ConfigOption,
    Format,
    FormatOption,
    Refused,
    SignKeyOption,
    Workspace,
    codebook_app,
    codename_argument,
    fail,
    not_shredded,
    note_unsigned,
    out,
    print_json,
    run,
    signing_key_of,
    workspace,
)
from bot.phrases import SIGNAL_STRENGTH, BadMeaning, UnmatchablePhrase, fold, parse_means
from storage import audit
from storage.codebook import add_phrase, phrases_for
from storage.groups import get_group, list_groups
from storage.legs import add_leg, find_leg
from storage.models import CodebookEntry, Group, Leg, Signal
from storage.timeutil import utc_now

PhraseArguments = Annotated[
    list[str],
    typer.Argument(
        metavar="[CODENAME] PHRASE",
        help="The group and the phrase, in quotes (with --all, the phrase alone). "
        "A phrase of - is read from standard input, which keeps it out of shell history.",
        show_default=False,
    ),
]


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
    return codename_argument(words[0]), words[1]


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
    words: PhraseArguments,
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
    key: SignKeyOption = None,
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
    signing = signing_key_of(key)  # before the phrase is read from standard input
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
                not_shredded(await get_group(ws.session, codename=codename)) if codename else None
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
                signing=signing,
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
    note_unsigned("the phrase's meaning", signing)


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
        for p in await phrases_for(ws.session, server=ws.server, group=scope, trusted_only=False):
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
    output: FormatOption = Format.TABLE,
    config: ConfigOption = None,
) -> None:
    """How many phrases mean what. Phrases themselves are never printed here."""
    if (codename is not None) == org_wide:
        fail("give a CODENAME or --all, not both" if org_wide else "give a CODENAME or --all")
    target = codename_argument(codename) if codename else None

    async def go() -> tuple[str | None, list[tuple[str, int, int]]]:
        async with workspace(config) as ws:
            group = await get_group(ws.session, codename=target) if target else None
            org = CodebookEntry.group_id.is_(None)
            condition = org if group is None else sa.or_(org, CodebookEntry.group_id == group.id)
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
    if output is Format.JSON:
        print_json(
            [
                {"means": label, "group": own, "organisation_wide": everyone}
                if shown
                else {"means": label, "organisation_wide": everyone}
                for label, own, everyone in rows
            ]
        )
        return
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


@codebook_app.command("remove")
def codebook_remove(
    words: PhraseArguments,
    org_wide: Annotated[
        bool, typer.Option("--all", help="From the organisation-wide codebook.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Remove a code phrase (matched as messages are: folded text). The phrase is never
    printed; the audit trail records what it meant, not the phrase."""
    codename, phrase = _codebook_target(words, org_wide)
    if phrase == "-":
        phrase = _read_phrase()
    folded = fold(phrase.strip())
    if not folded:
        fail("the phrase is empty")

    async def go() -> str:
        async with workspace(config) as ws:
            group = (
                not_shredded(await get_group(ws.session, codename=codename)) if codename else None
            )
            group_id = group.id if group else None
            # Unsigned or tampered phrases too: taking one out is what an admin may want.
            found = await phrases_for(ws.session, server=ws.server, group=group, trusted_only=False)
            matches = [p for p in found if p.group_id == group_id and fold(p.text) == folded]
            where = f"{group.codename}'s codebook" if group else "the organisation-wide codebook"
            if not matches:
                raise Refused(f"no such phrase in {where}")
            for p in matches:
                entry = await ws.session.get(CodebookEntry, p.entry_id)
                if entry is not None:
                    await ws.session.delete(entry)
            await ws.session.flush()
            await audit.append(
                ws.session,
                actor=ADMIN_ACTOR,
                action="codebook.remove",
                subject=group.codename if group else "*",
                at=utc_now(),
                details={"means": sorted({p.means.value for p in matches})},
            )
            return f"Phrase removed from {where}."

    out.print(run(go()))
