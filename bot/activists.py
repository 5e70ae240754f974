"""What activists and admins do in the chat: answer alerts with their buttons.

The buttons carry no ids (callback data is ``al:ack``, ``al:claim``,
``al:ackall`` or ``al:clear``): the message they sit under says which alerts they answer,
and only its recipient may answer them.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from telegram import Message, Update
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot import texts
from bot.acts.service import Rules, actor_for, request
from bot.alerts import ACK, ACK_ALL, CLAIM, CLEAR
from bot.commands import act_answer
from bot.i18n import Words, pick_language, translator
from bot.intake import Runtime
from bot.refusals import audit_refusal
from storage import audit
from storage.alerts import acknowledge, still_watched
from storage.models import AckKind, ActKind, Alert, Flip, Group, Person, Role, RoleGrant
from storage.people import display_name, find_person, live_grants, pseudonym
from storage.session import AsyncSession
from storage.timeutil import utc_now
from storage.vocabulary import WATCHER_ROLES

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
    answer: str | None = None
    kept = ""
    async with runtime.sessions() as session, session.begin():
        person = await find_person(session, server=runtime.server, telegram_id=query.from_user.id)
        language = pick_language(
            person.language if person else None,
            query.from_user.language_code,
            default=runtime.settings.display.language,
        )
        _ = translator(language)
        # Only someone who still holds a live activist or admin grant may press, and
        # only under an alert about a group they still watch: a revoked person's
        # button, even under an alert sent before, is a stranger's.
        grants = await live_grants(session, person_id=person.id) if person else []
        watching = [g for g in grants if g.role in WATCHER_ROLES]
        alerts = (
            []
            if person is None or not watching or query.data not in (ACK, CLAIM, ACK_ALL, CLEAR)
            else (
                await session.exec(
                    select(Alert).where(
                        Alert.recipient_id == person.id,
                        Alert.telegram_message_id == query.message.message_id,
                    )
                )
            ).all()
        )
        if alerts:
            # Per group: someone whose grant for this alert's group was revoked (while
            # they still watch others) is a stranger to it, as a revoked person is.
            live = await still_watched(session, alert_ids=[a.id for a in alerts])
            alerts = [a for a in alerts if a.id in live]
        if person is not None and alerts and query.data == CLEAR:
            answer = await _clear(session, runtime, person, watching, alerts[0], language, now)
        elif person is not None and alerts:
            answer = await _acknowledge(session, runtime, person, kind, alerts, language, now)
            kept = answered_line(
                kind,
                who=pseudonym(person),
                at=now,
                words=Words(language, ZoneInfo(person.tz or runtime.settings.display.timezone)),
            )
        if answer is None:
            answer = _(texts.NOT_YOURS)
            # Not this person's alert (or a forged press, or a revoked person): refused, recorded.
            await audit_refusal(
                session,
                runtime.refusals,
                sender=query.from_user.id,
                kind=query.data or "alert",  # each button counted apart, as commands are
                actor=pseudonym(person) if person else "unknown",
                action="alert.refused",
                now=now,
            )
        elif person is not None:
            person.last_seen_at = now
            session.add(person)
    try:
        await query.answer(answer)
        if person is not None and alerts and query.data != CLEAR:
            # The buttons go; the alert keeps a line saying who answered it, and when.
            await query.message.edit_text(
                f"{query.message.text or ''}\n\n{kept}", reply_markup=None
            )
    except TelegramError as exc:
        log.info("could not close an alert's buttons (%s)", type(exc).__name__)


async def _acknowledge(
    session: AsyncSession,
    runtime: Runtime,
    person: Person,
    kind: AckKind,
    alerts: Sequence[Alert],
    language: str,
    now: datetime,
) -> str:
    _ = translator(language)
    first_of_flip: dict[uuid.UUID, Alert] = {}
    for alert in alerts:
        first_of_flip.setdefault(alert.flip_id, alert)
    fresh = False
    name = await display_name(session, server=runtime.server, person=person)
    for alert in first_of_flip.values():
        flip, first = await acknowledge(
            session,
            alert_id=alert.id,
            person=person,
            kind=kind,
            about=name,
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
        return _(texts.CLAIMED_BY_YOU)
    return _(texts.ACKNOWLEDGED if fresh else texts.ALREADY_ACKNOWLEDGED)


async def _clear(
    session: AsyncSession,
    runtime: Runtime,
    person: Person,
    grants: Sequence[RoleGrant],
    alert: Alert,
    language: str,
    now: datetime,
) -> str | None:
    """The alert's Clear button: /clear for the alert's group, by the same rules."""
    flip = await session.get(Flip, alert.flip_id)
    group = await session.get(Group, flip.group_id) if flip else None
    everywhere = any(g.role is Role.ADMIN or g.group_id is None for g in grants)
    if group is None or not (everywhere or any(g.group_id == group.id for g in grants)):
        return None  # an escalated alert reaches activists of other groups: not theirs to clear
    alerts = runtime.settings.alerts
    result = await request(
        session,
        server=runtime.server,
        group=group,
        act=ActKind.CLEAR,
        actor=await actor_for(session, server=runtime.server, person=person),
        rules=Rules(confirm_within=alerts.confirm_within, max_pause=alerts.max_pause),
        now=now,
    )
    words = Words(language, ZoneInfo(person.tz or runtime.settings.display.timezone))
    return act_answer(words, group, ActKind.CLEAR, result, alerts.max_pause)
