"""The operator's view of the sealed inbox: messages opened with their key, and
what an operator does to one (link, unlink, star, seen, notes).

Runs on the operator's own machine, against a copy of the database or its
URL; the key never touches the server.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy import delete, select, update

from storage.checkins import forwarder_groups, record_signal
from storage.crypto import Binding, open_content, unwrap_key, wrap_key
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
from storage.operators import name_or_none, operator_label
from storage.people import pseudonym, pseudonym_of
from storage.sealing import (
    Keyring,
    NotReadable,
    Wrap,
    active_operators,
    current_group_key,
    data_key_binding,
    group_public_key,
    operator_public_key,
    seal_record,
)
from storage.session import AsyncSession
from storage.trust import installation_of, trusted_group

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

# Unconfirmed news first (operators see it first, #14), then the newest.
NEWEST_FIRST = (
    Message.unconfirmed.desc(),
    Message.received_at.desc(),
    Message.version.desc(),
)


class SealedBody(Protocol):
    """A message's sealed body as read: a ``Message``, or its columns selected alone."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def body_sealed(self) -> bytes: ...


async def rows_of(
    session: AsyncSession, query: sa.Executable, params: Mapping[str, Any] | None = None
) -> Sequence[sa.Row[*tuple[Any, ...]]]:
    """A plain SELECT of columns, in the session's transaction, after writing what
    the session holds (as an ORM query would): rows of values, no objects built."""
    await session.flush()
    connection = await session.connection()
    rows: Sequence[sa.Row[*tuple[Any, ...]]] = (await connection.execute(query, params)).all()
    return rows


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
    ``progress(done, total)`` is told as messages are opened.

    One query whatever the number of messages: the rows with their groups' codenames,
    this operator's marks, attachment counts, after-a-report flags and wrapped keys."""
    operator_id = keyring.operator.id
    filters = inbox_filters(
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
    )
    query = _listing()
    if limit is None and not offset:
        query = query.where(*filters)
    else:
        # The page chosen on the narrow columns first: sorting whole rows (their
        # sealed bodies) to keep fifty took longer than the page itself.
        page = sa.select(Message.id).where(*filters).order_by(*NEWEST_FIRST).offset(offset)
        query = query.where(Message.id.in_(page.limit(limit).scalar_subquery()))
    rows = await rows_of(session, query, {"operator_id": operator_id})
    # Ids repeated on many rows (a sender, a group) read raw and converted once each.
    pseudonyms: Memo[object, str] = Memo(lambda raw: pseudonym_of(as_uuid(raw)))
    groups: Memo[object, uuid.UUID] = Memo(as_uuid)
    # A message comes once per wrap that may open it (its group's; the operator's own
    # while it is unlinked), on rows next to each other (ordered by id last): the first
    # row carries the message, the wraps are gathered. Rows are unpacked, not read by
    # name, and kept in a list, not a dict by id: at ten thousand it shows.
    listed: list[tuple[Any, ...]] = []
    wraps: list[list[Wrap]] = []
    last = None
    for row in rows:
        *message, wrap_group, wrap_mine, wrapped = row
        if message[0] != last:
            last = message[0]
            listed.append(tuple(message))
            wraps.append([])
        if wrapped is not None:
            group_id = groups(wrap_group) if wrap_group is not None else None
            wraps[-1].append(FoundWrap(group_id, operator_id if wrap_mine else None, wrapped))
    keys = await unwrap_each(
        session,
        keyring,
        [(data_key_binding(MESSAGES, m[0]), found) for m, found in zip(listed, wraps, strict=True)],
    )
    items = []
    for start in range(0, len(listed), BATCH):
        for (
            message_id,
            codename,
            link_reason,
            signal,
            kind,
            version,
            previous_id,
            origin_at,
            received_at,
            sender,
            danger,
            unconfirmed,
            body_sealed,
            seen_at,
            is_starred,
            files,
            after_report,
        ), key in zip(listed[start : start + BATCH], keys[start : start + BATCH], strict=True):
            body = None
            if key is not None:
                binding = Binding(MESSAGES, "body_sealed", message_id)
                body = json.loads(open_content(key, body_sealed, binding).decode())
            if signal and after_report:
                signal = f"{signal} {AFTER_REPORT}"
            items.append(
                InboxItem(
                    id=message_id,
                    group=codename,
                    link_reason=link_reason,
                    signal=signal,
                    kind=kind,
                    version=version,
                    previous_id=previous_id,
                    origin_at=origin_at,
                    received_at=received_at,
                    forwarder=pseudonyms(sender) if sender is not None else None,
                    attachments=files,
                    seen=seen_at is not None,
                    starred=bool(is_starred),
                    readable=body is not None,
                    text=text_of(body) if body is not None else "",
                    danger=danger,
                    unconfirmed=bool(unconfirmed),
                )
            )
        if progress is not None:
            progress(len(items), len(listed))
    return items


def as_uuid(raw: object) -> uuid.UUID:
    """An id read raw: SQLite gives its 32 hex digits, PostgreSQL a UUID already."""
    return raw if isinstance(raw, uuid.UUID) else uuid.UUID(str(raw))


K = TypeVar("K")
V = TypeVar("V")


class Memo(Generic[K, V]):
    """A conversion done once per distinct value."""

    def __init__(self, convert: Callable[[K], V]) -> None:
        self._convert = convert
        self._done: dict[K, V] = {}

    def __call__(self, raw: K) -> V:
        done = self._done.get(raw)
        if done is None:
            done = self._done[raw] = self._convert(raw)
        return done


class FoundWrap(NamedTuple):
    group_id: uuid.UUID | None
    operator_id: uuid.UUID | None
    wrapped: bytes


def _text(column: Any) -> sa.ColumnElement[str]:
    # An enumeration's stored text is its value: read as text, not made an Enum
    # each row to be turned back into text.
    return sa.type_coerce(column, sa.String()).label(column.key)


@functools.cache
def _listing() -> sa.Select[*tuple[Any, ...]]:
    """The inbox's one query, built once (the filters and the page are added to it, the
    operator is bound): each message with this operator's marks, its attachment count,
    whether a check-in from it came after a report, and each wrap that may open it for
    this operator."""
    files = sa.select(sa.func.count()).where(Attachment.message_id == Message.id).scalar_subquery()
    after = (
        sa.select(CheckinEvent.message_id)
        .where(CheckinEvent.after_report.is_(True), CheckinEvent.message_id.is_not(None))
        .distinct()
        .subquery()
    )
    return (
        sa.select(
            Message.id,
            Group.codename,
            _text(Message.link_reason),
            _text(Message.signal),
            _text(Message.kind),
            Message.version,
            Message.previous_id,
            Message.origin_at,
            Message.received_at,
            sa.type_coerce(Message.sender_id, sa.String()).label("sender"),
            Message.possible_detention,
            Message.unconfirmed,
            Message.body_sealed,
            MessageMark.seen_at,
            MessageMark.starred,
            files.label("files"),
            after.c.message_id.is_not(None).label("after_report"),
            sa.type_coerce(KeyWrap.group_id, sa.String()).label("wrap_group"),
            (KeyWrap.operator_id == sa.bindparam("operator_id")).label("wrap_mine"),
            KeyWrap.wrapped,
        )
        .select_from(Message)
        .outerjoin(Group, Group.id == Message.group_id)
        .outerjoin(
            MessageMark,
            sa.and_(
                MessageMark.message_id == Message.id,
                MessageMark.operator_id == sa.bindparam("operator_id"),
            ),
        )
        .outerjoin(after, after.c.message_id == Message.id)
        .outerjoin(
            KeyWrap,
            sa.and_(
                KeyWrap.subject_table == MESSAGES,
                KeyWrap.subject_id == Message.id,
                # Another operator's own wrap opens nothing here: not read at all.
                sa.or_(
                    KeyWrap.operator_id == sa.bindparam("operator_id"),
                    KeyWrap.group_id.is_not(None),
                ),
            ),
        )
        .order_by(*NEWEST_FIRST, Message.id)
    )


async def open_bodies(
    session: AsyncSession, keyring: Keyring, messages: Sequence[SealedBody]
) -> dict[uuid.UUID, dict[str, Any]]:
    """The opened bodies of many messages, their wraps read in one query; a message
    no key of this operator opens is left out."""
    keys = await data_keys(session, keyring, table=MESSAGES, row_ids=[m.id for m in messages])
    return open_bodies_with(keys, messages)


def open_bodies_with(
    keys: Mapping[uuid.UUID, bytes], messages: Iterable[SealedBody]
) -> dict[uuid.UUID, dict[str, Any]]:
    """The bodies of the messages whose data keys are given (the others left out)."""
    bodies = {}
    for message in messages:
        key = keys.get(message.id)
        if key is not None:
            plain = open_content(
                key, message.body_sealed, Binding(MESSAGES, "body_sealed", message.id)
            )
            bodies[message.id] = json.loads(plain)
    return bodies


async def data_keys(
    session: AsyncSession,
    keyring: Keyring,
    *,
    table: str,
    row_ids: Sequence[uuid.UUID] = (),
    of: sa.Select[Any] | None = None,
) -> dict[uuid.UUID, bytes]:
    """The data keys of many rows that this operator opens (their own wrap first,
    which needs no group key; then each group wrap whose group key they hold): the
    rows ``row_ids``, or those the query ``of`` selects (one query however many)."""
    found = await read_wraps(session, keyring, tables=(table,), row_ids=row_ids, of=of)
    keys = await unwrap_all(session, keyring, found)
    return {row_id: key for (_, row_id), key in keys.items()}


WrapKey = tuple[str, uuid.UUID]  # (table, row id)


async def read_wraps(
    session: AsyncSession,
    keyring: Keyring,
    *,
    tables: Collection[str],
    row_ids: Sequence[uuid.UUID] = (),
    of: sa.Select[Any] | None = None,
) -> dict[WrapKey, list[Wrap]]:
    """The wraps that may open these rows for this operator: their own and the
    groups' (another operator's own wrap opens nothing here and is not read)."""
    params: dict[str, Any] = {"tables": list(tables), "operator_id": keyring.operator.id}
    if of is not None:
        base = _wraps_statement(expanding=False)
        queries = [(base.where(KeyWrap.subject_id.in_(of.scalar_subquery())), params)]
    else:
        queries = [
            (_wraps_statement(expanding=True), params | {"ids": list(row_ids[i : i + BATCH])})
            for i in range(0, len(row_ids), BATCH)
        ]
    wraps: dict[WrapKey, list[Wrap]] = {}
    for query, values in queries:
        for wrap in await rows_of(session, query, values):
            wraps.setdefault((wrap.subject_table, wrap.subject_id), []).append(wrap)
    return wraps


@functools.cache
def _wraps_statement(*, expanding: bool) -> sa.Select[*tuple[Any, ...]]:
    """Built once: composing a statement costs more than running it on a small page."""
    query = sa.select(
        KeyWrap.subject_table,
        KeyWrap.subject_id,
        KeyWrap.group_id,
        KeyWrap.operator_id,
        KeyWrap.wrapped,
    ).where(
        KeyWrap.subject_table.in_(sa.bindparam("tables", expanding=True)),
        sa.or_(
            KeyWrap.operator_id == sa.bindparam("operator_id"),
            KeyWrap.group_id.is_not(None),
        ),
    )
    if expanding:
        query = query.where(KeyWrap.subject_id.in_(sa.bindparam("ids", expanding=True)))
    return query


async def unwrap_all(
    session: AsyncSession, keyring: Keyring, wraps: Mapping[WrapKey, Sequence[Wrap]]
) -> dict[WrapKey, bytes]:
    """Each row's data key (by table and id) from the first of its wraps this operator
    opens; a row none of whose wraps they open is left out."""
    subjects = list(wraps)
    keys = await unwrap_each(
        session, keyring, [(data_key_binding(*subject), wraps[subject]) for subject in subjects]
    )
    return {s: k for s, k in zip(subjects, keys, strict=True) if k is not None}


async def unwrap_each(
    session: AsyncSession, keyring: Keyring, wrapped: Sequence[tuple[Binding, Sequence[Wrap]]]
) -> list[bytes | None]:
    """For each record (its data key's binding and the wraps read for it), the data key
    from the first wrap this operator opens: their own (which needs no group key), else a
    group's; None where none opens. The group keys are opened first, in one query, so
    that no record waits on the database."""
    await keyring.open_group_keys(
        session, {w.group_id for _, found in wrapped for w in found if w.group_id}
    )
    keys: list[bytes | None] = []
    for binding, found in wrapped:
        key = None
        for wrap in found if len(found) == 1 else _own_first(found):
            recipient = keyring.recipient(wrap)
            if recipient is not None:
                key = unwrap_key(wrap.wrapped, recipient, binding)
                break
        keys.append(key)
    return keys


def _own_first(wraps: Sequence[Wrap]) -> list[Wrap]:
    # Only this operator's own wraps carry an operator (others' are not read).
    return sorted(wraps, key=lambda w: w.operator_id is None)


# A guess that neither the relative nor an operator confirmed.
GUESSED = (LinkReason.PHRASE, LinkReason.SOLE_GROUP)


def inbox_filters(
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
) -> list[sa.ColumnElement[bool]]:
    """The conditions a message meets to pass the inbox's filters."""
    where: list[sa.ColumnElement[bool]] = []
    if group is not None:
        where.append(Message.group_id == group.id)
    if unlinked:
        where.append(Message.group_id.is_(None))
    if since is not None:
        where.append(Message.received_at >= since)
    if unconfirmed:
        # News about a group in trouble that no signal confirmed (its activists were
        # told), and messages linked by a guess that nobody confirmed.
        where.append(sa.or_(Message.unconfirmed.is_(True), Message.link_reason.in_(GUESSED)))
    if danger:
        where.append(Message.possible_detention.is_(True))
    if kind is not None:
        where.append(Message.kind == kind)
    if sender is not None:
        where.append(Message.sender_id == sender.id)
    mine = MessageMark.operator_id == operator_id
    # Never correlated: the listing joins message_marks too, and these ask of the
    # whole table.
    if unread:
        seen = (
            sa.select(MessageMark.message_id)
            .where(mine, MessageMark.seen_at.is_not(None))
            .correlate(None)
        )
        where.append(Message.id.not_in(seen))
    if starred:
        stars = (
            sa.select(MessageMark.message_id)
            .where(mine, MessageMark.starred.is_(True))
            .correlate(None)
        )
        where.append(Message.id.in_(stars))
    return where


async def unread_counts(
    session: AsyncSession, *, operator_id: uuid.UUID
) -> dict[uuid.UUID | None, int]:
    """How many messages this operator has not seen, per group (None: unlinked)."""
    seen = select(MessageMark.message_id).where(
        MessageMark.operator_id == operator_id, MessageMark.seen_at.is_not(None)
    )
    query = (
        select(Message.group_id, sa.func.count())
        .where(Message.id.not_in(seen))
        .group_by(Message.group_id)
    )
    return {group_id: count for group_id, count in (await session.exec(query)).all()}


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


def _chain_ids(message_id: sa.ColumnElement[uuid.UUID]) -> sa.CompoundSelect[uuid.UUID]:
    """The ids of every version of a message: the chain of ``previous_id`` walked
    back and forward in one recursive query (UNION, not UNION ALL: a cycle ends)."""
    back = (
        sa.select(Message.id, Message.previous_id)
        .where(Message.id == message_id)
        .cte("back", recursive=True)
    )
    earlier = Message.__table__.alias("earlier")
    back = back.union(
        sa.select(earlier.c.id, earlier.c.previous_id).where(earlier.c.id == back.c.previous_id)
    )
    forth = sa.select(Message.id).where(Message.id == message_id).cte("forth", recursive=True)
    later = Message.__table__.alias("later")
    forth = forth.union(sa.select(later.c.id).where(later.c.previous_id == forth.c.id))
    return sa.union(sa.select(back.c.id), sa.select(forth.c.id))


@functools.cache
def _versions_statement() -> sa.Select[Message]:
    return select(Message).where(Message.id.in_(_chain_ids(sa.bindparam("message_id"))))


@functools.cache
def _versions_with_marks_statement() -> sa.Select[Message, MessageMark | None]:
    """Every version of a message with this operator's mark on each (one query)."""
    return (
        select(Message, MessageMark)
        .outerjoin(
            MessageMark,
            sa.and_(
                MessageMark.message_id == Message.id,
                MessageMark.operator_id == sa.bindparam("operator_id"),
            ),
        )
        .where(Message.id.in_(_chain_ids(sa.bindparam("message_id"))))
    )


def _in_order(rows: Sequence[Message], message: Message) -> list[Message]:
    """The versions as a chain, oldest first (as the links say, not the clocks)."""
    by_id = {r.id: r for r in rows}
    after: dict[uuid.UUID, Message] = {}
    for row in sorted(rows, key=lambda r: (r.version, r.received_at), reverse=True):
        if row.previous_id is not None:
            after[row.previous_id] = row  # the earliest of two claimants wins
    chain = [message]
    while chain[0].previous_id is not None:
        earlier = by_id.get(chain[0].previous_id)
        if earlier is None or earlier in chain:
            break
        chain.insert(0, earlier)
    while (later := after.get(chain[-1].id)) is not None and later not in chain:
        chain.append(later)
    return chain


async def versions_of(session: AsyncSession, *, message: Message) -> list[Message]:
    """Every version of the message (an edit is a new version), oldest first:
    the ones before it and the ones after it (one query)."""
    rows = (await session.exec(_versions_statement(), params={"message_id": message.id})).all()
    return _in_order(rows, message)


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
    return _opened_versions(versions, bodies)


def _opened_versions(
    versions: Sequence[Message], bodies: Mapping[uuid.UUID, dict[str, Any]]
) -> list[OpenedVersion]:
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
    attachments = await _attachments_of(session, [message.id])
    keys = await data_keys(session, keyring, table=ATTACHMENTS, row_ids=[a.id for a in attachments])
    return _opened_files(attachments, keys)


async def _attachments_of(
    session: AsyncSession, message_ids: Sequence[uuid.UUID]
) -> Sequence[Attachment]:
    return (
        await session.exec(
            select(Attachment)
            .where(Attachment.message_id.in_(list(message_ids)))
            .order_by(Attachment.id)
        )
    ).all()


def _opened_files(
    attachments: Iterable[Attachment], keys: Mapping[uuid.UUID, bytes]
) -> list[OpenedFile]:
    opened = []
    for attachment in attachments:
        if attachment.id not in keys:
            raise NotReadable(
                f"an attachment of {attachment.message_id} does not open with your key"
            )
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


@dataclass(frozen=True, slots=True)
class OpenedMessage:
    """One message as an operator reads it: what ``intake inbox read`` prints and the
    console's message page shows."""

    message: Message  # the version asked for
    versions: list[OpenedVersion]  # every version, oldest first
    files: list[OpenedFile]  # the attachments of every version, in the versions' order
    notes: list[OpenedNote]
    place: Place | None  # None: not linked to a group
    starred: bool  # by this operator

    def version_of(self, opened: OpenedFile) -> int:
        return next(
            v.message.version for v in self.versions if v.message.id == opened.attachment.message_id
        )


async def open_message(
    session: AsyncSession,
    keyring: Keyring,
    *,
    message_id: uuid.UUID,
    around: int,
    seen_at: datetime | None,
) -> OpenedMessage | None:
    """A whole message opened in a handful of set-based queries (its versions with this
    operator's mark, their attachments, its notes with their authors, every wrapped key
    of these at once, its place in the group's timeline), and marked seen at ``seen_at``.
    None: no such message. A page of the console is about as many round trips to the
    database as it has queries, so it has few.

    Raises NotReadable when a version or an attachment does not open with this key."""
    found = (
        await session.exec(
            _versions_with_marks_statement(),
            params={"message_id": message_id, "operator_id": keyring.operator.id},
        )
    ).all()
    message = next((m for m, _ in found if m.id == message_id), None)
    if message is None:
        return None
    mark_row = next((k for m, k in found if m.id == message_id), None)
    versions = _in_order([m for m, _ in found], message)
    attachments = await _attachments_of(session, [v.id for v in versions])
    notes = await _notes_with_authors(session, message_id=message.id)
    wraps = await read_wraps(
        session,
        keyring,
        tables=(MESSAGES, ATTACHMENTS, NOTES),
        row_ids=[v.id for v in versions] + [a.id for a in attachments] + [n.id for n, _ in notes],
    )
    keys = await unwrap_all(session, keyring, wraps)
    bodies = open_bodies_with({i: k for (t, i), k in keys.items() if t == MESSAGES}, versions)
    opened = _opened_versions(versions, bodies)
    files = _opened_files(attachments, {i: k for (t, i), k in keys.items() if t == ATTACHMENTS})
    files.sort(key=lambda f: [v.id for v in versions].index(f.attachment.message_id))
    place = await _place(session, message, {v.id for v in versions}, around=around)
    if seen_at is not None:
        mark_row = mark_row or MessageMark(message_id=message.id, operator_id=keyring.operator.id)
        mark_row.seen_at = seen_at
        session.add(mark_row)
        await session.flush()
    return OpenedMessage(
        message=message,
        versions=opened,
        files=files,
        notes=_opened_notes(session, notes, {i: k for (t, i), k in keys.items() if t == NOTES}),
        place=place,
        starred=mark_row is not None and mark_row.starred,
    )


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
    return await _place(session, message, ids, around=around)


@functools.cache
def _place_statement() -> sa.CompoundSelect[Any]:
    """The check-ins and flips of a group nearest a moment, ``around`` on each side of
    it from each table (built once; the group, moment and count are bound)."""
    text = sa.String()
    limit = sa.bindparam("around", type_=sa.Integer())
    checkins: list[sa.ColumnElement[Any]] = [
        sa.literal(0).label("kind"),
        CheckinEvent.at.label("at"),
        sa.cast(CheckinEvent.signal, text).label("a"),
        sa.cast(CheckinEvent.source, text).label("b"),
        sa.cast(sa.null(), text).label("c"),
        CheckinEvent.after_report.label("after_report"),
        CheckinEvent.message_id.label("message_id"),
    ]
    flips: list[sa.ColumnElement[Any]] = [
        sa.literal(1).label("kind"),
        Flip.at.label("at"),
        sa.cast(Flip.from_status, text).label("a"),
        sa.cast(Flip.to_status, text).label("b"),
        sa.cast(Flip.basis, text).label("c"),
        sa.false().label("after_report"),
        sa.cast(sa.null(), sa.Uuid()).label("message_id"),
    ]
    sides = []
    for columns, at, group_id in (
        (checkins, CheckinEvent.at, CheckinEvent.group_id),
        (flips, Flip.at, Flip.group_id),
    ):
        before, after = at <= sa.bindparam("moment"), at > sa.bindparam("moment")
        for side, order in ((before, at.desc()), (after, at.asc())):
            part = sa.select(*columns).where(group_id == sa.bindparam("group_id"), side)
            sides.append(sa.select(part.order_by(order).limit(limit).subquery()))
    return sa.union_all(*sides)


async def _place(
    session: AsyncSession, message: Message, version_ids: Collection[uuid.UUID], *, around: int
) -> Place | None:
    """The place, read in one query: at most ``around`` check-ins and flips on each
    side of the moment (a long journey's timeline is not read whole for a message)."""
    if message.group_id is None:
        return None
    moment = moment_of(message)
    if not around:
        return Place(moment=moment, before=[], after=[])
    rows = await rows_of(
        session,
        _place_statement(),
        {"group_id": message.group_id, "moment": moment, "around": around},
    )
    entries = [
        TimelineEntry(
            r.at,
            f"{r.a} ({r.b})" + (f" {AFTER_REPORT}" if r.after_report else "")
            if r.kind == 0
            else f"{r.a} -> {r.b} ({r.c})",
            r.message_id in version_ids,
        )
        for r in sorted(rows, key=lambda r: (r.at, r.kind))
    ]
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
    author: str | None  # the author's key fingerprint (short)
    text: str
    author_id: uuid.UUID | None = None
    # The author's name, opened with the server secret where this process has it
    # (the console given the installation's config); None elsewhere.
    author_name: str | None = None

    @property
    def author_label(self) -> str:
        """Who wrote it, as people read it: the name, else a labelled short fingerprint."""
        if self.author is None:
            return "a former operator"
        return operator_label(self.author_name, self.author)


async def notes_of(
    session: AsyncSession, keyring: Keyring, *, message: Message
) -> list[OpenedNote]:
    notes = await _notes_with_authors(session, message_id=message.id)
    keys = await data_keys(session, keyring, table=NOTES, row_ids=[n.id for n, _ in notes])
    return _opened_notes(session, notes, keys)


async def _notes_with_authors(
    session: AsyncSession, *, message_id: uuid.UUID
) -> Sequence[tuple[Note, Operator | None]]:
    """A message's notes, oldest first, each with its author's row (one query)."""
    return (
        await session.exec(
            select(Note, Operator)
            .outerjoin(Operator, Operator.id == Note.operator_id)
            .where(Note.message_id == message_id)
            .order_by(Note.created_at)
        )
    ).all()


def _opened_notes(
    session: AsyncSession,
    notes: Iterable[tuple[Note, Operator | None]],
    keys: Mapping[uuid.UUID, bytes],
) -> list[OpenedNote]:
    installation = installation_of(session)
    opened = []
    for note, author in notes:
        if note.id not in keys:
            continue  # written before this operator was added: not sealed to them
        text = open_content(keys[note.id], note.body_sealed, Binding(NOTES, "body_sealed", note.id))
        name = None
        if author is not None and installation is not None:
            name = name_or_none(installation.server, author)
        opened.append(
            OpenedNote(
                at=note.created_at,
                author=author.fingerprint[:16] if author else None,
                text=text.decode(),
                author_id=note.operator_id,
                author_name=name,
            )
        )
    return opened


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
            select(Attachment.id).where(Attachment.message_id.in_([v.id for v in versions]))
        )
    ).all()
    subjects = [(MESSAGES, v.id) for v in versions] + [(ATTACHMENTS, a) for a in attachment_ids]
    if group is not None:
        # Read again under a share lock, as every sealing does: a rotation meanwhile
        # would leave these wrapped to the old key (storage.sealing.current_group_key).
        await current_group_key(session, group)
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
        for candidate in groups:
            await current_group_key(session, candidate)
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
        await session.exec(delete(KeyWrap).where(KeyWrap.subject_id == row_id))
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
        CheckinEvent.message_id.in_([v.id for v in versions]),
    )
    if signal is not None:
        query = query.where(CheckinEvent.signal == signal)
    return (await session.exec(query)).first() is not None


# --------------------------------------------------------------------------- shredding


# The tables shredding messages deletes rows from: ``storage.db.reclaim_deleted`` rewrites
# them after the commit (``intake inbox shred`` and the console both do).
MESSAGE_TABLES = ("key_wraps", "messages", "attachments", "notes", "message_marks")


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
            select(Attachment.id).where(Attachment.message_id.in_(batch)),
            select(Note.id).where(Note.message_id.in_(batch)),
        )
        await session.exec(delete(KeyWrap).where(KeyWrap.subject_id.in_(sealed)))
        await session.exec(delete(KeyWrap).where(KeyWrap.subject_id.in_(batch)))
        await session.exec(delete(Attachment).where(Attachment.message_id.in_(batch)))
        await session.exec(delete(Note).where(Note.message_id.in_(batch)))
        await session.exec(delete(MessageMark).where(MessageMark.message_id.in_(batch)))
        await session.exec(
            update(CheckinEvent).where(CheckinEvent.message_id.in_(batch)).values(message_id=None)
        )
        await session.exec(
            update(Message).where(Message.previous_id.in_(batch)).values(previous_id=None)
        )
    for start in range(0, len(wanted), BATCH):
        await session.exec(delete(Message).where(Message.id.in_(wanted[start : start + BATCH])))
    return len(wanted)


async def messages_from(session: AsyncSession, *, person: Person) -> list[Message]:
    """Every message a person sent (each version)."""
    query = select(Message).where(Message.sender_id == person.id)
    return list((await session.exec(query)).all())


async def find_sender(session: AsyncSession, *, label: str) -> Person:
    """A person by their pseudonym (P-1A2B3C), as the inbox shows it."""
    wanted = label.strip().upper()
    senders = select(Message.sender_id).where(Message.sender_id.is_not(None)).distinct()
    people = (await session.exec(select(Person).where(Person.id.in_(senders)))).all()
    found = [p for p in people if pseudonym(p) == wanted]
    if not found:
        raise NoSuchMessage(f"no message comes from {wanted}")
    return found[0]
