"""Delivering the alert outbox: what each message says, and getting it to Telegram.

An alert says the codename, the status and its basis, when the last check-in
was (ago, and at what time in the recipient's zone), and the current leg:
never anything from a message. Rows are taken in one short transaction, sent
outside it, and each result is written in its own: a row is marked sent only
after Telegram accepted it, so a crash in between sends it again rather than
never (at least once). On PostgreSQL the rows are claimed as they are taken
(several processes share the database); on SQLite, whose file has one bot
process with one sender, they are only read: a claim there was a write and a
commit (the fsyncs of the rollback journal) between each deadline and its
alert, and protected nothing.

Telegram allows about one message a second to one chat and thirty a second
overall; ``Limiter`` keeps to both. More than ``DIGEST_OVER`` messages waiting
for one chat go as one digest, so an outage of many groups is one message.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError, TimedOut

from bot import texts
from bot.acts.words import notice_text
from bot.i18n import Words, pick_language, translator
from storage.alerts import Taken, about_of, mark_sent, mark_unreachable, retry_later, take_due
from storage.crypto import ServerKeys
from storage.db import READ_ONLY
from storage.legs import leg_name
from storage.models import Alert, AlertPurpose, Flip, Group, Leg, Person, Status
from storage.people import chat_id_of, display_name
from storage.session import AsyncSession

log = logging.getLogger(__name__)
DIGEST_OVER = 3
# Recipients taken from the outbox at once (each with every alert due for them).
CLAIM_BATCH = 200
# At most this many messages are on their way or accepted by Telegram with their "sent"
# mark not yet committed: what a SIGKILL can send twice (#15). A second of Telegram's
# pace: a group commit of the marks takes far less, so it holds sending back only when
# a commit is slow (a kill of the crash test found 38 unmarked behind one such commit).
MAX_UNMARKED = 30
# Telegram's longest text, in UTF-16 code units: a longer digest is split.
MESSAGE_LIMIT = 4096
# Left free in every digest for the line an answered alert keeps ("✓ Acknowledged by
# p-3f2a at 03:12 KST", bot.activists.answered_line): a full digest could not be edited
# to say who acknowledged it, and would keep its buttons.
ANSWER_ROOM = 120
MAX_BACKOFF = timedelta(minutes=5)
# Patient with a slow answer: a send that timed out may have been carried out,
# and sending it again would repeat it. Only an answer lost after this long can.
SEND_TIMEOUT = 30.0
# Callback data of the buttons: the pressed message itself says which alerts.
ACK, CLAIM, ACK_ALL, CLEAR = "al:ack", "al:claim", "al:ackall", "al:clear"
BASIS_TEXT = texts.BASIS_TEXT  # kept under its old name for callers


# --------------------------------------------------------------------------- words


@dataclass(frozen=True, slots=True)
class Facts:
    """Everything an alert may say about a group."""

    codename: str
    status: Status
    basis: str
    since: datetime
    last_checkin_at: datetime | None
    leg: str | None
    # An all-clear says "again" only when the group had this status before.
    again: bool = False


def render(
    purpose: AlertPurpose,
    facts: Facts,
    *,
    language: str,
    tz: tzinfo,
    now: datetime,
    about: str | None = None,
    round_: int = 0,
    escalated_after: timedelta | None = None,
    words: Words | None = None,
) -> str:
    """The text of one alert, in the recipient's language and time zone. Pure.

    A first alert, the ``round_``-th reminder and an alert escalated to a wider
    audience after ``escalated_after`` without acknowledgement each say which they are.
    """
    words = words or Words(language, tz)
    _ = words._
    fields = {
        "codename": facts.codename,
        "status": texts.status_in(words, facts.status),
        "basis": texts.basis_in(words, facts.basis),
        "since": words.local(facts.since),
        "who": about or "?",
        "nth": words.nth(round_),
        # Only an escalation says how long it waited (Babel's units are not free:
        # a digest of a thousand alerts spent a fifth of its time on this).
        "waited": "" if escalated_after is None else words.duration(escalated_after),
    }
    if purpose is AlertPurpose.CLAIMED:
        return _(texts.CLAIMED).format(**fields)
    if purpose is AlertPurpose.UNREACHABLE:
        return _(texts.UNREACHABLE).format(**fields)
    if purpose is AlertPurpose.NOTICE:
        return notice_text(
            codename=facts.codename,
            status=facts.status,
            basis=facts.basis,
            since=facts.since,
            about=about,
            words=words,
        )
    if purpose is AlertPurpose.ALL_CLEAR:
        headline = texts.ALL_CLEAR_AGAIN if facts.again else texts.ALL_CLEAR
    elif purpose is AlertPurpose.REMINDER:
        headline = texts.REMINDER
    else:
        headline = texts.ESCALATED if escalated_after is not None else texts.ALERT
    lines = [_(headline).format(**fields)]
    if facts.last_checkin_at is None:
        lines.append(_(texts.NO_CHECKIN))
    else:
        lines.append(
            _(texts.LAST_CHECKIN).format(
                ago=words.ago(_to_the_minute(facts.last_checkin_at, now), now),
                local=words.local(facts.last_checkin_at),
            )
        )
    if facts.leg:
        lines.append(_(texts.LEG).format(leg=facts.leg))
    return "\n".join(lines)


def _to_the_minute(moment: datetime, now: datetime) -> datetime:
    """To the minute, except within the first minute (where seconds matter)."""
    seconds = max(0, int((now - moment).total_seconds()))
    return now - timedelta(seconds=seconds if seconds < 60 else seconds - seconds % 60)


def digest(parts: Sequence[str], *, language: str) -> str:
    words = Words(language, UTC)
    return "\n\n".join([words.n_(texts.DIGEST, len(parts)).format(count=len(parts)), *parts])


def buttons(kind: str, *, language: str) -> InlineKeyboardMarkup | None:
    _ = translator(language)
    if kind == "single":
        return InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton(_(texts.BUTTON_ACK), callback_data=ACK),
                    InlineKeyboardButton(_(texts.BUTTON_CLAIM), callback_data=CLAIM),
                ],
                # The same as /clear: a second person confirms (bot.acts).
                [InlineKeyboardButton(_(texts.BUTTON_CLEAR), callback_data=CLEAR)],
            ]
        )
    if kind == "digest":
        return InlineKeyboardMarkup(
            [[InlineKeyboardButton(_(texts.BUTTON_ACK_ALL), callback_data=ACK_ALL)]]
        )
    return None


# --------------------------------------------------------------------------- pacing


@dataclass(slots=True)
class Limiter:
    """At most one message a second to one chat and ``per_second`` overall."""

    per_chat: float = 1.0
    per_second: int = 30
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    _last: dict[int, float] = field(default_factory=dict)
    _window: collections.deque[float] = field(default_factory=collections.deque)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def wait(self, chat_id: int) -> None:
        while True:
            async with self._lock:
                now = self.clock()
                while self._window and self._window[0] <= now - 1.0:
                    self._window.popleft()
                delay = max(
                    self._last.get(chat_id, -1e9) + self.per_chat - now,
                    (self._window[0] + 1.0 - now) if len(self._window) >= self.per_second else 0.0,
                )
                if delay <= 0:
                    self._last[chat_id] = now
                    self._window.append(now)
                    return
            await self.sleep(delay)

    def hold(self, chat_id: int, seconds: float) -> None:
        """Telegram asked this chat to wait (HTTP 429 with retry_after)."""
        self._last[chat_id] = max(self._last.get(chat_id, 0.0), self.clock() + seconds)


# --------------------------------------------------------------------------- sending


@dataclass(frozen=True, slots=True)
class Outgoing:
    person_id: uuid.UUID
    chat_id: int
    alert_ids: tuple[uuid.UUID, ...]
    text: str
    markup: InlineKeyboardMarkup | None
    attempts: int


@dataclass(slots=True)
class Delivery:
    claimed: int = 0  # rows taken from the outbox by this call
    sent: int = 0
    retried: int = 0
    unreachable: int = 0


class Sender:
    """The alert sender of one bot process, kept from one delivery to the next.

    A delivery returns once its messages are sent; their "sent" marks are
    written behind it (``_SentMarks``), so that the next delivery does not wait
    for the write lock (on SQLite the engine's passes hold it while deadlines
    fall). Until its mark is committed an alert still reads as pending: it is
    ``in_flight`` here, and no delivery takes it again.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        bot: Bot,
        *,
        server: ServerKeys,
        default_tz: str,
        default_language: str = "en",
        limiter: Limiter,
        now: Callable[[], datetime],
        run_id: uuid.UUID | None = None,
    ) -> None:
        self._sessions = sessions
        self._bot = bot
        self._server = server
        self._default_tz = default_tz
        # The language of someone who never chose one and whose Telegram app said none
        # we speak: the installation's [display] language.
        self._default_language = default_language
        self._limiter = limiter
        self._now = now
        self._run_id = run_id
        self.in_flight: set[uuid.UUID] = set()
        self._marks = _SentMarks(sessions, now, self.in_flight)
        # Each chat's last message on its way: the next one to that chat goes after
        # it, whichever delivery started it (a chat's messages stay in order).
        self._chats: dict[int, asyncio.Task[None]] = {}
        self._sending: set[asyncio.Task[None]] = set()  # every send not yet done

    async def deliver_due(self) -> Delivery:
        """Send every alert that is due now; returns once its messages are sent
        (or refused), with what happened."""
        delivery, sends = await self._take_and_start()
        await asyncio.gather(*sends)
        return delivery

    async def start_due(self) -> int:
        """Start every alert that is due now on its way; returns how many rows it
        took, without waiting for their sends.

        Telegram takes one message a second to a chat: a recipient with several
        messages (a digest split in parts, a reminder right after an alert), or one
        whose sends are refused and retried, holds only that chat's queue. Waited
        for, one such chat held every other recipient's alert due meanwhile: three
        chats refused 14 times each held 200 alerts to other activists for a
        median of 2.5 s (``bench/engine.py`` before its due phase was fixed).

        Not more than ``CLAIM_BATCH`` messages wait at once, as before: taken all at
        once, a burst of 1,000 alerts to 1,000 chats was 1,000 waiting sends (the
        bot's peak 134 MB against 109, and more CPU); Telegram's 30 a second makes
        room for the next recipients, oldest first, within seconds."""
        while len(self._sending) > CLAIM_BATCH // 2:
            await asyncio.wait(set(self._sending), return_when=asyncio.FIRST_COMPLETED)
        delivery, _ = await self._take_and_start(limit=CLAIM_BATCH - len(self._sending))
        return delivery.claimed

    async def _take_and_start(
        self, *, limit: int | None = None
    ) -> tuple[Delivery, list[asyncio.Task[None]]]:
        """Take what is due (claimed in the run's name where several processes may
        send) and start its messages; returns the tally and the sends.

        The rows and what their messages say are read in one short transaction;
        then each recipient's messages are written and start on their way before
        the next recipient's are written (a hundred digests of a thousand alerts
        took half a second to write, and the first waited for the last). The session
        closes (its connection's reset, a thread hop on SQLite) beside the first sends."""
        session = self._sessions()
        try:
            postgres = session.bind is not None and session.bind.dialect.name == "postgresql"
            # Begins the transaction; on SQLite one that only reads: no write lock,
            # and no commit to wait for.
            await session.connection(execution_options=None if postgres else READ_ONLY)
            taken = await take_due(
                session,
                now=self._now(),
                limit=CLAIM_BATCH if limit is None else limit,
                claim=postgres,
                run_id=self._run_id,
                besides=self.in_flight,
            )
            facts = await _all_facts(session, taken, server=self._server)
            await session.commit()
        except BaseException:
            await session.close()
            raise
        closing = asyncio.create_task(session.close())
        try:
            return await self._start(taken, facts)
        finally:
            await closing

    async def _start(
        self, taken: Sequence[Taken], facts: Mapping[uuid.UUID, Facts]
    ) -> tuple[Delivery, list[asyncio.Task[None]]]:
        delivery = Delivery(claimed=len(taken))
        self.in_flight.update(t.alert.id for t in taken)
        now = self._now()
        sends: list[asyncio.Task[None]] = []
        started: set[uuid.UUID] = set()
        try:
            for items in _by_person(taken).values():
                chat_id = chat_id_of(self._server, items[0].person)
                if chat_id is None:
                    # No chat kept for them (storage.people erases it with the last
                    # watching role): skipped, their alerts would stay pending and in
                    # flight for good. Unreachable instead, and the admins are told.
                    await self._no_chat(items, delivery)
                    continue
                for item in _compose(
                    items,
                    facts,
                    chat_id=chat_id,
                    server=self._server,
                    tz=self._default_tz,
                    language=self._default_language,
                    now=now,
                ):
                    # One chat's messages in order; the chats side by side.
                    started.update(item.alert_ids)
                    sends.append(self._queue(item, delivery))
                await asyncio.sleep(0)  # let the sends begin before the next recipient
        except BaseException:
            # Not sent, so not in flight: the next delivery takes them again.
            self.in_flight.difference_update(t.alert.id for t in taken if t.alert.id not in started)
            for task in sends:
                task.cancel()
            raise
        return delivery, sends

    def _queue(self, item: Outgoing, tally: Delivery) -> asyncio.Task[None]:
        """Send ``item`` after the chat's message on its way, if any."""
        chat_id = item.chat_id
        task = asyncio.create_task(self._send_after(self._chats.get(chat_id), item, tally))
        self._chats[chat_id] = task
        self._sending.add(task)

        def done(finished: asyncio.Task[None]) -> None:
            self._sending.discard(finished)
            if self._chats.get(chat_id) is finished:
                del self._chats[chat_id]
            if not finished.cancelled() and finished.exception() is not None:
                # A result that could not be written (the database away): the alert
                # is no longer in flight, and the next delivery takes it again.
                log.error(
                    "an alert's send failed (%s); it is taken again",
                    type(finished.exception()).__name__,
                )

        task.add_done_callback(done)
        return task

    async def close(self) -> None:
        """Stop what is still on its way (unsent, it is taken again at the next
        start), then wait until the marks of what was sent are committed."""
        waiting = list(self._sending)
        for task in waiting:
            task.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)
        await self.settle()

    async def _no_chat(self, items: Sequence[Taken], tally: Delivery) -> None:
        ids = tuple(item.alert.id for item in items)
        try:
            await _unreachable(
                self._sessions,
                items[0].person.id,
                ids,
                server=self._server,
                error="no chat kept",
                now=self._now(),
            )
            tally.unreachable += 1
        finally:
            self.in_flight.difference_update(ids)

    async def _send_after(
        self, before: asyncio.Task[None] | None, item: Outgoing, tally: Delivery
    ) -> None:
        try:
            if before is not None:
                # Only its order: how the message before fared is its own task's business.
                await asyncio.wait([before])
        except BaseException:  # stopped before it was sent: taken again
            self.in_flight.difference_update(item.alert_ids)
            raise
        await self._send(item, tally)

    async def settle(self) -> None:
        """Until every mark written so far is committed (raises if one failed)."""
        await self._marks.settle()

    async def _send(self, item: Outgoing, tally: Delivery) -> None:
        marked = False
        try:
            marked = await _send(
                self._sessions,
                self._bot,
                item,
                server=self._server,
                limiter=self._limiter,
                now=self._now,
                tally=tally,
                marks=self._marks,
            )
        finally:
            if not marked:  # retried or unreachable, written; or nothing written
                self.in_flight.difference_update(item.alert_ids)


def _by_person(taken: Sequence[Taken]) -> dict[uuid.UUID, list[Taken]]:
    by_person: dict[uuid.UUID, list[Taken]] = collections.defaultdict(list)
    for item in taken:
        by_person[item.alert.recipient_id].append(item)
    return by_person


def _compose(
    items: Sequence[Taken],
    facts: Mapping[uuid.UUID, Facts],
    *,
    chat_id: int,
    server: ServerKeys,
    tz: str,
    language: str,
    now: datetime,
) -> list[Outgoing]:
    """One recipient's messages (``items`` are theirs, ``chat_id`` their chat): each
    alert alone, or more than ``DIGEST_OVER`` as digests. Pure but for unsealing."""
    person = items[0].person
    language = pick_language(person.language, None, default=language)
    zone = ZoneInfo(person.tz or tz)
    words = Words(language, zone)
    parts = [
        (
            item.alert,
            render(
                item.alert.purpose,
                facts[item.alert.id],
                language=language,
                tz=zone,
                now=now,
                about=about_of(server, item.alert),
                round_=item.alert.round,
                escalated_after=_escalated_after(item.alert, item.flip),
                words=words,
            ),
        )
        for item in items
    ]
    if len(parts) > DIGEST_OVER:
        attempts = max(a.attempts for a, _ in parts)
        return [
            Outgoing(
                person.id,
                chat_id,
                tuple(a.id for a, _ in chunk),
                digest([t for _, t in chunk], language=language),
                buttons("digest" if any(_asks(a) for a, _ in chunk) else "", language=language),
                attempts,
            )
            for chunk in _digest_chunks(parts, language=language)
        ]
    return [
        Outgoing(
            person.id,
            chat_id,
            (alert.id,),
            text,
            buttons("single" if _asks(alert) else "", language=language),
            alert.attempts,
        )
        for alert, text in parts
    ]


def _utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _digest_chunks(
    parts: Sequence[tuple[Alert, str]], *, language: str
) -> list[list[tuple[Alert, str]]]:
    """The parts in order, as few digests as fit Telegram's length limit each."""
    chunks: list[list[tuple[Alert, str]]] = [[]]
    length = 0  # of the parts in the last chunk, each with the blank line before it
    for part in parts:
        size = _utf16_length(part[1]) + 2
        header = _utf16_length(digest([""] * (len(chunks[-1]) + 1), language=language))
        if chunks[-1] and header + length + size + ANSWER_ROOM > MESSAGE_LIMIT:
            chunks.append([])
            length = 0
        chunks[-1].append(part)
        length += size
    return chunks


def _escalated_after(alert: Alert, flip: Flip | None) -> timedelta | None:
    """How long no one acknowledged before this alert went to the wider audience;
    None for a first alert (a flip alerted to everyone at once was not escalated)."""
    if (
        flip is None
        or alert.purpose is not AlertPurpose.ALERT
        or alert.tier != 2
        or flip.escalated_at is None
        or flip.escalated_at <= flip.recorded_at
    ):
        return None
    return flip.escalated_at - flip.recorded_at


def _asks(alert: Alert) -> bool:
    """Whether the message asks for an acknowledgement."""
    return alert.purpose in (AlertPurpose.ALERT, AlertPurpose.REMINDER)


async def _legs(
    session: AsyncSession, groups: Sequence[Group], *, server: ServerKeys
) -> dict[uuid.UUID, str]:
    """The name of each group's current leg, in one query for all of them."""
    on_a_leg = {g.id: g.current_leg for g in groups if g.current_leg is not None}
    if not on_a_leg:
        return {}
    rows = await session.exec(select(Leg).where(Leg.group_id.in_(list(on_a_leg))))
    return {
        leg.group_id: leg_name(server, leg)
        for leg in rows.all()
        if on_a_leg.get(leg.group_id) == leg.position
    }


async def _all_facts(
    session: AsyncSession, taken: Sequence[Taken], *, server: ServerKeys
) -> dict[uuid.UUID, Facts]:
    """What each taken alert may say, by alert id (the legs in one query)."""
    legs = await _legs(session, [t.group for t in taken], server=server)
    return {t.alert.id: await _facts(session, t, legs=legs) for t in taken}


async def _facts(session: AsyncSession, item: Taken, *, legs: Mapping[uuid.UUID, str]) -> Facts:
    flip, group = item.flip, item.group
    again = False
    if item.alert.purpose is AlertPurpose.ALL_CLEAR:
        before = await session.exec(
            select(Flip.id).where(
                Flip.group_id == group.id,
                Flip.to_status == flip.to_status,
                Flip.id != flip.id,
                Flip.recorded_at <= flip.recorded_at,
            )
        )
        again = before.first() is not None
    return Facts(
        codename=group.codename,
        status=flip.to_status,
        basis=flip.basis,
        since=flip.at,
        last_checkin_at=group.last_checkin_at,
        leg=legs.get(group.id),
        again=again,
    )


async def _send(
    sessions: async_sessionmaker[AsyncSession],
    bot: Bot,
    item: Outgoing,
    *,
    server: ServerKeys,
    limiter: Limiter,
    now: Callable[[], datetime],
    tally: Delivery,
    marks: _SentMarks,
) -> bool:
    """Send one message and write what came of it; True if Telegram took it (its
    mark is then on its way, ``marks``)."""
    await limiter.wait(item.chat_id)
    await marks.room()
    handed = False  # to the marks, which give the room back once the mark is committed
    try:
        handed = await _send_and_record(
            sessions, bot, item, server=server, limiter=limiter, now=now, tally=tally, marks=marks
        )
        return handed
    finally:
        if not handed:
            marks.give_back()


async def _send_and_record(
    sessions: async_sessionmaker[AsyncSession],
    bot: Bot,
    item: Outgoing,
    *,
    server: ServerKeys,
    limiter: Limiter,
    now: Callable[[], datetime],
    tally: Delivery,
    marks: _SentMarks,
) -> bool:
    try:
        sent = await bot.send_message(
            item.chat_id,
            item.text,
            reply_markup=item.markup,
            protect_content=True,
            read_timeout=SEND_TIMEOUT,
        )
    except RetryAfter as exc:
        seconds = _seconds(exc.retry_after)
        limiter.hold(item.chat_id, seconds)
        await _later(sessions, item, at=now() + timedelta(seconds=seconds), error="429")
        tally.retried += 1
    except Forbidden as exc:
        await _unreachable(
            sessions,
            item.person_id,
            item.alert_ids,
            server=server,
            error=type(exc).__name__,
            now=now(),
        )
        tally.unreachable += 1
    except BadRequest as exc:
        if "chat not found" in exc.message.lower() or "deactivated" in exc.message.lower():
            await _unreachable(
                sessions,
                item.person_id,
                item.alert_ids,
                server=server,
                error="chat not found",
                now=now(),
            )
            tally.unreachable += 1
        else:
            log.error("an alert was refused (%s); trying again later", type(exc).__name__)
            await _later(sessions, item, at=now() + _backoff(item.attempts), error="400")
            tally.retried += 1
    except (TimedOut, NetworkError, TelegramError) as exc:
        # A timeout may mean Telegram took it and the answer was lost: sending
        # again can repeat it, which beats losing it.
        log.warning("an alert was not sent (%s); trying again", type(exc).__name__)
        await _later(sessions, item, at=now() + _backoff(item.attempts), error=type(exc).__name__)
        tally.retried += 1
    else:
        marks.mark(item.alert_ids, sent.message_id)
        tally.sent += len(item.alert_ids)
        return True
    return False


class _SentMarks:
    """Marks sent alerts as soon as Telegram answers, in shared transactions one at
    a time (a group commit), behind the sending.

    A transaction per message made a burst of alerts a queue of commits: on
    SQLite each waits for the single write lock and an fsync, the queue grew
    under load (39 messages accepted and unmarked at one kill of the crash test,
    and 1,000 alerts to 1,000 chats took 1.5x Telegram's bound), and the engine's
    pass waited behind them. Here all marks waiting are written in one
    transaction the moment the previous one committed: what a SIGKILL can repeat
    is what Telegram accepted during one commit, the messages in flight. A row is
    still marked sent only after Telegram took it; until its mark is committed
    it stays in ``in_flight`` (then leaves it; also if the mark failed, so that
    it is sent again: at least once).
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        now: Callable[[], datetime],
        in_flight: set[uuid.UUID],
    ) -> None:
        self._sessions = sessions
        self._now = now
        self._in_flight = in_flight
        self._waiting: list[tuple[tuple[uuid.UUID, ...], int]] = []
        self._writer: asyncio.Task[None] | None = None
        self._failed: BaseException | None = None
        # A message holds one from just before it is sent until its mark is committed
        # (or it was not sent): what a SIGKILL can repeat stays within MAX_UNMARKED.
        self._room = asyncio.Semaphore(MAX_UNMARKED)

    async def room(self) -> None:
        """Wait for room for one more message on its way."""
        await self._room.acquire()

    def give_back(self) -> None:
        """A message that was not sent gives its room back."""
        self._room.release()

    def mark(self, alert_ids: tuple[uuid.UUID, ...], message_id: int) -> None:
        self._waiting.append((alert_ids, message_id))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                async with self._sessions() as session, session.begin():
                    for ids, sent_id in batch:
                        await mark_sent(session, alert_ids=ids, message_id=sent_id, now=self._now())
            except Exception as exc:
                log.error("sent alerts could not be marked (%s); they go again", type(exc).__name__)
                self._failed = exc
            finally:
                for ids, _ in batch:
                    self._in_flight.difference_update(ids)
                    self._room.release()

    async def settle(self) -> None:
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)
        failed, self._failed = self._failed, None
        if failed is not None:
            raise failed


async def _later(
    sessions: async_sessionmaker[AsyncSession], item: Outgoing, *, at: datetime, error: str
) -> None:
    async with sessions() as session, session.begin():
        await retry_later(session, alert_ids=item.alert_ids, at=at, error=error)


async def _unreachable(
    sessions: async_sessionmaker[AsyncSession],
    person_id: uuid.UUID,
    alert_ids: Sequence[uuid.UUID],
    *,
    server: ServerKeys,
    error: str,
    now: datetime,
) -> None:
    async with sessions() as session, session.begin():
        person = await session.get(Person, person_id)
        alerts = (await session.exec(select(Alert).where(Alert.id.in_(alert_ids)))).all()
        if person is None:
            return
        await mark_unreachable(
            session,
            alerts=alerts,
            person=person,
            about=await display_name(session, server=server, person=person),
            server=server,
            error=error,
            now=now,
        )
    log.warning("an alert recipient is unreachable (%s); admins are told", error)


def _backoff(attempts: int) -> timedelta:
    return min(timedelta(seconds=2 ** min(attempts + 1, 10)), MAX_BACKOFF)


def _seconds(value: object) -> float:
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)  # type: ignore[arg-type]
