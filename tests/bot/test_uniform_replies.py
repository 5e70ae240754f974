"""Promise 4, as a property: whoever sends and whatever they send, the relative's chat
shows the same Bot API calls (issue #14).

One real bot runs against the stand-in; hypothesis draws senders (a stranger, a
relative of one group, a relative of two) and texts (a check-in phrase, a duress
phrase, an ordinary text), and every chat's record of calls must be the same
sequence apart from the reference: the same methods, texts, options and buttons,
the same deletions, at the same delays within a tolerance.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from bot.standin import ChatCall, SimUser, TelegramStandIn
from bot.standin.server import SentMessage
from storage.codebook import add_phrase
from storage.crypto import KemName, ServerKeys
from storage.db import open_database, session_factory
from storage.groups import Schedule, create_group
from storage.models import Role, Signal
from storage.people import create_invite, get_or_create_person, redeem_invite
from storage.timeutil import utc_now
from tests.bot.intake_harness import eventually, install, running_bot
from tests.conftest import Database

SCHEDULE = Schedule(
    interval=timedelta(hours=12), grace=timedelta(hours=2), detained_after=timedelta(days=2)
)
CHECKIN = "the tea is warm"
DURESS = "the rain has stopped"
SENDERS = ("stranger", "one group", "two groups")
POOL = 60  # enrolled relatives of each kind: one fresh chat per message
RECEIPT_TTL, QUESTION_TTL = 1.0, 2.0  # seconds, as configured below
PRESS_TTL = 6.0  # the question's lifetime where buttons are pressed
TOLERANCE = 1.5  # seconds: deletions are due to the whole second, on a shared machine
REF = re.compile(r"[0-9A-F]{6}$")
CALLBACK = re.compile(r"^([cg]):[A-Za-z0-9_-]{22}:")
# The same, inside a call's parameters as JSON (an edit's buttons).
CALLBACK_IN = re.compile(r"\b([cg]):[A-Za-z0-9_-]{22}:")


@dataclass
class Chats:
    standin: TelegramStandIn
    users: dict[str, itertools.count[int]]


@pytest.fixture
async def chats(tmp_path: Path, database: Database) -> AsyncIterator[Chats]:
    async with _chats(tmp_path, database, QUESTION_TTL) as running:
        yield running


@pytest.fixture
async def pressing_chats(tmp_path: Path, database: Database) -> AsyncIterator[Chats]:
    # Long enough to press three buttons before the question deletes itself.
    async with _chats(tmp_path, database, PRESS_TTL) as running:
        yield running


@contextlib.asynccontextmanager
async def _chats(tmp_path: Path, database: Database, question_ttl: float) -> AsyncIterator[Chats]:
    standin = TelegramStandIn()
    await standin.start()
    installation = await install(
        tmp_path / "server",
        standin=standin,
        database_url=database.url,
        question_ttl=f"{question_ttl:.0f}s",
    )
    server = ServerKeys(installation.settings.server_secret_bytes())
    now = utc_now()
    async with (
        open_database(installation.settings.database.url) as engine,
        session_factory(engine)() as session,
        session.begin(),
    ):
        pine = await create_group(
            session, codename="PINE-7", schedule=SCHEDULE, kem=KemName.X25519, now=now
        )
        oak = await create_group(
            session, codename="OAK-2", schedule=SCHEDULE, kem=KemName.X25519, now=now
        )
        for phrase, means in ((CHECKIN, Signal.CHECKIN), (DURESS, Signal.DURESS)):
            await add_phrase(
                session, server=server, group=pine, phrase=phrase, means=means, now=now
            )
        for groups, first in (([pine], 6_300_000_001), ([pine, oak], 6_400_000_001)):
            for telegram_id in range(first, first + POOL):
                person = await get_or_create_person(
                    session, server=server, telegram_id=telegram_id, chat_id=telegram_id, now=now
                )
                for label, group in enumerate(groups, start=1):
                    _, code = await create_invite(
                        session,
                        server=server,
                        role=Role.RELATIVE,
                        group=group,
                        ttl=timedelta(days=1),
                        now=now,
                        chat_label=str(label),
                    )
                    await redeem_invite(session, server=server, code=code, person=person, now=now)
    users = {
        "stranger": itertools.count(6_200_000_001),
        "one group": itertools.count(6_300_000_001),
        "two groups": itertools.count(6_400_000_001),
    }
    async with running_bot(installation, standin):
        yield Chats(standin, users)
    await standin.stop()


def _markup(value: Any) -> list[list[tuple[str, str]]] | None:
    """Buttons as (label, the callback's shape: its kind and choice, not the message id)."""
    if value is None:
        return None
    markup = json.loads(value) if isinstance(value, str) else value
    return [
        [(b["text"], CALLBACK.sub(r"\1:*:", b.get("callback_data", ""))) for b in row]
        for row in markup["inline_keyboard"]
    ]


def _view(calls: Sequence[ChatCall], typed: int) -> list[tuple[Any, ...]]:
    """The chat's calls as a border guard could compare them: message ids become the
    role of the message (the relative's own, or the bot's n-th), references are masked,
    and times become delays after the bot's message they delete."""
    mine: dict[int, str] = {typed: "typed"}
    sent_at: dict[str, float] = {"typed": calls[0].at if calls else 0.0}
    sent = 0
    view: list[tuple[Any, ...]] = []
    for call in calls:
        p = call.params
        if call.method == "sendMessage":
            sent += 1
            text = REF.sub("?", str(p.get("text", "")))
            view.append(
                (
                    call.method,
                    text,
                    p.get("protect_content"),
                    p.get("disable_notification"),
                    _markup(p.get("reply_markup")),
                )
            )
            sent_at[f"bot {sent}"] = call.at
        elif call.method in ("deleteMessage", "deleteMessages"):
            ids = p.get("message_ids") or [p.get("message_id")]
            roles = tuple(sorted(mine.get(i, "?") for i in ids))
            delays = tuple(round(call.at - sent_at.get(r, call.at), 1) for r in roles)
            view.append((call.method, roles, delays))
        else:
            # The chat's own id apart (each chat is another relative's).
            params = json.dumps({k: v for k, v in p.items() if k != "chat_id"}, sort_keys=True)
            view.append((call.method, CALLBACK_IN.sub(r"\1:*:", params)))
        if call.method == "sendMessage":
            # The stand-in numbers a chat's messages in order: the bot's n-th reply
            # follows the relative's message.
            mine[typed + sent] = f"bot {sent}"
    return view


def _same(views: list[list[tuple[Any, ...]]]) -> None:
    first = views[0]
    for view in views[1:]:
        assert len(view) == len(first), (first, view)
        for a, b in zip(first, view, strict=True):
            if a[0].startswith("delete"):
                assert a[:2] == b[:2], (first, view)
                for x, y in zip(a[2], b[2], strict=True):
                    assert abs(x - y) <= TOLERANCE, (first, view)
            else:
                assert a == b, (first, view)


async def _play(
    chats: Chats,
    drawn: Sequence[tuple[str, str]],
    presses: Sequence[Sequence[int]] = (),
    question_ttl: float = QUESTION_TTL,
) -> list[list[tuple[Any, ...]]]:
    """Each drawn sender sends the drawn text in a fresh chat; where ``presses`` is given,
    the buttons of those rows are pressed on its follow-up in turn, as long as it shows
    buttons."""
    standin = chats.standin
    sent: list[tuple[SimUser, int]] = []
    for sender, text in drawn:
        user = standin.user(next(chats.users[sender]), language_code="en")
        words = {"phrase": f"Mum, {CHECKIN} today", "duress": f"Mum, {DURESS} today"}
        update = standin.send_text(user, words.get(text, "we are waiting for the bus"))
        sent.append((user, update["message"]["message_id"]))

    def settled(user: SimUser) -> bool:
        # The relative's message and the bot's two replies deleted: the chat is done.
        return (
            standin.messages_in(user.id) == []
            and sum(
                1 for c in standin.chat_calls if c.chat_id == user.id and c.method == "sendMessage"
            )
            >= 2
        )

    for (user, _), rows in zip(sent, presses, strict=False):
        await _press(standin, user, rows)
    await eventually(lambda: all(settled(u) for u, _ in sent), within=question_ttl + 30.0)
    return [
        _view([c for c in standin.chat_calls if c.chat_id == user.id], typed)
        for user, typed in sent
    ]


def _moved_on(question: SentMessage, edits: int) -> bool:
    return question.edit_count > edits


async def _press(standin: TelegramStandIn, user: SimUser, rows: Sequence[int]) -> None:
    def question() -> SentMessage | None:
        return next((m for m in standin.sent if m.chat_id == user.id and m.reply_markup), None)

    await eventually(lambda: question() is not None)
    asked = question()
    assert asked is not None
    for row in rows:
        if not asked.callback_data:
            return  # the question ended ("Thank you."): nothing more to press
        standin.press_button(user, asked.message, asked.callback_data[row])
        await eventually(functools.partial(_moved_on, asked, asked.edit_count))


@settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    # Every example runs a real bot for seconds: a failure is reported as drawn, unshrunk.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    drawn=st.lists(
        st.tuples(st.sampled_from(SENDERS), st.sampled_from(("phrase", "duress", "nothing"))),
        min_size=2,
        max_size=4,
    )
)
async def test_every_sender_and_text_get_the_same_calls_in_their_chat(
    chats: Chats, drawn: list[tuple[str, str]]
) -> None:
    # A baseline that every draw is compared with: a stranger's ordinary text.
    views = await _play(chats, [("stranger", "nothing"), *drawn])
    _same(views)
    receipt, follow_up = (v for v in views[0] if v[0] == "sendMessage")
    assert receipt[1] == "Received, thank you. Ref ?"
    assert follow_up[1] == "Did this come from them?"
    assert follow_up[4] == [[("Yes", "c:*:y")], [("No", "c:*:n")], [("⚑", "c:*:f")]]
    deletions = {v[1]: v[2] for v in views[0] if v[0].startswith("delete")}
    assert set(deletions) == {("typed",), ("bot 1",), ("bot 2",)}
    assert abs(deletions[("bot 1",)][0] - RECEIPT_TTL) <= TOLERANCE
    assert abs(deletions[("bot 2",)][0] - QUESTION_TTL) <= TOLERANCE


# The presses of a follow-up: Yes then the first label offered; the flag, "sure", then
# the second label; No.
PATHS = {"yes": (0, 0), "flag": (2, 0, 1), "no": (1,)}


@settings(
    max_examples=4,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    drawn=st.lists(
        st.tuples(
            st.sampled_from(SENDERS),
            st.sampled_from(("phrase", "duress", "nothing")),
            st.sampled_from(tuple(PATHS)),
        ),
        min_size=2,
        max_size=4,
    )
)
async def test_the_steps_after_a_press_do_not_tell_what_was_sent(
    pressing_chats: Chats, drawn: list[tuple[str, str, str]]
) -> None:
    """After Yes, a confirmed flag or No, a relative's chat goes on the same way for a
    check-in phrase, a duress phrase and an ordinary text (a relative of two groups is
    asked "Which one?" for all three); a stranger's goes on as a one-group relative's."""
    # Baselines: an ordinary text of each kind of sender, on each drawn path.
    baselines = {(kind, path) for _, _, path in drawn for kind in ("stranger", "two groups")}
    played = [(kind, "nothing", path) for kind, path in sorted(baselines)] + drawn
    views = await _play(
        pressing_chats,
        [(sender, text) for sender, text, _ in played],
        [PATHS[path] for _, _, path in played],
        question_ttl=PRESS_TTL,
    )
    alike: dict[tuple[bool, str], list[list[tuple[Any, ...]]]] = {}
    for (sender, _, path), view in zip(played, views, strict=True):
        alike.setdefault((sender == "two groups", path), []).append(view)
    for (of_two, path), group in alike.items():
        _same(group)
        edits = [v[1] for v in group[0] if v[0] == "editMessageText"]
        if of_two and path != "no":
            assert any('"Which one?"' in e for e in edits), edits
        else:
            assert not any("Which one?" in e for e in edits), edits
