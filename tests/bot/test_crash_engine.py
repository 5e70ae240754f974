"""Crash test of the deadline engine and alert delivery: SIGKILL while flips and alerts
are being written loses no flip, doubles none, and loses no alert.

An installation of ``GROUPS`` groups whose check-ins all stopped hours ago (filled in bulk,
as bench/engine.py does), each with three activists: one of its own, and two regional
activists who each watch a whole region of groups (so that their alerts go out as
digests, one message for many groups, as in an outage). The first engine pass of the bot
flips every group OK → LATE → SILENT in one transaction and writes one SILENT alert for
each of its three activists; the sender then delivers them through the stand-in, at most
thirty messages a second. The bot runs as a real process (``intake run``) and is killed
with SIGKILL:

- while the engine pass is writing the flips: seen from outside as the SQLite rollback
  journal (the database runs with ``journal_mode=DELETE``) growing past what any small
  write makes, before a single alert went out;
- or after K alert messages reached the stand-in, once or several times in a row.

After each kill the test reads the database, then starts the bot again; in the end it
waits until every alert is delivered and stops the bot, and checks:

- every group has exactly its two flips (LATE, then SILENT), none lost, none doubled, and
  is SILENT;
- every (flip, recipient) has exactly one alert row, marked sent, with the Telegram
  message id of a message to that recipient about that group;
- every (flip, recipient) reached the stand-in at least once, and nobody else was told;
- no alert was sent again once its "sent" mark was committed; and an alert reached its
  recipient twice only if the kill fell after Telegram accepted it and before its "sent"
  mark was committed.

That last window is the product's design, stated in bot/alerts.py: "a row is marked sent
only after Telegram accepted it, so a crash in between sends it again rather than never
(at least once)". The Bot API has no idempotency key for sendMessage, so no order of
writes closes it: marking first would lose the alert instead. The test measures the
window (how many alerts were accepted but not yet marked at each kill, in how many
messages, and how many were sent twice) and prints it (run with -s); it asserts the
at-least-once promise, that a duplicate comes only from that window, and that the window
is what was in flight: the marks of the messages Telegram accepted are committed together
as soon as the previous commit ends (bot.alerts._SentMarks), so a kill repeats what
Telegram accepted during one commit, and the sender never has more than
``bot.alerts.MAX_UNMARKED`` (30) messages sent and not yet marked: asserted for each kill
(measured: 10 and 19 messages before that cap, 10 and 29 with it on a loaded machine; a
commit per message left 39).

After each restart the test records how long the first alert message took (the issue's
aim is 5 s; 15 s is asserted, a bound loose enough for a loaded machine and far below
the 60 s of ``storage.alerts.CLAIM_FOR`` that a kill used to cost) and the last. On SQLite
nothing waits for a claim: the file has one bot process, whose sender reads the outbox and
claims nothing (``storage.alerts.take_due``), so what is measured is the restarted
process's own start and first batch. On PostgreSQL, where senders claim, the claims of a
dead run are released at start and at every heartbeat: tests/bot/test_dead_runs.py.

Slow, and SQLite only (the journal is the flip-writing signal; tests/bot/test_crash.py
says why the crash tests are not repeated on PostgreSQL).
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from bot.alerts import MAX_UNMARKED
from bot.standin import SentMessage, TelegramStandIn
from storage.alerts import CLAIM_FOR
from storage.crypto import KemName, PrivateKey, ServerKeys
from storage.db import open_database, session_factory
from storage.models import (
    Alert,
    AlertPurpose,
    AlertState,
    Flip,
    Group,
    Person,
    Role,
    RoleGrant,
    ScheduleKind,
    Status,
)
from storage.people import chat_binding
from storage.timeutil import utc_now
from tests.bot.intake_harness import Installation, install
from tests.bot.test_crash import BotProcess, bot_process, wait_until

GROUPS = 300
REGIONS = 10  # of 30 groups each, watched by two regional activists
OWN_FIRST = 6_500_000_001  # the activist of group n is OWN_FIRST + n
REGIONAL_FIRST = 6_510_000_001  # region r: REGIONAL_FIRST + 2r and + 2r + 1
INTERVAL = timedelta(hours=1)
GRACE = timedelta(minutes=30)
DETAINED_AFTER = timedelta(days=30)  # SILENT, not DETAINED, when the bot looks
SILENT_FOR = timedelta(minutes=20)  # how long ago the grace ran out
CODENAME = re.compile(r"\bCRASH-\d{4}\b")
SILENT_ALERT = re.compile(r"(CRASH-\d{4}) is SILENT\b")
# The pass writes every group's row and a flip and alert rows for each: its rollback
# journal grows far past what a claim, a heartbeat or a start-up write makes (measured:
# see JOURNAL_BYTES below).
JOURNAL_BYTES = 64 * 1024
# Alerts due every 15 minutes and escalation after an hour (the defaults): no reminder
# or escalation falls inside the test, so every message to an activist is the first alert.
ALERTS = (
    '[alerts]\nrepeat_every = "15m"\nescalate_after = "1h"\n\n[display]\ntimezone = "Asia/Seoul"\n'
)
# Kill points mid-delivery: after this many alert messages at the stand-in (counted over
# all runs), one kill each. About 430 messages go out in all (300 to the groups' own
# activists, the rest singles and digests to the regional ones).
# The first alert after a restart comes within this many seconds.
FIRST_ALERT_WITHIN = 15.0
KILL_SCHEDULES = (
    pytest.param((1,), id="after-1st-alert"),
    pytest.param((100, 130), id="after-100-then-130-alerts"),
)


Key = tuple[int, str]  # (recipient's chat id, codename): one (flip, recipient)


@dataclass(frozen=True)
class World:
    installation: Installation
    url: str
    db_file: Path
    codenames: list[str]
    chat_of: dict[uuid.UUID, int]  # person id → Telegram chat id
    expected: frozenset[Key]

    @property
    def journal(self) -> Path:
        return self.db_file.with_name(self.db_file.name + "-journal")


@dataclass(frozen=True)
class Snapshot:
    """What the database holds about the flips and alerts."""

    flips: dict[str, list[Status]]  # codename → to_status, in order
    statuses: dict[str, Status]
    alert_rows: Counter[tuple[Key, AlertPurpose]]
    marked: dict[Key, int | None]  # SENT rows → their telegram_message_id
    pending: int


@dataclass(frozen=True)
class KillRecord:
    """One kill: what had reached the stand-in, and what the database had marked sent."""

    messages_before: int  # len(standin.sent) when the bot was started again
    accepted: frozenset[Key]
    marked: frozenset[Key]
    unmarked_messages: int  # messages of the killed run with an alert not marked sent
    first_after: float = 0.0  # seconds from the restart to the next alert message

    @property
    def window(self) -> frozenset[Key]:
        """Accepted by Telegram, not yet marked sent: these may be sent again."""
        return self.accepted - self.marked


def keys_in(messages: Iterable[SentMessage], chats: set[int]) -> Counter[Key]:
    """How many times each (chat, codename) was told about, over ``messages``."""
    counted: Counter[Key] = Counter()
    for message in messages:
        if message.chat_id in chats:
            for codename in CODENAME.findall(message.text or ""):
                counted[(message.chat_id, codename)] += 1
    return counted


def alert_messages(standin: TelegramStandIn, chats: set[int]) -> int:
    return sum(1 for m in standin.sent if m.chat_id in chats)


def alert_messages_in(messages: Iterable[SentMessage], chats: set[int]) -> int:
    return sum(1 for m in messages if m.chat_id in chats)


def at_least(standin: TelegramStandIn, chats: set[int], count: int) -> Callable[[], bool]:
    return lambda: alert_messages(standin, chats) >= count


async def build(tmp_path: Path, standin: TelegramStandIn, url: str | None = None) -> World:
    db_file = tmp_path / "intake.db"
    url = url or f"sqlite+aiosqlite:///{db_file}"
    installation = await install(
        tmp_path / "server", standin=standin, database_url=url, extra=ALERTS
    )
    server = ServerKeys(installation.settings.server_secret_bytes())
    now = utc_now()
    last = now - INTERVAL - GRACE - SILENT_FOR
    public_key = PrivateKey.generate(KemName.X25519).public_key().raw
    codenames = [f"CRASH-{n:04d}" for n in range(GROUPS)]
    groups: list[dict[str, Any]] = [
        {
            "id": uuid.uuid4(),
            "codename": codename,
            "schedule_kind": ScheduleKind.INTERVAL,
            "interval_s": int(INTERVAL.total_seconds()),
            "grace_s": int(GRACE.total_seconds()),
            "detained_after_s": int(DETAINED_AFTER.total_seconds()),
            "status": Status.OK,
            "status_since": last,
            "status_basis": "checked in",
            "last_checkin_at": last,
            "next_transition_at": last + INTERVAL,  # long past: due at the first pass
            "kem": KemName.X25519.value,
            "public_key": public_key,
            "created_at": last,
        }
        for codename in codenames
    ]
    people: list[dict[str, Any]] = []
    chat_of: dict[uuid.UUID, int] = {}

    def person(telegram_id: int) -> uuid.UUID:
        # As the bot stores an activist, but for the blind index of the Telegram id
        # (random here, as in bench/engine.py: nothing looks these people up, and the
        # real index is a deliberately slow Argon2id).
        person_id = uuid.uuid4()
        people.append(
            {
                "id": person_id,
                "telegram_index": uuid.uuid4().bytes + uuid.uuid4().bytes,
                "chat_sealed": server.seal(str(telegram_id).encode(), chat_binding(person_id)),
                "language": "en",
                "created_at": now,
            }
        )
        chat_of[person_id] = telegram_id
        standin.user(telegram_id, f"Activist {telegram_id}", language_code="en")
        return person_id

    regional = [person(REGIONAL_FIRST + n) for n in range(2 * REGIONS)]
    grants: list[dict[str, Any]] = []
    expected: set[Key] = set()
    for n, group in enumerate(groups):
        region = n % REGIONS
        for person_id in (person(OWN_FIRST + n), regional[2 * region], regional[2 * region + 1]):
            grants.append(
                {
                    "id": uuid.uuid4(),
                    "person_id": person_id,
                    "role": Role.ACTIVIST,
                    "group_id": group["id"],
                    "granted_at": now,
                }
            )
            expected.add((chat_of[person_id], group["codename"]))
    async with (
        open_database(url, migrate_to_head=False) as engine,
        session_factory(engine)() as session,
        session.begin(),
    ):
        connection = await session.connection()
        await connection.execute(sa.insert(Person), people)
        await connection.execute(sa.insert(Group), groups)
        await connection.execute(sa.insert(RoleGrant), grants)
    assert len(expected) == 3 * GROUPS
    return World(
        installation=installation,
        url=url,
        db_file=db_file,
        codenames=codenames,
        chat_of=chat_of,
        expected=frozenset(expected),
    )


async def snapshot(world: World) -> Snapshot:
    async with (
        open_database(world.url, migrate_to_head=False) as engine,
        session_factory(engine)() as session,
    ):
        flips: dict[str, list[Status]] = {c: [] for c in world.codenames}
        rows = await session.exec(
            select(Group.codename, Flip.to_status)
            .join(Flip, Flip.group_id == Group.id)
            .order_by(Group.codename, Flip.at, Flip.recorded_at)
        )
        for codename, to_status in rows.all():
            flips[codename].append(Status(to_status))
        groups = await session.exec(select(Group.codename, Group.status))
        statuses = {codename: Status(status) for codename, status in groups.all()}
        alert_rows: Counter[tuple[Key, AlertPurpose]] = Counter()
        marked: dict[Key, int | None] = {}
        pending = 0
        connection = await session.connection()
        alerts = await connection.execute(
            sa.select(
                Alert.recipient_id,
                Group.codename,
                Alert.purpose,
                Alert.state,
                Alert.telegram_message_id,
            )
            .join(Flip, Flip.id == Alert.flip_id)
            .join(Group, Group.id == Flip.group_id)
        )
        for recipient_id, codename, purpose, state, message_id in alerts.all():
            key = (world.chat_of.get(recipient_id, -1), codename)
            alert_rows[(key, AlertPurpose(purpose))] += 1
            if AlertState(state) is AlertState.SENT:
                marked[key] = message_id
            elif AlertState(state) is AlertState.PENDING:
                pending += 1
        return Snapshot(
            flips=flips, statuses=statuses, alert_rows=alert_rows, marked=marked, pending=pending
        )


async def kill_while_flips_are_written(bot: BotProcess, world: World) -> int:
    """SIGKILL once the engine pass's rollback journal is past ``JOURNAL_BYTES``; returns the
    journal's size as last seen before the kill."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + 120
    size = 0
    while loop.time() < give_up and not bot.exited():
        try:
            size = world.journal.stat().st_size
        except FileNotFoundError:
            size = 0
        if size >= JOURNAL_BYTES:
            await bot.kill()
            return size
        await asyncio.sleep(0.0005)
    raise AssertionError(
        f"never saw the engine pass's journal (last size {size})\n{bot.output()[-3000:]}"
    )


async def deliver_everything(
    bot: BotProcess, standin: TelegramStandIn, world: World, chats: set[int]
) -> float:
    """Wait until every expected alert reached the stand-in and the database has no pending
    row; returns the seconds that took."""
    started = time.monotonic()
    await wait_until(
        standin,
        bot,
        lambda: world.expected <= set(keys_in(standin.sent, chats)),
        within=CLAIM_FOR.total_seconds() + 90,
        what="every alert to be delivered",
    )
    took = time.monotonic() - started
    for _ in range(200):
        if (await snapshot(world)).pending == 0:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)  # anything sent twice would show by now
    assert await bot.stop() == 0, bot.output()[-3000:]
    return took


def check_final(
    final: Snapshot, world: World, standin: TelegramStandIn, chats: set[int]
) -> Counter[Key]:
    """What every case asserts in the end; returns how often each key was told."""
    # Flips: exactly LATE then SILENT for each group, none lost, none doubled.
    wrong = {c: f for c, f in final.flips.items() if f != [Status.LATE, Status.SILENT]}
    assert wrong == {}, (
        f"{len(wrong)} group(s) with the wrong flips, e.g. {list(wrong.items())[:3]}"
    )
    assert set(final.statuses.values()) == {Status.SILENT}
    # Alert rows: exactly one SILENT alert per (flip, recipient), each marked sent.
    assert {p for _, p in final.alert_rows} == {AlertPurpose.ALERT}
    rows = Counter({k: n for (k, _), n in final.alert_rows.items()})
    assert set(rows) == world.expected
    assert {k: n for k, n in rows.items() if n != 1} == {}
    assert final.pending == 0
    assert set(final.marked) == world.expected
    # Each row's Telegram message is one to that recipient about that group.
    by_id = {(m.chat_id, m.message_id): m for m in standin.sent}
    for key, message_id in final.marked.items():
        message = by_id.get((key[0], message_id or -1))
        assert message is not None, f"{key} marked sent as a message the stand-in never saw"
        assert key[1] in SILENT_ALERT.findall(message.text or "")
    # Messages: every activist message is a SILENT alert (single or digest), and every
    # (flip, recipient) was told at least once; nobody else was told anything.
    for message in standin.sent:
        if message.chat_id in chats:
            text = message.text or ""
            assert SILENT_ALERT.findall(text) == CODENAME.findall(text), text
            assert "Reminder" not in text
    told = keys_in(standin.sent, chats)
    assert set(told) == world.expected, "an alert was lost, or went to someone else"
    assert {m.chat_id for m in standin.sent} <= chats
    return told


@pytest.mark.slow
async def test_sigkill_while_the_engine_writes_flips_loses_and_doubles_nothing(
    tmp_path: Path, standin: TelegramStandIn
) -> None:
    world = await build(tmp_path, standin)
    chats = set(world.chat_of.values())
    async with bot_process(world.installation) as bot:
        await bot.start()
        journal_size = await kill_while_flips_are_written(bot, world)
        # The pass died inside its transaction: a commit would have deleted the journal.
        assert world.journal.exists()
        assert standin.sent == [], "an alert went out: the kill came after the pass"
        # Nothing of the pass is in the database (SQLite writes the database file only at
        # commit, after the journal): no flip, no alert row, no group half-flipped.
        at_kill = await snapshot(world)
        assert all(f == [] for f in at_kill.flips.values())
        assert set(at_kill.statuses.values()) == {Status.OK}
        assert at_kill.alert_rows == Counter()

        await bot.start()
        took = await deliver_everything(bot, standin, world, chats)
    final = await snapshot(world)
    told = check_final(final, world, standin, chats)
    # Nothing had reached Telegram before the kill: nothing may arrive twice.
    assert {k: n for k, n in told.items() if n != 1} == {}
    print(
        f"\nkilled with the pass's journal at {journal_size} bytes; after the restart every "
        f"alert ({len(world.expected)}, in {alert_messages(standin, chats)} messages) "
        f"was delivered in {took:.1f} s, none twice"
    )


@pytest.mark.slow
@pytest.mark.parametrize("kill_after", KILL_SCHEDULES)
async def test_sigkill_while_alerts_go_out_loses_none_and_repeats_only_unmarked_ones(
    tmp_path: Path, standin: TelegramStandIn, kill_after: tuple[int, ...]
) -> None:
    world = await build(tmp_path, standin)
    chats = set(world.chat_of.values())
    kills: list[KillRecord] = []
    run_began = 0  # the first message the running process sent
    async with bot_process(world.installation) as bot:
        await bot.start()
        for kill_at in kill_after:
            await wait_until(
                standin,
                bot,
                at_least(standin, chats, kill_at),
                within=CLAIM_FOR.total_seconds() + 60,
                what=f"{kill_at} alert messages",
            )
            await bot.kill()
            await asyncio.sleep(0.2)  # a request the bot sent just before dying lands
            at_kill = await snapshot(world)
            messages_before = len(standin.sent)
            accepted = frozenset(keys_in(standin.sent[:messages_before], chats))
            # The engine's pass committed whole: every flip and every alert row is there.
            assert all(f == [Status.LATE, Status.SILENT] for f in at_kill.flips.values())
            assert {k for k, _ in at_kill.alert_rows} == world.expected
            # Nothing is marked sent that Telegram did not accept.
            assert set(at_kill.marked) <= accepted
            assert len(accepted) < len(world.expected), "the kill came after every alert"
            record = KillRecord(
                messages_before=messages_before,
                accepted=accepted,
                marked=frozenset(at_kill.marked),
                # Of the messages this run sent (since the last restart).
                unmarked_messages=sum(
                    1
                    for m in standin.sent[run_began:messages_before]
                    if set(keys_in([m], chats)) - set(at_kill.marked)
                ),
            )
            await bot.start()
            restarted = time.monotonic()
            run_began = messages_before

            def alerted_again(before: int = messages_before) -> bool:
                return alert_messages(standin, chats) > alert_messages_in(
                    standin.sent[:before], chats
                )

            await wait_until(
                standin,
                bot,
                alerted_again,
                within=CLAIM_FOR.total_seconds() + 60,
                what="the first alert after the restart",
            )
            kills.append(replace(record, first_after=time.monotonic() - restarted))
        await deliver_everything(bot, standin, world, chats)
        last_took = time.monotonic() - restarted
    final = await snapshot(world)
    told = check_final(final, world, standin, chats)

    # Once its "sent" mark was committed, an alert was never sent again.
    for record in kills:
        later = keys_in(standin.sent[record.messages_before :], chats)
        again = record.marked & set(later)
        assert again == set(), f"{len(again)} alert(s) sent again after being marked sent"
    # Sent more than once only if some kill fell between Telegram's accepting it and its
    # mark (the at-least-once window of bot/alerts.py).
    windows: frozenset[Key] = frozenset().union(*(r.window for r in kills))
    twice = {k for k, n in told.items() if n > 1}
    assert twice <= windows, f"sent twice outside the window: {sorted(twice - windows)[:5]}"
    # And at most once more for each run that could have sent it again.
    assert max(told.values()) <= len(kills) + 1
    # What a kill repeated is at most what was in flight at it: alerts Telegram had taken
    # whose mark was not yet committed (how many messages that was is printed below).
    for record in kills:
        repeated = set(keys_in(standin.sent[record.messages_before :], chats)) & record.accepted
        assert repeated <= record.window
    # And in messages, at most the sender's cap on messages sent and not yet marked
    # (a commit per message left 39 at one kill).
    assert all(r.unmarked_messages <= MAX_UNMARKED for r in kills), [
        r.unmarked_messages for r in kills
    ]
    # Seconds after the restart, not the minute a claim lasts (the aim is 5 s, measured
    # 3.6-5.4 s; the bound leaves room for a loaded machine).
    assert all(r.first_after < FIRST_ALERT_WITHIN for r in kills), [r.first_after for r in kills]
    print(
        f"\nkills after {kill_after} alert messages; at each kill, alerts accepted by the "
        f"stand-in but not yet marked sent: {[len(r.window) for r in kills]} (in "
        f"{[r.unmarked_messages for r in kills]} messages); (flip, recipient) told twice: "
        f"{len(twice)} of {len(world.expected)}; {alert_messages(standin, chats)} messages "
        f"in all; the first alert came {[round(r.first_after, 1) for r in kills]} s after "
        f"each restart (aim: 5 s), the last {last_took:.1f} s after the last restart"
    )
