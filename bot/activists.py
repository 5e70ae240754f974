"""What activists and admins do in the chat: answer alerts with their buttons.

The buttons carry no ids (callback data is ``al:ack``, ``al:claim`` or
``al:ackall``): the message they sit under says which alerts they answer,
and only its recipient may answer them.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlmodel import select
from telegram import Message, Update
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot import texts
from bot.alerts import ACK, ACK_ALL, CLAIM
from bot.i18n import Words, pick_language, translator
from bot.intake import Runtime
from storage import audit
from storage.alerts import acknowledge
from storage.models import AckKind, Alert, Group
from storage.people import find_person, pseudonym
from storage.timeutil import utc_now

log = logging.getLogger(__name__)
Context = ContextTypes.DEFAULT_TYPE
ALERT_BUTTONS = r"^al:"


def answered_line(kind: AckKind, *, who: str, at: datetime, words: Words) -> str:
    """ "✓ Acknowledged by p-3f2a at 03:12 KST": what an answered alert keeps."""
    line = texts.HANDLED_BY if kind is AckKind.CLAIM else texts.ACKNOWLEDGED_BY
    return words._(line).format(who=who, time=words.clock(at))


async def on_alert_button(update: Update, context: Context) -> None:
    query = update.callback_query
    if query is None or not isinstance(query.message, Message) or query.data is None:
        return
    runtime = context.bot_data["runtime"]
    assert isinstance(runtime, Runtime)  # noqa: S101 (set once, in app.build_application)
    kind = AckKind.CLAIM if query.data == CLAIM else AckKind.ACKNOWLEDGE
    now = utc_now()
    kept = ""
    async with runtime.sessions() as session, session.begin():
        person = await find_person(session, server=runtime.server, telegram_id=query.from_user.id)
        language = pick_language(person.language if person else None, query.from_user.language_code)
        _ = translator(language)
        alerts = (
            []
            if person is None or query.data not in (ACK, CLAIM, ACK_ALL)
            else (
                await session.exec(
                    select(Alert).where(
                        Alert.recipient_id == person.id,
                        Alert.telegram_message_id == query.message.message_id,
                    )
                )
            ).all()
        )
        if person is None or not alerts:
            answer = _(texts.NOT_YOURS)
            # Not this person's alert (or a forged press): refused, and recorded.
            await audit.append(
                session,
                actor=pseudonym(person) if person else "unknown",
                action="alert.refused",
                at=now,
                details={"allowed": False},
            )
        else:
            first_of_flip: dict[uuid.UUID, Alert] = {}
            for alert in alerts:
                first_of_flip.setdefault(alert.flip_id, alert)
            fresh = False
            for alert in first_of_flip.values():
                flip, first = await acknowledge(
                    session,
                    alert_id=alert.id,
                    person=person,
                    kind=kind,
                    about=query.from_user.full_name,
                    server=runtime.server,
                    now=now,
                )
                fresh = fresh or first
                group = await session.get(Group, flip.group_id)
                await audit.append(
                    session,
                    actor=pseudonym(person),
                    action=f"alert.{kind.value}",
                    subject=group.codename if group else None,
                    at=now,
                    details={"flip": str(flip.id), "status": flip.to_status.value},
                )
            if kind is AckKind.CLAIM:
                answer = _(texts.CLAIMED_BY_YOU)
            else:
                answer = _(texts.ACKNOWLEDGED if fresh else texts.ALREADY_ACKNOWLEDGED)
            kept = answered_line(
                kind,
                who=pseudonym(person),
                at=now,
                words=Words(language, ZoneInfo(person.tz or runtime.settings.display.timezone)),
            )
    try:
        await query.answer(answer)
        if person is not None and alerts:
            # The buttons go; the alert keeps a line saying who answered it, and when.
            await query.message.edit_text(
                f"{query.message.text or ''}\n\n{kept}", reply_markup=None
            )
    except TelegramError as exc:
        log.info("could not close an alert's buttons (%s)", type(exc).__name__)
