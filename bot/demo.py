"""``intake demo``: the story of the seed article, played in under a minute.

Everything is real except Telegram and the clock: a fresh installation in a
folder (config, server secret, SQLite database, an operator key), the local
Telegram stand-in, and the bot itself (``bot.app.serve``, the code of
``intake run``). Time is compressed: the group is due every few seconds.
The folder is left behind so the reader can run ``intake status``,
``intake inbox list``, ``intake audit verify`` and ``intake timeline PINE-7`` on it
afterwards.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from bot import texts
from bot.alerts import CLEAR as CLEAR_BUTTON
from bot.app import serve
from bot.config import Settings, load_settings
from bot.i18n import LANGUAGES, translator
from bot.standin import SentMessage, SimUser, TelegramStandIn, origin_hidden_user
from storage import audit, keyfile
from storage.codebook import add_phrase
from storage.crypto import KemName, PrivateKey, ServerKeys, SigningKey
from storage.db import open_database, session_factory
from storage.groups import Schedule, create_group, get_group
from storage.legs import add_leg
from storage.members import add_member
from storage.messages import open_message
from storage.models import Group, IdentifierKind, Message, Role, Signal, Status
from storage.operators import add_operator
from storage.people import create_invite
from storage.sealing import Keyring
from storage.session import AsyncSession
from storage.timeutil import utc_now
from storage.trust import OperatorIdentity, Signers, bind_installation, signers_path

DEMO_PASSPHRASE = "pine seven crosses the river"  # noqa: S105 (printed for the reader)
ACTOR = "demo"
RELATIVE, JIWOO, TAEMIN, DESK = 7_100_000_001, 7_100_000_002, 7_100_000_003, 7_100_000_004
MEMBER_PHONE = "+86 138 0013 8000"
LEGS = ("Ryanggang", "Qingdao", "Kunming", "Laos border")
TRAVELLERS = (
    "Mi-rae K",
    "Kim Y",
    "Park S",
    "Lee H",
    "Choi J",
    "Jung M",
    "Kang D",
    "Yoon E",
    "Jang B",
    "Lim C",
    "Hana (child)",
)
CHECK_IN, STAGE, CAUGHT = "the tea is warm", "the persimmons are ripe", "잡혔어요"
# Compressed time: due every 5 s, 3 s of grace, DETAINED after 20 s of silence
# (the relative's report comes first); unacknowledged alerts escalate after 3 s.
SCHEDULE = Schedule(
    interval=timedelta(seconds=5), grace=timedelta(seconds=3), detained_after=timedelta(seconds=20)
)
CONFIG = """# Made by `intake demo`: the local Telegram stand-in is gone once the demo ends,
# so `intake run` with this file has nothing to talk to; every other command works.
[telegram]
token = "file:token"
base_url = "{base_url}"
file_base_url = "{file_base_url}"
username = "checkin_intake_demo_bot"

[database]
url = "sqlite+aiosqlite:///{folder}/intake.db"

[keys]
server_secret = "file:server_secret"

[alerts]
repeat_every = "30s"
escalate_after = "3s"

[display]
timezone = "Asia/Seoul"

[intake]
receipt_ttl = "2s"
"""


class DemoFailed(Exception):
    """A step of the story did not happen in time."""


@dataclass
class Narration:
    """What the demo said, in order (its test reads this)."""

    say: Callable[[str], None]
    started: float = field(default_factory=time.monotonic)
    lines: list[str] = field(default_factory=list)

    def __call__(self, text: str) -> None:
        line = f"[{time.monotonic() - self.started:5.1f}s] {text}"
        self.lines.append(line)
        self.say(line)


async def _until(condition: Callable[[], bool], what: str, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise DemoFailed(f"the demo stopped: {what} did not happen within {within:.0f}s")
        await asyncio.sleep(0.05)


@dataclass
class Cast:
    standin: TelegramStandIn
    relative: SimUser
    jiwoo: SimUser
    taemin: SimUser
    desk: SimUser
    settings: Settings
    key: PrivateKey
    invites: dict[str, str]

    def said_to(self, user: SimUser, after: int = 0) -> list[str]:
        return [m.text or "" for m in self.standin.sent[after:] if m.chat_id == user.id]


async def play(folder: Path, say: Callable[[str], None]) -> Narration:
    """Set up ``folder`` and play the story; returns what was narrated."""
    tell = Narration(say)
    async with TelegramStandIn() as standin:
        cast = await _install(folder, standin, tell)
        stop = asyncio.Event()
        bot = asyncio.create_task(serve(cast.settings, stop=stop))
        try:
            await _until(lambda: "getUpdates" in standin.calls or bot.done(), "the bot's start")
            if bot.done():
                bot.result()
            tell("The bot is running (the same code as `intake run`), against a local Telegram.")
            await _story(cast, tell)
        finally:
            stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                async with asyncio.timeout(30):
                    await bot
    await _operator_reads(cast, tell)
    return tell


def _write_files(folder: Path, standin: TelegramStandIn) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "config.toml"
    if config.exists():
        raise DemoFailed(f"{folder} already holds an installation; choose an empty folder")
    secret = base64.urlsafe_b64encode(ServerKeys.generate_secret()).decode()
    text = CONFIG.format(
        base_url=standin.base_url, file_base_url=standin.file_base_url, folder=folder.resolve()
    )
    for path, content in (
        (folder / "token", standin.token),
        (folder / "server_secret", secret + "\n"),
        (config, text),
    ):
        path.write_text(content)
        path.chmod(0o600)
    return config


async def _install(folder: Path, standin: TelegramStandIn, tell: Narration) -> Cast:
    settings = load_settings(_write_files(folder, standin))
    server = ServerKeys(settings.server_secret_bytes())
    key = PrivateKey.generate(KemName.MLKEM768_X25519)
    signing = SigningKey.generate()
    keyfile.write(folder / "operator.key", keyfile.lock(key, DEMO_PASSPHRASE, signing=signing))
    now = utc_now()
    codes: dict[str, str] = {}
    async with open_database(settings.database.url) as engine:
        bind_installation(engine, secret=settings.server_secret_bytes(), config_dir=folder)
        async with session_factory(engine)() as session, session.begin():
            await _populate(session, server, key, signing, codes, now)
    # The operator's signing key is pinned, as `intake operator add` does: the bot uses
    # the group keys and codebook meanings above because this key signed them.
    signers = Signers()
    signers.pin(key.public_key().fingerprint(), signing.verify_key())
    signers.save(signers_path(folder))
    tell(f"Installed in {folder}: config, server secret, SQLite database, operator key.")
    tell("Group PINE-7: ten adults and a child, route " + " → ".join(LEGS) + ".")
    tell(f'Its codebook: a check-in phrase, a stage phrase for Kunming; "{CAUGHT}" means caught.')
    cast = Cast(
        standin=standin,
        relative=standin.user(RELATIVE, "Sister in Seoul", language_code="ko"),
        jiwoo=standin.user(JIWOO, "Ji-woo", language_code="en"),
        taemin=standin.user(TAEMIN, "Tae-min", language_code="en"),
        desk=standin.user(DESK, "Desk", language_code="en"),
        settings=settings,
        key=key,
        invites=codes,
    )
    return cast


async def _populate(
    session: AsyncSession,
    server: ServerKeys,
    key: PrivateKey,
    signing: SigningKey,
    codes: dict[str, str],
    now: datetime,
) -> None:
    """The demo's installation: its operator, groups, travellers, codebook and invites,
    everything the bot trusts signed with the operator's signing key."""
    await audit.append(session, actor=ACTOR, action="init", at=now)
    await add_operator(
        session,
        server=server,
        public_key=key.public_key(),
        name="Operator",
        now=now,
        identity=OperatorIdentity.make(key, signing),
    )
    pine = await create_group(
        session,
        codename="PINE-7",
        schedule=SCHEDULE,
        kem=KemName.MLKEM768_X25519,
        now=now,
        signing=signing,
    )
    oak = await create_group(
        session,
        codename="OAK-2",
        schedule=SCHEDULE,
        kem=KemName.MLKEM768_X25519,
        now=now,
        signing=signing,
    )
    legs = {
        name: await add_leg(session, server=server, group=pine, name=name, now=now) for name in LEGS
    }
    for n, name in enumerate(TRAVELLERS):
        identifiers = [(IdentifierKind.HIDDEN_NAME, name)]
        if n == 0:
            identifiers.append((IdentifierKind.PHONE, MEMBER_PHONE))
        await add_member(
            session,
            server=server,
            group=pine,
            identifiers=identifiers,
            name=name,
            notes=None,
            now=now,
        )
    await add_phrase(
        session,
        server=server,
        group=pine,
        phrase=CHECK_IN,
        means=Signal.CHECKIN,
        now=now,
        signing=signing,
    )
    await add_phrase(
        session,
        server=server,
        group=pine,
        phrase=STAGE,
        means=Signal.STAGE,
        leg_id=legs["Kunming"].id,
        now=now,
        signing=signing,
    )
    await add_phrase(
        session,
        server=server,
        group=None,
        phrase=CAUGHT,
        means=Signal.DETAINED,
        now=now,
        signing=signing,
    )
    for who, role, group, label in (
        ("relative", Role.RELATIVE, pine, None),
        ("jiwoo", Role.ACTIVIST, pine, "Ji-woo"),
        ("taemin", Role.ACTIVIST, oak, "Tae-min"),
        ("desk", Role.ADMIN, None, "Desk"),
    ):
        _, codes[who] = await create_invite(
            session,
            server=server,
            role=role,
            group=group,
            ttl=timedelta(hours=1),
            now=now,
            label=label,
        )


async def _story(cast: Cast, tell: Narration) -> None:
    standin = cast.standin
    codes = cast.invites
    for user, who, label in (
        (cast.relative, "relative", "The sister in Seoul (relative of PINE-7)"),
        (cast.jiwoo, "jiwoo", "Ji-woo (activist for PINE-7)"),
        (cast.taemin, "taemin", "Tae-min (activist for another group, OAK-2)"),
        (cast.desk, "desk", "The organisation's desk (an admin)"),
    ):
        await _welcome(cast, user, codes[who])
        tell(f"{label} redeems an invite; the bot answers: {cast.said_to(user)[-1]!r}")

    async def forward(text: str, note: str, hidden: bool = True) -> None:
        mark = len(standin.sent)
        if hidden:
            standin.send_forward(
                cast.relative, text, origin=origin_hidden_user("Mi-rae K", utc_now())
            )
        else:
            standin.send_text(cast.relative, text)
        # The previous message's follow-up question may land after ``mark``: the
        # receipt is the first reply that is not that question.
        questions = {translator(language)(texts.FOLLOW_UP) for language in LANGUAGES}

        def receipts() -> list[str]:
            return [t for t in cast.said_to(cast.relative, mark) if t not in questions]

        await _until(lambda: bool(receipts()), "a receipt")
        await _until(lambda: len(standin.deleted) > 0, "the forwarded message's deletion")
        tell(f"The sister forwards {note}: {text!r}")
        tell(f"  the bot replies {receipts()[0]!r} and deletes her message")

    await forward(CHECK_IN, "Mi-rae's check-in from Qingdao")
    await _reach(cast, Status.OK)
    tell("  PINE-7 is OK.")
    await forward(STAGE, "a stage phrase from Kunming")
    await forward(
        f"[SMS {MEMBER_PHONE}] 버스 안이에요. 다 괜찮아요",
        "a pasted SMS from the minibus",
        hidden=False,
    )
    tell("Then nothing: the group is crossing to Laos, and falls silent.")
    await _reach(cast, Status.LATE)
    tell("  PINE-7 is LATE: its check-in is due and not here (no one is alerted yet).")
    mark = len(standin.sent)
    await _until(lambda: any("SILENT" in t for t in cast.said_to(cast.jiwoo, mark)), "SILENT")
    alert = next(
        m for m in standin.sent[mark:] if m.chat_id == JIWOO and "SILENT" in (m.text or "")
    )
    tell("  SILENT: Ji-woo is alerted:\n    " + (alert.text or "").replace("\n", "\n    "))
    await _until(lambda: any("SILENT" in t for t in cast.said_to(cast.taemin, mark)), "escalation")
    tell(
        "  No one acknowledged within 3 s: the alert escalates to every activist; Tae-min gets it."
    )
    standin.press_button(cast.jiwoo, alert.message, "al:ack")
    await _until(lambda: bool(standin.answered_callbacks), "the acknowledgement")
    tell("  Ji-woo presses Acknowledge; the repeats stop.")
    mark = len(standin.sent)
    await forward(
        f"엄마, 우리 {CAUGHT}. 국경에서", 'a message in Korean: "we were caught"', hidden=False
    )
    await _reach(cast, Status.DETAINED)
    await _until(
        lambda: any("DETAINED" in t for t in cast.said_to(cast.taemin, mark)), "DETAINED alert"
    )
    detained = next(t for t in cast.said_to(cast.jiwoo, mark) if "DETAINED" in t)
    tell(
        "  DETAINED, as reported by a relative; every activist is told:\n    "
        + detained.replace("\n", "\n    ")
    )
    await _forced_all_is_well(cast, tell, forward)


def _detained_alert(text: str) -> bool:
    """An alert (first, reminder or escalated, alone or in a digest) about PINE-7 being
    DETAINED."""
    return "⚠" in text and "PINE-7 is DETAINED" in text


def _clear_button(standin: TelegramStandIn, user: SimUser) -> SentMessage | None:
    """The newest message to ``user`` still showing a Clear button under an alert about
    PINE-7 being DETAINED. A digest of several alerts (#19) has one button that
    acknowledges them all and no Clear; an acknowledged alert has no buttons left (#17)."""
    for sent in reversed(standin.sent):
        if (
            sent.chat_id == user.id
            and not sent.deleted
            and CLEAR_BUTTON in sent.callback_data
            and _detained_alert(sent.text or "")
        ):
            return sent
    return None


async def _forced_all_is_well(
    cast: Cast, tell: Narration, forward: Callable[[str, str], Awaitable[None]]
) -> None:
    """Captors force the group to send its check-in phrase: the report stands,
    and only two people clear it (PRODUCT promise 7)."""
    standin = cast.standin
    mark = len(standin.sent)
    await forward(CHECK_IN, 'the check-in phrase again, forced by the captors ("all is well")')
    await _until(
        lambda: any("after the" in t for t in cast.said_to(cast.jiwoo, mark)), "the notice"
    )
    notice = next(t for t in cast.said_to(cast.jiwoo, mark) if "after the" in t)
    await _reach(cast, Status.DETAINED)
    tell(f"  PINE-7 stays DETAINED; no all-clear. Ji-woo is told: {notice!r}")

    async def press_clear(user: SimUser, name: str) -> str:
        """``user`` presses Clear under their DETAINED alert (the same as /clear). When it
        came only in a digest (whose one button acknowledges them all), the alert's next
        reminder, within ``repeat_every``, brings the button."""
        await _until(lambda: _clear_button(standin, user) is not None, "a Clear button", 40.0)
        alert = _clear_button(standin, user)
        assert alert is not None  # noqa: S101 (just waited for)
        press = standin.press_button(user, alert.message, CLEAR_BUTTON)
        query = press["callback_query"]["id"]
        await _until(lambda: query in standin.answered_callbacks, "the button's answer")
        answer = str(standin.callback_answers[query].get("text", ""))
        tell(f"{name} presses Clear under the alert; the bot answers: {answer!r}")
        return answer

    mark = len(standin.sent)
    await press_clear(cast.jiwoo, "Ji-woo")
    await _until(lambda: any("asked to" in t for t in cast.said_to(cast.desk, mark)), "a notice")
    asked = next(t for t in cast.said_to(cast.desk, mark) if "asked to" in t)
    tell(f"  PINE-7 is still DETAINED. The desk is told at once: {asked!r}")
    await _until(lambda: any(_detained_alert(t) for t in cast.said_to(cast.desk)), "the alert")
    await press_clear(cast.desk, "The desk, a second person,")
    await _reach(cast, Status.OK)
    await _until(lambda: any("✓" in t for t in cast.said_to(cast.jiwoo, mark)), "the all-clear")
    tell("  Two people agreed: PINE-7 is OK again, and everyone alerted gets the all-clear.")


async def _welcome(cast: Cast, user: SimUser, code: str) -> None:
    mark = len(cast.standin.sent)
    cast.standin.send_text(user, f"/start {code}")
    await _until(lambda: bool(cast.said_to(user, mark)), "a welcome")


async def _reach(cast: Cast, status: Status, within: float = 20.0) -> None:
    """Wait until the engine has flipped PINE-7 to ``status`` (read from the database)."""
    deadline = time.monotonic() + within
    async with open_database(cast.settings.database.url, migrate_to_head=False) as engine:
        while True:
            async with session_factory(engine)() as session:
                if (await get_group(session, codename="PINE-7")).status is status:
                    return
            if time.monotonic() > deadline:
                raise DemoFailed(f"the demo stopped: PINE-7 did not become {status.value}")
            await asyncio.sleep(0.1)


async def _operator_reads(cast: Cast, tell: Narration) -> None:
    url = cast.settings.database.url
    async with open_database(url) as engine, session_factory(engine)() as session:
        bind_installation(
            engine, secret=cast.settings.server_secret_bytes(), config_dir=cast.settings.config_dir
        )
        keyring = await Keyring.for_key(session, cast.key)
        rows = (await session.exec(select(Message).order_by(Message.received_at))).all()
        tell(
            f"The operator opens the sealed inbox with the key file and the passphrase "
            f'"{DEMO_PASSPHRASE}": {len(rows)} messages.'
        )
        for row in rows:
            body = await open_message(session, keyring, row)
            text = str(body.get("text") or body.get("caption") or "")
            tell(f"  {row.received_at:%H:%M:%S} {row.signal or '-':<9} {text[:60]}")
        head = await audit.verify(session)
        tell(f"The audit chain verifies: {head.seq} entries, head {head.hash.hex()[:16]}.")
        group: Group = await get_group(session, codename="PINE-7")
        tell(f"PINE-7 is {group.status.value} ({group.status_basis}).")
