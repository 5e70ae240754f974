"""The operator's view of the sealed inbox: messages opened with their key, and
what an operator does to one (link, unlink, star, seen, notes).

Runs on the operator's own machine, against a copy of the database or its
URL; the key never touches the server.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, delete, select, update
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from storage.checkins import forwarder_groups, record_signal
from storage.crypto import Binding, open_content, wrap_key
from storage.messages import ATTACHMENTS, MESSAGES
from storage.models import (
    Attachment,
    CheckinEvent,
    Flip,
    Group,
    KeyWrap,
    LinkReason,
    Message,
    MessageKind,
    MessageMark,
    Note,
    Operator,
    Person,
    Signal,
)
from storage.people import pseudonym
from storage.sealing import (
    Keyring,
    NotReadable,
    active_operators,
    data_key_binding,
    group_public_key,
    operator_public_key,
    seal_record,
)
from storage.trust import trusted_group

NOTES = "notes"
# Row ids per ``IN (...)``: far under SQLite's and asyncpg's parameter limits.
BATCH = 500
# The shortest id prefix taken: the six characters of the receipt's reference.
SHORTEST_REF = 6
# How a signal recorded because an operator linked a message is marked.
OPERATOR_SOURCE = "operator"

Progress = Callable[[int, int], None]


class NoSuchMessage(Exception):
    pass


class InboxRefused(Exception):
    """An action the stored data refuses (a shredded group)."""


# --------------------------------------------------------------------------- listing


@dataclass(frozen=True, slots=True)
class InboxItem:
    id: uuid.UUID
    group: str | None
    link_reason: str | None
    signal: str | None
    kind: str
    version: int
    previous_id: uuid.UUID | None
    origin_at: datetime | None
    received_at: datetime
    forwarder: str | None  # a pseudonym, never an identifier
    attachments: int
    seen: bool  # by this operator
    starred: bool  # by this operator
    readable: bool  # False: sealed to a group whose key this operator was not given
    text: str
    danger: bool = False  # the text holds a danger word: for people to look, never a flip
    # A relative's news about a group in trouble that no signal confirmed and no operator
    # placed yet: listed first (its activists were told that news arrived).
    unconfirmed: bool = False

    def as_json(self) -> dict[str, object]:
        return {
            "id": str(self.id),
            "group": self.group,
            "link_reason": self.link_reason,
            "signal": self.signal,
            "kind": self.kind,
            "version": self.version,
            "previous_id": str(self.previous_id) if self.previous_id else None,
            "origin_at": iso(self.origin_at),
            "received_at": iso(self.received_at),
            "forwarder": self.forwarder,
            "attachments": self.attachments,
            "seen": self.seen,
            "starred": self.starred,
            "readable": self.readable,
            "danger": self.danger,
            "unconfirmed": self.unconfirmed,
            "text": self.text,
        }


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def text_of(body: Mapping[str, Any]) -> str:
    """What a person reads first in a message: its text or caption, else what it
    carries (a place, a contact), written out."""
    for key in ("text", "caption"):
        if body.get(key):
            return str(body[key])
    if venue := body.get("venue"):
        return f"venue {venue.get('title')}, {venue.get('address')} ({_where(venue)})"
    if location := body.get("location"):
        return f"location {_where(location)}"
    if contact := body.get("contact"):
        names = " ".join(str(n) for n in (contact.get("first_name"), contact.get("last_name")) if n)
        return f"contact {names} {contact.get('phone_number') or ''}".strip()
    return ""


def _where(place: Mapping[str, Any]) -> str:
    return f"{place.get('latitude')}, {place.get('longitude')}"


# How a check-in that came while a report stood is shown: it cleared nothing
# (captors can force an "all is well"), and operators should read it so.
AFTER_REPORT = "(after a report)"


async def _after_report(session: AsyncSession, message_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    if not message_ids:
        return set()
    result = await session.exec(
        select(CheckinEvent.message_id).where(
            col(CheckinEvent.message_id).in_(list(message_ids)),
            col(CheckinEvent.after_report).is_(True),
        )
    )
    return {m for m in result.all() if m is not None}


async def list_inbox(
    session: AsyncSession,
    keyring: Keyring,
    *,
    group: Group | None = None,
    unlinked: bool = False,
    since: datetime | None = None,
    unread: bool = False,
    starred: bool = False,
    unconfirmed: bool = False,
    danger: bool = False,
    kind: MessageKind | None = None,
    sender: Person | None = None,
    limit: int | None = None,
    offset: int = 0,
    progress: Progress | None = None,
) -> list[InboxItem]:
    """Messages, a relative's unconfirmed news first (``InboxItem.unconfirmed``: an operator
    should read these before anything else), then newest first, opened with the
    operator's key. ``unread`` and
    ``starred`` are this operator's own marks; ``unconfirmed``, a relative's news about a
    group in trouble that no signal confirmed, and those linked by a guess (a phrase, a
    relative's only group) that nobody confirmed; ``danger``,
    those holding a danger word. The filters and the page (``limit``, ``offset``)
    are the database's work, so a page of a large inbox opens only its own rows.
    ``progress(done, total)`` is told as messages are opened."""
    operator_id = keyring.operator.id
    query = inbox_query(
        operator_id,
        group=group,
        unlinked=unlinked,
        since=since,
        unread=unread,
        starred=starred,
        unconfirmed=unconfirmed,
        danger=danger,
        kind=kind,
        sender=sender,
    ).order_by(
        col(Message.unconfirmed).desc(),
        col(Message.received_at).desc(),
        col(Message.version).desc(),
    )
    if offset:
        query = query.offset(offset)
    if limit is not None:
        query = query.limit(limit)
    rows: Sequence[Message] = (await session.exec(query)).all()
    marks = await _marks(session, operator_id=operator_id, message_ids=[r.id for r in rows])
    codenames = {g.id: g.codename for g in (await session.exec(select(Group))).all()}
    senders = await _pseudonyms(session, {r.sender_id for r in rows if r.sender_id})
    files = await _attachment_counts(session, [r.id for r in rows])
    after_a_report = await _after_report(session, [r.id for r in rows])
    items = []
    for start in range(0, len(rows), BATCH):
        batch = rows[start : start + BATCH]
        bodies = await open_bodies(session, keyring, batch)
        for row in batch:
            body = bodies.get(row.id)
            mark_row = marks.get(row.id)
            items.append(
                InboxItem(
                    id=row.id,
                    group=codenames.get(row.group_id) if row.group_id else None,
                    link_reason=row.link_reason.value if row.link_reason else None,
                    signal=(
                        f"{row.signal.value} {AFTER_REPORT}"
                        if row.signal and row.id in after_a_report
                        else row.signal.value
                        if row.signal
                        else None
                    ),
                    kind=row.kind.value,
                    version=row.version,
                    previous_id=row.previous_id,
                    origin_at=row.origin_at,
                    received_at=row.received_at,
                    forwarder=senders.get(row.sender_id) if row.sender_id else None,
                    attachments=files.get(row.id, 0),
                    seen=mark_row is not None and mark_row.seen_at is not None,
                    starred=mark_row is not None and mark_row.starred,
                    readable=body is not None,
                    text=text_of(body) if body is not None else "",
                    danger=row.possible_detention,
                    unconfirmed=row.unconfirmed,
                )
            )
        if progress is not None:
            progress(len(items), len(rows))
    return items


async def open_bodies(
    session: AsyncSession, keyring: Keyring, messages: Sequence[Message]
) -> dict[uuid.UUID, dict[str, Any]]:
    """The opened bodies of many messages, their wraps read in one query; a message
    no key of this operator opens is left out."""
    keys = await data_keys(session, keyring, table=MESSAGES, row_ids=[m.id for m in messages])
    bodies = {}
    for message in messages:
        if message.id in keys:
            plain = open_content(
                keys[message.id],
                message.body_sealed,
                Binding(MESSAGES, "body_sealed", message.id),
            )
            bodies[message.id] = json.loads(plain)
    return bodies


async def data_keys(
    session: AsyncSession, keyring: Keyring, *, table: str, row_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, bytes]:
    """The data keys of many rows that this operator opens (their own wrap first,
    which needs no group key; then each group wrap whose group key they hold)."""
    wraps: dict[uuid.UUID, list[KeyWrap]] = {}
    for start in range(0, len(row_ids), BATCH):
        query = select(KeyWrap).where(
            KeyWrap.subject_table == table,
            col(KeyWrap.subject_id).in_(row_ids[start : start + BATCH]),
        )
        for wrap in (await session.exec(query)).all():
            wraps.setdefault(wrap.subject_id, []).append(wrap)
    # Held here so that the session's identity map (weak) keeps them: each wrap's
    # group is then found without a query.
    group_ids = {w.group_id for found in wraps.values() for w in found if w.group_id}
    held = (
        (await session.exec(select(Group).where(col(Group.id).in_(group_ids)))).all()
        if group_ids
        else []
    )
    keys = {}
    for row_id, found in wraps.items():
        mine = [w for w in found if w.operator_id == keyring.operator.id]
        for wrap in mine + [w for w in found if w.group_id is not None]:
            try:
                keys[row_id] = await keyring.unwrap(session, wrap)
                break
            except NotReadable:
                continue  # a group whose key was not shared with this operator
    del held
    return keys


# A guess that neither the relative nor an operator confirmed.
GUESSED = (LinkReason.PHRASE, LinkReason.SOLE_GROUP)


def inbox_query(
    operator_id: uuid.UUID,
    *,
    group: Group | None = None,
    unlinked: bool = False,
    since: datetime | None = None,
    unread: bool = False,
    starred: bool = False,
    unconfirmed: bool = False,
    danger: bool = False,
    kind: MessageKind | None = None,
    sender: Person | None = None,
) -> SelectOfScalar[Message]:
    """The messages that pass the inbox's filters (unordered)."""
    query = select(Message)
    if group is not None:
        query = query.where(Message.group_id == group.id)
    if unlinked:
        query = query.where(col(Message.group_id).is_(None))
    if since is not None:
        query = query.where(col(Message.received_at) >= since)
    if unconfirmed:
        # News about a group in trouble that no signal confirmed (its activists were
        # told), and messages linked by a guess that nobody confirmed.
        query = query.where(
            sa.or_(col(Message.unconfirmed).is_(True), col(Message.link_reason).in_(GUESSED))
        )
    if danger:
        query = query.where(col(Message.possible_detention).is_(True))
    if kind is not None:
        query = query.where(Message.kind == kind)
    if sender is not None:
        query = query.where(Message.sender_id == sender.id)
    mine = MessageMark.operator_id == operator_id
    if unread:
        seen = select(MessageMark.message_id).where(mine, col(MessageMark.seen_at).is_not(None))
        query = query.where(col(Message.id).not_in(seen))
    if starred:
        stars = select(MessageMark.message_id).where(mine, col(MessageMark.starred).is_(True))
        query = query.where(col(Message.id).in_(stars))
    return query


async def unread_counts(
    session: AsyncSession, *, operator_id: uuid.UUID
) -> dict[uuid.UUID | None, int]:
    """How many messages this operator has not seen, per group (None: unlinked)."""
    seen = select(MessageMark.message_id).where(
        MessageMark.operator_id == operator_id, col(MessageMark.seen_at).is_not(None)
    )
    query = (
        select(Message.group_id, sa.func.count())
        .where(col(Message.id).not_in(seen))
        .group_by(col(Message.group_id))
    )
    return {group_id: count for group_id, count in (await session.exec(query)).all()}


async def _marks(
    session: AsyncSession, *, operator_id: uuid.UUID, message_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, MessageMark]:
    found: dict[uuid.UUID, MessageMark] = {}
    for start in range(0, len(message_ids), BATCH):
        query = select(MessageMark).where(
            MessageMark.operator_id == operator_id,
            col(MessageMark.message_id).in_(message_ids[start : start + BATCH]),
        )
        found |= {m.message_id: m for m in (await session.exec(query)).all()}
    return found


async def _pseudonyms(session: AsyncSession, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
    wanted = list(ids)
    found: dict[uuid.UUID, str] = {}
    for start in range(0, len(wanted), BATCH):
        query = select(Person).where(col(Person.id).in_(wanted[start : start + BATCH]))
        found |= {p.id: pseudonym(p) for p in (await session.exec(query)).all()}
    return found


async def _attachment_counts(
    session: AsyncSession, message_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, int]:
    counts: dict[uuid.UUID, int] = {}
    for start in range(0, len(message_ids), BATCH):
        query = select(Attachment.message_id).where(
            col(Attachment.message_id).in_(message_ids[start : start + BATCH])
        )
        for message_id in (await session.exec(query)).all():
            counts[message_id] = counts.get(message_id, 0) + 1
    return counts


# --------------------------------------------------------------------------- one message


async def find_message(session: AsyncSession, *, ref: str) -> Message:
    """A message by its id, or by its first characters (six at least, as on the
    receipt the relative saw) if no other id starts with them."""
    ref = ref.strip().lower().replace("-", "")
    if len(ref) < SHORTEST_REF or any(c not in "0123456789abcdef" for c in ref):
        raise NoSuchMessage(f"give a message id (at least its first {SHORTEST_REF} characters)")
    # Compared in Python: SQLite and PostgreSQL store a UUID differently.
    ids = (await session.exec(select(Message.id))).all()
    found = [i for i in ids if i.hex.startswith(ref)]
    if len(found) != 1:
        raise NoSuchMessage(
            f"no message id starts with {ref}" if not found else f"{ref} names several messages"
        )
    message = await session.get(Message, found[0])
    if message is None:
        raise NoSuchMessage(f"no message id starts with {ref}")
    return message


async def versions_of(session: AsyncSession, *, message: Message) -> list[Message]:
    """Every version of the message (an edit is a new version), oldest first:
    the ones before it and the ones after it."""
    chain = [message]
    while chain[0].previous_id is not None:
        earlier = await session.get(Message, chain[0].previous_id)
        if earlier is None or earlier in chain:
            break
        chain.insert(0, earlier)
    while True:
        later = (
            await session.exec(select(Message).where(Message.previous_id == chain[-1].id))
        ).first()
        if later is None or later in chain:
            return chain
        chain.append(later)


@dataclass(frozen=True, slots=True)
class OpenedVersion:
    message: Message
    body: dict[str, Any]


async def open_versions(
    session: AsyncSession, keyring: Keyring, *, message: Message
) -> list[OpenedVersion]:
    """Every version, opened (one this operator cannot open is refused)."""
    versions = await versions_of(session, message=message)
    bodies = await open_bodies(session, keyring, versions)
    missing = [v for v in versions if v.id not in bodies]
    if missing:
        raise NotReadable(
            f"message {missing[0].id} is sealed to a group whose key you were not given"
        )
    return [OpenedVersion(v, bodies[v.id]) for v in versions]


@dataclass(frozen=True, slots=True)
class OpenedFile:
    attachment: Attachment
    meta: dict[str, Any]
    content: bytes | None  # None: it was too large to fetch


async def open_files(
    session: AsyncSession, keyring: Keyring, *, message: Message
) -> list[OpenedFile]:
    attachments = (
        await session.exec(
            select(Attachment)
            .where(Attachment.message_id == message.id)
            .order_by(col(Attachment.id))
        )
    ).all()
    keys = await data_keys(session, keyring, table=ATTACHMENTS, row_ids=[a.id for a in attachments])
    opened = []
    for attachment in attachments:
        if attachment.id not in keys:
            raise NotReadable(f"an attachment of {message.id} does not open with your key")
        key = keys[attachment.id]
        meta = open_content(
            key, attachment.meta_sealed, Binding(ATTACHMENTS, "meta_sealed", attachment.id)
        )
        content = (
            open_content(
                key,
                attachment.content_sealed,
                Binding(ATTACHMENTS, "content_sealed", attachment.id),
            )
            if attachment.content_sealed is not None
            else None
        )
        opened.append(OpenedFile(attachment, json.loads(meta), content))
    return opened


# --------------------------------------------------------------------------- the group's timeline


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    at: datetime
    what: str  # "checkin (phrase)", "SILENT -> DETAINED (reported)": no contents
    this_message: bool  # recorded because of this message (or another version of it)


@dataclass(frozen=True, slots=True)
class Place:
    """Where a message sits in its group's timeline: the check-ins and flips
    just before the moment it speaks of, and just after."""

    moment: datetime
    before: list[TimelineEntry]
    after: list[TimelineEntry]


def moment_of(message: Message) -> datetime:
    """The time a message speaks of: the traveller's, when the forward kept it."""
    return message.origin_at or message.sent_at or message.received_at


def place_in(
    entries: Iterable[TimelineEntry], *, moment: datetime, around: int
) -> tuple[list[TimelineEntry], list[TimelineEntry]]:
    """The last ``around`` entries at or before ``moment`` and the first after it."""
    ordered = sorted(entries, key=lambda e: e.at)
    before = [e for e in ordered if e.at <= moment]
    after = [e for e in ordered if e.at > moment]
    return before[-around:] if around else [], after[:around]


async def place_of(session: AsyncSession, *, message: Message, around: int = 3) -> Place | None:
    """The message's place in its group's timeline (None when it is unlinked)."""
    if message.group_id is None:
        return None
    ids = {v.id for v in await versions_of(session, message=message)}
    checkins = (
        await session.exec(select(CheckinEvent).where(CheckinEvent.group_id == message.group_id))
    ).all()
    flips = (await session.exec(select(Flip).where(Flip.group_id == message.group_id))).all()
    entries = [
        TimelineEntry(
            e.at,
            f"{e.signal.value} ({e.source})" + (f" {AFTER_REPORT}" if e.after_report else ""),
            e.message_id in ids,
        )
        for e in checkins
    ] + [
        TimelineEntry(f.at, f"{f.from_status.value} -> {f.to_status.value} ({f.basis})", False)
        for f in flips
    ]
    moment = moment_of(message)
    before, after = place_in(entries, moment=moment, around=around)
    return Place(moment=moment, before=before, after=after)


# --------------------------------------------------------------------------- marks and notes


async def mark(
    session: AsyncSession,
    *,
    operator_id: uuid.UUID,
    message: Message,
    now: datetime,
    seen: bool | None = None,
    starred: bool | None = None,
) -> MessageMark:
    """This operator's own reading state of a message (other operators keep theirs)."""
    row = (
        await session.exec(
            select(MessageMark).where(
                MessageMark.message_id == message.id, MessageMark.operator_id == operator_id
            )
        )
    ).first() or MessageMark(message_id=message.id, operator_id=operator_id)
    if seen is not None:
        row.seen_at = now if seen else None
    if starred is not None:
        row.starred = starred
    session.add(row)
    await session.flush()
    return row


async def add_note(
    session: AsyncSession, *, operator_id: uuid.UUID, message: Message, text: str, now: datetime
) -> Note:
    """A note on a message, sealed to every operator (never to a group: shredding
    the group's key does not take an operator's note with it, the row does)."""
    note_id = uuid.uuid4()
    sealed = seal_record(
        table=NOTES,
        row_id=note_id,
        fields={"body_sealed": text.encode()},
        operators=await active_operators(session),
    )
    note = Note(
        id=note_id,
        message_id=message.id,
        operator_id=operator_id,
        body_sealed=sealed.columns["body_sealed"],
        created_at=now,
    )
    session.add(note)
    await session.flush()
    session.add_all(sealed.wraps)
    await session.flush()
    return note


@dataclass(frozen=True, slots=True)
class OpenedNote:
    at: datetime
    author: str | None  # the author's key fingerprint (short), never a name
    text: str
    author_id: uuid.UUID | None = None  # to name them where the names can be opened


async def notes_of(
    session: AsyncSession, keyring: Keyring, *, message: Message
) -> list[OpenedNote]:
    notes = (
        await session.exec(
            select(Note).where(Note.message_id == message.id).order_by(col(Note.created_at))
        )
    ).all()
    keys = await data_keys(session, keyring, table=NOTES, row_ids=[n.id for n in notes])
    authors = await _fingerprints(session, {n.operator_id for n in notes if n.operator_id})
    opened = []
    for note in notes:
        if note.id not in keys:
            continue  # written before this operator was added: not sealed to them
        text = open_content(keys[note.id], note.body_sealed, Binding(NOTES, "body_sealed", note.id))
        author = authors.get(note.operator_id) if note.operator_id else None
        opened.append(OpenedNote(note.created_at, author, text.decode(), note.operator_id))
    return opened


async def _fingerprints(session: AsyncSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    rows = (await session.exec(select(Operator).where(col(Operator.id).in_(ids)))).all()
    return {op.id: op.fingerprint[:16] for op in rows}


# --------------------------------------------------------------------------- linking by hand


@dataclass(frozen=True, slots=True)
class Relinked:
    versions: int
    records: int  # data keys wrapped again (messages and attachments)
    signal_recorded: bool


async def relink(
    session: AsyncSession,
    keyring: Keyring,
    *,
    message: Message,
    group: Group | None,
    now: datetime,
) -> Relinked:
    """Link a message (every version, and their attachments) to ``group``, or
    unlink it (None). The data keys are wrapped again and every other wrap is
    deleted: linked, only that group's key opens it; unlinked, every operator's
    key and, as when the bot took it in, the forwarder's own groups (a relative
    may still answer "which group?", and the group they choose must open it).

    A signal the message carries is recorded for the group it is linked to, as
    when a relative chooses the group (once per message and group)."""
    if group is not None and group.shredded_at is not None:
        raise InboxRefused(f"group {group.codename} was shredded")
    versions = await versions_of(session, message=message)
    attachment_ids = (
        await session.exec(
            select(Attachment.id).where(col(Attachment.message_id).in_([v.id for v in versions]))
        )
    ).all()
    subjects = [(MESSAGES, v.id) for v in versions] + [(ATTACHMENTS, a) for a in attachment_ids]
    if group is not None:
        if not trusted_group(session, group):
            raise InboxRefused(
                f"group {group.codename}'s key fails its operator signature "
                "(see `intake audit verify`): nothing is moved to it"
            )
        groups = [group]
        operators = []
    else:
        sender = versions[-1].sender_id
        groups = await forwarder_groups(session, person_id=sender) if sender else []
        groups = [g for g in groups if trusted_group(session, g)]
        operators = await active_operators(session)
    keys: dict[uuid.UUID, bytes] = {}
    for table in (MESSAGES, ATTACHMENTS):
        ids = [row_id for t, row_id in subjects if t == table]
        keys |= await data_keys(session, keyring, table=table, row_ids=ids)
    unopened = [row_id for _, row_id in subjects if row_id not in keys]
    if unopened:
        # Re-wrapping what this operator cannot open would lose it for everyone.
        raise NotReadable(f"your key does not open {unopened[0]}: it cannot be moved with it")
    for table, row_id in subjects:
        binding = data_key_binding(table, row_id)
        await session.exec(delete(KeyWrap).where(col(KeyWrap.subject_id) == row_id))
        session.add_all(
            [
                KeyWrap(
                    subject_table=table,
                    subject_id=row_id,
                    group_id=g.id,
                    wrapped=wrap_key(keys[row_id], group_public_key(g), binding),
                )
                for g in groups
            ]
            + [
                KeyWrap(
                    subject_table=table,
                    subject_id=row_id,
                    operator_id=op.id,
                    wrapped=wrap_key(keys[row_id], operator_public_key(op), binding),
                )
                for op in operators
            ]
        )
    for version in versions:
        version.group_id = group.id if group else None
        version.link_reason = LinkReason.OPERATOR if group else None
        if group is not None:
            version.unconfirmed = False  # an operator placed it: seen by a person
        session.add(version)
    await session.flush()
    recorded = False
    latest = versions[-1]
    if (
        group is not None
        and latest.signal is not None
        and not await _recorded(session, group, versions)
    ):
        at = min(moment_of(latest), latest.received_at)
        await record_signal(
            session,
            group=group,
            signal=latest.signal,
            at=at,
            source=OPERATOR_SOURCE,
            now=now,
            message=latest,
        )
        recorded = True
    return Relinked(versions=len(versions), records=len(subjects), signal_recorded=recorded)


async def record_meaning(
    session: AsyncSession,
    *,
    message: Message,
    group: Group,
    signal: Signal,
    leg_id: uuid.UUID | None,
    now: datetime,
) -> bool:
    """What an operator found a message linked to ``group`` to mean (its codebook, or
    their own word), recorded once per message and group; whether it was recorded."""
    versions = await versions_of(session, message=message)
    if await _recorded(session, group, versions, signal=signal):
        return False
    latest = versions[-1]
    latest.signal = signal
    latest.unconfirmed = False
    session.add(latest)
    await record_signal(
        session,
        group=group,
        signal=signal,
        at=min(moment_of(latest), latest.received_at),
        source=OPERATOR_SOURCE,
        now=now,
        message=latest,
        leg_id=leg_id if signal is Signal.STAGE else None,
    )
    return True


async def _recorded(
    session: AsyncSession,
    group: Group,
    versions: Sequence[Message],
    *,
    signal: Signal | None = None,
) -> bool:
    """Whether a signal (any, or this one) of the message was recorded for the group."""
    query = select(CheckinEvent.id).where(
        CheckinEvent.group_id == group.id,
        col(CheckinEvent.message_id).in_([v.id for v in versions]),
    )
    if signal is not None:
        query = query.where(CheckinEvent.signal == signal)
    return (await session.exec(query)).first() is not None


# --------------------------------------------------------------------------- shredding


async def shred_messages(session: AsyncSession, *, messages: Sequence[Message]) -> int:
    """Delete messages outright (every version, attachment, note, mark and wrapped
    key of them), as SecureDrop lets journalists delete spam and finished
    conversations. A check-in recorded from one stays in the group's timeline
    without it. Returns the number of rows of messages deleted (versions count).
    After the commit, ``storage.db.reclaim_deleted`` clears what the database
    keeps of deleted rows."""
    ids: set[uuid.UUID] = set()
    for message in messages:
        ids |= {v.id for v in await versions_of(session, message=message)}
    wanted = list(ids)
    for start in range(0, len(wanted), BATCH):
        batch = wanted[start : start + BATCH]
        sealed = sa.union_all(
            select(Attachment.id).where(col(Attachment.message_id).in_(batch)),
            select(Note.id).where(col(Note.message_id).in_(batch)),
        )
        await session.exec(delete(KeyWrap).where(col(KeyWrap.subject_id).in_(sealed)))
        await session.exec(delete(KeyWrap).where(col(KeyWrap.subject_id).in_(batch)))
        await session.exec(delete(Attachment).where(col(Attachment.message_id).in_(batch)))
        await session.exec(delete(Note).where(col(Note.message_id).in_(batch)))
        await session.exec(delete(MessageMark).where(col(MessageMark.message_id).in_(batch)))
        await session.exec(
            update(CheckinEvent)
            .where(col(CheckinEvent.message_id).in_(batch))
            .values(message_id=None)
        )
        await session.exec(
            update(Message).where(col(Message.previous_id).in_(batch)).values(previous_id=None)
        )
    for start in range(0, len(wanted), BATCH):
        await session.exec(
            delete(Message).where(col(Message.id).in_(wanted[start : start + BATCH]))
        )
    return len(wanted)


async def messages_from(session: AsyncSession, *, person: Person) -> list[Message]:
    """Every message a person sent (each version)."""
    query = select(Message).where(Message.sender_id == person.id)
    return list((await session.exec(query)).all())


async def find_sender(session: AsyncSession, *, label: str) -> Person:
    """A person by their pseudonym (P-1A2B3C), as the inbox shows it."""
    wanted = label.strip().upper()
    senders = select(Message.sender_id).where(col(Message.sender_id).is_not(None)).distinct()
    people = (await session.exec(select(Person).where(col(Person.id).in_(senders)))).all()
    found = [p for p in people if pseudonym(p) == wanted]
    if not found:
        raise NoSuchMessage(f"no message comes from {wanted}")
    return found[0]
