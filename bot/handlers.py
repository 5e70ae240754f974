"""Reply handlers: thin, and run only after the update is committed (bot.intake).

Everything said to a relative is neutral and deletes itself after
``intake.receipt_ttl``; their own message is deleted once it is stored.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from telegram import (
    BotCommand,
    BotCommandScopeChat,
    BotCommandScopeDefault,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
)
from telegram.constants import ChatMemberStatus, ChatType
from telegram.error import BadRequest, NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.ext import (
    CallbackContext,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    ContextTypes,
    ExtBot,
    MessageHandler,
    filters,
)

from bot import commands, texts
from bot.activists import ALERT_BUTTONS, on_alert_button
from bot.commands import role_of, watches
from bot.i18n import LANGUAGES, Words, pick_language, translator
from bot.intake import (
    NEWS_NOTE_DELAY,
    BotApplication,
    Outcome,
    Runtime,
    Taken,
    write_down_typed,
)
from bot.meaning import FLAG, NO, SURE, YES, Step, confirm_data, which_group_data
from bot.received import NO_NUMBER
from storage import deletions
from storage import news as owed_news
from storage.alerts import admins, audience
from storage.messages import (
    chat_ref_of,
    find_by_update,
    mark_deleted_in_chat,
    undeleted_in_chat,
    undeleted_since,
    unlinked_count,
)
from storage.models import Group, Person, Role, WatchState
from storage.people import (
    find_people,
    find_person,
    get_or_create_person,
    people_with_role,
    reachable,
    watching_among,
)
from storage.timeutil import utc_now

log = logging.getLogger(__name__)
Context = ContextTypes.DEFAULT_TYPE
PRIVATE = filters.ChatType.PRIVATE
DELETE_BATCH = 100  # deleteMessages takes at most 100 ids
DELETE_RETRY = timedelta(seconds=5)
SEND_ATTEMPTS = 6  # a reply refused for now (flood control, a 5xx) is tried again


def runtime_of(context: Context) -> Runtime:
    runtime = context.bot_data["runtime"]
    assert isinstance(runtime, Runtime)  # noqa: S101 (set once, in app.build_application)
    return runtime


async def _words(context: Context, update: Update) -> tuple[Runtime, str]:
    runtime = runtime_of(context)
    user = update.effective_user
    chosen = None
    if user is not None:
        async with runtime.sessions() as session:
            person = await find_person(session, server=runtime.server, telegram_id=user.id)
            chosen = person.language if person else None
    return runtime, pick_language(
        chosen, user.language_code if user else None, default=runtime.settings.display.language
    )


async def _say(
    context: Context,
    update: Update,
    text: str,
    *,
    keyboard: InlineKeyboardMarkup | None = None,
    ttl: timedelta | None = None,
    receipt: bool = False,
) -> Message | None:
    """Send a neutral, protected reply that deletes itself after ``ttl`` (receipt_ttl).

    A chat that Telegram's flood control holds back waits alone; once the wait is over, a
    ``receipt`` (a message's receipt, follow-up or note) of any but the chat's newest
    update gives way to the newest one's (bot.flood)."""
    chat = update.effective_chat
    if chat is None:
        return None
    runtime = runtime_of(context)
    floods, loop = runtime.floods, asyncio.get_running_loop()
    for attempt in range(SEND_ATTEMPTS):
        while (wait := floods.wait(chat.id, loop.time())) > 0:
            await asyncio.sleep(wait)
            floods.waited(chat.id)
        if receipt and floods.gives_way(chat.id, update.update_id):
            log.info("update %d: its receipt gave way to a newer one's", update.update_id)
            return None
        try:
            sent = await context.bot.send_message(
                chat.id,
                text,
                protect_content=True,
                reply_markup=keyboard,
                disable_notification=True,
            )
        except RetryAfter as exc:  # flood control: Telegram says when (the loop waits)
            floods.held(chat.id, loop.time() + _seconds(exc.retry_after).total_seconds())
            continue
        except TimedOut as exc:
            # It may have been sent: a second try could leave two on the phone.
            log.info("a reply was not confirmed (%s)", type(exc).__name__)
            return None
        except BadRequest as exc:
            # A 400 (the chat is gone, the bot was blocked) is for good; python-telegram-bot
            # makes it a NetworkError, which the next clause would try for half a minute.
            log.info("a reply was refused for good (%s)", type(exc).__name__)
            return None
        except NetworkError as exc:  # a 5xx or a broken connection: refused for now
            log.info("a reply was not sent (%s); trying again", type(exc).__name__)
            await asyncio.sleep(min(2.0**attempt, 30.0))
            continue
        except TelegramError as exc:
            # What was received is stored already; a lost reply must not stop the
            # rest (above all, deleting the relative's message).
            log.info("a reply was not sent (%s)", type(exc).__name__)
            return None
        await _delete_later(context, sent, ttl or runtime.settings.intake.receipt_ttl)
        return sent
    log.info("a reply was not sent after %d attempts", SEND_ATTEMPTS)
    return None


async def _delete_later(context: Context, message: Message, after: timedelta) -> None:
    """Delete the message ``after`` from now (rounded up to the second): written down
    (storage.deletions), so that a restart or a crash carries it out too. The writes of
    many replies go in one transaction (one writer at a time: a burst of receipts must
    not take every database connection)."""
    runtime = runtime_of(context)
    now = utc_now()
    due = math.ceil((now + after).timestamp())
    runtime.deletions_to_write.append(
        (message.chat_id, message.message_id, now, datetime.fromtimestamp(due, UTC))
    )
    if runtime.deletions_writer is None or runtime.deletions_writer.done():
        runtime.deletions_writer = asyncio.create_task(_write_deletions(runtime))
    _schedule_due(context, message.chat_id, [message.message_id], due)


async def _write_deletions(runtime: Runtime) -> None:
    while runtime.deletions_to_write:
        rows, runtime.deletions_to_write = runtime.deletions_to_write, []
        try:
            async with runtime.sessions() as session, session.begin():
                for chat_id, message_id, sent_at, due_at in rows:
                    deletions.remember(
                        session,
                        server=runtime.server,
                        chat_id=chat_id,
                        message_ids=[message_id],
                        sent_at=sent_at,
                        due_at=due_at,
                    )
        except Exception as exc:  # the replies still delete themselves while this runs
            log.error("could not write down replies' deletions (%s)", type(exc).__name__)


async def deletions_written(runtime: Runtime) -> None:
    """Wait until every reply's deletion sent so far is written down."""
    while runtime.deletions_writer is not None and not runtime.deletions_writer.done():
        await asyncio.shield(runtime.deletions_writer)


def _schedule_due(context: Context, chat_id: int, message_ids: Sequence[int], due: int) -> None:
    """With the chat's other messages due in that second: a burst's receipts go in a few
    calls, and the job queue holds a job per chat and second, not one per receipt."""
    if context.job_queue is None:
        return
    runtime = runtime_of(context)
    key = (chat_id, due)
    waiting = runtime.receipts_due.get(key)
    if waiting is not None:
        waiting.extend(message_ids)
        return
    runtime.receipts_due[key] = list(message_ids)
    context.job_queue.run_once(
        _delete_due_job, when=datetime.fromtimestamp(due, UTC), data=key, name="delete-due"
    )


async def _delete_due_job(context: Context) -> None:
    job = context.job
    if job is None or not isinstance(job.data, tuple):
        return
    message_ids = runtime_of(context).receipts_due.pop(job.data, [])
    if message_ids:
        await _delete_quietly(context, job.data[0], message_ids, durable=True)


def _schedule_delete(
    context: Context, chat_id: int, message_ids: Sequence[int], after: timedelta, *, durable: bool
) -> None:
    if context.job_queue is None:
        return
    context.job_queue.run_once(
        _delete_job,
        when=after,
        data=(chat_id, list(message_ids), durable),
        name="delete-messages",
    )


async def _delete_job(context: Context) -> None:
    job = context.job
    if job is None or not isinstance(job.data, tuple):
        return
    chat_id, message_ids, durable = job.data
    await _delete_quietly(context, chat_id, message_ids, durable=durable)


async def _delete_quietly(
    context: Context, chat_id: int, message_ids: Sequence[int], *, durable: bool = False
) -> bool:
    """Delete what Telegram still lets the bot delete; a message already gone is fine.

    A refusal that may pass (flood control, a network fault) is tried again
    later from the job queue, so a relative's message is not left behind.
    ``durable``: the messages are the bot's replies written down in storage.deletions,
    crossed off once deleted (or refused for good: gone already, or too old).
    """
    return await _delete(context, chat_id, message_ids, durable=durable) is True


async def _delete(
    context: Context,
    chat_id: int,
    message_ids: Sequence[int],
    *,
    durable: bool = False,
    patience: float = 0.0,
) -> bool | None:
    """``_delete_quietly``, waiting out flood control for up to ``patience`` seconds in all.
    True: deleted; False: refused for good (nothing more the bot may do); None: refused for
    now, and tried again later from the job queue."""
    loop = asyncio.get_running_loop()
    give_up, done = loop.time() + patience, 0
    while True:
        try:
            for start in range(done, len(message_ids), DELETE_BATCH):
                await context.bot.delete_messages(
                    chat_id, message_ids[start : start + DELETE_BATCH]
                )
                done = start + DELETE_BATCH
            break
        except RetryAfter as exc:
            wait = _seconds(exc.retry_after).total_seconds()
            if loop.time() + wait <= give_up:
                await asyncio.sleep(wait)
                continue
            _schedule_delete(
                context,
                chat_id,
                message_ids,
                _seconds(exc.retry_after) + DELETE_RETRY,
                durable=durable,
            )
            return None
        except BadRequest as exc:
            # A 400 is for good (too old to delete, not the bot's): python-telegram-bot makes
            # it a NetworkError, which the next clause would try again every few seconds.
            log.info(
                "Telegram refused for good to delete messages in a chat (%s)", type(exc).__name__
            )
            if durable:
                # Crossed off as refused for good: kept, it would be tried at every start
                # until Telegram's 48 hours run out, with the chat sealed in it meanwhile.
                await _cross_off(context, chat_id, message_ids)
            return False
        except (TimedOut, NetworkError) as exc:
            log.info("deleting messages failed for now (%s); trying again", type(exc).__name__)
            _schedule_delete(context, chat_id, message_ids, DELETE_RETRY, durable=durable)
            return None
        except TelegramError as exc:
            log.info("could not delete messages in a chat (%s)", type(exc).__name__)
            if durable:
                await _cross_off(context, chat_id, message_ids)
            return False
    if durable:
        await _cross_off(context, chat_id, message_ids)
    return True


async def _cross_off(context: Context, chat_id: int, message_ids: Sequence[int]) -> None:
    runtime = runtime_of(context)
    try:
        async with runtime.sessions() as session, session.begin():
            await deletions.forget(
                session, server=runtime.server, chat_id=chat_id, message_ids=message_ids
            )
    except Exception as exc:  # tried again after a restart: deleting twice is harmless
        log.error("could not cross off deleted replies (%s)", type(exc).__name__)


# How many numbers after a chat's last known message are swept after a start: the
# replies of the messages a crash caught may all have been sent and not yet written down.
UNRECORDED_AFTER_CRASH = 4
REPLIES_PER_MESSAGE = 3


async def restore_deletions(application: BotApplication) -> None:
    """After a start: every reply still to delete is scheduled again (at once when it
    was due while the bot was away), and every message a relative sent that was stored
    but not yet deleted from their chat (a crash between the two) is deleted now."""
    runtime = application.bot_data["runtime"]
    assert isinstance(runtime, Runtime)  # noqa: S101 (set once, in app.build_application)
    context: Context = CallbackContext(application)
    now = utc_now()
    async with runtime.sessions() as session, session.begin():
        due, expired = await deletions.all_pending(session, server=runtime.server, now=now)
        left = (
            list(await undeleted_since(session, since=now - deletions.DELETABLE_FOR))
            if runtime.settings.intake.delete_forwarded
            else []
        )
        refs = [(row, chat_ref_of(runtime.server, row)) for row in left]
    if expired:
        log.warning("%d repl(ies) were past Telegram's 48 hours and could not be deleted", expired)
    for item in due:
        when = max(math.ceil(item.due_at.timestamp()), math.ceil(now.timestamp()))
        _schedule_due(context, item.chat_id, [item.message_id], when)
    by_chat: dict[int, list[int]] = {}
    for _, ref in refs:
        if ref is not None:
            by_chat.setdefault(ref.chat_id, []).append(ref.message_id)
    # A reply sent just before a crash, before it was written down, has the next numbers
    # of its chat (a private chat numbers its messages in order, the relative's and the
    # bot's alike). Deleting those numbers is safe: a message of the relative's among them
    # is stored already, or not yet confirmed, and Telegram gives its update again.
    # Only where the crash caught a batch (its messages are still undeleted), and never in
    # an activist's or admin's chat, where the next numbers may be alerts.
    known = {chat_id: max(ids) for chat_id, ids in by_chat.items()}
    for item in due:
        if item.chat_id in known:
            known[item.chat_id] = max(known[item.chat_id], item.message_id)
    async with runtime.sessions() as session:
        people = await find_people(session, server=runtime.server, telegram_ids=list(known))
        watching = await watching_among(session, person_ids=[p.id for p in people.values()])
    for chat_id, last in known.items():
        if chat_id in people and people[chat_id].id in watching:
            continue
        # Each message caught may have had its replies (receipt, follow-up, a note) sent
        # and not yet written down: the sweep reaches past all of them.
        reach = UNRECORDED_AFTER_CRASH + REPLIES_PER_MESSAGE * len(by_chat[chat_id])
        after = range(last + 1, last + 1 + reach)
        by_chat.setdefault(chat_id, []).extend(after)
    for chat_id, ids in by_chat.items():
        await _delete_quietly(context, chat_id, sorted(set(ids)))
    if refs:
        async with runtime.sessions() as session, session.begin():
            await mark_deleted_in_chat(
                session,
                update_ids=[row.update_id for row, _ in refs if row.update_id is not None],
                now=utc_now(),
            )
    if due or refs:
        log.info("after the start: %d repl(ies) and %d message(s) to delete", len(due), len(refs))


def _seconds(value: object) -> timedelta:
    # python-telegram-bot gives retry_after as int seconds now, as a timedelta later.
    return value if isinstance(value, timedelta) else timedelta(seconds=float(str(value)))


# --------------------------------------------------------------------------- batches


# Batches whose replies may run at once while the next batch is taken in; the
# intake waits beyond that, so a slow Telegram holds back intake, not memory.
BATCHES_IN_FLIGHT = 2
# A chat whose replies take longer than this (a slow Telegram) goes on alone, so that its
# batch, and the intake behind it, do not wait for it; a chat under flood control (Telegram
# may say "retry after 60 s" for one chat) goes on alone at once, as soon as that is known
# (issue #14: a chat under flood control waits alone).
DETACH_AFTER = 2.0
# How often a chat's running replies are looked at for flood control meanwhile.
FLOOD_LOOK = 0.05
# At shutdown, how long chats that went on alone may still finish (their deletions are
# written down and carried out after the restart).
DETACHED_AT_STOP = 5.0


class Replies:
    """The replies of committed batches: every chat at once, each chat's in order.

    A chat's replies wait for that chat's replies of earlier batches, and start by
    deleting all of the batch's messages from the chat in one call (promise 3
    first, and one request instead of one per message); then each update's
    handlers run in order. Replies are sent after the batch is committed, while
    the next batch is fetched (which confirms this one) and taken in.
    """

    def __init__(self, application: BotApplication) -> None:
        self.application = application
        self._chats: dict[object, asyncio.Future[None]] = {}
        self._batches: list[asyncio.Task[None]] = []
        self._alone: set[asyncio.Task[list[int]]] = set()

    async def start(self, updates: Sequence[Update], takens: Sequence[Taken]) -> None:
        """Start the replies of a committed batch; wait while too many are running."""
        by_chat: dict[object, list[tuple[Update, Taken]]] = {}
        for update, taken in zip(updates, takens, strict=True):
            if taken.outcome is Outcome.UNREADABLE:
                continue  # confirmed as nothing, with its log line: no reply, no handler
            update = taken.replied_as or update  # a clean stand-in of one sealed raw
            chat = update.effective_chat
            key: object = chat.id if chat is not None else ("update", update.update_id)
            by_chat.setdefault(key, []).append((update, taken))
        loop = asyncio.get_running_loop()
        runtime = self._runtime()
        chains = []
        for key, items in by_chat.items():
            # Taken now, in the order batches come: the chat's next batch waits for this.
            after, done = self._chats.get(key), loop.create_future()
            self._chats[key] = done
            if isinstance(key, int):
                # Known at once, so that an earlier batch's replies waiting on flood control
                # in this chat give way to these (bot.flood).
                content = [u.update_id for u, t in items if t.in_chat is not None]
                runtime.floods.begin(key, content)
            chains.append((key, self._chat(key, items, after, done)))
        self._batches.append(asyncio.create_task(self._batch(chains)))
        while len(self._batches) > BATCHES_IN_FLIGHT:
            await self._batches.pop(0)

    async def finish(self, *, alone_for: float = DETACHED_AT_STOP) -> None:
        """Wait for every reply started (a chat that went on alone, ``alone_for`` seconds
        more, then it is cancelled: its deletions are written down for the next start)."""
        while self._batches:
            await self._batches.pop(0)
        if self._alone:
            _, late = await asyncio.wait(set(self._alone), timeout=alone_for)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        while self._batches:  # the notes of chats that went on alone
            await self._batches.pop(0)
        runtime = self._runtime()
        await deletions_written(runtime)

    async def _batch(self, chains: list[tuple[object, Coroutine[Any, Any, list[int]]]]) -> None:
        """The chats' replies, then one transaction that notes which messages left their
        chat (for /wipe; a note lost to a crash only means /wipe tries them again)."""
        results = await asyncio.gather(
            *(self._or_alone(key, c) for key, c in chains), return_exceptions=True
        )
        deleted: list[int] = []
        for result in results:
            if isinstance(result, BaseException):
                log.error("replies in a chat failed (%s)", type(result).__name__)
            else:
                deleted += result
        await self._note_deleted(deleted)

    async def _or_alone(self, key: object, chain: Coroutine[Any, Any, list[int]]) -> list[int]:
        """A chat's replies; they go on alone (and note their own deletions when they end),
        and the batch does not wait for them, once the chat is under flood control (known
        before they start, or met while they run) or after DETACH_AFTER."""
        task = asyncio.ensure_future(chain)
        loop = asyncio.get_running_loop()
        floods = self._runtime().floods
        give_up = loop.time() + DETACH_AFTER
        while not (isinstance(key, int) and floods.wait(key, loop.time()) > 0):
            left = give_up - loop.time()
            if left <= 0:
                break
            done, _ = await asyncio.wait({task}, timeout=min(FLOOD_LOOK, left))
            if done:
                return task.result()
        self._alone.add(task)
        task.add_done_callback(self._alone_done)
        return []

    def _runtime(self) -> Runtime:
        runtime = self.application.bot_data["runtime"]
        assert isinstance(runtime, Runtime)  # noqa: S101 (set once, in app.build_application)
        return runtime

    def _alone_done(self, task: asyncio.Task[list[int]]) -> None:
        self._alone.discard(task)
        if task.cancelled() or task.exception() is not None:
            return
        self._batches.append(asyncio.ensure_future(self._note_deleted(task.result())))

    async def _note_deleted(self, deleted: list[int]) -> None:
        if not deleted:
            return
        runtime = self._runtime()
        # The replies' deletions first: a crash after the note must not leave a reply that
        # nothing remembers (the after-crash sweep looks only where messages are unnoted).
        await deletions_written(runtime)
        try:
            async with runtime.sessions() as session, session.begin():
                await mark_deleted_in_chat(session, update_ids=deleted, now=utc_now())
        except Exception as exc:  # the messages are gone whatever the note says
            log.error("could not note deleted messages (%s)", type(exc).__name__)

    async def _chat(
        self,
        key: object,
        items: list[tuple[Update, Taken]],
        after: asyncio.Future[None] | None,
        done: asyncio.Future[None],
    ) -> list[int]:
        """One chat's replies of one batch; the update ids whose message left the chat."""
        try:
            if after is not None:
                await after
            return await self._replies(items)
        finally:
            done.set_result(None)
            if self._chats.get(key) is done:
                del self._chats[key]
            if isinstance(key, int):
                runtime = self._runtime()
                runtime.floods.end(key, asyncio.get_running_loop().time())

    async def _replies(self, items: list[tuple[Update, Taken]]) -> list[int]:
        runtime = self._runtime()
        first = [(u.update_id, t.in_chat) for u, t in items if t.in_chat is not None]
        deleted: list[int] = []
        if runtime.settings.intake.delete_forwarded and first:
            chat_id = first[0][1][0]
            ids = sorted({ref[1] for _, ref in first})
            context: Context = CallbackContext(self.application)
            if await _delete_quietly(context, chat_id, ids):
                deleted = [update_id for update_id, _ in first]
            # Tried (and, if refused for now, tried again later): not again per message.
            runtime.deleted_first.update(update_id for update_id, _ in first)
        try:
            for update, taken in items:
                runtime.taken[update.update_id] = taken
                try:
                    await self.application.process_update(update)
                finally:
                    runtime.taken.pop(update.update_id, None)
        finally:
            runtime.deleted_first.difference_update(update_id for update_id, _ in first)
        return deleted


# --------------------------------------------------------------------------- content


async def on_content(update: Update, context: Context) -> None:
    """Every private message and edit: the original goes first, then one neutral receipt."""
    runtime = runtime_of(context)
    taken: Taken = runtime.taken.get(update.update_id, Taken(Outcome.SEEN))
    if taken.outcome is Outcome.NOT_CONTENT:
        return  # a service message (a pin, a timer set): not a message, so no reply at all
    message = update.effective_message
    # Promise 3 comes first: whatever happens to the replies, the message leaves the
    # phone (a batch's replies delete a chat's messages in one call before any receipt).
    if (
        runtime.settings.intake.delete_forwarded
        and message is not None
        and message.message_id != NO_NUMBER  # a stand-in whose number could not be read
        and update.update_id not in runtime.deleted_first
        and await _delete_quietly(context, message.chat_id, [message.message_id])
    ):
        await _mark_deleted(runtime, update.update_id)
    if message is not None and _receipted_album(runtime, message):
        return  # one receipt and one follow-up for a whole album
    language = taken.language or (await _words(context, update))[1]
    t = translator(language)
    message_id = await _stored_id(runtime, update.update_id, taken)
    ref = _reference(runtime, update, message_id)
    await _say(context, update, t(texts.RECEIPT).format(ref=ref), receipt=True)
    if update.edited_message is None:
        # The same follow-up for everyone and everything (promise 4): what the message
        # matched, and whether its sender is a relative at all, never shows here.
        await _say(
            context,
            update,
            t(texts.FOLLOW_UP),
            keyboard=_follow_up(t, message_id or _stand_in_id(runtime, update)),
            ttl=runtime.settings.intake.question_ttl,
            receipt=True,
        )
    if taken.unlinked:
        _tell_operators_soon(context)
    if taken.news:
        _tell_activists_soon(context, taken.news)
    if runtime.attachments_budget_reached and not runtime.budget_note_due:
        runtime.budget_note_due = True
        if context.job_queue is not None:
            context.job_queue.run_once(_tell_admins_budget, when=0, name="attachments-budget")
    limit = runtime.settings.intake.max_attachment_mb
    for size in taken.too_large:
        await _say(
            context,
            update,
            t(texts.TOO_LARGE).format(size_mb=-(-size // (1024 * 1024)), limit_mb=limit),
            receipt=True,
        )


ALBUM_WINDOW = 600.0  # seconds: an album's parts come within moments of each other


def _receipted_album(runtime: Runtime, message: Message) -> bool:
    """Whether another part of the message's album was receipted already (and note
    this one's album if not). Kept as keyed digests in memory, a few minutes long: after
    a restart an album's later parts may get a receipt of their own."""
    if message.media_group_id is None:
        return False
    now = time.monotonic()
    for key in [k for k, at in runtime.albums.items() if now - at > ALBUM_WINDOW]:
        del runtime.albums[key]
    key = runtime.server.digest("album", f"{message.chat_id}|{message.media_group_id}")
    if key in runtime.albums:
        return True
    runtime.albums[key] = now
    return False


UNLINKED_JOB = "unlinked-count"
# A burst of unplaceable messages becomes one note to operators, not one each.
UNLINKED_NOTE_DELAY = timedelta(seconds=30)


def _tell_operators_soon(context: Context) -> None:
    # A flag, not a look through the job queue (which walks every job, and a burst
    # schedules many): this runs once per unlinked message.
    runtime = runtime_of(context)
    queue = context.job_queue
    if queue is None or runtime.unlinked_note_due:
        return
    runtime.unlinked_note_due = True
    queue.run_once(_tell_operators, when=UNLINKED_NOTE_DELAY, name=UNLINKED_JOB)


def _tell_activists_soon(context: Context, groups: Sequence[uuid.UUID]) -> None:
    """A group's activists learn that unconfirmed news arrived (promise 8), once a burst.
    The note is owed in storage (storage.news, written with the message): this only sends
    it soon; ``schedule_news_notes`` looks for owed notes after a restart and every minute."""
    runtime = runtime_of(context)
    queue = context.job_queue
    if queue is None or not groups or runtime.news_note_due:
        return
    runtime.news_note_due = True
    queue.run_once(_tell_activists, when=NEWS_NOTE_DELAY, name="news")


# After a start (a crash may have left notes owed), and then this often: a note owed by
# a process that died is sent by whichever process looks next.
NEWS_LOOK_EVERY = timedelta(minutes=1)


def schedule_news_notes(application: BotApplication) -> None:
    if application.job_queue is None:
        return
    application.job_queue.run_repeating(
        _tell_activists,
        interval=NEWS_LOOK_EVERY,
        first=timedelta(milliseconds=10),  # python-telegram-bot reads 0 as "after one interval"
        name="news-owed",
        job_kwargs={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
    )


async def _tell_activists(context: Context) -> None:
    """Every owed note that is due: claimed (one process sends it), sent to the group's
    activists, crossed off. A crash before the crossing off sends it again after a
    restart: a note may come twice, never not at all."""
    runtime = runtime_of(context)
    runtime.news_note_due = False  # news from now on schedules its own look
    async with runtime.sessions() as session, session.begin():
        claimed = await owed_news.claim(session, now=utc_now())
    for group_id, claim in claimed:
        async with runtime.sessions() as session:
            group = await session.get(Group, group_id)
            ids = await audience(session, group_id=group_id, tier=1)
            people = [p for p in [await session.get(Person, i) for i in ids] if p is not None]
        # A group gone meanwhile (shredded with its grants): nobody to tell.
        codename = group.codename if group is not None else None
        for chat_id, person in reachable(runtime.server, people) if codename else []:
            language = pick_language(
                person.language, None, default=runtime.settings.display.language
            )
            text = translator(language)(texts.UNCONFIRMED_NEWS)
            try:
                await context.bot.send_message(
                    chat_id, text.format(codename=codename), protect_content=True
                )
            except TelegramError as exc:
                log.info("could not tell an activist of unconfirmed news (%s)", type(exc).__name__)
        async with runtime.sessions() as session, session.begin():
            await owed_news.told(session, group_id=group_id, claimed=claim)
    # A note owed but not yet due (news just before a restart, or while this ran): looked
    # for at its moment, not at the next minute's look.
    async with runtime.sessions() as session:
        at = await owed_news.next_at(session)
    queue, now = context.job_queue, utc_now()
    soon = at is not None and at - now < NEWS_LOOK_EVERY
    if at is not None and soon and queue is not None and not runtime.news_note_due:
        runtime.news_note_due = True
        when = max(at - now, timedelta(milliseconds=100))
        queue.run_once(_tell_activists, when=when, name="news")


BUDGET_NOTED = "attachments-budget"  # a WatchState row: the admins were told, once


async def _tell_admins_budget(context: Context) -> None:
    """The installation's attachment budget is reached: the admins hear it once (a row
    remembers it across restarts), and new files are kept as details only."""
    runtime = runtime_of(context)
    async with runtime.sessions() as session, session.begin():
        if await session.get(WatchState, BUDGET_NOTED) is not None:
            return
        session.add(WatchState(name=BUDGET_NOTED, at=utc_now()))
        people = [p for p in [await session.get(Person, i) for i in await admins(session)] if p]
    for chat_id, person in reachable(runtime.server, people):
        language = pick_language(person.language, None, default=runtime.settings.display.language)
        text = translator(language)(texts.BUDGET_REACHED)
        try:
            await context.bot.send_message(
                chat_id,
                text.format(mb=runtime.settings.intake.attachments_budget_mb),
                protect_content=True,
            )
        except TelegramError as exc:
            log.info("could not tell an admin of the budget (%s)", type(exc).__name__)


async def _tell_operators(context: Context) -> None:
    """Operators on Telegram learn how many messages wait unlinked: a count, no content."""
    runtime = runtime_of(context)
    runtime.unlinked_note_due = False  # what arrives from now on makes another note
    async with runtime.sessions() as session:
        count = await unlinked_count(session)
        operators = await people_with_role(session, role=Role.OPERATOR)
    for chat_id, person in reachable(runtime.server, operators):
        words = Words(
            pick_language(person.language, None, default=runtime.settings.display.language), UTC
        )
        text = words.n_(texts.UNLINKED_WAITING, count)
        try:
            await context.bot.send_message(chat_id, text.format(count=count), protect_content=True)
        except TelegramError as exc:
            log.info("could not tell an operator the unlinked count (%s)", type(exc).__name__)


def _buttons(message_id: uuid.UUID, buttons: Sequence[tuple[str, str]]) -> InlineKeyboardMarkup:
    """One button a row: (choice, label)."""
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(label, callback_data=confirm_data(message_id, code))]
            for code, label in buttons
        ]
    )


def _follow_up(t: Callable[[str], str], message_id: uuid.UUID) -> InlineKeyboardMarkup:
    answers = ((YES, t(texts.ANSWER_YES)), (NO, t(texts.ANSWER_NO)), (FLAG, texts.ANSWER_FLAG))
    return _buttons(message_id, answers)


def _sure(t: Callable[[str], str], message_id: uuid.UUID) -> InlineKeyboardMarkup:
    return _buttons(message_id, ((SURE, t(texts.ANSWER_YES)), (NO, t(texts.ANSWER_NO))))


async def on_answer(update: Update, context: Context) -> None:
    """A press on a follow-up was taken in (bot.intake); show the step it leads to."""
    query = update.callback_query
    if query is None:
        return
    runtime, language = await _words(context, update)
    t = translator(language)
    taken: Taken = runtime.taken.get(update.update_id, Taken(Outcome.SEEN))
    await query.answer()
    if not isinstance(query.message, Message) or taken.message_id is None:
        return
    keyboard: InlineKeyboardMarkup | None = None
    text = t(texts.THANKS)
    if taken.then is Step.SURE:
        text, keyboard = t(texts.SURE), _sure(t, taken.message_id)
    elif taken.then is Step.WHICH:
        carried = SURE if (query.data or "").endswith(f":{SURE}") else YES
        text = t(texts.WHICH_ONE)
        keyboard = InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton(
                        label, callback_data=which_group_data(taken.message_id, gid, carried)
                    )
                ]
                for gid, label in taken.labels
            ]
        )
    try:
        await query.message.edit_text(text, reply_markup=keyboard)
    except BadRequest as exc:
        log.info("could not move a question on (%s)", type(exc).__name__)


async def _stored_id(runtime: Runtime, update_id: int, taken: Taken) -> uuid.UUID | None:
    if taken.message_id is None and taken.outcome is Outcome.SEEN:
        async with runtime.sessions() as session:
            stored = await find_by_update(session, update_id=update_id)
            return stored.id if stored else None
    return taken.message_id


def _stand_in_id(runtime: Runtime, update: Update) -> uuid.UUID:
    """For a message not stored (over the rate limit): an id of the same form for its
    follow-up's buttons, so that the chat looks the same; a press on it records nothing."""
    digest = runtime.server.digest("follow-up", str(update.update_id))
    return uuid.UUID(bytes=digest[:16], version=4)


def _reference(runtime: Runtime, update: Update, message_id: uuid.UUID | None) -> str:
    if message_id is not None:
        return message_id.hex[:6].upper()
    # Not stored (rate limit): a reference of the same form, so the reply does not differ.
    return runtime.server.digest("receipt", str(update.update_id))[:3].hex().upper()


async def _mark_deleted(runtime: Runtime, update_id: int) -> None:
    async with runtime.sessions() as session, session.begin():
        await mark_deleted_in_chat(session, update_ids=[update_id], now=utc_now())


# --------------------------------------------------------------------------- commands


async def on_start(update: Update, context: Context) -> None:
    """/start CODE: the invite was redeemed in the batch's transaction (bot.intake, so
    that the messages after it in the same batch count); here, the reply. Every outcome
    gets the same reply, except that an activist or an admin is greeted as one (a
    relative's reply stays neutral)."""
    runtime = runtime_of(context)
    user, message = update.effective_user, update.effective_message
    if user is None or message is None:
        return
    taken: Taken = runtime.taken.get(update.update_id, Taken(Outcome.SEEN))
    granted, watcher = taken.started or (False, False)
    async with runtime.sessions() as session, session.begin():
        # A bare /start (or one seen before a restart): the person is known from now on.
        person = await get_or_create_person(
            session,
            server=runtime.server,
            telegram_id=user.id,
            now=utc_now(),
        )
        if person.language not in LANGUAGES:
            # Telegram's language for this person from now on (alerts and digests included),
            # until they choose another with /language.
            person.language = pick_language(
                None, user.language_code, default=runtime.settings.display.language
            )
            session.add(person)
        language = person.language
        role = await role_of(session, person_id=person.id)
    # The code is on the relative's screen: it goes, whatever it was (written down by
    # bot.intake with the update, /start CODE with the redemption).
    await _delete_typed(
        context, message, written=taken.started is not None or taken.command_written
    )
    if granted:
        await set_chat_commands(context.bot, message.chat_id, language, watcher=watcher)
    await _say(context, update, texts.welcome(role, translator(language)))


async def _remove_command(update: Update, context: Context) -> None:
    """A command typed by the relative stays on their phone no longer than needed (its
    deletion written down by bot.intake with the update, or here on a redelivery)."""
    message = update.effective_message
    taken = runtime_of(context).taken.get(update.update_id)
    if message is not None:
        await _delete_typed(context, message, written=taken is not None and taken.command_written)


async def _delete_typed(context: Context, message: Message, *, written: bool) -> bool:
    """Delete a command the relative typed, durably: written down first in
    storage.deletions (unless ``written`` already), so that a refusal (flood control)
    followed by a restart or a crash still has it deleted (restore_deletions), and
    crossed off once deleted."""
    if not written:
        runtime = runtime_of(context)
        try:
            async with runtime.sessions() as session, session.begin():
                write_down_typed(session, runtime.server, message, utc_now())
        except Exception as exc:  # deleted all the same, only not after a restart
            log.error("could not write down a command's deletion (%s)", type(exc).__name__)
            return await _delete_quietly(context, message.chat_id, [message.message_id])
    return await _delete_quietly(context, message.chat_id, [message.message_id], durable=True)


async def on_help(update: Update, context: Context) -> None:
    runtime, language = await _words(context, update)
    await _remove_command(update, context)
    role = None
    if update.effective_user is not None:
        async with runtime.sessions() as session:
            person = await find_person(
                session, server=runtime.server, telegram_id=update.effective_user.id
            )
            role = await role_of(session, person_id=person.id) if person else None
    await _say(context, update, texts.help_for(role, translator(language)))


async def on_language(update: Update, context: Context) -> None:
    _, language = await _words(context, update)
    await _remove_command(update, context)
    keyboard = InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(name, callback_data=f"lang:{code}")
                for code, name in LANGUAGES.items()
            ]
        ]
    )
    await _say(context, update, translator(language)(texts.LANGUAGE_QUESTION), keyboard=keyboard)


async def on_language_chosen(update: Update, context: Context) -> None:
    query = update.callback_query
    if query is None or query.data is None or update.effective_user is None:
        return
    choice = query.data.removeprefix("lang:")
    runtime = runtime_of(context)
    if choice not in LANGUAGES:
        await query.answer()
        return
    # Committed before the button stops spinning: the next message (which may be
    # taken in while these replies still run) is answered in the chosen language.
    async with runtime.sessions() as session, session.begin():
        person = await get_or_create_person(
            session,
            server=runtime.server,
            telegram_id=update.effective_user.id,
            now=utc_now(),
        )
        person.language = choice
        session.add(person)
        watcher = await watches(session, person_id=person.id)
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.edit_text(translator(choice)(texts.LANGUAGE_SET))
    await set_chat_commands(context.bot, update.effective_user.id, choice, watcher=watcher)


async def on_wipe(update: Update, context: Context) -> None:
    """/wipe: delete from the chat every message of it the bot may still delete (the
    relative's stored messages, the bot's own replies still waiting to delete themselves,
    also those written down before a restart, and /wipe itself), and answer only then:
    Telegram's flood control is waited out for up to WIPE_PATIENCE; past that, what is left
    is deleted as soon as Telegram lets it, and no "Done." is said (it is not done)."""
    runtime, language = await _words(context, update)
    user, message = update.effective_user, update.effective_message
    if user is None or message is None:
        return
    taken = runtime.taken.get(update.update_id)
    if taken is None or not taken.command_written:
        # Written down by bot.intake with the update; on a redelivery, here.
        async with runtime.sessions() as session, session.begin():
            write_down_typed(session, runtime.server, message, utc_now())
    give_up = asyncio.get_running_loop().time() + WIPE_PATIENCE
    ids: list[int] = []
    # The replies just sent (a receipt a second ago) may not be written down yet: wait for
    # them, and take those still only in memory too, so none is left on the phone.
    await deletions_written(runtime)
    waiting = [key for key in runtime.receipts_due if key[0] == message.chat_id]
    in_memory = [m for key in waiting for m in runtime.receipts_due.pop(key)]
    async with runtime.sessions() as session:
        person = await find_person(session, server=runtime.server, telegram_id=user.id)
        stored = list(await undeleted_in_chat(session, sender=person)) if person else []
        written = await deletions.in_chat(session, server=runtime.server, chat_id=message.chat_id)
    # /wipe itself goes with the replies, durably (written down, crossed off once deleted).
    replies = sorted(set(written) | set(in_memory) | {message.message_id})
    for row in stored:
        ref = chat_ref_of(runtime.server, row)
        if ref is not None and ref.chat_id == message.chat_id:
            ids.append(ref.message_id)
    loop = asyncio.get_running_loop()
    theirs = await _delete(
        context, message.chat_id, sorted(set(ids)), patience=give_up - loop.time()
    )
    if theirs:
        async with runtime.sessions() as session, session.begin():
            await mark_deleted_in_chat(
                session,
                update_ids=[row.update_id for row in stored if row.update_id is not None],
                now=utc_now(),
            )
    ours = await _delete(
        context, message.chat_id, replies, durable=True, patience=give_up - loop.time()
    )
    if theirs is None or ours is None:
        log.info("/wipe: Telegram holds deletions back; they are tried again, with no answer")
        return
    await _say(context, update, translator(language)(texts.WIPED))


# How long /wipe waits out Telegram's flood control before it gives up answering (what is
# left is still deleted as soon as Telegram lets it).
WIPE_PATIENCE = 60.0


# --------------------------------------------------------------------------- group chats


async def on_group_chat(update: Update, context: Context) -> None:
    """The bot works in private chats only: added to a group, it leaves."""
    chat = update.effective_chat
    if chat is None or chat.type == ChatType.PRIVATE:
        return
    member = update.my_chat_member
    if member is not None and member.new_chat_member.status in (
        ChatMemberStatus.LEFT,
        ChatMemberStatus.BANNED,
    ):
        return
    log.info("update %d: from a group chat, which the bot leaves", update.update_id)
    try:
        await context.bot.leave_chat(chat.id)
    except TelegramError as exc:
        log.info("could not leave a group chat (%s)", type(exc).__name__)


# --------------------------------------------------------------------------- errors


async def on_error(update: object, context: Context) -> None:
    """The one error handler: logs first, and never the update or the message text."""
    error = context.error
    where = ""
    if error is not None and error.__traceback__ is not None:
        tb = error.__traceback__
        while tb.tb_next is not None:
            tb = tb.tb_next
        where = f" at {tb.tb_frame.f_code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno}"
    update_id = update.update_id if isinstance(update, Update) else None
    log.error("handler failed for update %s: %s%s", update_id, type(error).__name__, where)


# --------------------------------------------------------------------------- commands menu


def command_menu(language: str, *, watcher: bool = False) -> list[BotCommand]:
    """Everyone's commands, and for activists and admins (``watcher``) theirs too."""
    t = translator(language)
    menu = [
        BotCommand("help", t(texts.COMMAND_HELP)),
        BotCommand("language", t(texts.COMMAND_LANGUAGE)),
        BotCommand("wipe", t(texts.COMMAND_WIPE)),
    ]
    if watcher:
        menu += [BotCommand(name, t(words)) for name, words in texts.WATCHER_COMMANDS]
    return menu


async def set_default_commands(bot: ExtBot[None]) -> None:
    for language in LANGUAGES:
        await bot.set_my_commands(
            command_menu(language),
            scope=BotCommandScopeDefault(),
            language_code=None if language == "en" else language,
        )


async def set_chat_commands(
    bot: ExtBot[None], chat_id: int, language: str, *, watcher: bool = False
) -> None:
    """The menu in one person's chat, by their role."""
    try:
        await bot.set_my_commands(
            command_menu(language, watcher=watcher), scope=BotCommandScopeChat(chat_id)
        )
    except TelegramError as exc:
        log.info("could not set a chat's command menu (%s)", type(exc).__name__)


def register(application: BotApplication) -> None:
    application.add_handler(CommandHandler("start", on_start, filters=PRIVATE))
    application.add_handler(CommandHandler("help", on_help, filters=PRIVATE))
    application.add_handler(CommandHandler("language", on_language, filters=PRIVATE))
    application.add_handler(CommandHandler("wipe", on_wipe, filters=PRIVATE))
    application.add_handler(CallbackQueryHandler(on_language_chosen, pattern=r"^lang:"))
    application.add_handler(CallbackQueryHandler(on_answer, pattern=r"^[gc]:"))
    application.add_handler(CallbackQueryHandler(on_alert_button, pattern=ALERT_BUTTONS))
    for name in commands.ACTIONS:
        handler = commands.guarded(name, otherwise=on_content)
        application.add_handler(CommandHandler(name, handler, filters=PRIVATE))
    application.add_handler(
        MessageHandler(
            PRIVATE & (filters.UpdateType.MESSAGE | filters.UpdateType.EDITED_MESSAGE), on_content
        )
    )
    application.add_handler(ChatMemberHandler(on_group_chat, ChatMemberHandler.MY_CHAT_MEMBER))
    application.add_handler(MessageHandler(filters.ChatType.GROUPS, on_group_chat))
    application.add_error_handler(on_error)
