"""Promise 5: logs hold no message text, no identifier and no bot token, at any level.

A full run of ``intake run`` as a real process at ``[logging] level = "DEBUG"``, fed canary
texts, canary Telegram ids (sender, forward origin, a contact's user_id), a canary phone
number, a file, ``/start`` with a canary invite code (a real one and an unknown one), an
edit, and injected 429 and 500 answers to sendMessage and getUpdates. Everything the process
wrote to stdout and stderr is then searched for the canaries and for the token.
"""

from __future__ import annotations

import re
import time
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.standin import TelegramStandIn
from storage.crypto import ServerKeys
from storage.db import open_database, session_factory
from storage.models import Role
from storage.people import create_invite
from storage.timeutil import utc_now
from tests.bot.intake_harness import Installation, install
from tests.bot.test_crash import bot_process, wait_until
from tests.conftest import Database

SENDER = 7_351_902_468
ORIGIN_USER = 5_827_364_913
CONTACT_USER = 4_918_273_645
OTHER_SENDER = 7_351_902_479
PHONE = "+8613987654321"
LATITUDE, LONGITUDE = 41.765432, 128.345678
BOGUS_INVITE = "CanaryBogusInvite4Kq9Zt"

TEXTS = {
    "text": "CANARY-TEXT all fine at the hostel 7Q2",
    "forward": "CANARY-FORWARD moving at dawn 3Vb",
    "hidden": "CANARY-HIDDEN-FORWARD bus at six 8Hk",
    "caption": "CANARY-CAPTION the ticket 2Wd",
    "edit": "CANARY-EDITED all fine at the station 5Jm",
    "korean": "카나리아 잘 도착했어요 9Pz",
}
NAMES = {
    "sender first name": "Canarysenderfirst",
    "sender last name": "Canarysenderlast",
    "sender username": "canary_sender_qzx",
    "origin name": "Canaryoriginname",
    "hidden origin name": "CanaryHiddenName",
    "contact name": "Canarycontactname",
    "file name": "canary-file-Wq9.pdf",
    "file content": "canary-file-content-K3x",
}


@pytest.fixture
async def installation(
    tmp_path: Path, database: Database, standin: TelegramStandIn
) -> Installation:
    return await install(
        tmp_path / "server",
        standin=standin,
        database_url=database.url,
        # Messages stay in the chat so that one can be edited while the bot runs.
        extra='delete_forwarded = false\n[logging]\nlevel = "DEBUG"\n',
    )


async def real_invite(installation: Installation) -> str:
    settings = installation.settings
    async with (
        open_database(settings.database.url, migrate_to_head=False) as engine,
        session_factory(engine)() as session,
        session.begin(),
    ):
        _, code = await create_invite(
            session,
            server=ServerKeys(settings.server_secret_bytes()),
            role=Role.ADMIN,
            group=None,
            ttl=timedelta(days=1),
            now=utc_now(),
        )
    return code


async def processed(url: str) -> set[int]:
    async with open_database(url, migrate_to_head=False) as engine, engine.connect() as conn:
        marks = (await conn.execute(sa.text("SELECT update_id FROM processed_updates"))).scalars()
        return {int(u) for u in marks}


def find_leaks(output: str, canaries: dict[str, str]) -> dict[str, str]:
    """The canaries that occur in ``output``, with a line showing each."""
    leaks: dict[str, str] = {}
    lowered = output.casefold()
    for name, canary in canaries.items():
        at = lowered.find(canary.casefold())
        if at >= 0:
            start = output.rfind("\n", 0, at) + 1
            end = output.find("\n", at)
            leaks[name] = output[start : end if end >= 0 else None][:300]
    return leaks


async def test_a_full_debug_run_logs_no_text_no_identifier_and_no_token(
    standin: TelegramStandIn, installation: Installation
) -> None:
    invite = await real_invite(installation)
    me = standin.user(
        SENDER,
        NAMES["sender first name"],
        last_name=NAMES["sender last name"],
        username=NAMES["sender username"],
        language_code="en",
    )
    other = standin.user(OTHER_SENDER, "Relative", language_code="ko")
    origin = standin.user(ORIGIN_USER, NAMES["origin name"], username="canary_origin_vbn")
    now = int(time.time())

    # Queued while the bot is down (taken in by the drain)...
    first = standin.send_text(me, TEXTS["text"])
    early = [
        first,
        standin.send_text(me, f"/start {invite}"),
        standin.send_forward(me, TEXTS["forward"], origin=standin.origin_user(origin, now - 3600)),
        standin.send_contact(
            me, PHONE, NAMES["contact name"], user_id=CONTACT_USER, last_name="Canarycontactlast"
        ),
        standin.send_text(other, TEXTS["korean"]),
    ]
    # ...and Telegram's hiccups: the first getUpdates gets a 500, the next a 429; two
    # receipts get a 429 and a 500.
    standin.fail_next("getUpdates", status=500)
    standin.fail_next("getUpdates", status=429, retry_after=1)
    standin.fail_next("sendMessage", status=429, retry_after=1)
    standin.fail_next("sendMessage", status=500)

    async with bot_process(installation) as bot:
        await bot.start()
        await wait_until(
            standin,
            bot,
            lambda: standin.confirmed_update_ids() >= {u["update_id"] for u in early},
            within=60,
            what="the queued updates",
        )
        # Live, while it long-polls.
        document = standin.send_document(
            me,
            f"%PDF-1.4 {NAMES['file content']}".encode(),
            file_name=NAMES["file name"],
            mime_type="application/pdf",
            caption=TEXTS["caption"],
        )
        late = [
            document,
            standin.edit_text(me, first["message"]["message_id"], TEXTS["edit"]),
            standin.send_text(me, f"/start {BOGUS_INVITE}"),
            standin.send_forward(
                other,
                TEXTS["hidden"],
                origin=standin.origin_hidden_user(NAMES["hidden origin name"], now - 7200),
            ),
            standin.send_location(me, LATITUDE, LONGITUDE),
        ]
        # A 500 while it long-polls, too.
        standin.fail_next("getUpdates", status=500)
        everything = {u["update_id"] for u in early + late}
        await wait_until(
            standin,
            bot,
            lambda: standin.confirmed_update_ids() >= everything,
            within=60,
            what="the live updates",
        )
        assert document["message"]["document"]["file_id"] in standin.downloads
        # (An update is confirmed only after its reply handlers ran: all of it was logged.)
        assert await bot.stop() == 0, bot.output()[-3000:]
        output = bot.output()

    assert everything <= await processed(installation.settings.database.url)

    token = standin.token
    bot_id, _, secret_half = token.partition(":")
    file_meta = document["message"]["document"]
    canaries = {
        **{f"{k} text": v for k, v in TEXTS.items()},
        **NAMES,
        "sender id": str(SENDER),
        "other sender id": str(OTHER_SENDER),
        "forward origin id": str(ORIGIN_USER),
        "contact user_id": str(CONTACT_USER),
        "phone": PHONE,
        "phone without +": PHONE.removeprefix("+"),
        "phone national": PHONE.removeprefix("+86"),
        "latitude": str(LATITUDE),
        "longitude": str(LONGITUDE),
        "invite code": invite,
        "bogus invite code": BOGUS_INVITE,
        "file_id": file_meta["file_id"],
        "file_unique_id": file_meta["file_unique_id"],
        "token": token,
        "token's secret half": secret_half,
        "token's secret half, in part": secret_half[:16],
    }
    assert find_leaks(output, canaries) == {}

    # The test read real output: the bot's own lines, in the configured format.
    line = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) \S+: ")
    lines = [entry for entry in output.splitlines() if line.match(entry)]
    assert len(lines) >= 3, output[-3000:]
    assert any(" INFO bot.app: drained " in entry for entry in lines), output[-3000:]
    # The injected 500 on getUpdates shows as a warning without details.
    assert any(" WARNING bot.app: getUpdates failed " in entry for entry in lines), output[-3000:]
    # The failed receipts show as lines of the bot's own, without details.
    assert any(" INFO bot.handlers: a reply was not sent " in entry for entry in lines), output[
        -3000:
    ]
    assert bot_id  # the public half (the bot's id) may appear: it is the bot's, not a person's


def test_find_leaks_finds_what_is_there() -> None:
    """The search above would see a canary (case-insensitively) if one were written."""
    output = "2024-01-01 00:00:00,000 INFO bot: first\nsecond line Canary-Text here\n"
    assert find_leaks(output, {"t": "CANARY-TEXT", "u": "absent"}) == {
        "t": "second line Canary-Text here"
    }
