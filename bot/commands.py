"""Activists' and admins' commands: /status, /group, /pause, /resume, /safe,
/clear, /detained (pausing, marking SAFE and clearing a warning take two people:
``bot.acts``), /stage, /timeline (a picture of a group's journey, without contents),
and /timezone (the zone of the times in their alerts).

An admin may act on every group; an activist on the groups their invite named
(or on all of them, for a grant without a group).
Anyone else gets exactly what any message gets (the neutral receipt, and the
message deleted): whoever holds a relative's phone learns nothing from trying
a command. Every use, allowed or refused, is an audit event.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from telegram import Update
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot import texts
from bot.acts.rules import Outcome
from bot.acts.service import Result, Rules, actor_for, mark_detained, request, resume
from bot.deadlines import evaluate
from bot.durations import parse_duration
from bot.i18n import Words, pick_language, translator, zone_abbreviation
from bot.intake import Runtime
from bot.refusals import refused_details
from bot.schedules import BadSchedule, normalise_codename
from storage import audit
from storage.checkins import stage_by_hand
from storage.groups import find_group
from storage.legs import find_leg, leg_name, legs_of
from storage.models import ActKind, Flip, Group, Leg, Person, Role, RoleGrant, Status
from storage.people import find_person, pseudonym, roles_among, watching_among
from storage.session import AsyncSession
from storage.timeutil import utc_now, zone_named

if TYPE_CHECKING:  # matplotlib loads only when someone asks for a picture
    from bot.timeline import Journey

log = logging.getLogger(__name__)
Context = ContextTypes.DEFAULT_TYPE
Handler = Callable[[Update, Context], Coroutine[Any, Any, None]]


class Refused(Exception):
    """Not this person's to do (or no such group): answered like any message."""


@dataclass
class Call:
    """One command, from one person allowed some groups."""

    runtime: Runtime
    session: AsyncSession
    person: Person
    all_groups: bool  # an admin, or an activist whose grant names no group
    groups: set[uuid.UUID]
    args: list[str]
    now: datetime
    language: str

    @property
    def words(self) -> Words:
        return Words(self.language, self.tz)

    def _(self, message: str) -> str:
        return translator(self.language)(message)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.person.tz or self.runtime.settings.display.timezone)

    def local(self, moment: datetime | None) -> str:
        return "—" if moment is None else self.words.local(moment)

    def status(self, status: Status) -> str:
        return texts.status_in(self.words, status)

    async def group(self, position: int = 0) -> Group:
        if len(self.args) <= position:
            raise Refused("no codename")
        try:
            codename = normalise_codename(self.args[position])
        except BadSchedule:
            raise Refused("bad codename") from None
        group = await find_group(self.session, codename=codename)
        if group is None or group.shredded_at is not None:
            raise Refused("no such group")
        if not (self.all_groups or group.id in self.groups):
            raise Refused("not theirs")
        return group


@dataclass(frozen=True, slots=True)
class Picture:
    """An answer that is a picture: drawn after the transaction, sent as a photo."""

    journey: Journey
    caption: str
    words: Words


Action = Callable[[Call], Awaitable[str | Picture]]


async def _status(call: Call) -> str:
    query = select(Group).where(Group.shredded_at.is_(None)).order_by(Group.codename)
    if not call.all_groups:
        query = query.where(Group.id.in_(call.groups))
    groups = (await call.session.exec(query)).all()
    if not groups:
        return call._(texts.NO_GROUPS)
    legs = await _current_legs(call, groups)
    lines = [
        texts.status_line(
            call.words,
            codename=g.codename,
            status=g.status,
            since=g.status_since,
            last_checkin=g.last_checkin_at,
            next_deadline=evaluate(g, now=call.now, leg=legs.get(g.id)).next_transition,
            now=call.now,
        )
        for g in groups
    ]
    return "\n".join(lines)


async def _current_legs(call: Call, groups: Sequence[Group]) -> dict[uuid.UUID, Leg]:
    """Each group's current leg, in one query (its interval and grace set the next deadline)."""
    at = {g.id: g.current_leg for g in groups if g.current_leg is not None}
    if not at:
        return {}
    legs = await call.session.exec(select(Leg).where(Leg.group_id.in_(list(at))))
    return {leg.group_id: leg for leg in legs.all() if at[leg.group_id] == leg.position}


async def _group(call: Call) -> str:
    group = await call.group()
    leg = await _current_leg(call, group)
    lines = texts.group_head(
        call.words,
        codename=group.codename,
        status=group.status,
        basis=group.status_basis,
        since=group.status_since,
        last_checkin=group.last_checkin_at,
        now=call.now,
    )
    if leg is not None:
        lines.append(call._(texts.LEG).format(leg=leg_name(call.runtime.server, leg)))
    following = evaluate(group, now=call.now, leg=leg).next_transition
    if following is not None:
        lines.append(call._(texts.NEXT_CHANGE).format(local=call.local(following)))
    last_flip = (
        await call.session.exec(
            select(Flip).where(Flip.group_id == group.id).order_by(Flip.recorded_at.desc())
        )
    ).first()
    if last_flip is not None and last_flip.to_status in (Status.SILENT, Status.DETAINED):
        lines.append(
            call._(texts.ALERT_ACKNOWLEDGED).format(local=call.local(last_flip.acknowledged_at))
            if last_flip.acknowledged_at
            else call._(texts.ALERT_OPEN)
        )
    return "\n".join(lines)


async def _current_leg(call: Call, group: Group) -> Leg | None:
    if group.current_leg is None:
        return None
    query = select(Leg).where(Leg.group_id == group.id, Leg.position == group.current_leg)
    return (await call.session.exec(query)).first()


def _rules(call: Call) -> Rules:
    alerts = call.runtime.settings.alerts
    return Rules(confirm_within=alerts.confirm_within, max_pause=alerts.max_pause)


async def _request(call: Call, act: ActKind, length: timedelta | None = None) -> str:
    """/pause, /safe, /clear: done at once, asked of a second person, or
    confirmed, as ``bot.acts`` decides; the others are told either way."""
    group = await call.group()
    actor = await actor_for(call.session, server=call.runtime.server, person=call.person)
    result = await request(
        call.session,
        server=call.runtime.server,
        group=group,
        act=act,
        actor=actor,
        rules=_rules(call),
        now=call.now,
        length=length,
    )
    return act_reply(call, group, act, result)


def act_reply(call: Call, group: Group, act: ActKind, result: Result) -> str:
    return act_answer(call.words, group, act, result, call.runtime.settings.alerts.max_pause)


def act_answer(
    words: Words, group: Group, act: ActKind, result: Result, max_pause: timedelta
) -> str:
    """What the person who acted is told (by a command or the alert's button)."""

    def local(moment: datetime | None) -> str:
        return "—" if moment is None else words.local(moment)

    fields = {
        "codename": group.codename,
        "status": texts.status_in(words, result.status),
        "command": act.value,
    }
    if result.outcome is Outcome.NOTHING:
        return words._(texts.NOTHING_TO_CLEAR).format(**fields)
    if result.outcome is Outcome.ARRIVED:
        return words._(texts.PAUSE_REFUSED_SAFE).format(**fields)
    if result.outcome is Outcome.ASK:
        return words._(texts.ASKED_SECOND).format(**fields, local=local(result.waits_until))
    if result.outcome is Outcome.WAITING:
        return words._(texts.STILL_WAITING).format(**fields, local=local(result.waits_until))
    if act is ActKind.PAUSE:
        reply = words._(texts.PAUSED_UNTIL).format(**fields, local=local(result.paused_until))
        if result.capped:
            reply += " " + words._(texts.PAUSE_CAPPED).format(longest=words.duration(max_pause))
        return reply
    if act is ActKind.CLEAR:
        return words._(texts.CLEARED).format(**fields)
    return words._(texts.MARKED).format(**fields)


async def _pause(call: Call) -> str:
    # A stranger's /pause is refused before its usage is explained.
    await call.group()
    try:
        length = parse_duration(call.args[1]) if len(call.args) > 1 else None
    except ValueError:
        length = None
    if length is None:
        return call._(texts.USAGE).format(usage="/pause CODENAME 12h")
    return await _request(call, ActKind.PAUSE, length)


async def _safe(call: Call) -> str:
    return await _request(call, ActKind.SAFE)


async def _clear(call: Call) -> str:
    return await _request(call, ActKind.CLEAR)


async def _resume(call: Call) -> str:
    group = await call.group()
    actor = await actor_for(call.session, server=call.runtime.server, person=call.person)
    if not await resume(
        call.session,
        server=call.runtime.server,
        group=group,
        actor=actor,
        now=call.now,
    ):
        return call._(texts.NOT_PAUSED).format(
            codename=group.codename, status=call.status(group.status)
        )
    return call._(texts.RESUMED).format(codename=group.codename)


async def _detained(call: Call) -> str:
    """Raising the alarm needs one person: it can only make people look."""
    group = await call.group()
    await mark_detained(call.session, group=group, author=call.person, now=call.now)
    return call._(texts.MARKED).format(codename=group.codename, status=call.status(Status.DETAINED))


async def _stage(call: Call) -> str:
    group = await call.group()
    name = " ".join(call.args[1:])
    leg = (
        await find_leg(call.session, server=call.runtime.server, group=group, name=name)
        if name
        else None
    )
    if leg is None:
        legs = await legs_of(call.session, server=call.runtime.server, group=group)
        known = [opened for _, opened in legs]
        usage = call._(texts.USAGE).format(usage=USAGES["stage"])
        return "\n".join([usage, call._(texts.KNOWN_LEGS).format(legs=", ".join(known))])
    # Not a check-in: the activist's word moves the group along, it is no news from it.
    await stage_by_hand(call.session, group=group, leg=leg, now=call.now)
    return call._(texts.ON_LEG).format(
        codename=group.codename, leg=leg_name(call.runtime.server, leg)
    )


async def _timezone(call: Call) -> str:
    zone = call.args[0] if call.args else ""
    named = zone_named(zone)
    if named is None:
        return call._(texts.USAGE).format(usage="/timezone Asia/Seoul")
    call.person.tz = zone
    call.session.add(call.person)
    return call._(texts.TIME_ZONE_SET).format(
        zone=zone, abbreviation=zone_abbreviation(call.now, named)
    )


async def _timeline(call: Call) -> Picture:
    from bot.timeline import caption, gather

    group = await call.group()
    # Legs by name: the group's activists read them in alerts too.
    journey = await gather(call.session, group=group, now=call.now, server=call.runtime.server)
    return Picture(journey, caption(journey, call.words), call.words)


ACTIONS: dict[str, Action] = {
    "status": _status,
    "group": _group,
    "pause": _pause,
    "resume": _resume,
    "safe": _safe,
    "clear": _clear,
    "detained": _detained,
    "stage": _stage,
    "timezone": _timezone,
    "timeline": _timeline,
}


# What an activist or admin is told when a command names no group.
USAGES = {
    "group": "/group CODENAME",
    "pause": "/pause CODENAME 12h",
    "resume": "/resume CODENAME",
    "safe": "/safe CODENAME",
    "clear": "/clear CODENAME",
    "detained": "/detained CODENAME",
    "stage": "/stage CODENAME LEG",
    "timeline": "/timeline CODENAME",
}


def _refusal(call: Call, name: str) -> str:
    """An activist's or admin's command that cannot be done, answered as a command (a
    mistyped codename must not read like success): the usage, or that no such group is
    theirs (a group of someone else's is not told apart from none at all)."""
    if not call.args:
        return call._(texts.USAGE).format(usage=USAGES.get(name, f"/{name}"))
    return call._(texts.NOT_AMONG_YOURS).format(codename=call.args[0])


def guarded(name: str, *, otherwise: Handler) -> Handler:
    """The handler for /``name``: acts for activists and admins (and answers them when
    it cannot), and for anyone else does what ``otherwise`` does with any message."""
    action = ACTIONS[name]

    async def handle(update: Update, context: Context) -> None:
        runtime = context.bot_data["runtime"]
        assert isinstance(runtime, Runtime)  # noqa: S101 (set once, in app.build_application)
        user, chat = update.effective_user, update.effective_chat
        if user is None or chat is None:
            return
        now = utc_now()
        reply: str | Picture | None = None
        done = False
        async with runtime.sessions() as session, session.begin():
            person = await find_person(session, server=runtime.server, telegram_id=user.id)
            grants = await _grants(session, person)
            activist = [g for g in grants if g.role is Role.ACTIVIST]
            everywhere = any(g.role is Role.ADMIN for g in grants) or any(
                g.group_id is None for g in activist
            )
            allowed = {g.group_id for g in activist if g.group_id is not None}
            if person is not None and (everywhere or allowed):
                person.last_seen_at = now
                call = Call(
                    runtime,
                    session,
                    person,
                    everywhere,
                    allowed,
                    list(context.args or []),
                    now,
                    pick_language(
                        person.language,
                        user.language_code,
                        default=runtime.settings.display.language,
                    ),
                )
                try:
                    reply = await action(call)
                    done = True
                except Refused:
                    reply = _refusal(call, name)
            count = 1 if done else runtime.refusals.refused(user.id, name, now)
            if count is not None:
                details = {"allowed": True} if done else refused_details(count)
                await audit.append(
                    session,
                    actor=pseudonym(person) if person else "unknown",
                    action=f"command.{name}",
                    subject=await _subject(session, context.args),
                    at=now,
                    details=details,
                )
        if reply is None:
            await otherwise(update, context)
            return
        try:
            if isinstance(reply, Picture):
                from bot.timeline import render

                # Drawing takes a few hundred milliseconds of CPU: not on the event loop.
                png = await asyncio.to_thread(render, reply.journey, "png", words=reply.words)
                await context.bot.send_photo(
                    chat.id, png, caption=reply.caption, protect_content=True
                )
            else:
                await context.bot.send_message(chat.id, reply, protect_content=True)
        except TelegramError as exc:
            log.info("a command's answer was not sent (%s)", type(exc).__name__)

    return handle


async def watches(session: AsyncSession, *, person_id: uuid.UUID) -> bool:
    """Whether the person is an activist or an admin (their menu shows these commands)."""
    return person_id in await watching_among(session, person_ids=[person_id])


async def role_of(session: AsyncSession, *, person_id: uuid.UUID) -> str | None:
    """ "admin", "activist" or None (a relative, or a stranger): which words they get."""
    roles = (await roles_among(session, person_ids=[person_id])).get(person_id, set())
    if Role.ADMIN in roles:
        return "admin"
    return "activist" if Role.ACTIVIST in roles else None


async def _grants(session: AsyncSession, person: Person | None) -> list[RoleGrant]:
    if person is None:
        return []
    result = await session.exec(
        select(RoleGrant).where(RoleGrant.person_id == person.id, RoleGrant.revoked_at.is_(None))
    )
    return list(result.all())


async def _subject(session: AsyncSession, args: list[str] | None) -> str | None:
    """The group asked about, for the audit trail. Only a codename the organisation knows
    is written (a codename is not content, and the groups table holds it already):
    whatever else someone typed after a command is theirs, and the audit table is not
    sealed."""
    if not args:
        return None
    try:
        codename = normalise_codename(args[0])
    except BadSchedule:
        return None
    return codename if await find_group(session, codename=codename) is not None else None
