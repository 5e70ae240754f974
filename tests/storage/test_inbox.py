"""The operator's inbox: listing opened messages, each operator's own marks, notes
sealed to operators, and linking by hand, which re-seals a message to its group
alone (and unlinking, to operators again)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from storage import inbox
from storage.checkins import flip, record_signal, signals_of
from storage.crypto import (
    Binding,
    CryptoError,
    KemName,
    PrivateKey,
    ServerKeys,
    open_content,
    unwrap_key,
)
from storage.db import open_database, session_factory
from storage.groups import shred_group
from storage.inbox import (
    InboxRefused,
    NoSuchMessage,
    TimelineEntry,
    add_note,
    find_message,
    list_inbox,
    mark,
    notes_of,
    open_files,
    open_message,
    open_versions,
    place_in,
    place_of,
    relink,
    text_of,
    versions_of,
)
from storage.messages import ATTACHMENTS, MESSAGES, store_attachment, store_message
from storage.models import (
    Group,
    KeyWrap,
    LinkReason,
    Message,
    MessageKind,
    Operator,
    Person,
    Role,
    Signal,
    Status,
)
from storage.operators import add_operator, operator_names
from storage.people import create_invite, get_or_create_person, pseudonym, redeem_invite
from storage.sealing import Keyring, NotReadable, data_key_binding
from storage.session import AsyncSession
from storage.trust import Trust, bind
from tests.conftest import Database
from tests.storage.helpers import make_group
from tests.storage.scan import database_bytes, find, text_encodings

T0 = datetime(2026, 8, 10, 6, 0, tzinfo=UTC)
RELATIVE = 6_100_200_300
CANARY_TEXT = "canary-inbox-엄마-7f3a"
CANARY_NOTE = "canary-note-called-the-sister-91c2"


async def relative(session: AsyncSession, server: ServerKeys, *groups: Group) -> Person:
    """A relative who forwards for ``groups``."""
    person = await get_or_create_person(
        session, server=server, telegram_id=RELATIVE, chat_id=RELATIVE, now=T0
    )
    for group in groups:
        _, code = await create_invite(
            session, server=server, role=Role.RELATIVE, group=group, ttl=timedelta(days=1), now=T0
        )
        await redeem_invite(session, server=server, code=code, person=person, now=T0)
    await session.commit()
    return person


async def message(
    session: AsyncSession,
    server: ServerKeys,
    text: str,
    *,
    at: datetime,
    group: Group | None = None,
    sender: Person | None = None,
    candidates: tuple[Group, ...] = (),
    signal: Signal | None = None,
    previous: Message | None = None,
) -> Message:
    stored = await store_message(
        session,
        server=server,
        kind=MessageKind.TEXT,
        body={"text": text, "caption": None},
        received_at=at,
        group=group,
        sender=sender,
        candidates=candidates,
        signal=signal,
        link_reason=LinkReason.PHRASE if group else None,
        previous=previous,
        origin_at=at - timedelta(minutes=5),
    )
    await session.commit()
    return stored


async def enrol(session: AsyncSession, server: ServerKeys, name: str) -> tuple[Operator, Keyring]:
    key = PrivateKey.generate(KemName.X25519)
    op = await add_operator(session, server=server, public_key=key.public_key(), name=name, now=T0)
    await session.commit()
    return op, Keyring(operator=op, private_key=key)


async def wraps_of(session: AsyncSession, *ids: uuid.UUID) -> list[KeyWrap]:
    return list((await session.exec(select(KeyWrap).where(KeyWrap.subject_id.in_(ids)))).all())


# --------------------------------------------------------------------------- listing


async def test_the_inbox_lists_newest_first_with_pseudonyms_and_filters(
    session: AsyncSession,
    server: ServerKeys,
    keyring: Keyring,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pine, oak = await make_group(session, "PINE-7"), await make_group(session, "OAK-2")
    person = await relative(session, server, pine, oak)
    first = await message(
        session, server, "the tea is warm", at=T0, group=pine, sender=person, signal=Signal.CHECKIN
    )
    waiting = await message(
        session,
        server,
        "which bus?",
        at=T0 + timedelta(hours=1),
        sender=person,
        candidates=(pine, oak),
    )
    last = await message(session, server, "photo", at=T0 + timedelta(hours=2), group=oak)
    await store_attachment(
        session, message=last, group=oak, kind=MessageKind.PHOTO, meta={"w": 1}, content=b"jpeg"
    )
    await session.commit()
    monkeypatch.setattr(inbox, "BATCH", 2)  # the wraps are read in several batches

    items = await list_inbox(session, keyring)
    assert [i.id for i in items] == [last.id, waiting.id, first.id]
    assert [i.text for i in items] == ["photo", "which bus?", "the tea is warm"]
    assert [i.group for i in items] == ["OAK-2", None, "PINE-7"]
    assert [i.attachments for i in items] == [1, 0, 0]
    assert items[2].forwarder == pseudonym(person)
    assert items[2].forwarder.startswith("P-")
    assert str(RELATIVE) not in json.dumps([i.as_json() for i in items])
    assert items[0].forwarder is None
    assert set(items[2].as_json()) == {
        "id",
        "group",
        "link_reason",
        "signal",
        "kind",
        "version",
        "previous_id",
        "origin_at",
        "received_at",
        "forwarder",
        "attachments",
        "seen",
        "starred",
        "readable",
        "danger",
        "unconfirmed",
        "text",
    }
    assert items[2].as_json()["signal"] == "checkin"
    assert items[2].as_json()["origin_at"] == "2026-08-10T05:55:00Z"

    assert [i.id for i in await list_inbox(session, keyring, group=pine)] == [first.id]
    assert [i.id for i in await list_inbox(session, keyring, unlinked=True)] == [waiting.id]
    since = T0 + timedelta(minutes=30)
    assert [i.id for i in await list_inbox(session, keyring, since=since)] == [last.id, waiting.id]
    seen: list[tuple[int, int]] = []
    await list_inbox(session, keyring, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(2, 3), (3, 3)]


async def test_unread_and_starred_are_each_operators_own(
    session: AsyncSession, server: ServerKeys, operator: Operator, keyring: Keyring
) -> None:
    _, second = await enrol(session, server, "Second")
    a = await message(session, server, "one", at=T0)
    b = await message(session, server, "two", at=T0 + timedelta(minutes=1))
    await mark(session, operator_id=operator.id, message=a, now=T0, seen=True, starred=True)
    await mark(session, operator_id=operator.id, message=b, now=T0, seen=True)
    await mark(session, operator_id=operator.id, message=b, now=T0, seen=False)  # unread again
    await session.commit()

    assert [i.id for i in await list_inbox(session, keyring, unread=True)] == [b.id]
    assert [i.id for i in await list_inbox(session, keyring, starred=True)] == [a.id]
    # The other operator has read nothing and starred nothing.
    assert [i.id for i in await list_inbox(session, second, unread=True)] == [b.id, a.id]
    assert await list_inbox(session, second, starred=True) == []
    await mark(session, operator_id=operator.id, message=a, now=T0, starred=False)
    assert await list_inbox(session, keyring, starred=True) == []


async def test_an_operator_not_given_a_groups_key_sees_its_messages_as_unreadable(
    session: AsyncSession, server: ServerKeys, keyring: Keyring
) -> None:
    pine = await make_group(session)
    _, newcomer = await enrol(session, server, "Newcomer")  # after the group: no key of it
    linked = await message(session, server, "in PINE-7", at=T0, group=pine)
    await message(session, server, "unlinked", at=T0 + timedelta(minutes=1))
    items = await list_inbox(session, newcomer)
    assert [(i.text, i.readable) for i in items] == [("unlinked", True), ("", False)]
    with pytest.raises(NotReadable):
        await open_versions(session, newcomer, message=linked)
    with pytest.raises(NotReadable):  # moving what it cannot open would lose it
        await relink(session, newcomer, message=linked, group=None, now=T0)
    assert {w.group_id for w in await wraps_of(session, linked.id)} == {pine.id}


def test_a_message_without_text_is_described_by_what_it_carries() -> None:
    assert text_of({"text": None, "caption": "at the border"}) == "at the border"
    assert text_of({"location": {"latitude": 21.68, "longitude": 102.1}}) == "location 21.68, 102.1"
    contact = {"first_name": "Mi-rae", "last_name": None, "phone_number": "+8613800138000"}
    assert text_of({"contact": contact}) == "contact Mi-rae +8613800138000"
    assert text_of({"text": None, "caption": None}) == ""


# --------------------------------------------------------------------------- one message


async def test_a_message_is_found_by_a_unique_prefix_of_its_id(
    session: AsyncSession, server: ServerKeys, keyring: Keyring
) -> None:
    stored = await message(session, server, "hello", at=T0)
    assert (await find_message(session, ref=stored.id.hex[:6].upper())).id == stored.id
    assert (await find_message(session, ref=str(stored.id))).id == stored.id
    twins = [uuid.UUID("abcdef00" + "0" * 23 + str(n)) for n in (1, 2)]
    for twin in twins:
        session.add(Message(id=twin, kind=MessageKind.TEXT, body_sealed=b"x", received_at=T0))
    await session.commit()
    with pytest.raises(NoSuchMessage, match="several"):
        await find_message(session, ref="abcdef")
    assert (await find_message(session, ref=str(twins[1]))).id == twins[1]
    with pytest.raises(NoSuchMessage, match="no message"):
        await find_message(session, ref="ffffff99")
    with pytest.raises(NoSuchMessage, match="at least"):
        await find_message(session, ref="abc")


async def test_every_version_and_attachment_opens_in_order(
    session: AsyncSession, server: ServerKeys, keyring: Keyring
) -> None:
    pine = await make_group(session)
    first = await message(session, server, "at the station", at=T0, group=pine)
    second = await message(
        session,
        server,
        "at the bus station",
        at=T0 + timedelta(minutes=3),
        group=pine,
        previous=first,
    )
    await store_attachment(
        session,
        message=second,
        group=pine,
        kind=MessageKind.DOCUMENT,
        meta={"n": 1},
        content=b"%PDF",
    )
    await store_attachment(
        session, message=second, group=pine, kind=MessageKind.VIDEO, meta={"n": 2}, content=None
    )
    await session.commit()
    for start in (first, second):  # from either end of the chain
        assert [v.id for v in await versions_of(session, message=start)] == [first.id, second.id]
    opened = await open_versions(session, keyring, message=first)
    assert [v.body["text"] for v in opened] == ["at the station", "at the bus station"]
    files = await open_files(session, keyring, message=second)
    assert sorted((f.meta["n"], f.content) for f in files) == [(1, b"%PDF"), (2, None)]


async def test_a_messages_place_is_between_the_check_ins_and_flips_around_it(
    session: AsyncSession, server: ServerKeys, keyring: Keyring
) -> None:
    pine = await make_group(session)
    now = T0 + timedelta(days=1)
    await record_signal(
        session,
        group=pine,
        signal=Signal.CHECKIN,
        at=T0 - timedelta(hours=2),
        source="phrase",
        now=now,
    )
    await flip(
        session, group=pine, to=Status.SILENT, at=T0 - timedelta(hours=1), basis="silence", now=now
    )
    caught = await message(session, server, "caught", at=T0, group=pine, signal=Signal.DETAINED)
    await record_signal(
        session,
        group=pine,
        signal=Signal.DETAINED,
        at=T0 - timedelta(minutes=5),
        source="phrase",
        now=now,
        message=caught,
    )
    await record_signal(
        session,
        group=pine,
        signal=Signal.CHECKIN,
        at=T0 + timedelta(hours=3),
        source="phrase",
        now=now,
    )
    await session.commit()

    place = await place_of(session, message=caught, around=2)
    assert place is not None
    assert place.moment == T0 - timedelta(minutes=5)  # the traveller's time
    # Nearest last; at one instant the cause (the signal) comes before its flip.
    assert [(e.what, e.this_message) for e in place.before] == [
        ("detained (phrase)", True),
        ("SILENT -> DETAINED (reported)", False),
    ]
    # It came while the report stood: shown as such, since it cleared nothing.
    assert [e.what for e in place.after] == ["checkin (phrase) (after a report)"]
    assert await place_of(session, message=await message(session, server, "x", at=T0)) is None


def test_place_in_keeps_the_nearest_entries_on_each_side() -> None:
    entries = [
        TimelineEntry(T0 + timedelta(hours=h), f"e{h}", False) for h in (5, -3, -1, 1, 2, -2)
    ]
    before, after = place_in(entries, moment=T0, around=2)
    assert [e.what for e in before] == ["e-2", "e-1"]
    assert [e.what for e in after] == ["e1", "e2"]
    assert place_in(entries, moment=T0, around=0) == ([], [])


# --------------------------------------------------------------------------- linking by hand


async def test_linking_reseals_every_version_and_file_to_that_group_alone(
    session: AsyncSession, server: ServerKeys, operator: Operator, keyring: Keyring
) -> None:
    pine, oak = await make_group(session, "PINE-7"), await make_group(session, "OAK-2")
    person = await relative(session, server, pine, oak)
    first = await message(
        session, server, "which group?", at=T0, sender=person, candidates=(pine, oak)
    )
    edit = await message(
        session,
        server,
        "which group? (edited)",
        at=T0 + timedelta(minutes=1),
        sender=person,
        candidates=(pine, oak),
        previous=first,
    )
    photo = await store_attachment(
        session,
        message=edit,
        group=None,
        kind=MessageKind.PHOTO,
        meta={},
        content=b"jpeg",
        candidates=(pine, oak),
    )
    await session.commit()
    subjects = [first.id, edit.id, photo.id]
    before = {w.id for w in await wraps_of(session, *subjects)}
    assert len(before) == 3 * 3  # each: two candidate groups and one operator

    done = await relink(session, keyring, message=first, group=oak, now=T0)
    await session.commit()
    assert (done.versions, done.records, done.signal_recorded) == (2, 3, False)

    after = await wraps_of(session, *subjects)
    assert {(w.subject_id, w.group_id, w.operator_id) for w in after} == {
        (s, oak.id, None) for s in subjects
    }
    assert not before & {w.id for w in after}  # every earlier wrap is gone, none was kept
    for row in (first, edit):
        await session.refresh(row)
        assert (row.group_id, row.link_reason) == (oak.id, LinkReason.OPERATOR)
    # OAK-2's key opens it, PINE-7's does not.
    oak_key = await keyring.group_key(session, oak)
    pine_key = await keyring.group_key(session, pine)
    [wrap] = [w for w in after if w.subject_id == edit.id]
    binding = data_key_binding(MESSAGES, edit.id)
    data_key = unwrap_key(wrap.wrapped, oak_key, binding)
    body = open_content(data_key, edit.body_sealed, Binding(MESSAGES, "body_sealed", edit.id))
    assert json.loads(body)["text"] == "which group? (edited)"
    with pytest.raises(CryptoError):
        unwrap_key(wrap.wrapped, pine_key, binding)
    [photo_wrap] = [w for w in after if w.subject_id == photo.id]
    assert photo_wrap.subject_table == ATTACHMENTS
    # The operator's own wraps are gone: the listing opens it through OAK-2's key.
    assert [i.text for i in await list_inbox(session, keyring, group=oak)] == [
        "which group? (edited)",
        "which group?",
    ]


async def test_unlinking_seals_to_every_operator_and_the_forwarders_groups_again(
    session: AsyncSession, server: ServerKeys, operator: Operator, keyring: Keyring
) -> None:
    pine, oak = await make_group(session, "PINE-7"), await make_group(session, "OAK-2")
    await make_group(session, "ELM-3")  # not the forwarder's: never given the message
    second, second_ring = await enrol(session, server, "Second")
    person = await relative(session, server, pine, oak)
    linked = await message(session, server, "all fine", at=T0, group=pine, sender=person)

    await relink(session, keyring, message=linked, group=None, now=T0)
    await session.commit()
    await session.refresh(linked)
    assert (linked.group_id, linked.link_reason) == (None, None)
    recipients = {(w.group_id, w.operator_id) for w in await wraps_of(session, linked.id)}
    assert recipients == {(pine.id, None), (oak.id, None), (None, operator.id), (None, second.id)}
    # The second operator, never given PINE-7's key, now opens it with their own.
    assert [i.text for i in await list_inbox(session, second_ring, unlinked=True)] == ["all fine"]


async def test_linking_a_message_records_its_signal_for_the_group_once(
    session: AsyncSession, server: ServerKeys, keyring: Keyring
) -> None:
    pine = await make_group(session)
    waiting = await message(session, server, "the tea is warm", at=T0, signal=Signal.CHECKIN)
    done = await relink(session, keyring, message=waiting, group=pine, now=T0)
    assert done.signal_recorded
    await relink(session, keyring, message=waiting, group=None, now=T0)
    again = await relink(session, keyring, message=waiting, group=pine, now=T0)
    await session.commit()
    assert not again.signal_recorded
    events = await signals_of(session, group=pine)
    assert [(e.signal, e.source, e.message_id) for e in events] == [
        (Signal.CHECKIN, "operator", waiting.id)
    ]
    await session.refresh(pine)
    assert pine.last_checkin_at == T0 - timedelta(minutes=5)  # the traveller's time


async def test_a_shredded_group_takes_no_message(
    session: AsyncSession, server: ServerKeys, keyring: Keyring
) -> None:
    pine = await make_group(session)
    waiting = await message(session, server, "late news", at=T0)
    await shred_group(session, group=pine, now=T0)
    await session.commit()
    with pytest.raises(InboxRefused):
        await relink(session, keyring, message=waiting, group=pine, now=T0)


# --------------------------------------------------------------------------- notes


async def test_a_note_is_sealed_to_operators_and_no_plaintext_reaches_the_database(
    session: AsyncSession,
    server: ServerKeys,
    operator: Operator,
    keyring: Keyring,
    database: Database,
) -> None:
    pine = await make_group(session)
    second, second_ring = await enrol(session, server, "Second")
    stored = await message(session, server, CANARY_TEXT, at=T0, group=pine)
    note = await add_note(
        session, operator_id=operator.id, message=stored, text=CANARY_NOTE, now=T0
    )
    await mark(session, operator_id=operator.id, message=stored, now=T0, seen=True, starred=True)
    await relink(session, keyring, message=stored, group=None, now=T0)
    await relink(session, keyring, message=stored, group=pine, now=T0)
    await session.commit()

    # Each operator's own key opens it; no group key is given it.
    assert {(w.group_id, w.operator_id) for w in await wraps_of(session, note.id)} == {
        (None, operator.id),
        (None, second.id),
    }
    [opened] = await notes_of(session, second_ring, message=stored)
    assert (opened.text, opened.author) == (CANARY_NOTE, operator.fingerprint[:16])
    files = await database_bytes(database)
    for canary in (CANARY_TEXT, CANARY_NOTE):
        assert find(text_encodings(canary), files) == [], canary


# --------------------------------------------------------------------------- filters and shredding


async def test_the_new_filters_and_pages_are_the_databases_work(
    session: AsyncSession, server: ServerKeys, keyring: Keyring
) -> None:
    pine = await make_group(session)
    person = await relative(session, server, pine)
    guessed = await message(session, server, "guessed", at=T0, group=pine, sender=person)
    chosen = await message(session, server, "chosen", at=T0 + timedelta(minutes=1), group=pine)
    chosen.link_reason = LinkReason.CHOSEN
    danger = await message(session, server, "arrested", at=T0 + timedelta(minutes=2))
    danger.possible_detention = True
    session.add_all([chosen, danger])
    await session.commit()

    async def ids(**filters: object) -> list[uuid.UUID]:
        return [i.id for i in await list_inbox(session, keyring, **filters)]  # type: ignore[arg-type]

    assert await ids() == [danger.id, chosen.id, guessed.id]
    assert await ids(unconfirmed=True) == [guessed.id]
    assert await ids(danger=True) == [danger.id]
    assert [i.danger for i in await list_inbox(session, keyring)] == [True, False, False]
    assert await ids(kind=MessageKind.TEXT, sender=person) == [guessed.id]
    assert await ids(kind=MessageKind.PHOTO) == []
    assert await ids(limit=1, offset=1) == [chosen.id]
    await mark(session, operator_id=keyring.operator.id, message=chosen, now=T0, seen=True)
    assert await ids(unread=True) == [danger.id, guessed.id]
    counts = await inbox.unread_counts(session, operator_id=keyring.operator.id)
    assert counts == {pine.id: 1, None: 1}


async def test_unconfirmed_news_is_listed_first_until_an_operator_places_it(
    session: AsyncSession, server: ServerKeys, keyring: Keyring
) -> None:
    """Operators see a relative's unconfirmed news about a group in trouble first (issue
    #14), in the plain list too, however old; once placed it takes its place by time."""
    pine = await make_group(session)
    person = await relative(session, server, pine)
    news = await message(session, server, "saw them", at=T0, sender=person, candidates=(pine,))
    news.unconfirmed = True
    session.add(news)
    await session.commit()
    later = [
        await message(session, server, f"later {n}", at=T0 + timedelta(minutes=n), group=pine)
        for n in (1, 2)
    ]
    listed = await list_inbox(session, keyring)
    assert [i.id for i in listed] == [news.id, later[1].id, later[0].id]
    assert [i.unconfirmed for i in listed] == [True, False, False]
    assert listed[0].as_json()["unconfirmed"] is True
    assert [i.id for i in await list_inbox(session, keyring, limit=1)] == [news.id]
    await relink(session, keyring, message=news, group=pine, now=T0)
    await session.commit()
    assert [i.id for i in await list_inbox(session, keyring)] == [
        later[1].id,
        later[0].id,
        news.id,
    ]


async def test_shredding_messages_leaves_nothing_of_them_but_the_timeline(
    session: AsyncSession,
    server: ServerKeys,
    operator: Operator,
    keyring: Keyring,
    database: Database,
) -> None:
    pine = await make_group(session)
    stranger = await get_or_create_person(
        session, server=server, telegram_id=RELATIVE + 1, chat_id=RELATIVE + 1, now=T0
    )
    first = await message(session, server, CANARY_TEXT, at=T0, sender=stranger)
    edit = await message(
        session, server, CANARY_TEXT + " (edited)", at=T0, sender=stranger, previous=first
    )
    edit.version = 2
    session.add(edit)
    kept = await message(session, server, "kept", at=T0, group=pine, signal=Signal.CHECKIN)
    await store_attachment(
        session,
        message=first,
        group=None,
        kind=MessageKind.PHOTO,
        meta={"file_name": "canary.jpg"},
        content=CANARY_NOTE.encode(),
    )
    await add_note(session, operator_id=operator.id, message=first, text=CANARY_NOTE, now=T0)
    await mark(session, operator_id=operator.id, message=first, now=T0, starred=True)
    await record_signal(
        session, group=pine, signal=Signal.CHECKIN, at=T0, source="operator", now=T0, message=first
    )
    await session.commit()

    sender = await inbox.find_sender(session, label=pseudonym(stranger).lower())
    assert sender.id == stranger.id
    gone = await inbox.shred_messages(
        session, messages=await inbox.messages_from(session, person=sender)
    )
    await session.commit()
    assert gone == 2
    assert [m.id for m in (await session.exec(select(Message))).all()] == [kept.id]
    assert await wraps_of(session, first.id, edit.id) == []
    [event] = await signals_of(session, group=pine)
    assert event.message_id is None  # the check-in stays in the timeline, without the message
    with pytest.raises(NoSuchMessage):
        await inbox.find_sender(session, label=pseudonym(stranger))
    files = await database_bytes(database)
    for canary in (CANARY_TEXT, CANARY_NOTE):
        assert find(text_encodings(canary), files) == [], canary


# --------------------------------------------------------------------------- few queries


class Statements:
    """Counts the statements an engine runs (a page's round trips to the database)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.seen: list[str] = []
        self._engine = engine.sync_engine
        sa.event.listen(self._engine, "before_cursor_execute", self._count)

    def _count(self, *args: object) -> None:
        verb = str(args[2]).split()[0]
        if verb.upper() not in ("BEGIN", "COMMIT", "ROLLBACK"):  # the transaction's own
            self.seen.append(verb)

    def close(self) -> None:
        sa.event.remove(self._engine, "before_cursor_execute", self._count)


async def a_long_case(
    session: AsyncSession, server: ServerKeys, operator: Operator
) -> list[Message]:
    """Three versions of one message, two files on each, three notes, a timeline around it."""
    pine = await make_group(session)
    person = await relative(session, server, pine)
    versions: list[Message] = []
    for n in range(3):
        versions.append(
            await message(
                session,
                server,
                f"version {n}",
                at=T0 + timedelta(minutes=n),
                group=pine,
                sender=person,
                previous=versions[-1] if versions else None,
            )
        )
        for f in range(2):
            await store_attachment(
                session,
                message=versions[-1],
                group=pine,
                kind=MessageKind.DOCUMENT,
                meta={"v": n, "f": f},
                content=f"file {n}.{f}".encode(),
            )
    for n in range(3):
        await add_note(
            session,
            operator_id=operator.id,
            message=versions[1],
            text=f"note {n}",
            now=T0 + timedelta(seconds=n),
        )
    for hours in (-3, -2, -1, 1, 2, 3):
        await record_signal(
            session,
            group=pine,
            signal=Signal.CHECKIN,
            at=T0 + timedelta(hours=hours),
            source="phrase",
            now=T0,
        )
    await session.commit()
    return versions


async def test_a_message_opens_whole_in_a_few_queries_however_long_it_is(
    engine: AsyncEngine,
    session: AsyncSession,
    server: ServerKeys,
    operator: Operator,
    keyring: Keyring,
) -> None:
    versions = await a_long_case(session, server, operator)
    middle = versions[1]
    await mark(session, operator_id=operator.id, message=middle, now=T0, starred=True)
    await session.commit()

    statements = Statements(engine)
    try:
        opened = await open_message(
            session, keyring, message_id=middle.id, around=2, seen_at=T0 + timedelta(hours=5)
        )
    finally:
        statements.close()
    assert opened is not None
    # Versions, files, notes with authors, every wrap, the group key, the timeline, the
    # mark: the same few whatever the number of versions, files and notes.
    assert len(statements.seen) <= 7, statements.seen
    assert opened.message.id == middle.id
    assert [v.body["text"] for v in opened.versions] == ["version 0", "version 1", "version 2"]
    # In the versions' order (a version's own files in no order that means anything).
    assert [opened.version_of(f) for f in opened.files] == [1, 1, 2, 2, 3, 3]
    assert sorted((opened.version_of(f), f.meta["f"], f.content) for f in opened.files) == [
        (v, f, f"file {v - 1}.{f}".encode()) for v in (1, 2, 3) for f in (0, 1)
    ]
    assert [n.text for n in opened.notes] == ["note 0", "note 1", "note 2"]
    assert opened.starred
    # The place, read nearest-first from the database, is what the whole timeline gives.
    assert opened.place == await place_of(session, message=middle, around=2)
    assert opened.place is not None
    assert [e.at for e in opened.place.before] == [T0 - timedelta(hours=2), T0 - timedelta(hours=1)]
    assert [e.at for e in opened.place.after] == [T0 + timedelta(hours=1), T0 + timedelta(hours=2)]
    # Marked seen, the star kept.
    assert [i.id for i in await list_inbox(session, keyring, unread=True)] == [
        versions[2].id,
        versions[0].id,
    ]
    assert [i.id for i in await list_inbox(session, keyring, starred=True)] == [middle.id]
    # The same from the command line's functions, one at a time.
    assert [v.message.id for v in opened.versions] == [
        v.id for v in await versions_of(session, message=versions[2])
    ]
    assert (
        await open_message(session, keyring, message_id=uuid.uuid4(), around=2, seen_at=None)
        is None
    )


async def test_a_message_sealed_to_a_group_key_not_given_is_refused_whole(
    session: AsyncSession, server: ServerKeys, keyring: Keyring
) -> None:
    pine = await make_group(session)
    _, newcomer = await enrol(session, server, "Newcomer")  # after the group: no key of it
    linked = await message(session, server, "in PINE-7", at=T0, group=pine)
    with pytest.raises(NotReadable):
        await open_message(session, newcomer, message_id=linked.id, around=2, seen_at=T0)
    opened = await open_message(session, keyring, message_id=linked.id, around=0, seen_at=None)
    assert opened is not None
    assert opened.place is not None
    assert (opened.place.before, opened.place.after) == ([], [])


async def test_the_whole_inbox_is_one_query_and_each_message_comes_once(
    engine: AsyncEngine, session: AsyncSession, server: ServerKeys, keyring: Keyring
) -> None:
    pine, oak = await make_group(session, "PINE-7"), await make_group(session, "OAK-2")
    person = await relative(session, server, pine, oak)
    stored = []
    for n in range(12):
        # Unlinked, from a relative of two groups: wrapped to the operator and to both
        # groups (three wraps, one message); or linked to one group.
        stored.append(
            await message(
                session,
                server,
                f"message {n}",
                at=T0 + timedelta(minutes=n),
                sender=person,
                group=pine if n % 3 == 0 else None,
                candidates=(pine, oak) if n % 3 else (),
            )
        )
    newest_first = [m.id for m in reversed(stored)]
    assert len(await wraps_of(session, stored[1].id)) == 3

    statements = Statements(engine)
    try:
        items = await list_inbox(session, keyring)
    finally:
        statements.close()
    # The listing, and the group keys opened once (a fresh keyring).
    assert len(statements.seen) <= 2, statements.seen
    assert [i.id for i in items] == newest_first
    assert all(i.readable for i in items)
    assert [i.text for i in items][:2] == ["message 11", "message 10"]
    assert {i.forwarder for i in items} == {pseudonym(person)}
    # A page counts messages, not wraps.
    assert [i.id for i in await list_inbox(session, keyring, limit=4, offset=2)] == (
        newest_first[2:6]
    )


async def test_a_notes_author_is_named_where_the_server_secret_is_known(
    database: Database,
    session: AsyncSession,
    server: ServerKeys,
    operator: Operator,
    keyring: Keyring,
) -> None:
    stored = await message(session, server, "x", at=T0)
    await add_note(session, operator_id=operator.id, message=stored, text="called back", now=T0)
    await session.commit()
    short = operator.fingerprint[:9]

    # The database alone (a copy, a URL): the author is a labelled short fingerprint.
    async with open_database(database.url, migrate_to_head=False) as bare:
        async with session_factory(bare)() as alone:
            [note] = await notes_of(alone, keyring, message=stored)
            assert (note.author_name, note.author_label) == (None, f"operator {short}…")
            assert [(o.name, o.label) for o in await operator_names(alone)] == [
                (None, f"operator {short}…")
            ]
        # Another installation's secret opens no name: the fingerprint stays.
        bind(bare, server=ServerKeys(ServerKeys.generate_secret()), trust=Trust(None))
        async with session_factory(bare)() as wrong:
            [note] = await notes_of(wrong, keyring, message=stored)
            assert note.author_label == f"operator {short}…"
    # With the installation's own secret (the engine here is bound to it), the name.
    [note] = await notes_of(session, keyring, message=stored)
    assert (note.author_name, note.author_label) == ("Operator One", "Operator One")
    opened = await open_message(session, keyring, message_id=stored.id, around=0, seen_at=None)
    assert opened is not None
    assert [n.author_label for n in opened.notes] == ["Operator One"]
    assert [(o.fingerprint, o.label) for o in await operator_names(session)] == [
        (operator.fingerprint, "Operator One")
    ]
