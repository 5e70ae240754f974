"""Jobs that keep what a database writer did visible off the server.

* ``tell_rejected``: a row that fails its operator signature (storage/trust.py)
  is not used; the admins are told once per row, by table and row id (no content),
  and the refusal is an audit entry. It runs when a row is rejected (``Trust.listen``),
  not on a timer: an idle bot has nothing to look at.
* ``checkpoint``: the audit chain's head (entry count and keyed hash, nothing
  else) goes to the admins in Telegram and to the heartbeat URL, every
  ``[audit] checkpoint_every`` and at shutdown, and is appended to the file
  ``audit_checkpoints`` beside the config (0600, not in the database). Someone who
  later cuts or rewrites the log cannot change the checkpoints already received:
  ``intake audit verify`` compares against every recorded one, and
  ``--checkpoint SEQ:HASH`` against one pasted from Telegram.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
from sqlalchemy.exc import SQLAlchemyError
from telegram import Bot
from telegram.error import TelegramError
from telegram.ext import ContextTypes, JobQueue

from bot import texts, tls
from bot.i18n import pick_language, translator
from bot.intake import Runtime
from storage import audit
from storage.alerts import admins
from storage.models import Person
from storage.people import reachable
from storage.timeutil import utc_now
from storage.trust import bound

log = logging.getLogger(__name__)
Context = ContextTypes.DEFAULT_TYPE
ACTOR = "bot@integrity"


async def _admin_chats(runtime: Runtime) -> list[tuple[int, str | None]]:
    async with runtime.sessions() as session:
        people = [p for p in [await session.get(Person, i) for i in await admins(session)] if p]
        return [(chat_id, p.language) for chat_id, p in reachable(runtime.server, people)]


async def _tell_admins(bot: Bot, runtime: Runtime, text: str, **values: object) -> int:
    told = 0
    for chat_id, language in await _admin_chats(runtime):
        _ = translator(pick_language(language, None, default=runtime.settings.display.language))
        try:
            await bot.send_message(chat_id, _(text).format(**values), protect_content=True)
            told += 1
        except TelegramError as exc:
            log.info("could not tell an admin (%s)", type(exc).__name__)
    return told


async def tell_rejected(bot: Bot, runtime: Runtime) -> int:
    """Tell the admins, once, about each row refused since the last call."""
    installation = bound(runtime.engine)
    if installation is None:
        return 0
    fresh = installation.trust.untold()
    for rejected in fresh:
        log.warning("integrity: %s is not used (%s)", rejected.table, rejected.reason)
        async with runtime.sessions() as session, session.begin():
            await audit.append(
                session,
                actor=ACTOR,
                action="integrity.rejected",
                subject=rejected.table,
                at=utc_now(),
                details={"row": rejected.row_id.hex[:12], "reason": rejected.reason},
            )
        await _tell_admins(
            bot,
            runtime,
            texts.INTEGRITY_REJECTED,
            table=rejected.table,
            row=rejected.row_id.hex[:12],
            reason=rejected.reason,
        )
    return len(fresh)


async def checkpoint(bot: Bot, runtime: Runtime) -> audit.ChainHead:
    """Record the chain's head beside the config, and send it to the admins and to the
    heartbeat URL. Each reaches somewhere the database's writers do not: the file is
    not in the database (``intake audit verify`` checks every line of it), Telegram and
    the monitor are not on the server."""
    async with runtime.sessions() as session:
        head = await audit.head(session)
    kept = audit.checkpoints_path(runtime.settings.config_dir)
    try:
        audit.record_checkpoint(kept, head, at=utc_now())
    except OSError as exc:
        # Not a reason to keep it from the admins: their copy is the one off the server.
        log.warning("audit checkpoint: not recorded in %s (%s)", kept, exc.strerror)
    told = await _tell_admins(
        bot, runtime, texts.AUDIT_CHECKPOINT, count=head.seq, head=head.text()
    )
    url = runtime.settings.alerts.heartbeat_url
    if url is not None:
        # httpx, as the heartbeat (bot.watch): python-telegram-bot loads it already,
        # and aiohttp would add half a second to every start of the bot.
        try:
            async with httpx.AsyncClient(timeout=10, verify=tls.context()) as http:
                response = await http.post(url, content=f"audit {head.text()}".encode())
            if response.status_code >= 400:
                log.warning("audit checkpoint: the monitor answered HTTP %d", response.status_code)
        except httpx.HTTPError as exc:
            # The URL itself is a secret of the monitor's: never logged.
            log.warning(
                "audit checkpoint: the monitor could not be reached (%s)", type(exc).__name__
            )
    log.info("audit checkpoint at entry %d sent to %d admin(s)", head.seq, told)
    return head


def schedule(queue: JobQueue[Any], runtime: Runtime, *, options: dict[str, Any]) -> None:
    """Tell the admins of each rejected row as it is found, and start the checkpoints
    (bot.watch.start calls this with its job options; ``unschedule`` undoes it)."""
    installation = bound(runtime.engine)
    if installation is not None:

        def rejected() -> None:
            queue.run_once(_rejected_job, when=0, name="integrity", job_kwargs=options)

        installation.trust.listen(rejected)
        rejected()  # rows rejected before the jobs started (while the backlog drained)
    every = runtime.settings.audit.checkpoint_every
    queue.run_repeating(
        _checkpoint_job, interval=every, first=every, name="audit-checkpoint", job_kwargs=options
    )


def unschedule(runtime: Runtime) -> None:
    """As the bot stops: rows rejected from now on wait for the next start."""
    installation = bound(runtime.engine)
    if installation is not None:
        installation.trust.listen(None)


def _runtime(context: Context) -> Runtime:
    runtime = context.bot_data["runtime"]
    assert isinstance(runtime, Runtime)  # noqa: S101 (set once, in app.build_application)
    return runtime


async def _rejected_job(context: Context) -> None:
    await tell_rejected(context.bot, _runtime(context))


async def _checkpoint_job(context: Context) -> None:
    await checkpoint(context.bot, _runtime(context))


async def checkpoint_at_shutdown(bot: Bot, runtime: Runtime) -> None:
    """The last checkpoint, as the bot stops; a failure is logged, never raised (the
    bot is stopping either way)."""
    try:
        await checkpoint(bot, runtime)
    except (TelegramError, OSError, SQLAlchemyError) as exc:
        log.warning("audit checkpoint at shutdown failed (%s)", type(exc).__name__)
