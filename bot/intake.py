"""Taking an update in: sealed and committed before Telegram may forget it.

Telegram forgets an update once the bot confirms it (the next getUpdates
offset, or the 200 answer to a webhook call). ``Intake.handle`` returns only
after what the update carries is committed, sealed, together with its
``update_id``; the polling loop and the webhook confirm only after it returns.
An update seen again after a crash finds its ``update_id`` and is not stored a
second time, but its replies run again (a receipt may repeat; a forwarded
message is still deleted from the relative's chat).
"""

from __future__ import annotations

import enum
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from telegram import Bot, Update
from telegram.error import BadRequest
from telegram.ext import Application

from bot.config import Settings
from bot.i18n import pick_language
from bot.meaning import apply_choice, checkin_time, parse_choice, record, understand
from bot.received import FileRef, Received, read_update
from storage.crypto import ServerKeys
from storage.messages import (
    ChatRef,
    count_from_sender_since,
    latest_version,
    store_attachment,
    store_message,
)
from storage.models import OriginKind, Person
from storage.people import find_person, get_or_create_person
from storage.timeutil import utc_now
from storage.updates import already_processed, mark_processed

log = logging.getLogger(__name__)
# python-telegram-bot's Application is generic in six types this bot leaves at their defaults.
BotApplication = Application[Any, Any, Any, Any, Any, Any]
MB = 1024 * 1024
RATE_WINDOW = timedelta(hours=1)


class Outcome(enum.Enum):
    STORED = "stored"
    SEEN = "seen"  # taken in before (a redelivery after a crash)
    NOT_CONTENT = "not content"  # a command, a callback, a group chat...
    RATE_LIMITED = "rate limited"


@dataclass(frozen=True, slots=True)
class Taken:
    outcome: Outcome
    message_id: uuid.UUID | None = None
    too_large: tuple[int, ...] = ()  # sizes in bytes of attachments kept as metadata only
    # Questions for the relative: which of their groups it is about (id, codename)...
    ask_group: tuple[tuple[uuid.UUID, str], ...] = ()
    # ...or whether a linked message that shows nothing by itself came from the group.
    ask_confirmation: bool = False
    answered: bool = False  # a relative's answer to one of those, taken in
    unlinked: bool = False  # stored for operators to place: they are told the count
    language: str | None = None  # the sender's, so the replies need not look it up


@dataclass(slots=True)
class Runtime:
    """Long-lived resources of a running bot: opened in one place, closed in one place."""

    settings: Settings
    server: ServerKeys
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    # What the durable step decided, for the reply handlers of the same update.
    taken: dict[int, Taken] = field(default_factory=dict)


@dataclass(slots=True)
class _Fetched:
    ref: FileRef
    content: bytes | None


class Intake:
    def __init__(self, application: BotApplication, runtime: Runtime) -> None:
        self.application = application
        self.runtime = runtime

    async def handle(self, update: Update) -> Taken:
        """Store the update durably, then run its reply handlers.

        Raises if the update could not be committed: the caller must not confirm it.
        """
        taken = await self.take_in(update, now=utc_now())
        self.runtime.taken[update.update_id] = taken
        try:
            await self.application.process_update(update)
        finally:
            self.runtime.taken.pop(update.update_id, None)
        return taken

    async def take_in(self, update: Update, *, now: datetime) -> Taken:
        received = read_update(update)
        rt = self.runtime
        async with rt.sessions() as session:
            files: list[_Fetched] = []
            if received is not None and received.files:
                async with session.begin():
                    if await already_processed(session, update_id=update.update_id):
                        return Taken(Outcome.SEEN)
                    limited = await self._over_limit(session, received, now)
                if not limited:
                    # Downloads happen outside the transaction: a slow network never
                    # holds the database's write lock.
                    files = [await self._fetch(self.application.bot, ref) for ref in received.files]
            async with session.begin():
                # Checked (again) in the writing transaction: a second delivery may
                # have raced this one (webhook retries).
                if await already_processed(session, update_id=update.update_id):
                    return Taken(Outcome.SEEN)
                limited = received is not None and await self._over_limit(session, received, now)
                taken = Taken(Outcome.RATE_LIMITED if limited else Outcome.NOT_CONTENT)
                if received is not None and not limited:
                    taken = await self._store(session, received, files, now)
                elif received is None:
                    taken = await self._answer(session, update, now) or taken
                await mark_processed(session, update_id=update.update_id, now=now)
        if taken.outcome is Outcome.RATE_LIMITED:
            log.warning("rate limit: update %d from one sender kept no content", update.update_id)
        return taken

    async def _over_limit(self, session: AsyncSession, received: Received, now: datetime) -> bool:
        person = await find_person(
            session, server=self.runtime.server, telegram_id=received.sender_id
        )
        if person is None:
            return False
        recent = await count_from_sender_since(session, sender=person, since=now - RATE_WINDOW)
        return recent >= self.runtime.settings.intake.rate_limit_per_hour

    async def _fetch(self, bot: Bot, ref: FileRef) -> _Fetched:
        limit = self.runtime.settings.intake.max_attachment_mb * MB
        if ref.size is not None and ref.size > limit:
            return _Fetched(ref, None)
        try:
            telegram_file = await bot.get_file(ref.file_id)
        except BadRequest as exc:
            if "too big" in exc.message.lower():
                return _Fetched(ref, None)
            raise
        if telegram_file.file_size is not None and telegram_file.file_size > limit:
            return _Fetched(ref, None)
        return _Fetched(ref, bytes(await telegram_file.download_as_bytearray()))

    async def _store(
        self, session: AsyncSession, received: Received, files: list[_Fetched], now: datetime
    ) -> Taken:
        rt = self.runtime
        sender = await get_or_create_person(
            session,
            server=rt.server,
            telegram_id=received.sender_id,
            chat_id=received.chat_id,
            now=now,
        )
        _remember_language(sender, received)
        chat_ref = ChatRef(chat_id=received.chat_id, message_id=received.message_id)
        previous = (
            await latest_version(session, server=rt.server, chat_ref=chat_ref)
            if received.is_edit
            else None
        )
        meaning = await understand(
            session, server=rt.server, sender=sender, received=received, previous=previous
        )
        origin_index = None
        if received.origin_kind is OriginKind.USER and received.origin_user_id is not None:
            origin_index = rt.server.blind_index("telegram_id", str(received.origin_user_id))
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
        )
        await record(
            session,
            meaning=meaning,
            message=message,
            at=checkin_time(received, now),
            now=now,
            previous=previous,
        )
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
            if fetched.content is None:
                too_large.append(fetched.ref.size or 0)
        return Taken(
            Outcome.STORED,
            message_id=message.id,
            too_large=tuple(too_large),
            ask_group=tuple((g.id, g.codename) for g in meaning.candidates),
            ask_confirmation=meaning.ask_confirmation and not received.is_edit,
            unlinked=meaning.group is None and not meaning.candidates,
            language=pick_language(sender.language, received.language),
        )

    async def _answer(self, session: AsyncSession, update: Update, now: datetime) -> Taken | None:
        """A relative's button press about their own message, applied durably."""
        query = update.callback_query
        choice = parse_choice(query.data or "") if query is not None else None
        if query is None or choice is None:
            return None
        person = await find_person(
            session, server=self.runtime.server, telegram_id=query.from_user.id
        )
        if person is None:
            return None
        applied = await apply_choice(session, choice=choice, person=person, now=now)
        return Taken(Outcome.NOT_CONTENT, message_id=choice.message_id, answered=applied)


def _remember_language(person: Person, received: Received) -> None:
    if person.language is None and received.language:
        person.language = received.language[:2].lower()
