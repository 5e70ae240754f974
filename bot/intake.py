"""Taking updates in: sealed and committed before Telegram may forget them.

Telegram forgets an update once the bot confirms it (the next getUpdates
offset, or the 200 answer to a webhook call). ``Intake.take_in_batch`` returns
only after what a whole getUpdates batch carries is committed, sealed, in one
transaction together with the batch's ``update_id``s; the polling loop confirms
only after it returns, and the webhook (``Intake.handle``, one update) answers
only after it. An update seen again after a crash finds its ``update_id`` and is
not stored a second time, but its replies run again (a receipt may repeat; a
forwarded message is still deleted from the relative's chat).

A batch costs a handful of queries whatever its size: the processed
``update_id``s, the senders, their recent counts (the per-person limit), their
groups and the operators are read once each, and the rows are written by one
flush and one commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from telegram import Bot, MaybeInaccessibleMessage, Update
from telegram import Message as TelegramMessage
from telegram.error import BadRequest
from telegram.ext import Application

from bot.config import Settings
from bot.flood import Floods
from bot.i18n import pick_language
from bot.meaning import (
    FLAG,
    Answer,
    Codebook,
    Meaning,
    Step,
    apply_choice,
    checkin_time,
    parse_choice,
    record,
    understand,
)
from bot.received import (
    UNREADABLE,
    FileRef,
    Received,
    is_command,
    raw_stand_in,
    read_update,
    sealed_raw,
    watcher_command,
)
from bot.refusals import RefusalTally, audit_refusal
from storage import audit, deletions
from storage import news as owed_news
from storage.checkins import forwarder_groups
from storage.codebook import Phrase
from storage.crypto import ServerKeys
from storage.messages import (
    ChatRef,
    attachment_bytes,
    counts_from_senders_since,
    latest_version,
    store_attachment,
    store_message,
)
from storage.models import (
    Group,
    Message,
    MessageKind,
    Operator,
    OriginKind,
    Person,
    Signal,
    Status,
)
from storage.people import (
    CHAT_ROLES,
    add_person,
    find_people,
    find_person,
    granted_among,
    keep_chat,
    pseudonym,
    redeem_invite,
    roles_among,
)
from storage.sealing import active_operators
from storage.session import AsyncSession
from storage.timeutil import utc_now
from storage.updates import mark_all_processed, processed_among
from storage.vocabulary import WATCHER_ROLES

log = logging.getLogger(__name__)
# python-telegram-bot's Application is generic in six types this bot leaves at their defaults.
BotApplication = Application[Any, Any, Any, Any, Any, Any]
MB = 1024 * 1024
RATE_WINDOW = timedelta(hours=1)
# A burst of a relative's unconfirmed news makes one note to the activists, this long after
# its first message.
NEWS_NOTE_DELAY = timedelta(seconds=5)
DAY = timedelta(days=1)


class Outcome(enum.Enum):
    STORED = "stored"
    SEEN = "seen"  # taken in before (a redelivery after a crash)
    NOT_CONTENT = "not content"  # a command, a callback, a group chat...
    RATE_LIMITED = "rate limited"
    UNREADABLE = "unreadable"  # malformed: confirmed, and no handler runs on it


@dataclass(frozen=True, slots=True)
class Taken:
    outcome: Outcome
    message_id: uuid.UUID | None = None
    too_large: tuple[int, ...] = ()  # sizes in bytes of attachments kept as metadata only
    answered: bool = False  # a relative's press on a follow-up recorded something
    # What the pressed follow-up shows next (bot.meaning.apply_choice decides).
    then: Step = Step.THANKS
    labels: tuple[tuple[uuid.UUID, str], ...] = ()  # (group id, chat label), for Step.WHICH
    # /start CODE redeemed in the batch's transaction (so that the messages after it in
    # the same batch are the new relative's): whether it granted a role, and whether the
    # person now watches groups (their menu). None: /start was not taken in here.
    started: tuple[bool, bool] | None = None
    # Groups in trouble (LATE, SILENT, DETAINED) a relative's message with no signal is
    # about: their activists are told that unconfirmed news arrived (bot.handlers).
    news: tuple[uuid.UUID, ...] = ()
    unlinked: bool = False  # stored for operators to place: they are told the count
    language: str | None = None  # the sender's, so the replies need not look it up
    # A private message that the reply handlers delete from the relative's chat
    # (content, not a command): a batch's replies delete these per chat in one call.
    in_chat: tuple[int, int] | None = None  # (chat id, message id)
    # What the replies run on instead of the update received: the clean stand-in of one
    # the handlers could not read, sealed raw (bot.received.raw_stand_in).
    replied_as: Update | None = None
    # The relative's typed /help, /language, /wipe or bare /start: its deletion is written
    # down in the update's own transaction (so a crash before its handler runs still has it
    # deleted after the restart); the handler deletes it and crosses it off.
    command_written: bool = False


@dataclass(slots=True)
class Runtime:
    """Long-lived resources of a running bot: opened in one place, closed in one place."""

    settings: Settings
    server: ServerKeys
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    # What the durable step decided, for the reply handlers of the same update.
    taken: dict[int, Taken] = field(default_factory=dict)
    # Updates whose message a batch's replies deleted from the chat already
    # (bot.handlers.Replies), so that their handler does not delete it again.
    deleted_first: set[int] = field(default_factory=set)
    codebook: Codebook = field(default_factory=Codebook)
    # Receipts waiting to delete themselves, by (chat, due second): one job per
    # chat and second, not one per receipt (bot.handlers).
    receipts_due: dict[tuple[int, int], list[int]] = field(default_factory=dict)
    # Whether a note to operators about unlinked messages is already scheduled.
    unlinked_note_due: bool = False
    # Albums already receipted, by keyed digest of (chat, media group), with when: an
    # album gets one receipt and one follow-up, not one per photo (bot.handlers).
    albums: dict[bytes, float] = field(default_factory=dict)
    # Whether a look for owed unconfirmed-news notes is already scheduled (one a burst).
    news_note_due: bool = False
    # Updates the library could not parse, sealed raw since start-up (the admins' note).
    unreadable_taken: int = 0
    # [intake] attachments_budget_mb was reached: new files are kept as details only,
    # and the admins are told (once: bot.handlers).
    attachments_budget_reached: bool = False
    budget_note_due: bool = False
    # Replies' deletions waiting to be written down (chat id, message id, sent, due), and
    # the one task that writes them, a transaction at a time (bot.handlers).
    deletions_to_write: list[tuple[int, int, datetime, datetime]] = field(default_factory=list)
    deletions_writer: asyncio.Task[None] | None = None
    # Chats Telegram's flood control holds back, and whose receipts give way (bot.flood).
    floods: Floods = field(default_factory=Floods)
    # Refused strangers, audited once per sender, kind and hour (bot.refusals).
    refusals: RefusalTally = field(default_factory=RefusalTally)


@dataclass(slots=True)
class _Fetched:
    ref: FileRef
    content: bytes | None  # None: kept as metadata only (too large, or refused)
    refused: bool = False  # Telegram would not give it, or over a budget (no size note)


@dataclass(slots=True)
class _Batch:
    """What one transaction reads once for a whole batch, and keeps up to date as it
    stores: the senders (by Telegram id), their messages within the rate window,
    their groups, the operators and the opened codebook."""

    people: dict[int, Person]
    recent: dict[uuid.UUID, int]
    watchers: set[uuid.UUID]  # activists and admins: their commands are not messages
    keepers: set[uuid.UUID]  # whose chat id is kept (storage.people.CHAT_ROLES)
    forwarders: dict[uuid.UUID, list[Group]] = field(default_factory=dict)
    operators: list[Operator] | None = None
    phrases: list[Phrase] | None = None


class Intake:
    def __init__(self, application: BotApplication, runtime: Runtime) -> None:
        self.application = application
        self.runtime = runtime

    async def handle(self, update: Update) -> Taken:
        """Store one update durably, then run its reply handlers (the webhook's way).

        Raises if the update could not be committed: the caller must not confirm it.
        """
        taken = await self.take_in(update, now=utc_now())
        if taken.outcome is Outcome.UNREADABLE:
            return taken
        update = taken.replied_as or update
        self.runtime.taken[update.update_id] = taken
        chat = update.effective_chat
        if chat is not None:
            self.runtime.floods.begin(chat.id, [update.update_id] if taken.in_chat else [])
        try:
            await self.application.process_update(update)
        finally:
            self.runtime.taken.pop(update.update_id, None)
            if chat is not None:
                self.runtime.floods.end(chat.id, asyncio.get_running_loop().time())
        return taken

    async def take_in(self, update: Update, *, now: datetime) -> Taken:
        [taken] = await self.take_in_batch([update], now=now)
        return taken

    async def set_aside(self, update: Update, *, now: datetime) -> Taken:
        """Confirm an update that cannot be taken in, as nothing (bot.app decides when)."""
        async with self.runtime.sessions() as session, session.begin():
            if not await processed_among(session, update_ids=[update.update_id]):
                mark_all_processed(session, update_ids=[update.update_id], now=now)
        return Taken(Outcome.UNREADABLE)

    async def take_in_batch(self, updates: Sequence[Update], *, now: datetime) -> list[Taken]:
        """Commit what the updates carry in one transaction; one ``Taken`` each, in order.

        Raises if the transaction did not commit: then none of them is taken in,
        and the caller must confirm none.
        """
        read = [_read(update) for update in updates]
        unreadable = {u.update_id for u, r in zip(updates, read, strict=True) if r.bad}
        readings = [r.received for r in read]
        files = await self._downloads(updates, readings, now)
        rt = self.runtime
        async with rt.sessions() as session, session.begin():
            # Checked in the writing transaction: a second delivery may have raced
            # this one (webhook retries), or come back after a crash.
            seen = await processed_among(session, update_ids=[u.update_id for u in updates])
            batch = await self._batch(session, updates, readings, seen, now)
            self._keep_chats(session, batch)
            takens: list[Taken] = []
            fresh: list[int] = []
            for update, reading in zip(updates, read, strict=True):
                received = reading.received
                if update.update_id in seen:
                    takens.append(
                        Taken(Outcome.SEEN, in_chat=_in_chat(received), replied_as=reading.stand_in)
                    )
                    continue
                seen.add(update.update_id)
                fresh.append(update.update_id)
                if update.update_id in unreadable:
                    takens.append(Taken(Outcome.UNREADABLE))
                    continue
                if reading.raw is not None:
                    takens.append(await self._seal_raw(session, batch, update, reading, now))
                    continue
                taken = await self._take_one(
                    session, batch, update, received, files.get(update.update_id, []), now
                )
                takens.append(taken)
            mark_all_processed(session, update_ids=fresh, now=now)
        for update, taken in zip(updates, takens, strict=True):
            if taken.outcome is Outcome.RATE_LIMITED:
                log.warning(
                    "rate limit: update %d from one sender kept no content", update.update_id
                )
        return takens

    async def _batch(
        self,
        session: AsyncSession,
        updates: Sequence[Update],
        readings: Sequence[Received | None],
        seen: set[int],
        now: datetime,
    ) -> _Batch:
        senders = {r.sender_id for r in readings if r is not None and r.update_id not in seen}
        senders |= {
            u.callback_query.from_user.id
            for u in updates
            if u.callback_query is not None and u.update_id not in seen
        }
        people = await find_people(session, server=self.runtime.server, telegram_ids=senders)
        recent = await counts_from_senders_since(
            session, sender_ids=[p.id for p in people.values()], since=now - RATE_WINDOW
        )
        roles = await roles_among(session, person_ids=[p.id for p in people.values()])
        watchers = {i for i, held in roles.items() if held & WATCHER_ROLES}
        keepers = {i for i, held in roles.items() if held & CHAT_ROLES}
        return _Batch(people=people, recent=recent, watchers=watchers, keepers=keepers)

    def _keep_chats(self, session: AsyncSession, batch: _Batch) -> None:
        """The chat ids of the batch's senders: kept (sealed) for those the bot writes to
        first, erased for everyone else (a relative's chat is answered from its update)."""
        for telegram_id, person in batch.people.items():
            # In a private chat the chat id is the sender's Telegram id.
            chat_id = telegram_id if person.id in batch.keepers else None
            if keep_chat(self.runtime.server, person, chat_id):
                session.add(person)

    async def _take_one(
        self,
        session: AsyncSession,
        batch: _Batch,
        update: Update,
        received: Received | None,
        files: list[_Fetched],
        now: datetime,
    ) -> Taken:
        if received is None and (code := _start_code(update)) is not None:
            return await self._start(session, batch, update, code, now)
        if received is None and (typed := _typed_command(update)) is not None:
            write_down_typed(session, self.runtime.server, typed, now)
            return Taken(Outcome.NOT_CONTENT, command_written=True)
        if received is None:
            answered = await self._answer(session, batch, update, now)
            if answered is None and not _of_known_kind(update):
                # Nothing here for the bot (or a kind newer than the library): confirmed,
                # so say so, by number only.
                log.info("update %d: of no kind the bot takes in; confirmed", update.update_id)
            return answered or Taken(Outcome.NOT_CONTENT)
        sender = batch.people.get(received.sender_id)
        if sender is not None and sender.id in batch.watchers and watcher_command(received):
            # An activist's or admin's command is answered as a command (bot.commands),
            # never stored in the inbox nor receipted; anyone else's is a message.
            return Taken(Outcome.NOT_CONTENT)
        if sender is not None and self._over_limit(batch, sender):
            language = pick_language(
                sender.language, received.language, default=self.runtime.settings.display.language
            )
            return Taken(Outcome.RATE_LIMITED, language=language, in_chat=_in_chat(received))
        if sender is None:
            sender = await self._new_person(session, batch, received.sender_id, now)
        batch.recent[sender.id] = batch.recent.get(sender.id, 0) + 1
        return await self._store(session, batch, sender, received, files, now)

    async def _seal_raw(
        self, session: AsyncSession, batch: _Batch, update: Update, reading: _Reading, now: datetime
    ) -> Taken:
        """An update from which no private message with its sender can be read: its raw JSON
        sealed for operators as an "unreadable" message, with no sender, group or chat
        reference (never dropped, issue #14), and counted for the admins' start-up note.
        Its chat, where one can be read, gets the usual receipt (bot.handlers)."""
        rt = self.runtime
        if batch.operators is None:
            batch.operators = await active_operators(session)
        message = await store_message(
            session,
            server=rt.server,
            kind=MessageKind.OTHER,
            body={"text": None, "caption": None, "content": {UNREADABLE: reading.raw}},
            received_at=now,
            update_id=update.update_id,
            operators=batch.operators,
            flush=False,
        )
        rt.unreadable_taken += 1
        return Taken(
            Outcome.STORED, message_id=message.id, unlinked=True, replied_as=reading.stand_in
        )

    async def _new_person(
        self, session: AsyncSession, batch: _Batch, telegram_id: int, now: datetime
    ) -> Person:
        """Someone the batch has not met: a person now (in a private chat, the chat id is
        the Telegram id), known to the rest of the batch."""
        # No chat id kept: a newcomer holds no role the bot writes to first (a grant
        # redeemed later in the batch keeps it then).
        person = await add_person(
            session, server=self.runtime.server, telegram_id=telegram_id, now=now
        )
        batch.people[telegram_id] = person
        return person

    def _over_limit(self, batch: _Batch, sender: Person) -> bool:
        limit = self.runtime.settings.intake.rate_limit_per_hour
        return batch.recent.get(sender.id, 0) >= limit

    async def _downloads(
        self, updates: Sequence[Update], readings: Sequence[Received | None], now: datetime
    ) -> dict[int, list[_Fetched]]:
        """Fetch the attachments of the batch's new updates from senders under the limit.

        Downloads happen outside the writing transaction: a slow network never holds
        the database's write lock. The writing transaction decides again.
        """
        with_files = [r for r in readings if r is not None and r.files]
        if not with_files:
            return {}
        async with self.runtime.sessions() as session, session.begin():
            seen = await processed_among(session, update_ids=[r.update_id for r in with_files])
            batch = await self._batch(session, updates, readings, seen, now)
            known = [p.id for p in batch.people.values()]
            granted = await granted_among(session, person_ids=known)
            per_sender, total = await attachment_bytes(
                session, sender_ids=[i for i in known if i not in granted], since=now - DAY
            )
        used: dict[object, int] = {k: v for k, v in per_sender.items()}
        settings = self.runtime.settings.intake
        per_stranger = settings.stranger_attachment_mb_per_day * MB
        budget = settings.attachments_budget_mb * MB
        fetched: dict[int, list[_Fetched]] = {}
        for received in with_files:
            sender = batch.people.get(received.sender_id)
            if received.update_id in seen or (
                sender is not None and self._over_limit(batch, sender)
            ):
                continue
            if sender is not None:
                batch.recent[sender.id] = batch.recent.get(sender.id, 0) + 1
            stranger = sender is None or sender.id not in granted
            whose: object = sender.id if sender is not None else received.sender_id
            bot = self.application.bot
            kept: list[_Fetched] = []
            for ref in received.files:
                one = await self._fetch(bot, ref, update_id=received.update_id)
                size = len(one.content) if one.content is not None else 0
                if size and total + size > budget:
                    # The installation's budget: details only, and the admins are told.
                    self.runtime.attachments_budget_reached = True
                    one = _Fetched(ref, None, refused=True)
                elif size and stranger and used.get(whose, 0) + size > per_stranger:
                    one = _Fetched(ref, None, refused=True)  # a stranger's daily budget
                else:
                    total += size
                    if stranger:
                        used[whose] = used.get(whose, 0) + size
                kept.append(one)
            fetched[received.update_id] = kept
        return fetched

    async def _fetch(self, bot: Bot, ref: FileRef, *, update_id: int) -> _Fetched:
        limit = self.runtime.settings.intake.max_attachment_mb * MB
        if ref.size is not None and ref.size > limit:
            return _Fetched(ref, None)
        try:
            telegram_file = await bot.get_file(ref.file_id)
        except BadRequest as exc:
            words = exc.message.lower()
            if "too big" in words:
                return _Fetched(ref, None)
            if "temporarily" in words:
                raise  # "file is temporarily unavailable": the next try may get it
            # Refused for good (a file id Telegram does not know): asking again would
            # hold back every update behind this one, so the message is kept without it.
            log.warning("update %d: Telegram refused a file; kept without it", update_id)
            return _Fetched(ref, None, refused=True)
        if telegram_file.file_size is not None and telegram_file.file_size > limit:
            return _Fetched(ref, None)
        return _Fetched(ref, bytes(await telegram_file.download_as_bytearray()))

    async def _store(
        self,
        session: AsyncSession,
        batch: _Batch,
        sender: Person,
        received: Received,
        files: list[_Fetched],
        now: datetime,
    ) -> Taken:
        rt = self.runtime
        _remember_language(sender, received)
        chat_ref = ChatRef(chat_id=received.chat_id, message_id=received.message_id)
        previous = (
            await latest_version(session, server=rt.server, chat_ref=chat_ref)
            if received.is_edit
            else None
        )
        if sender.id not in batch.forwarders:
            batch.forwarders[sender.id] = await forwarder_groups(session, person_id=sender.id)
        if batch.phrases is None:
            batch.phrases = await rt.codebook.phrases(session, server=rt.server)
        meaning = await understand(
            session,
            server=rt.server,
            received=received,
            previous=previous,
            forwarders=batch.forwarders[sender.id],
            phrases=batch.phrases,
        )
        origin_index = None
        if received.origin_kind is OriginKind.USER and received.origin_user_id is not None:
            # Argon2id, off the event loop (other chats' replies must not wait on it).
            origin_index = await asyncio.to_thread(
                rt.server.blind_index, "telegram_id", str(received.origin_user_id)
            )
        if meaning.group is None and batch.operators is None:
            batch.operators = await active_operators(session)
        message = await store_message(
            session,
            server=rt.server,
            kind=received.kind,
            body=received.body,
            received_at=now,
            sender=sender,
            update_id=received.update_id,
            origin_kind=received.origin_kind,
            origin_index=origin_index,
            origin_at=received.origin_at,
            sent_at=received.sent_at,
            chat_ref=chat_ref,
            previous=previous,
            group=meaning.group,
            link_reason=meaning.reason,
            candidates=meaning.candidates,
            signal=meaning.signal,
            possible_detention=meaning.possible_detention,
            text_digest=meaning.text_digest,
            operators=batch.operators,
            flush=False,
        )
        if meaning.signal is not None or files:
            # Check-ins and attachments refer to the message row. SQLAlchemy orders a
            # flush's INSERTs by relationship(), which these models do not declare, so
            # the message is written first; a message that nothing refers to waits for
            # the batch's one flush.
            await session.flush()
        await record(
            session,
            meaning=meaning,
            message=message,
            at=checkin_time(
                origin_at=received.origin_at, sent_at=received.sent_at, received_at=now
            ),
            now=now,
            previous=previous,
        )
        if received.unreadable:
            rt.unreadable_taken += 1
        news = _unconfirmed_news(meaning, batch.forwarders[sender.id], received)
        if news:
            message.unconfirmed = True
            session.add(message)
            # Owed to the groups' activists in the message's own transaction: a crash
            # before the note goes does not lose it (bot.handlers sends it).
            await owed_news.mark(session, group_ids=news, at=now + NEWS_NOTE_DELAY)
        too_large: list[int] = []
        for fetched in files:
            meta = {**fetched.ref.meta, "file_id": fetched.ref.file_id}
            await store_attachment(
                session,
                message=message,
                group=meaning.group,
                candidates=meaning.candidates,
                kind=fetched.ref.kind,
                meta=meta,
                content=fetched.content,
            )
            if fetched.content is None and not fetched.refused:
                too_large.append(fetched.ref.size or 0)
        return Taken(
            Outcome.STORED,
            message_id=message.id,
            too_large=tuple(too_large),
            news=news,
            unlinked=meaning.group is None and not meaning.candidates,
            language=pick_language(
                sender.language, received.language, default=self.runtime.settings.display.language
            ),
            in_chat=_in_chat(received),
        )

    async def _start(
        self, session: AsyncSession, batch: _Batch, update: Update, code: str, now: datetime
    ) -> Taken:
        """/start CODE: the invite redeemed in the batch's transaction. Every outcome gets
        the same reply (bot.handlers.on_start); a refused code is recorded, not the code."""
        message, user = update.message, update.effective_user
        if message is None or user is None:  # _start_code checked both
            return Taken(Outcome.NOT_CONTENT)
        # The code is on the relative's screen: its deletion is written down with the
        # redemption (the chat sealed), so that a crash or a refusal to delete before the
        # reply runs still has it deleted after the restart (bot.handlers.on_start).
        write_down_typed(session, self.runtime.server, message, now)
        person = batch.people.get(user.id) or await find_person(
            session, server=self.runtime.server, telegram_id=user.id
        )
        if person is None:
            person = await self._new_person(session, batch, user.id, now)
        batch.people[user.id] = person
        grant = await redeem_invite(
            session, server=self.runtime.server, code=code, person=person, now=now
        )
        if grant is None:
            # A wrong code, tried again and again, is one entry an hour with a count.
            await audit_refusal(
                session,
                self.runtime.refusals,
                sender=user.id,
                kind="invite",
                actor=f"person:{pseudonym(person)}",
                action="invite.refused",
                now=now,
            )
            return Taken(Outcome.NOT_CONTENT, started=(False, False))
        await audit.append(
            session,
            actor=f"person:{pseudonym(person)}",
            action="invite.redeem",
            at=now,
            subject=str(grant.invite_id),
            details={"role": grant.role.value},
        )
        # The batch's later messages see the new groups and roles.
        batch.forwarders.pop(person.id, None)
        roles = (await roles_among(session, person_ids=[person.id])).get(person.id, set())
        watching = bool(roles & WATCHER_ROLES)
        if watching:
            batch.watchers.add(person.id)
        if roles & CHAT_ROLES:
            # Alerts and notices are sent to this chat from now on.
            batch.keepers.add(person.id)
            if keep_chat(self.runtime.server, person, user.id):
                session.add(person)
        return Taken(Outcome.NOT_CONTENT, started=(True, watching))

    async def _answer(
        self, session: AsyncSession, batch: _Batch, update: Update, now: datetime
    ) -> Taken | None:
        """A relative's button press about their own message, applied durably."""
        query = update.callback_query
        choice = parse_choice(query.data or "") if query is not None else None
        if query is None or choice is None:
            return None
        person = batch.people.get(query.from_user.id)
        message = await session.get(Message, choice.message_id)
        # The step after a flag is the same for every presser: nothing tells who may act.
        step = Step.SURE if choice.kind == "c" and choice.value == FLAG else Step.THANKS
        if message is not None and (person is None or message.sender_id != person.id):
            # Only the message's own sender answers its question: anyone else's press
            # (a forged one) changes nothing, moves the question on the same way, and is
            # recorded.
            await audit_refusal(
                session,
                self.runtime.refusals,
                sender=query.from_user.id,
                # Each answer counted apart, as each command is: a flood of one is one entry.
                kind=f"answer {choice.kind}:{choice.value}",
                actor=pseudonym(person) if person else "unknown",
                action="answer.refused",
                now=now,
            )
            return Taken(Outcome.NOT_CONTENT, message_id=choice.message_id, then=step)
        if person is None or message is None:
            # A press on a follow-up whose message was never stored (its sender was over
            # the rate limit): the same steps, nothing recorded.
            answer = Answer(False, step)
        else:
            answer = await apply_choice(session, choice=choice, person=person, now=now)
        if answer.applied and message is not None and person is not None:
            # A change made by a person (a check-in confirmed, a detention reported, a
            # message linked): audited like an activist's command. The choice is one of
            # the buttons' words, not content; the group is named by its codename.
            group = await session.get(Group, message.group_id) if message.group_id else None
            await audit.append(
                session,
                actor=pseudonym(person),
                action="answer.group" if choice.kind == "g" else "answer.confirm",
                subject=group.codename if group else None,
                at=now,
                details={"allowed": True, "choice": choice.value},
            )
        return Taken(
            Outcome.NOT_CONTENT,
            message_id=choice.message_id,
            answered=answer.applied,
            then=answer.then,
            labels=answer.labels,
        )


@dataclass(frozen=True, slots=True)
class _Reading:
    received: Received | None = None
    raw: dict[str, Any] | None = None  # sealed as it came, with no sender (Intake._seal_raw)
    stand_in: Update | None = None  # what the replies run on instead (Taken.replied_as)
    bad: bool = False  # confirmed as nothing, with a log line


def _read(update: Update) -> _Reading:
    """``read_update``; or, for an update from which no private message with its sender
    can be read, its raw JSON to seal without a sender: a stand-in of one the library
    refused (bot.received.raw_stand_in), a kind of update no Bot API the library knows
    had, or one the library parsed but that lacks what every message has (Telegram would
    not send it; a fault, another Bot API server or a future change might). Such an
    update is never dropped unsealed; it is kept from the handlers, which would fail on
    it too (they run on a clean stand-in). What holds nothing to seal (a service message,
    a group's or channel's message, the number alone) is confirmed as nothing, so that
    it cannot block the updates behind it."""
    raw = sealed_raw(update)
    if raw is not None:
        return _Reading(raw=raw)
    if not _of_known_kind(update) and update.api_kwargs:
        return _sealed_instead(update)
    try:
        problem = _malformed(update)
        if problem is None:
            return _Reading(received=read_update(update))
    except Exception as exc:  # whatever a malformed update makes reading raise
        problem = type(exc).__name__
    reading = _sealed_instead(update)
    log.warning(
        "update %d could not be read (%s); %s",
        update.update_id,
        problem,
        "sealed as it came" if reading.raw is not None else "confirmed without content",
    )
    return reading


def _sealed_instead(update: Update) -> _Reading:
    try:
        stand_in = raw_stand_in(update.update_id, update.to_dict())
    except Exception:  # a value the library cannot even write out again
        stand_in = None
    raw = sealed_raw(stand_in) if stand_in is not None else None
    if stand_in is None or raw is None:
        return _Reading(bad=True)
    with contextlib.suppress(RuntimeError):  # no bot set (tests)
        stand_in.set_bot(update.get_bot())
    return _Reading(raw=raw, stand_in=stand_in)


_CHAT_TYPES = frozenset({"private", "group", "supergroup", "channel"})
_MESSAGE_KINDS = ("message", "edited_message", "channel_post", "edited_channel_post")


def _malformed(update: Update) -> str | None:
    """The first field (by name: a name is not content) that Telegram always sends as a
    whole number or one of its words and this update does not; None if there is none.

    The library keeps whatever a field holds, and a handler that meets a chat type of
    ``true`` or a message id of ``"abc"`` matches no filter and passes it by in silence,
    or fails in the library's own filters: such an update is confirmed as nothing, with a
    log line, like one that cannot be read.
    """
    for kind in _MESSAGE_KINDS:
        message = getattr(update, kind, None)
        problem = _message_problem(message) if message is not None else None
        if problem is not None:
            return f"{kind}.{problem}"
    query = update.callback_query
    if query is not None:
        if not _whole(query.from_user.id):
            return "callback_query.from.id"
        problem = _message_problem(query.message) if query.message is not None else None
        if problem is not None:
            return f"callback_query.message.{problem}"
    for kind in ("my_chat_member", "chat_member"):
        member = getattr(update, kind, None)
        if member is not None and not (_whole(member.chat.id) and member.chat.type in _CHAT_TYPES):
            return f"{kind}.chat"
    return None


def _message_problem(message: MaybeInaccessibleMessage) -> str | None:
    checks = [
        ("message_id", _whole(message.message_id)),
        ("chat.id", _whole(message.chat.id)),
        ("chat.type", message.chat.type in _CHAT_TYPES),
    ]
    if isinstance(message, TelegramMessage):
        sender = message.from_user
        checks += [
            ("from.id", sender is None or _whole(sender.id)),
            # In a private chat Telegram always names the sender; without one the
            # handlers (which answer a person) would pass the message by in silence.
            ("from", sender is not None or message.chat.type != "private"),
            # The command handlers slice the text by the first entity's numbers.
            *(
                (f"{name}.{n}", _whole(e.offset) and _whole(e.length) and isinstance(e.type, str))
                for name in ("entities", "caption_entities")
                for n, e in enumerate(getattr(message, name) or ())
            ),
        ]
    return next((name for name, ok in checks if not ok), None)


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


TROUBLE = frozenset({Status.LATE, Status.SILENT, Status.DETAINED})
ALARMS = frozenset({Signal.DURESS, Signal.DETAINED})


def _unconfirmed_news(
    meaning: Meaning, forwarders: Sequence[Group], received: Received
) -> tuple[uuid.UUID, ...]:
    """The groups in trouble that a relative's new message may be about, where nothing it
    said was counted: linked with no signal, or not placed (those they are asked to choose
    from, even if it holds a phrase of several of them). Such a message is
    never silent, answered or not (promise 8): a check-in the relative forwarded and
    then did not confirm must not leave the activists with nothing but the silence."""
    if not forwarders or received.is_edit:
        return ()
    if meaning.group is None and meaning.signal in ALARMS:
        # A duress or detention phrase of several of their groups, not yet placed: each
        # of those groups' activists hears of it at once, whatever its status.
        return tuple(g.id for g in meaning.candidates)
    if meaning.group is None:
        # Not placed, whatever it said (a check-in phrase of several of their groups
        # counts for none of them until a label is chosen): news for those in trouble.
        return tuple(g.id for g in meaning.candidates if g.status in TROUBLE)
    if meaning.signal is not None:
        return ()  # placed, and what it said was counted
    return (meaning.group.id,) if meaning.group.status in TROUBLE else ()


def _start_code(update: Update) -> str | None:
    """The code of a private ``/start CODE`` (not an edit), or None."""
    message = update.message
    if message is None or message.chat.type != "private" or message.from_user is None:
        return None
    words = (message.text or "").split()
    if len(words) != 2 or words[0].split("@", 1)[0].casefold() != "/start":
        return None
    return words[1]


def write_down_typed(
    session: AsyncSession, server: ServerKeys, message: TelegramMessage, now: datetime
) -> None:
    """A command the relative typed, written down to delete now (storage.deletions, its
    chat sealed): carried out after a restart too, and crossed off once deleted."""
    deletions.remember(
        session,
        server=server,
        chat_id=message.chat_id,
        message_ids=[message.message_id],
        sent_at=message.date,
        due_at=now,
    )


def _typed_command(update: Update) -> TelegramMessage | None:
    """A private /help, /language, /wipe or /start (not an edit) its handler deletes."""
    message = update.message
    if message is None or message.chat.type != "private" or message.from_user is None:
        return None
    return message if is_command(message) else None


def _of_known_kind(update: Update) -> bool:
    return any(getattr(update, kind, None) is not None for kind in Update.ALL_TYPES)


def _in_chat(received: Received | None) -> tuple[int, int] | None:
    """Where a message that its reply handler deletes sits: content only (an activist's
    command is no content, and is not read into a ``Received``-backed ``Taken``)."""
    if received is None:
        return None
    return (received.chat_id, received.message_id)


def _remember_language(person: Person, received: Received) -> None:
    if person.language is None and received.language:
        person.language = received.language[:2].lower()
