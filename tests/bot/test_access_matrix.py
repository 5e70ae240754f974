"""Issue #8, access control: every command and every button, for every role.

``TABLE`` says who may do what, and where each rule comes from. One real bot per
database (``bot.app.serve`` against the local Telegram stand-in) plays the whole
matrix once, in a fixed order (refused roles first, then the allowed ones, so that
a refused attempt always meets a state it could change), and records what each
person saw and what changed in the database. The tests then check each cell:

- an allowed role acts (the command's answer and its effect; the button's effect);
- a refused role gets the neutral answer (for a command, exactly what any message
  gets: ``handlers.on_content``'s receipt, and the message deleted), and nothing
  protected changes;
- every refusal is an audit event naming who tried (``storage.audit``), as
  ``commands.guarded`` writes for commands: ``details["allowed"] is False``.

``test_activists.py`` checks the activists' commands in depth (effects, alerts);
this file is the whole grid, buttons included, and stays shallow per cell.

A button in a chat the presser cannot see is pressed on the stand-in as Telegram
would never allow; that is the forged callback a modified client may send, and the
bot must check the presser itself (``bot/activists.py``: "only its recipient may
answer them"; ``bot.meaning.apply_choice``: "A relative's answer about their own
message").
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import enum
import json
import os
import re
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple, cast

import pytest
import pytest_asyncio
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from telegram.ext import ApplicationBuilder, CallbackQueryHandler, CommandHandler

from bot import commands, handlers, texts
from bot.alerts import ACK, ACK_ALL, CLAIM, CLEAR
from bot.config import load_settings
from bot.i18n import LANGUAGES, translator
from bot.meaning import CONFIRM_CHOICES, parse_choice
from bot.standin import SentMessage, SimUser, TelegramStandIn
from storage.checkins import BY_HAND, flip, record_signal
from storage.crypto import KemName, ServerKeys
from storage.db import open_database, session_factory
from storage.groups import Schedule, create_group, get_group
from storage.legs import add_leg
from storage.models import (
    Acknowledgement,
    ActKind,
    Alert,
    AlertState,
    AuditEvent,
    CheckinEvent,
    Flip,
    Group,
    GroupAct,
    LinkReason,
    Message,
    Person,
    Role,
    RoleGrant,
    Signal,
    Status,
)
from storage.people import find_person, get_or_create_person, pseudonym
from storage.session import AsyncSession
from storage.timeutil import utc_now
from tests.bot.intake_harness import Installation, install, running_bot
from tests.conftest import PG_ENV

# --------------------------------------------------------------------------- the table


class Who(enum.StrEnum):
    """The roles of issue #8, each relative to the group PINE-7."""

    UNKNOWN = "unknown"  # never seen by the bot (a fresh Telegram account for every cell)
    RELATIVE = "relative"  # a relative enrolled for PINE-7
    OTHER_ACTIVIST = "other-activist"  # an activist of OAK-2 only
    ACTIVIST = "activist"  # PINE-7's own activist
    OPERATOR = "operator"
    ADMIN = "admin"
    # Once PINE-7's activist and an admin; both grants revoked (`intake role revoke`).
    # PRODUCT.md People: "every role can be revoked at once": refused like a stranger.
    REVOKED = "revoked"


class Neutral(enum.Enum):
    """What a refused person gets instead."""

    NONE = "nobody is refused"
    RECEIPT = (
        "what any message gets: the receipt and the follow-up, the text deleted; for an "
        "activist or admin, the command's own refusal (no group PINE-7 among theirs)"
    )
    WELCOME = "what /start gets, whatever the code"
    NOT_YOURS = "the alert buttons' one refusal, the alert left as it was"
    THANKS = "what an answer gets: the question closed with 'Thank you.'"


@dataclass(frozen=True)
class Action:
    id: str
    does: str  # the command typed, or the button's callback data (c:/g: name the message)
    allowed: frozenset[Who]
    neutral: Neutral
    rule: str  # where the rule comes from

    @property
    def is_button(self) -> bool:
        return not self.does.startswith("/")

    @property
    def command(self) -> str | None:
        return None if self.is_button else self.does.split()[0].removeprefix("/")


EVERYONE = frozenset(Who)
NOBODY: frozenset[Who] = frozenset()
WATCHING = frozenset({Who.ACTIVIST, Who.OTHER_ACTIVIST, Who.ADMIN})
PINES = frozenset({Who.ACTIVIST, Who.ADMIN})
# commands.py: "An admin may act on every group; an activist on the groups their invite
# named ... Anyone else gets exactly what any message gets ... Every use, allowed or
# refused, is an audit event." PRODUCT.md, People: an activist "gets alerts, acknowledges
# or claims them, checks statuses, marks a group safe or paused"; an operator works on
# their own machine (the sealed inbox, the CLI), not through these commands.
GROUP_RULE = "commands.py docstring; PRODUCT.md People (activist)"
MINE_RULE = "commands.py: /status lists, /timezone sets, only what is the sender's own"
EVERYONE_RULE = "handlers.command_menu: everyone's menu (help, language, wipe); PRODUCT promise 3"
TABLE: tuple[Action, ...] = (
    Action(
        "start",
        "/start",
        EVERYONE,
        Neutral.NONE,
        "handlers.on_start: every outcome gets the same reply; PRODUCT.md: roles come by /start",
    ),
    Action(
        "start-unissued-code",
        "/start NOSUCHCODE",
        NOBODY,
        Neutral.WELCOME,
        "PRODUCT.md: every role is granted by a one-time invite the admin makes with the CLI",
    ),
    Action("help", "/help", EVERYONE, Neutral.NONE, EVERYONE_RULE),
    Action("language", "/language", EVERYONE, Neutral.NONE, EVERYONE_RULE),
    Action("wipe", "/wipe", EVERYONE, Neutral.NONE, EVERYONE_RULE),
    Action("status", "/status", WATCHING, Neutral.RECEIPT, MINE_RULE),
    Action("timezone", "/timezone Asia/Seoul", WATCHING, Neutral.RECEIPT, MINE_RULE),
    Action("group", "/group PINE-7", PINES, Neutral.RECEIPT, GROUP_RULE),
    Action("timeline", "/timeline PINE-7", PINES, Neutral.RECEIPT, GROUP_RULE),
    Action("stage", "/stage PINE-7 Qingdao", PINES, Neutral.RECEIPT, GROUP_RULE),
    Action("pause", "/pause PINE-7 6h", PINES, Neutral.RECEIPT, GROUP_RULE),
    Action("resume", "/resume PINE-7", PINES, Neutral.RECEIPT, GROUP_RULE),
    Action("detained", "/detained PINE-7", PINES, Neutral.RECEIPT, GROUP_RULE),
    Action("safe", "/safe PINE-7", PINES, Neutral.RECEIPT, GROUP_RULE),
    # PRODUCT promise 7: clearing a warning takes two people; the first asks, the second
    # (here the admin, after the activist) confirms.
    Action("clear", "/clear PINE-7", PINES, Neutral.RECEIPT, GROUP_RULE + "; PRODUCT promise 7"),
    # The /language keyboard, in the presser's own chat.
    Action("lang-ko", "lang:ko", EVERYONE, Neutral.NONE, "handlers.on_language_chosen: anyone"),
    Action("lang-en", "lang:en", EVERYONE, Neutral.NONE, "handlers.on_language_chosen: anyone"),
    # Under the alerts that PINE-7's activist got: SILENT goes to a group's own activists
    # only (storage.alerts.enqueue_for_flips, tier 1), and "only its recipient may answer
    # them" (bot/activists.py); an admin does not answer another person's alert.
    Action("alert-ack", ACK, frozenset({Who.ACTIVIST}), Neutral.NOT_YOURS, "bot/activists.py"),
    Action("alert-claim", CLAIM, frozenset({Who.ACTIVIST}), Neutral.NOT_YOURS, "bot/activists.py"),
    Action(
        "alert-ack-all", ACK_ALL, frozenset({Who.ACTIVIST}), Neutral.NOT_YOURS, "bot/activists.py"
    ),
    # The alert's Clear button is /clear for the alert's group (bot.acts): it asks.
    Action(
        "alert-clear",
        CLEAR,
        frozenset({Who.ACTIVIST}),
        Neutral.NOT_YOURS,
        "bot/activists.py; PRODUCT promise 7",
    ),
    # Under the follow-up every message gets (issue #14). PRODUCT.md: the relative
    # "answers 'which group is this about?'"; bot.meaning.apply_choice. The flag only
    # asks "Are you sure?", whoever presses it; its confirmation (F) is the report.
    *(
        Action(
            f"confirm-{code}",
            f"c:MESSAGE:{code}",
            frozenset({Who.RELATIVE}),
            Neutral.THANKS,
            "PRODUCT.md People (relative); bot.meaning.apply_choice",
        )
        for code in ("n", "y", "F")
    ),
    Action(
        "confirm-f",
        "c:MESSAGE:f",
        EVERYONE,
        Neutral.NONE,
        "bot.meaning: a flag asks once to confirm, so one stray tap raises no alarm",
    ),
    Action(
        "which-group",
        "g:MESSAGE:PINE-7:y",
        frozenset({Who.RELATIVE}),
        Neutral.THANKS,
        "PRODUCT.md People (relative); bot.meaning.apply_choice",
    ),
)
ACTIONS = {action.id: action for action in TABLE}

# --------------------------------------------------------------------------- the world

SCHEDULE = Schedule(
    interval=timedelta(hours=12), grace=timedelta(hours=2), detained_after=timedelta(days=2)
)
SILENT_FOR = timedelta(hours=15)  # past the due time and the grace, short of DETAINED
ROLE_IDS = {
    Who.RELATIVE: 6_900_000_002,
    Who.OTHER_ACTIVIST: 6_900_000_003,
    Who.ACTIVIST: 6_900_000_004,
    Who.OPERATOR: 6_900_000_005,
    Who.ADMIN: 6_900_000_006,
    Who.REVOKED: 6_900_000_007,
}
FIRST_UNKNOWN = 6_900_100_001
DIGESTED = ("ELM-1", "ELM-2", "ELM-3", "ELM-4")  # more than DIGEST_OVER: one digest message
WATCHED = {
    Who.ACTIVIST: {"PINE-7", "ASH-1", *DIGESTED},
    Who.OTHER_ACTIVIST: {"OAK-2"},
    Who.ADMIN: {"PINE-7", "OAK-2", "ASH-1", *DIGESTED},
}
EXTRA = 'rate_limit_per_hour = 1000\n[alerts]\nrepeat_every = "1h"\nescalate_after = "2h"\n'
REF = re.compile(r"[0-9A-F]{6}$")  # the receipt's reference, last on its line
# What reaches a chat beside the replies: alerts, all-clears, notes to admins and operators.
NOISE = re.compile(
    r"^(⚠|✓|\d+ alerts?:|\d+ messages? waits? in|The bot is back|An alert about)"
    r"|is handling [A-Z]+-\d+\.$"
    # Notices of other people's acts on a group (bot.acts), told to everyone alerted.
    r"|^[A-Z]+-\d+: .*(asked to .*the alerts go on\.|chose to .*; it is now [A-Z]+\.)$"
    r"|^[A-Z]+-\d+: .*confirmed the request of "
    # A relative's unconfirmed news (#14), told to the group's activists whenever it comes.
    r"|^Unconfirmed news about [A-Z]+-\d+ arrived"
    r"|^[A-Z]+-\d+: a check-in arrived after the "
)
PNG = b"\x89PNG\r\n\x1a\n"
WITHIN = 15.0  # seconds the bot may take to get anywhere (not a timing assertion)
GRACE = 0.1  # how long a refused alert press is watched for a late edit
ABSENT = "(absent)"
EN = translator("en")


class GroupState(NamedTuple):
    status: Status
    basis: str | None
    paused_until: datetime | None
    current_leg: int | None
    last_checkin_at: datetime | None


Snapshot = dict[str, object]
Change = tuple[object, object]


@dataclass(frozen=True)
class Audited:
    actor: str
    action: str
    subject: str | None
    details: dict[str, object]


@dataclass
class Cell:
    """What one person saw doing one action, and what it changed."""

    action: Action
    who: Who
    telegram_id: int
    person: str | None  # their Person.id, once they are one
    actor: str  # as the audit log names them: a pseudonym, or "unknown"
    at: datetime
    language: str | None = None  # their language afterwards
    pine: GroupState | None = None  # PINE-7 afterwards
    texts: list[str] = field(default_factory=list)  # replies (reference masked), in order
    buttons: list[list[str]] = field(default_factory=list)  # each reply's callback data
    photo: bytes | None = None
    deleted: bool = False  # their command left the chat
    answer: dict[str, Any] | None = None  # the callback query's answer
    pressed_before: dict[str, Any] | None = None  # the message under the button
    pressed_after: dict[str, Any] | None = None
    about: tuple[str, ...] = ()  # the flips (alert buttons) or the message (c:/g:) it is about
    changes: dict[str, Change] = field(default_factory=dict)
    audit: list[Audited] = field(default_factory=list)

    def protected(self) -> dict[str, Change]:
        """Changes a refusal must not make. Storing the attempt like any message (a new
        message row, a new person, their Telegram language) is the neutral treatment."""
        return {
            key: change
            for key, change in self.changes.items()
            if not key.startswith("language ")
            and not (key.startswith("message ") and change[0] == ABSENT)
        }

    def refusal_audited(self) -> bool:
        names = {self.actor, f"person:{self.actor}"}
        return any(e.actor in names and e.details.get("allowed") is False for e in self.audit)


@dataclass
class Observed:
    backend: str
    cells: dict[tuple[str, Who], Cell]
    baseline: dict[Who, list[str]]
    group_ids: dict[str, str]
    standin_errors: list[BaseException]


def _shape(text: str) -> str:
    return REF.sub("?", text)


def _short(value: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(value.bytes).decode().rstrip("=")


def _about(data: str) -> tuple[str, ...]:
    """The message a question's button is about."""
    choice = parse_choice(data)
    assert choice is not None
    return (str(choice.message_id),)


def _diff(before: Snapshot, after: Snapshot) -> dict[str, Change]:
    keys = before.keys() | after.keys()
    return {
        k: (before.get(k, ABSENT), after.get(k, ABSENT))
        for k in sorted(keys)
        if before.get(k, ABSENT) != after.get(k, ABSENT)
    }


class Matrix:
    """Plays every cell of the table against one running bot."""

    def __init__(
        self,
        standin: TelegramStandIn,
        installation: Installation,
        sessions: async_sessionmaker[AsyncSession],
    ) -> None:
        self.standin = standin
        self.installation = installation
        self.sessions = sessions
        self.server = ServerKeys(installation.settings.server_secret_bytes())
        self.users = {
            who: standin.user(uid, who.value, language_code="en") for who, uid in ROLE_IDS.items()
        }
        self.next_unknown = FIRST_UNKNOWN
        self.cells: dict[tuple[str, Who], Cell] = {}
        self.baseline: dict[Who, list[str]] = {}
        self.notes = 0
        self.last: Snapshot | None = None  # the state as the last cell left it
        self.head = 0  # and the audit log's last entry then

    # ----------------------------------------------------------------- people

    def user(self, who: Who) -> SimUser:
        if who is Who.UNKNOWN:
            self.next_unknown += 1
            return self.standin.user(self.next_unknown, "Someone", language_code="en")
        return self.users[who]

    def said_to(self, chat_id: int, since: int) -> list[SentMessage]:
        return [
            m
            for m in self.standin.sent[since:]
            if m.chat_id == chat_id
            and not NOISE.search(m.text or "")
            and not any(d.startswith("al:") for d in m.callback_data)
        ]

    def now_in_chat(self, chat_id: int, message_id: int) -> dict[str, Any] | None:
        return next(
            (m for m in self.standin.messages_in(chat_id) if m["message_id"] == message_id), None
        )

    # ----------------------------------------------------------------- the database

    async def settle(self) -> None:
        """Wait until the bot has taken every update, the deadline engine has looked at
        every group that asked for it, and every alert written is sent."""
        await self.standin.wait_for(lambda: not self.standin.pending_updates, within=WITHIN)
        for _attempt in range(400):
            async with self.sessions() as session:
                now = utc_now()
                due = await session.exec(
                    select(func.count()).select_from(Group).where(Group.next_transition_at <= now)
                )
                pending = await session.exec(
                    select(func.count()).select_from(Alert).where(Alert.state == AlertState.PENDING)
                )
                if due.one() == 0 and pending.one() == 0:
                    return
            await asyncio.sleep(0.03)
        raise AssertionError("the bot did not settle")

    async def snapshot(self) -> Snapshot:
        """Everything an action could change that matters, by a stable key."""
        shot: Snapshot = {}
        async with self.sessions() as session:
            groups = {g.id: g for g in (await session.exec(select(Group))).all()}
            for g in groups.values():
                shot[f"group {g.codename}"] = GroupState(
                    g.status, g.status_basis, g.paused_until, g.current_leg, g.last_checkin_at
                )
            for f in (await session.exec(select(Flip))).all():
                shot[f"flip {f.id}"] = (
                    groups[f.group_id].codename,
                    f.to_status,
                    f.acknowledged_at is not None,
                )
            events = await session.exec(
                select(
                    CheckinEvent.group_id, CheckinEvent.signal, CheckinEvent.source, func.count()
                ).group_by(CheckinEvent.group_id, CheckinEvent.signal, CheckinEvent.source)
            )
            for group_id, signal, source, count in events.all():
                shot[f"events {groups[group_id].codename} {signal} {source}"] = count
            for a in (await session.exec(select(Acknowledgement))).all():
                shot[f"ack {a.id}"] = (str(a.flip_id), str(a.person_id), a.kind)
            for act in (await session.exec(select(GroupAct))).all():
                shot[f"act {act.id}"] = (act.act, str(act.requested_by), act.outcome)
            for r in (await session.exec(select(RoleGrant))).all():
                shot[f"grant {r.id}"] = (str(r.person_id), r.role, r.group_id, r.revoked_at)
            for p in (await session.exec(select(Person))).all():
                shot[f"language {p.id}"] = p.language
                if p.tz is not None:
                    shot[f"tz {p.id}"] = p.tz
            for m in (await session.exec(select(Message))).all():
                linked = str(m.group_id) if m.group_id else None
                shot[f"message {m.id}"] = (linked, m.signal, m.link_reason)
        return shot

    async def audit_head(self) -> int:
        async with self.sessions() as session:
            head = await session.exec(select(func.max(AuditEvent.seq)))
            return head.one() or 0

    async def audited_since(self, seq: int) -> list[Audited]:
        async with self.sessions() as session:
            rows = await session.exec(
                select(AuditEvent).where(AuditEvent.seq > seq).order_by(AuditEvent.seq)
            )
            return [
                Audited(e.actor, e.action, e.subject, json.loads(e.details)) for e in rows.all()
            ]

    async def person_of(self, telegram_id: int) -> Person | None:
        async with self.sessions() as session:
            return await find_person(session, server=self.server, telegram_id=telegram_id)

    async def group_ids(self) -> dict[str, str]:
        async with self.sessions() as session:
            return {g.codename: str(g.id) for g in (await session.exec(select(Group))).all()}

    async def flips_under(self, message: SentMessage) -> tuple[str, ...]:
        """The flips whose alerts the message carries (it was sent to the activist)."""
        async with self.sessions() as session:
            activist = await find_person(
                session, server=self.server, telegram_id=ROLE_IDS[Who.ACTIVIST]
            )
            assert activist is not None
            rows = await session.exec(
                select(Alert.flip_id).where(
                    Alert.recipient_id == activist.id,
                    Alert.telegram_message_id == message.message_id,
                )
            )
            return tuple(sorted({str(f) for f in rows.all()}))

    async def go_silent(self, *codenames: str) -> None:
        """Time passes: the groups' last check-in is long enough ago to be SILENT."""
        self.last = None
        async with self.sessions() as session, session.begin():
            for codename in codenames:
                group = await get_group(session, codename=codename)
                group.last_checkin_at = utc_now() - SILENT_FOR
                group.next_transition_at = utc_now()
                session.add(group)
        await self.settle()

    async def set_pine(self, to: Status, basis: str) -> None:
        """Bring PINE-7 to where the next cell needs it (as the CLI or the engine could)."""
        self.last = None
        async with self.sessions() as session, session.begin():
            group = await get_group(session, codename="PINE-7")
            now = utc_now()
            await flip(session, group=group, to=to, at=now, basis=basis, now=now)
            if to is Status.PAUSED:
                group.paused_until = now + timedelta(hours=6)
                session.add(group)
        await self.settle()

    async def pine(self) -> Group:
        async with self.sessions() as session:
            return await get_group(session, codename="PINE-7")

    # ----------------------------------------------------------------- cells

    def order(self, action: Action) -> list[Who]:
        """Refused roles first: each then meets a state that it could still change."""
        return [w for w in Who if w not in action.allowed] + [w for w in Who if w in action.allowed]

    async def _begin(self) -> tuple[Snapshot, int, datetime]:
        """The state before a cell: the last cell's end, unless something happened since."""
        if self.last is None:
            await self.settle()
            self.last, self.head = await self.snapshot(), await self.audit_head()
        return self.last, self.head, utc_now()

    async def _finish(self, cell: Cell, before: Snapshot, head: int, user: SimUser) -> None:
        await self.settle()
        self.last = after = await self.snapshot()
        cell.changes = _diff(before, after)
        pine = after["group PINE-7"]
        assert isinstance(pine, GroupState)
        cell.pine = pine
        cell.audit = await self.audited_since(head)
        self.head = head + len(cell.audit)  # the log is numbered without gaps
        person = await self.person_of(user.id)
        cell.person = str(person.id) if person else None
        cell.actor = pseudonym(person) if person else "unknown"
        cell.language = person.language if person else None
        self.cells[(cell.action.id, cell.who)] = cell

    async def send(self, user: SimUser, text: str, count: int) -> tuple[list[SentMessage], bool]:
        """``user`` writes ``text``; the bot's first ``count`` replies, and whether the
        text left their chat."""
        self.last = None
        mark = len(self.standin.sent)
        update = self.standin.send_text(user, text)
        typed = (user.id, update["message"]["message_id"])
        await self.standin.wait_for(
            lambda: len(self.said_to(user.id, mark)) >= count, within=WITHIN
        )
        await self.settle()
        return self.said_to(user.id, mark), typed in self.standin.deleted

    async def command(self, action: Action, who: Who) -> None:
        user = self.user(who)
        count = 1
        if action.neutral is Neutral.RECEIPT and who not in action.allowed | WATCHING:
            count = len(self.baseline[who])
        before, head, at = await self._begin()
        replies, deleted = await self.send(user, action.does, count)
        cell = Cell(action, who, user.id, None, "", at, deleted=deleted)
        cell.texts = [_shape(m.text or m.message.get("caption", "")) for m in replies]
        cell.buttons = [m.callback_data for m in replies]
        cell.photo = next((m.photo for m in replies if m.photo is not None), None)
        await self._finish(cell, before, head, user)

    async def press(
        self,
        action: Action,
        who: Who,
        message: SentMessage,
        data: str,
        *,
        about: tuple[str, ...] = (),
        user: SimUser | None = None,
    ) -> None:
        user = user or self.user(who)
        before, head, at = await self._begin()
        was = self.now_in_chat(message.chat_id, message.message_id)
        update = self.standin.press_button(user, message.message, data)
        query = update["callback_query"]["id"]
        await self.standin.wait_for(lambda: query in self.standin.answered_callbacks, within=WITHIN)
        # Answered first, edited after: an allowed press, or any answer to a question,
        # changes the message; a refused alert press must leave it (watched a moment).
        changes_message = action.neutral is Neutral.THANKS or who in action.allowed
        changes_message = changes_message and action.does != CLEAR  # Clear asks; buttons stay
        if changes_message:
            await self.standin.wait_for(
                lambda: self.now_in_chat(message.chat_id, message.message_id) != was,
                within=WITHIN,
            )
        else:
            await asyncio.sleep(GRACE)
        cell = Cell(action, who, user.id, None, "", at, about=about)
        cell.answer = self.standin.callback_answers[query]
        cell.pressed_before = was
        cell.pressed_after = self.now_in_chat(message.chat_id, message.message_id)
        await self._finish(cell, before, head, user)

    async def step(self, message: SentMessage, data: str) -> None:
        """The relative presses a button to reach the next step of a question (a flag
        before its confirmation, Yes before the labels): no cell of its own."""
        self.last = None
        was = self.now_in_chat(message.chat_id, message.message_id)
        self.standin.press_button(self.users[Who.RELATIVE], message.message, data)
        await self.standin.wait_for(
            lambda: self.now_in_chat(message.chat_id, message.message_id) != was, within=WITHIN
        )
        await self.settle()

    async def alert_to_activist(self, starts: str) -> SentMessage:
        activist = ROLE_IDS[Who.ACTIVIST]

        def found() -> SentMessage | None:
            return next(
                (
                    m
                    for m in self.standin.sent
                    if m.chat_id == activist and (m.text or "").startswith(starts)
                ),
                None,
            )

        await self.standin.wait_for(lambda: found() is not None, within=WITHIN)
        message = found()
        assert message is not None
        # Pressed once the bot has recorded which alerts it carries, as a person would.
        for _attempt in range(200):
            if await self.flips_under(message):
                return message
            await asyncio.sleep(0.05)
        raise AssertionError("the alert was never recorded as sent")

    async def questions(self, asks: str, count: int) -> list[SentMessage]:
        """The relative sends ``count`` notes at once; the question the bot asks about each."""
        self.last = None
        relative = self.users[Who.RELATIVE]
        mark = len(self.standin.sent)
        for _note in range(count):
            self.notes += 1
            self.standin.send_text(relative, f"note {self.notes}")

        def asked() -> list[SentMessage]:
            return [m for m in self.said_to(relative.id, mark) if m.text == EN(asks)]

        await self.standin.wait_for(lambda: len(asked()) >= count, within=WITHIN)
        await self.settle()
        return asked()

    async def keyboards(self, roles: Sequence[Who]) -> list[tuple[SimUser, SentMessage]]:
        """Each asks for /language at once (an unknown is a newcomer); their keyboards."""
        self.last = None
        mark = len(self.standin.sent)
        users = [self.user(who) for who in roles]
        for user in users:
            self.standin.send_text(user, "/language")

        def keyboard(user: SimUser) -> SentMessage | None:
            buttons = [f"lang:{code}" for code in LANGUAGES]  # asked in their language
            return next(
                (m for m in self.said_to(user.id, mark) if m.callback_data == buttons), None
            )

        await self.standin.wait_for(lambda: all(keyboard(u) for u in users), within=WITHIN)
        await self.settle()
        return [(u, k) for u in users if (k := keyboard(u)) is not None]

    # ----------------------------------------------------------------- the script

    async def run(self) -> None:
        await self.settle()
        digest = await self.alert_to_activist("4 alerts:")
        for who in Who:
            replies, _deleted = await self.send(self.user(who), "/nonsense PINE-7", 2)
            self.baseline[who] = [_shape(m.text or "") for m in replies]

        # Alert buttons, under the alerts PINE-7's activist got.
        await self.go_silent("PINE-7", "ASH-1")
        silent = {
            ACK: await self.alert_to_activist("⚠ Alert: PINE-7 is SILENT"),
            CLAIM: await self.alert_to_activist("⚠ Alert: ASH-1 is SILENT"),
            ACK_ALL: digest,
        }
        silent[CLEAR] = silent[ACK]  # pressed first: Acknowledge then closes the buttons
        for action_id in ("alert-clear", "alert-ack-all", "alert-ack", "alert-claim"):
            action = ACTIONS[action_id]
            message = silent[action.does]
            flips = await self.flips_under(message)
            for who in self.order(action):
                await self.press(action, who, message, action.does, about=flips)

        # The relative's answers to "Did this come from them?", each under a question of
        # its own (an answer closes the question). The confirmation of a flag is pressed
        # under a question the relative flagged first.
        confirming = [(ACTIONS[f"confirm-{c}"], c) for c in ("n", "y", "f", "F")]
        asked = iter(await self.questions(texts.FOLLOW_UP, len(confirming) * len(Who)))
        for action, code in confirming:
            for who in self.order(action):
                question = next(asked)
                if code == "F":
                    [flag] = [d for d in question.callback_data if d.endswith(":f")]
                    await self.step(question, flag)
                [data] = [d for d in question.callback_data if d.endswith(f":{code}")]
                await self.press(action, who, question, data, about=_about(data))

        # Commands.
        for action in TABLE:
            if action.is_button:
                continue
            for who in self.order(action):
                await self.prepare(action)
                await self.command(action, who)

        # The language buttons, each under a /language keyboard in the presser's own chat.
        for action_id in ("lang-ko", "lang-en"):
            action = ACTIONS[action_id]
            roles = self.order(action)
            for who, (user, keyboard) in zip(roles, await self.keyboards(roles), strict=True):
                await self.press(action, who, keyboard, action.does, user=user)

        # "Which group is this about?": the relative now forwards for two groups.
        self.last = None
        async with self.sessions() as session, session.begin():
            relative = await find_person(
                session, server=self.server, telegram_id=ROLE_IDS[Who.RELATIVE]
            )
            oak = await get_group(session, codename="OAK-2")
            assert relative is not None
            session.add(RoleGrant(person_id=relative.id, role=Role.RELATIVE, group_id=oak.id))
        action = ACTIONS["which-group"]
        pine = _short(uuid.UUID((await self.group_ids())["PINE-7"]))
        roles = self.order(action)
        for who, question in zip(
            roles, await self.questions(texts.FOLLOW_UP, len(roles)), strict=True
        ):
            # "Yes" first, by the relative: the labels of their two groups follow.
            [yes] = [d for d in question.callback_data if d.endswith(":y")]
            await self.step(question, yes)
            [data] = [d for d in question.callback_data if f":{pine}:" in d]
            await self.press(action, who, question, data, about=_about(data))

    async def prepare(self, action: Action) -> None:
        """The state in which the action would change something."""
        pine = await self.pine()
        warning = pine.status in (Status.SILENT, Status.DETAINED)
        if action.id == "resume" and pine.status is not Status.PAUSED:
            await self.set_pine(Status.PAUSED, "paused")
        elif (action.id, pine.status) in (("detained", Status.DETAINED), ("safe", Status.SAFE)):
            await self.set_pine(Status.PAUSED, "paused")  # a way out that alerts nobody
        elif action.id in ("pause", "safe") and warning:
            # One person acts at once only on a group that is not a warning (bot.acts);
            # test_coercion.py plays the two-person case in depth.
            await self.set_pine(Status.PAUSED, "paused")
        elif action.id == "clear" and not warning:
            await self.set_pine(Status.DETAINED, "duress")


# --------------------------------------------------------------------------- the run


@contextlib.asynccontextmanager
async def _database(backend: str, folder: Path) -> AsyncIterator[str]:
    """A fresh, migrated database (as tests/conftest.py makes one, for the module)."""
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{folder / 'intake.db'}"
        async with open_database(url):
            pass
        yield url
        return
    admin_url = make_url(os.environ[PG_ENV]).set(drivername="postgresql+asyncpg")
    name = f"intake_test_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = admin_url.set(database=name).render_as_string(hide_password=False)
    try:
        async with open_database(url):
            pass
        yield url
    finally:
        async with admin.connect() as conn:
            await conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.dispose()


async def _install(folder: Path, standin: TelegramStandIn, url: str) -> Installation:
    installation = await install(folder, standin=standin, database_url=url, extra=EXTRA)
    # Replies stay for the run (the questions' buttons are pressed after them).
    config = folder / "config.toml"
    text = config.read_text().replace('receipt_ttl = "1s"', 'receipt_ttl = "1h"')
    config.write_text(text.replace('question_ttl = "1s"', 'question_ttl = "1h"'))
    installation.settings = load_settings(config)
    server = ServerKeys(installation.settings.server_secret_bytes())
    now = utc_now()
    async with (
        open_database(url, migrate_to_head=False) as engine,
        session_factory(engine)() as session,
        session.begin(),
    ):
        groups = {}
        for codename in ("PINE-7", "OAK-2", "ASH-1", *DIGESTED):
            groups[codename] = group = await create_group(
                session, codename=codename, schedule=SCHEDULE, kem=KemName.X25519, now=now
            )
            # The digested groups fall SILENT as the bot starts, together: one digest.
            at = now - SILENT_FOR if codename in DIGESTED else now
            await record_signal(
                session, group=group, signal=Signal.CHECKIN, at=at, source="test", now=now
            )
        await add_leg(session, server=server, group=groups["PINE-7"], name="Qingdao", now=now)
        grants: list[tuple[Who, Role, tuple[str, ...]]] = [
            (Who.RELATIVE, Role.RELATIVE, ("PINE-7",)),
            (Who.OTHER_ACTIVIST, Role.ACTIVIST, ("OAK-2",)),
            (Who.ACTIVIST, Role.ACTIVIST, ("PINE-7", "ASH-1", *DIGESTED)),
            (Who.OPERATOR, Role.OPERATOR, ()),
            (Who.ADMIN, Role.ADMIN, ()),
            (Who.REVOKED, Role.ACTIVIST, ("PINE-7", "ASH-1")),
            (Who.REVOKED, Role.ADMIN, ()),
        ]
        for who, role, codenames in grants:
            person = await get_or_create_person(
                session, server=server, telegram_id=ROLE_IDS[who], chat_id=ROLE_IDS[who], now=now
            )
            for named in codenames or (None,):
                of = groups[named].id if named else None
                revoked = now if who is Who.REVOKED else None
                session.add(
                    RoleGrant(person_id=person.id, role=role, group_id=of, revoked_at=revoked)
                )
    return installation


BACKENDS = ["sqlite", "postgresql"] if os.environ.get(PG_ENV) else ["sqlite"]


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=BACKENDS)
async def observed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Observed]:
    folder = tmp_path_factory.mktemp(f"matrix-{request.param}")
    async with _database(request.param, folder) as url:
        standin = TelegramStandIn()
        await standin.start()
        try:
            installation = await _install(folder / "server", standin, url)
            async with open_database(url, migrate_to_head=False) as engine:
                matrix = Matrix(standin, installation, session_factory(engine))
                async with running_bot(installation, standin):
                    await matrix.run()
                yield Observed(
                    request.param,
                    matrix.cells,
                    matrix.baseline,
                    await matrix.group_ids(),
                    list(standin.errors),
                )
        finally:
            await standin.stop()


# --------------------------------------------------------------------------- what acting is

Check = Callable[[Cell, Observed], None]


def _count(cell: Cell, key: str) -> tuple[int, int]:
    before, after = cell.changes.get(key, (0, 0))
    return (0 if before == ABSENT else int(str(before))), (
        0 if after == ABSENT else int(str(after))
    )


def _pine_after(cell: Cell) -> GroupState:
    assert cell.pine is not None
    return cell.pine


def _new_flips(cell: Cell) -> list[object]:
    return [
        after
        for key, (before, after) in cell.changes.items()
        if key.startswith("flip ") and before == ABSENT
    ]


def _replied(text: str, *, buttons: Sequence[str] = ()) -> Check:
    """Answered with ``text`` (and these buttons); the command left the chat."""

    def check(cell: Cell, seen: Observed) -> None:
        assert cell.texts == [EN(text)]
        assert cell.buttons == [list(buttons)]
        assert cell.deleted

    return check


# Whose welcome and help are their role's (anyone else's are the neutral ones).
ROLE_WORDS = {Who.ADMIN: "admin", Who.ACTIVIST: "activist", Who.OTHER_ACTIVIST: "activist"}


def _by_role(words: Callable[[str | None, Callable[[str], str]], str]) -> Check:
    """Answered with the words for the person's role: an activist and an admin are
    greeted and helped as such, everyone else gets the neutral words."""

    def check(cell: Cell, seen: Observed) -> None:
        assert cell.texts == [words(ROLE_WORDS.get(cell.who), EN)]
        assert cell.buttons == [[]]
        assert cell.deleted

    return check


def _status(cell: Cell, seen: Observed) -> None:
    [reply] = cell.texts
    lines = [re.match(r"([A-Z]+-\d+): [A-Z]+ since ", line) for line in reply.splitlines()]
    assert all(lines), reply
    assert {m.group(1) for m in lines if m} == WATCHED[cell.who]


def _timezone(cell: Cell, seen: Observed) -> None:
    assert cell.texts == ["Times are now shown in Asia/Seoul (KST)."]
    assert cell.changes[f"tz {cell.person}"] == (ABSENT, "Asia/Seoul")


def _group(cell: Cell, seen: Observed) -> None:
    [reply] = cell.texts
    assert reply.startswith("PINE-7: ")
    assert " since " in reply


def _timeline(cell: Cell, seen: Observed) -> None:
    assert cell.photo is not None
    assert cell.photo.startswith(PNG)
    assert cell.texts[0].startswith("PINE-7: Up to ")


def _stage(cell: Cell, seen: Observed) -> None:
    assert cell.texts == ["PINE-7 is on the leg Qingdao."]
    before, after = _count(cell, f"events PINE-7 {Signal.STAGE} {BY_HAND}")
    assert after == before + 1
    assert _pine_after(cell).current_leg == 1


def _pause(cell: Cell, seen: Observed) -> None:
    assert cell.texts[0].startswith("PINE-7 is paused until")
    assert _pine_after(cell).status is Status.PAUSED
    assert [f[1] for f in _new_flips(cell) if isinstance(f, tuple)] == [Status.PAUSED]


def _resume(cell: Cell, seen: Observed) -> None:
    # A relative's earlier note may still be told as unconfirmed news (#14) meanwhile.
    said = [t for t in cell.texts if not t.startswith("Unconfirmed news")]
    assert said == ["PINE-7 follows its schedule again from now."]
    before, after = cell.changes["group PINE-7"]
    assert isinstance(before, GroupState)
    assert isinstance(after, GroupState)
    assert before.status is Status.PAUSED
    assert before.paused_until is not None
    assert before.paused_until > cell.at
    # The pause ends now, recorded as a resume: the schedule counts from now.
    assert after.paused_until is None
    assert (after.status, after.basis) == (Status.OK, "resumed")


def _marked(status: Status) -> Check:
    def check(cell: Cell, seen: Observed) -> None:
        assert cell.texts == [f"PINE-7 is marked {status.value}."]
        before, _after = cell.changes["group PINE-7"]
        assert isinstance(before, GroupState)
        assert before.status is not status
        assert (_pine_after(cell).status, _pine_after(cell).basis) == (status, "marked")

    return check


def _clear(cell: Cell, seen: Observed) -> None:
    """The first person asks (nothing changes); the second confirms (OK, cleared)."""
    [reply] = cell.texts
    # New requests, and the ones this act settled (an earlier one lapses once the status moved).
    acts = [a for k, (b, a) in cell.changes.items() if k.startswith("act ") and a != ABSENT]
    acts = [a for a in acts if not (isinstance(a, tuple) and a[2] == "lapsed")]
    if reply.startswith("PINE-7 stays DETAINED until a second person"):
        assert "group PINE-7" not in cell.changes
        assert acts == [(ActKind.CLEAR, cell.person, None)]
    else:
        assert reply == "PINE-7 is cleared: it follows its schedule again from now."
        assert (_pine_after(cell).status, _pine_after(cell).basis) == (Status.OK, "cleared")
        # a snapshot's act is (act, requested_by, outcome): see Matrix.snapshot
        [(kind, first, outcome)] = cast(list[tuple[object, object, object]], acts)
        assert (kind, outcome) == (ActKind.CLEAR, "confirmed")
        assert first != cell.person


def _clear_pressed(cell: Cell, seen: Observed) -> None:
    assert cell.answer is not None
    assert str(cell.answer.get("text")).startswith("PINE-7 stays SILENT until a second person")
    assert "group PINE-7" not in cell.changes
    assert [a for k, (b, a) in cell.changes.items() if k.startswith("act ")] == [
        (ActKind.CLEAR, cell.person, None)
    ]
    assert cell.pressed_after == cell.pressed_before  # the alert keeps its buttons


def _language(code: str) -> Check:
    def check(cell: Cell, seen: Observed) -> None:
        assert cell.answer is not None
        assert cell.pressed_after is not None
        assert cell.pressed_after["text"] == translator(code)(texts.LANGUAGE_SET)
        assert cell.language == code

    return check


def _acknowledged(answer: str, kind: str, flips: int) -> Check:
    """The alert's flips are acknowledged by the presser, and its buttons are gone."""

    def check(cell: Cell, seen: Observed) -> None:
        assert cell.answer is not None
        assert cell.answer.get("text") == EN(answer)
        assert cell.pressed_after is not None
        assert "reply_markup" not in cell.pressed_after
        # The alert keeps a line saying who answered it, and when.
        said = "took it on at" if kind == "claim" else "Acknowledged by"
        assert said in cell.pressed_after["text"].splitlines()[-1]
        assert len(cell.about) == flips
        for flip_id in cell.about:
            before, after = cell.changes[f"flip {flip_id}"]
            assert isinstance(before, tuple)
            assert isinstance(after, tuple)
            assert (before[2], after[2]) == (False, True)
        acks = sorted(
            after[0]
            for key, (before, after) in cell.changes.items()
            if key.startswith("ack ")
            and isinstance(after, tuple)
            and after[1] == cell.person
            and after[2] == kind
        )
        assert acks == sorted(cell.about)
        assert {(e.actor, e.action) for e in cell.audit} == {(cell.actor, f"alert.{kind}")}

    return check


def _asked_sure(cell: Cell, seen: Observed) -> None:
    assert cell.pressed_after is not None
    assert cell.pressed_after["text"] == EN(texts.SURE)
    assert cell.protected() == {}  # one tap records nothing


def _thanked(cell: Cell) -> None:
    assert cell.pressed_after is not None
    assert cell.pressed_after["text"] == EN(texts.THANKS)
    assert "reply_markup" not in cell.pressed_after


def _confirmed(signal: Signal | None) -> Check:
    def check(cell: Cell, seen: Observed) -> None:
        _thanked(cell)
        if signal is None:  # "just a note": nothing is recorded
            assert cell.protected() == {}
            return
        [message] = cell.about
        pine = seen.group_ids["PINE-7"]
        assert cell.changes[f"message {message}"] == (
            (pine, None, LinkReason.SOLE_GROUP),
            (pine, signal, LinkReason.SOLE_GROUP),
        )
        before, after = _count(cell, f"events PINE-7 {signal} relative")
        assert after == before + 1
        if signal is Signal.DETAINED:
            assert (_pine_after(cell).status, _pine_after(cell).basis) == (
                Status.DETAINED,
                "reported",
            )

    return check


def _chose_group(cell: Cell, seen: Observed) -> None:
    _thanked(cell)
    [message] = cell.about
    assert cell.changes[f"message {message}"] == (
        (None, None, None),
        (seen.group_ids["PINE-7"], Signal.CHECKIN, LinkReason.CHOSEN),
    )


ACTED: dict[str, Check] = {
    "start": _by_role(texts.welcome),
    "help": _by_role(texts.help_for),
    "language": _replied(texts.LANGUAGE_QUESTION, buttons=[f"lang:{code}" for code in LANGUAGES]),
    "wipe": _replied(texts.WIPED),
    "status": _status,
    "timezone": _timezone,
    "group": _group,
    "timeline": _timeline,
    "stage": _stage,
    "pause": _pause,
    "resume": _resume,
    "detained": _marked(Status.DETAINED),
    "safe": _marked(Status.SAFE),
    "clear": _clear,
    "alert-clear": _clear_pressed,
    "lang-ko": _language("ko"),
    "lang-en": _language("en"),
    "alert-ack": _acknowledged(texts.ACKNOWLEDGED, "acknowledge", 1),
    "alert-claim": _acknowledged(texts.CLAIMED_BY_YOU, "claim", 1),
    "alert-ack-all": _acknowledged(texts.ACKNOWLEDGED, "acknowledge", len(DIGESTED)),
    **{f"confirm-{code}": _confirmed(CONFIRM_CHOICES[code]) for code in ("n", "y", "F")},
    "confirm-f": _asked_sure,
    "which-group": _chose_group,
}


def _neutral(cell: Cell, seen: Observed) -> None:
    """A refused person gets what the action's neutral answer is, exactly."""
    if cell.action.neutral is Neutral.RECEIPT and cell.who in WATCHING:
        # An activist's or admin's command is answered as one (issue #14), not receipted.
        assert cell.texts == [EN(texts.NOT_AMONG_YOURS).format(codename="PINE-7")]
    elif cell.action.neutral is Neutral.RECEIPT:
        assert cell.texts == seen.baseline[cell.who]
        assert cell.texts[1] == EN(texts.FOLLOW_UP)
        assert cell.texts[0] == EN(texts.RECEIPT).format(ref="?")
        assert cell.deleted
    elif cell.action.neutral is Neutral.WELCOME:
        # Whatever the code was: an activist or an admin is greeted as one either way.
        assert cell.texts == [texts.welcome(ROLE_WORDS.get(cell.who), EN)]
        assert cell.deleted
    elif cell.action.neutral is Neutral.NOT_YOURS:
        assert cell.answer is not None
        assert cell.answer.get("text") == EN(texts.NOT_YOURS)
        assert cell.pressed_after == cell.pressed_before  # the alert keeps its buttons
    else:
        assert cell.action.neutral is Neutral.THANKS, "a refusal needs its neutral answer"
        _thanked(cell)


# --------------------------------------------------------------------------- the tests


def _cells(allowed: bool) -> list[Any]:
    return [
        pytest.param(action, who, id=f"{action.id}-{who}")
        for action in TABLE
        for who in Who
        if (who in action.allowed) is allowed
    ]


def test_the_table_has_every_command_and_every_button() -> None:
    application = ApplicationBuilder().token("1:" + "A" * 35).updater(None).build()
    handlers.register(application)
    registered: set[str] = set()
    patterns: list[re.Pattern[str]] = []
    for group in application.handlers.values():
        for handler in group:
            if isinstance(handler, CommandHandler):
                registered |= set(handler.commands)
            elif isinstance(handler, CallbackQueryHandler) and isinstance(
                handler.pattern, re.Pattern
            ):
                patterns.append(handler.pattern)
    assert {a.command for a in TABLE if a.command} == registered
    assert set(commands.ACTIONS) <= registered
    # Every callback the bot can put under a message, with its table entry and its handler.
    made = {
        ACK: ACK,
        CLAIM: CLAIM,
        ACK_ALL: ACK_ALL,
        CLEAR: CLEAR,
        **{f"lang:{code}": f"lang:{code}" for code in LANGUAGES},
        **{f"c:MESSAGE:{code}": f"c:{_short(uuid.uuid4())}:{code}" for code in CONFIRM_CHOICES},
        "g:MESSAGE:PINE-7:y": f"g:{_short(uuid.uuid4())}:{_short(uuid.uuid4())}:y",
    }
    assert set(made) == {a.does for a in TABLE if a.is_button}
    for data in made.values():
        assert sum(1 for p in patterns if p.match(data)) == 1, data


@pytest.mark.parametrize(("action", "who"), _cells(allowed=True))
def test_an_allowed_role_acts(observed: Observed, action: Action, who: Who) -> None:
    cell = observed.cells[(action.id, who)]
    ACTED[action.id](cell, observed)
    if action.command in commands.ACTIONS:  # commands.py: every use is an audit event
        assert (
            Audited(
                cell.actor,
                f"command.{action.command}",
                "PINE-7" if "PINE-7" in action.does else None,
                {"allowed": True},
            )
            in cell.audit
        )


@pytest.mark.parametrize(("action", "who"), _cells(allowed=False))
def test_a_refused_role_gets_the_neutral_answer_and_changes_nothing(
    observed: Observed, action: Action, who: Who
) -> None:
    cell = observed.cells[(action.id, who)]
    _neutral(cell, observed)
    assert cell.protected() == {}


@pytest.mark.parametrize(("action", "who"), _cells(allowed=False))
def test_a_refusal_is_audited(observed: Observed, action: Action, who: Who) -> None:
    cell = observed.cells[(action.id, who)]
    assert cell.refusal_audited(), cell.audit


def test_the_stand_in_saw_no_fault(observed: Observed) -> None:
    assert observed.standin_errors == []
