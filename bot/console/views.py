"""The console's pages and actions. Each page is one database transaction; each
read of content and each action is an audit event (actor: the operator's key
fingerprint; details: counts and codenames, never content), as on the command line."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy
from sqlalchemy import select

from bot.console import pages
from bot.console.app import CONSOLE, render
from bot.durations import parse_duration
from bot.inbox_meaning import codebook_meaning
from storage import audit
from storage.db import reclaim_deleted
from storage.groups import UnknownGroup, get_group, list_groups
from storage.inbox import (
    MESSAGE_TABLES,
    NoSuchMessage,
    add_note,
    find_sender,
    list_inbox,
    mark,
    messages_from,
    open_files,
    open_message,
    record_meaning,
    relink,
    shred_messages,
    text_of,
    unread_counts,
)
from storage.models import Attachment, Group, Message, MessageKind, Role
from storage.people import find_by_pseudonym, pseudonym_of, revoke_roles
from storage.sealing import Keyring, NotReadable
from storage.session import AsyncSession
from storage.timeutil import utc_now
from storage.trust import installation_of

PAGE = 50
MAX_PAGE = 999_999
FILTERS = ("unlinked", "unconfirmed", "unread", "starred", "danger")
MARKS = {
    "star": {"starred": True},
    "unstar": {"starred": False},
    "seen": {"seen": True},
    "unseen": {"seen": False},
}
# Pictures shown inline, recognised by their first bytes (never by what the sender
# said they are): anything else is offered as a download.
PICTURES = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def actor(keyring: Keyring) -> str:
    """Who did it, in the audit log: the operator's key fingerprint (as the CLI writes it)."""
    return keyring.operator.fingerprint[:16]


def picture_type(content: bytes | None) -> str | None:
    if content is None:
        return None
    if content[:4] == b"RIFF" and content[8:12] == b"WEBP":
        return "image/webp"
    return next((kind for magic, kind in PICTURES if content.startswith(magic)), None)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", board)
    app.router.add_get("/timeline/{codename}.png", timeline)
    app.router.add_get("/inbox", inbox)
    app.router.add_get("/message/{id}", message)
    app.router.add_get("/attachment/{id}", attachment)
    app.router.add_post("/act", act)
    app.router.add_get("/people", people)
    app.router.add_post("/revoke", revoke)
    app.router.add_get("/audit", audit_page)


def _uuid(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise web.HTTPNotFound(text="no such message") from None


# --------------------------------------------------------------------------- the board


async def board(request: web.Request) -> web.StreamResponse:
    console = request.app[CONSOLE]
    async with console.operator() as (session, keyring):
        unread = await unread_counts(session, operator_id=keyring.operator.id)
        rows = await pages.board(session, now=utc_now(), unread=unread)
    return render(request, "board.html", rows=rows, unlinked_unread=unread.get(None, 0))


async def timeline(request: web.Request) -> web.StreamResponse:
    from bot.i18n import Words
    from bot.timeline import gather
    from bot.timeline import render as draw

    console = request.app[CONSOLE]
    async with console.reading() as session:
        group = (
            await session.exec(
                select(Group).where(Group.codename == request.match_info["codename"])
            )
        ).first()
        if group is None:
            raise web.HTTPNotFound(text="no such group")
        journey = await gather(session, group=group, now=utc_now())
    # In the zone every page shows (the pages are in English, and so is the picture).
    picture = draw(journey, "png", words=Words("en", console.tz))
    return web.Response(body=picture, content_type="image/png")


# --------------------------------------------------------------------------- the inbox


def _since(value: str, now: datetime) -> datetime | None:
    if not value:
        return None
    wrong = web.HTTPBadRequest(text="since: a duration (24h, 7d) or a date (2026-08-10)")
    try:
        span = parse_duration(value)
    except ValueError:
        span = None
    if span is not None:
        try:
            return now - span
        except OverflowError:  # before the year 1
            raise wrong from None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise wrong from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _page(value: str) -> int:
    """A page number as the links write it; anything else is refused, not guessed (a
    number past what the database's OFFSET holds would fail the page)."""
    if not value:
        return 1
    if not (value.isascii() and value.isdecimal()) or len(value) > len(str(MAX_PAGE)):
        raise web.HTTPBadRequest(text=f"page: a number from 1 to {MAX_PAGE}")
    return min(max(int(value), 1), MAX_PAGE)


async def inbox(request: web.Request) -> web.StreamResponse:
    console = request.app[CONSOLE]
    query = request.query
    flags = {name: query.get(name) == "1" for name in FILTERS}
    kind_text = query.get("kind", "")
    kind = MessageKind(kind_text) if kind_text in MessageKind._value2member_map_ else None
    page = _page(query.get("page", ""))
    since = _since(query.get("since", ""), utc_now())
    async with console.operator() as (session, keyring):
        groups = await list_groups(session)  # once a page: the filters and the counts
        codenames = {g.id: g.codename for g in groups}
        chosen = next((g for g in groups if g.codename == query.get("group")), None)
        items = await list_inbox(
            session,
            keyring,
            group=chosen,
            since=since,
            kind=kind,
            limit=PAGE + 1,
            offset=(page - 1) * PAGE,
            unlinked=flags["unlinked"],
            unconfirmed=flags["unconfirmed"],
            unread=flags["unread"],
            starred=flags["starred"],
            danger=flags["danger"],
        )
        unread = await unread_counts(session, operator_id=keyring.operator.id)
        await audit.append_operator_act(
            session,
            console.local_audit,
            actor=actor(keyring),
            action="inbox.list",
            subject=chosen.codename if chosen else None,
            at=utc_now(),
            details={"messages": min(len(items), PAGE), "console": True},
        )
    return render(
        request,
        "inbox.html",
        items=items[:PAGE],
        more=len(items) > PAGE,
        page=page,
        query=dict(query),
        flags=flags,
        kinds=[k.value for k in MessageKind],
        groups=[g for g in groups if g.shredded_at is None],
        unread={codenames.get(k, "unlinked") if k else "unlinked": v for k, v in unread.items()},
        total_unread=sum(unread.values()),
    )


# --------------------------------------------------------------------------- one message


async def message(request: web.Request) -> web.StreamResponse:
    console = request.app[CONSOLE]
    message_id = _uuid(request.match_info["id"])
    async with console.operator() as (session, keyring):
        try:
            opened = await open_message(
                session, keyring, message_id=message_id, around=5, seen_at=utc_now()
            )
        except NotReadable as exc:
            raise web.HTTPForbidden(text=str(exc)) from None
        if opened is None:
            raise web.HTTPNotFound(text="no such message (shredded?)")
        groups = await list_groups(session)  # once a page: the link menu and the codename
        await audit.append_operator_act(
            session,
            console.local_audit,
            actor=actor(keyring),
            action="inbox.read",
            subject=str(message_id),
            at=utc_now(),
            details={
                "versions": len(opened.versions),
                "attachments": len(opened.files),
                "console": True,
            },
        )
    row = opened.message
    files = [
        {
            "id": f.attachment.id,
            "version": opened.version_of(f),
            "kind": f.attachment.kind.value,
            "size": len(f.content) if f.content is not None else None,
            "picture": picture_type(f.content) is not None,
            "meta": json.dumps(f.meta, ensure_ascii=False, sort_keys=True),
        }
        for f in opened.files
    ]
    shown = [
        {
            "row": v.message,
            "text": text_of(v.body),
            "extra": json.dumps(
                {k: x for k, x in v.body.items() if k not in ("text", "caption") and x is not None},
                ensure_ascii=False,
                sort_keys=True,
            ),
        }
        for v in opened.versions
    ]
    return render(
        request,
        "message.html",
        message=row,
        versions=shown,
        files=files,
        notes=opened.notes,
        place=opened.place,
        group=next((g for g in groups if g.id == row.group_id), None),
        sender=pseudonym_of(row.sender_id) if row.sender_id else None,
        starred=opened.starred,
        groups=[g for g in groups if g.shredded_at is None],
    )


async def attachment(request: web.Request) -> web.StreamResponse:
    """An attachment's bytes: a picture inline (its type from its own first bytes),
    anything else as a download under a name made here."""
    console = request.app[CONSOLE]
    wanted = _uuid(request.match_info["id"])
    async with console.operator() as (session, keyring):
        row = await session.get(Attachment, wanted)
        parent = await session.get(Message, row.message_id) if row else None
        if row is None or parent is None:
            raise web.HTTPNotFound(text="no such attachment")
        opened = next(
            (
                f
                for f in await open_files(session, keyring, message=parent)
                if f.attachment.id == row.id
            ),
            None,
        )
        if opened is None or opened.content is None:
            raise web.HTTPNotFound(text="this attachment was too large to fetch")
        await audit.append_operator_act(
            session,
            console.local_audit,
            actor=actor(keyring),
            action="inbox.attachment",
            subject=str(parent.id),
            at=utc_now(),
            details={"bytes": len(opened.content), "console": True},
        )
    kind = picture_type(opened.content)
    if kind is not None:
        return web.Response(body=opened.content, content_type=kind)
    response = web.Response(body=opened.content, content_type="application/octet-stream")
    name = f"{parent.id.hex[:8]}-{row.id.hex[:8]}.bin"
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


# --------------------------------------------------------------------------- actions


def _back(form: MultiDictProxy[Any]) -> str:
    # A path of this console only: "//host" and "/\\host" would leave it.
    back = str(form.get("back", ""))
    own = back.startswith("/") and not back.startswith(("//", "/\\")) and "\\" not in back
    return back if own else "/inbox"


async def act(request: web.Request) -> web.StreamResponse:
    """Every action, on one message or a selection; shredding asks to be confirmed."""
    console = request.app[CONSOLE]
    form = await request.post()
    action = str(form.get("action", ""))
    ids = [_uuid(str(i)) for i in form.getall("ids", [])]
    sender_label = str(form.get("sender", ""))
    if action == "shred" and form.get("confirm") != "yes":
        return render(
            request,
            "confirm.html",
            ids=[str(i) for i in ids],
            sender=sender_label,
            back=_back(form),
        )
    async with console.operator() as (session, keyring):
        rows = [m for m in [await session.get(Message, i) for i in ids] if m is not None]
        if action == "shred" and sender_label:
            try:
                person = await find_sender(session, label=sender_label)
            except NoSuchMessage as exc:
                raise web.HTTPNotFound(text=str(exc)) from None
            rows = await messages_from(session, person=person)
        if not rows:
            raise web.HTTPBadRequest(text="choose at least one message")
        said = await _do(session, keyring, action, rows, form, console.local_audit)
    if action == "shred":
        # As `intake inbox shred`: PostgreSQL keeps deleted rows in its files until the
        # tables are rewritten (SQLite zeroed them as it deleted).
        await reclaim_deleted(console.engine, tables=MESSAGE_TABLES)
        return render(request, "done.html", said=said, back="/inbox", back_text="Back to the inbox")
    if said:  # linked, but its signal could not be read here
        return render(request, "done.html", said=said, back=_back(form), back_text="Back")
    raise web.HTTPSeeOther(_back(form))


async def _do(
    session: AsyncSession,
    keyring: Keyring,
    action: str,
    rows: list[Message],
    form: MultiDictProxy[Any],
    local: Path,
) -> str:
    now = utc_now()
    who = actor(keyring)
    op = keyring.operator.id
    if action in MARKS:
        for row in rows:
            await mark(session, operator_id=op, message=row, now=now, **MARKS[action])
            await audit.append_operator_act(
                session, local, actor=who, action=f"inbox.{action}", subject=str(row.id), at=now
            )
        return ""
    if action in ("link", "unlink"):
        group = None
        if action == "link":
            codename = str(form.get("codename", ""))
            group = (await session.exec(select(Group).where(Group.codename == codename))).first()
            if group is None or group.shredded_at is not None:
                raise web.HTTPBadRequest(text="choose a group to link to")
        unread: list[Message] = []  # linked, with a text the codebook could not be read for
        for row in rows:
            if group is not None and row.group_id == group.id:
                continue
            try:
                done = await relink(session, keyring, message=row, group=group, now=now)
                recorded: bool | None = done.signal_recorded
                if group is not None and not recorded:
                    recorded = await _apply_codebook(session, keyring, row, group, now)
            except NotReadable as exc:
                raise web.HTTPForbidden(text=str(exc)) from None
            if recorded is None:
                unread.append(row)
            details: dict[str, object] = {"records": done.records, "console": True}
            if group is not None:
                details |= {"group": group.codename, "signal_recorded": bool(recorded)}
            await audit.append_operator_act(
                session,
                local,
                actor=who,
                action=f"inbox.{action}",
                subject=str(row.id),
                at=now,
                details=details,
            )
        if group is None or not unread:
            return ""
        commands = "; ".join(f"intake inbox link {m.id.hex[:8]} {group.codename}" for m in unread)
        return (
            f"Linked to {group.codename}. This console was opened without the installation's "
            f"config and server secret, so it could not read {group.codename}'s codebook: "
            "the signal of the message's text (a check-in phrase, say) could not be read "
            f"and nothing was recorded from it. To apply the codebook, run: {commands}"
        )
    if action == "note":
        text = str(form.get("text", "")).strip()
        if not text:
            raise web.HTTPBadRequest(text="the note is empty")
        for row in rows:
            note = await add_note(session, operator_id=op, message=row, text=text, now=now)
            await audit.append_operator_act(
                session,
                local,
                actor=who,
                action="inbox.note",
                subject=str(row.id),
                at=now,
                details={"note": str(note.id), "console": True},
            )
        return ""
    if action == "shred":
        subjects = [str(r.id) for r in rows]
        count = await shred_messages(session, messages=rows)
        for subject in subjects:
            await audit.append_operator_act(
                session,
                local,
                actor=who,
                action="inbox.shred",
                subject=subject,
                at=now,
                details={"console": True},
            )
        return f"Shredded {count} message row(s) (every version, attachment and note)."
    raise web.HTTPBadRequest(text="unknown action")


async def _apply_codebook(
    session: AsyncSession, keyring: Keyring, message: Message, group: Group, now: datetime
) -> bool | None:
    """Record what the message's text means in the group's codebook, as `intake inbox
    link` does: whether a signal was recorded, or None where the codebook could not be
    read (a console started without the installation's config and server secret)."""
    installation = installation_of(session)
    if installation is None:
        return None
    signal, leg_id = await codebook_meaning(
        session, keyring, server=installation.server, message=message, group=group
    )
    return signal is not None and await record_meaning(
        session, message=message, group=group, signal=signal, leg_id=leg_id, now=now
    )


# --------------------------------------------------------------------------- people and audit


async def people(request: web.Request) -> web.StreamResponse:
    console = request.app[CONSOLE]
    async with console.reading() as session:
        rows = await pages.people(session)
    return render(request, "people.html", rows=rows, can_revoke=console.has_server_secret)


async def revoke(request: web.Request) -> web.StreamResponse:
    """End a person's roles, as `intake role revoke` does, asking again first.

    Revoking is an admin's act (PRODUCT.md, "People"), and an operator's key is not an
    admin's: the console does it only when it was started with the installation's config
    and server secret, the credentials `intake role revoke` itself runs with, so it adds
    no power to whoever holds them. Given a copy or a URL alone it refuses, and the people
    page shows the command to give an admin instead."""
    console = request.app[CONSOLE]
    form = await request.post()
    name = str(form.get("pseudonym", "")).strip().upper()
    role_text = str(form.get("role", ""))
    codename = str(form.get("group", "")).strip() or None
    if role_text and role_text not in Role._value2member_map_:
        raise web.HTTPBadRequest(text="no such role")
    role = Role(role_text) if role_text else None
    if not console.has_server_secret:
        command = f"intake role revoke {name}" + (f" --role {role.value}" if role else "")
        command += f" --group {codename}" if codename else ""
        raise web.HTTPForbidden(
            text="Revoking a role is an admin's act, and this console was not given the "
            f"installation's config and server secret. Give an admin this command: {command}"
        )
    what = " ".join(filter(None, (role.value if role else "every role", codename)))
    if form.get("confirm") != "yes":
        return render(
            request,
            "confirm_revoke.html",
            pseudonym=name,
            role=role.value if role else "",
            group=codename or "",
            what=what,
        )
    now = utc_now()
    async with console.operator() as (session, keyring):
        person = await find_by_pseudonym(session, name=name)
        if person is None:
            raise web.HTTPNotFound(text=f"nobody has the pseudonym {name}")
        try:
            group = await get_group(session, codename=codename) if codename else None
        except UnknownGroup as exc:
            raise web.HTTPNotFound(text=str(exc)) from None
        revoked = await revoke_roles(
            session, person=person, role=role, group_id=group.id if group else None, now=now
        )
        if not revoked.grants:
            raise web.HTTPBadRequest(text=f"{name} holds no such live role")
        codenames = {g.id: g.codename for g in await list_groups(session)}
        roles = [
            f"{g.role.value} {codenames.get(g.group_id, '?')}" if g.group_id else g.role.value
            for g in revoked.grants
        ]
        await audit.append_operator_act(
            session,
            console.local_audit,
            actor=actor(keyring),
            action="role.revoke",
            subject=name,
            at=now,
            details={"roles": roles, "alerts_dropped": revoked.alerts_dropped, "console": True},
        )
    said = f"Revoked {name}: {', '.join(roles)}."
    if revoked.alerts_dropped:
        said += f" {revoked.alerts_dropped} alert(s) waiting for them will not be sent."
    return render(request, "done.html", said=said, back="/people", back_text="Back to people")


async def audit_page(request: web.Request) -> web.StreamResponse:
    console = request.app[CONSOLE]
    async with console.reading() as session:
        trail = await pages.audit_trail(session)
    return render(request, "audit.html", trail=trail)
