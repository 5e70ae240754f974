"""``intake inbox`` end to end: messages taken in by the real bot from the local
Telegram stand-in, then read, marked, noted, linked and exported by the operator
with the real command line (as processes), on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.standin import TelegramStandIn
from storage import keyfile
from storage.age_export import decrypt_with
from storage.codebook import add_phrase
from storage.crypto import KemName, PassphraseCost, ServerKeys
from storage.db import open_database, session_factory
from storage.groups import Schedule, create_group, get_group
from storage.models import AuditEvent, Group, KeyWrap, Role, Signal
from storage.people import create_invite, get_or_create_person, redeem_invite
from storage.timeutil import utc_now
from storage.trust import OperatorIdentity
from tests.bot.intake_harness import Installation, eventually, install, running_bot
from tests.bot.test_cli import Ran, assert_ok, assert_one_line_error, base_env, mode
from tests.conftest import Database
from tests.storage.scan import database_bytes, find, text_encodings

PASSPHRASE = "pine seven crosses the river"
UNLOCKED = {"INTAKE_PASSPHRASE": PASSPHRASE}
RELATIVE = 6_100_200_301
STRANGER = 6_900_000_777
SCHEDULE = Schedule(
    interval=timedelta(hours=12), grace=timedelta(hours=2), detained_after=timedelta(days=2)
)
CAPTION = "canary-caption 버스표 사진"
STRANGER_TEXT = "canary-stranger: please tell my brother the boat leaves at dawn, at dawn!"
NOTE = "canary-note: called the sister back"
PHOTO = b"\xff\xd8\xff canary jpeg bytes" * 50


def run_intake(*args: str, cwd: Path, env: Mapping[str, str] | None = None, stdin: str = "") -> Ran:
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        cwd=cwd,
        env=base_env(env or {}),
        input=stdin.encode(),
        capture_output=True,
        timeout=180,
        check=False,
    )
    return Ran(tuple(args), done.returncode, done.stdout.decode(), done.stderr.decode())


async def taken_in(
    installation: Installation,
    standin: TelegramStandIn,
    *,
    photo: bytes = PHOTO,
    strangers_texts: tuple[str, ...] = (STRANGER_TEXT,),
) -> None:
    """Through the real bot: a check-in phrase, a photo, an edit, and a stranger's text."""
    settings = installation.settings
    server = ServerKeys(settings.server_secret_bytes())
    now = utc_now()
    async with (
        open_database(settings.database.url) as engine,
        session_factory(engine)() as session,
        session.begin(),
    ):
        pine = await create_group(
            session, codename="PINE-7", schedule=SCHEDULE, kem=KemName.X25519, now=now
        )
        await create_group(
            session, codename="OAK-2", schedule=SCHEDULE, kem=KemName.X25519, now=now
        )
        await add_phrase(
            session,
            server=server,
            group=pine,
            phrase="the tea is warm",
            means=Signal.CHECKIN,
            now=now,
        )
        person = await get_or_create_person(
            session, server=server, telegram_id=RELATIVE, chat_id=RELATIVE, now=now
        )
        _, code = await create_invite(
            session, server=server, role=Role.RELATIVE, group=pine, ttl=timedelta(days=1), now=now
        )
        await redeem_invite(session, server=server, code=code, person=person, now=now)
    mother = standin.user(RELATIVE, language_code="en")
    stranger = standin.user(STRANGER, language_code="en")
    async with running_bot(installation, standin):
        sends: tuple[Callable[[], dict[str, Any]], ...] = (
            lambda: standin.send_text(mother, "Mum, the tea is warm today"),
            lambda: standin.send_photo(mother, photo, caption=CAPTION),
            lambda: standin.send_text(mother, "at the station"),
        )
        for send in sends:
            update = send()

            await standin.wait_confirmed([update["update_id"]], within=15)
        station = update["message"]["message_id"]
        edit = standin.edit_text(mother, station, "at the bus station")
        await eventually(lambda: edit["update_id"] in standin.confirmed_update_ids())
        for text in strangers_texts:
            last = standin.send_text(stranger, text)

            await standin.wait_confirmed([last["update_id"]], within=15)


async def add_oak_phrase(installation: Installation, phrase: str) -> None:
    settings = installation.settings
    async with (
        open_database(settings.database.url, migrate_to_head=False) as engine,
        session_factory(engine)() as session,
        session.begin(),
    ):
        oak = await get_group(session, codename="OAK-2")
        await add_phrase(
            session,
            server=ServerKeys(settings.server_secret_bytes()),
            group=oak,
            phrase=phrase,
            means=Signal.CHECKIN,
            now=utc_now(),
        )


async def wraps_of(installation: Installation, message_id: str) -> set[tuple[str | None, bool]]:
    """Who each wrap of a message's key is for: (codename, or None for an operator)."""
    async with (
        open_database(installation.settings.database.url, migrate_to_head=False) as engine,
        session_factory(engine)() as session,
    ):
        wraps = (
            await session.exec(select(KeyWrap).where(KeyWrap.subject_id == uuid.UUID(message_id)))
        ).all()
        codenames = {g.id: g.codename for g in (await session.exec(select(Group))).all()}
        return {
            (codenames[w.group_id] if w.group_id else None, w.operator_id is not None)
            for w in wraps
        }


async def audit_rows(installation: Installation) -> list[AuditEvent]:
    async with (
        open_database(installation.settings.database.url, migrate_to_head=False) as engine,
        session_factory(engine)() as session,
    ):
        query = select(AuditEvent).where(AuditEvent.action.startswith("inbox."))
        return list((await session.exec(query.order_by(AuditEvent.seq))).all())


def age_decrypt(tool: str, *, identity: Path, file: Path) -> str:
    opened = subprocess.run(
        [tool, "-d", "-i", str(identity), str(file)], capture_output=True, check=True, timeout=30
    )
    return opened.stdout.decode()


def lines_of(ran: Ran) -> list[dict[str, Any]]:
    assert_ok(ran)
    return [json.loads(line) for line in ran.stdout.splitlines()]


async def test_an_operator_reads_marks_notes_links_and_exports_what_the_bot_took_in(
    tmp_path: Path, database: Database, standin: TelegramStandIn
) -> None:
    installation = await install(
        tmp_path / "server",
        standin=standin,
        database_url=database.url,
        extra="delete_forwarded = false",  # so that the relative can still edit
    )
    await taken_in(installation, standin)
    home = tmp_path / "operator"
    home.mkdir()
    cheap = PassphraseCost(memory_kib=8192, iterations=1, lanes=1)
    keyfile.write(home / "operator.key", keyfile.lock(installation.operator_key, PASSPHRASE, cheap))
    config = str(installation.path / "config.toml")
    fingerprint = installation.operator_key.public_key().fingerprint()

    def inbox(*args: str, stdin: str = "") -> Ran:
        return run_intake(
            "inbox",
            *args,
            "--config",
            config,
            cwd=home,
            env={**UNLOCKED, "INTAKE_KEY": "operator.key"},
            stdin=stdin,
        )

    # ---- list: newest first, whole texts in JSON, pseudonyms for forwarders
    listed = lines_of(inbox("list", "--format", "json"))
    assert [m["text"] for m in listed] == [
        STRANGER_TEXT,
        "at the bus station",
        "at the station",
        CAPTION,
        "Mum, the tea is warm today",
    ]
    stranger_msg, edited, original, photo, tea = listed
    assert [m["group"] for m in listed] == [None, "PINE-7", "PINE-7", "PINE-7", "PINE-7"]
    assert tea["signal"] == "checkin"
    assert tea["link_reason"] is not None
    assert (edited["version"], edited["previous_id"]) == (2, original["id"])
    assert photo["kind"] == "photo"
    assert photo["attachments"] == 1
    assert len({m["forwarder"] for m in listed}) == 2
    assert all(m["forwarder"].startswith("P-") for m in listed)
    assert all(str(RELATIVE) not in m["forwarder"] for m in listed)
    table = inbox("list")
    assert_ok(table)
    assert photo["id"][:8] in table.stdout
    assert STRANGER_TEXT not in table.stdout  # shortened...
    assert STRANGER_TEXT[:40] in table.stdout  # ...on one line
    # Times in the installation's zone (UTC here) or the root's --tz, the zone named.
    received = datetime.fromisoformat(photo["received_at"])
    [heading] = [line for line in table.stdout.splitlines() if line.strip().startswith("id")]
    assert "sent (UTC)" in heading, table.stdout
    assert "received (UTC)" in heading, table.stdout
    [row] = [line for line in table.stdout.splitlines() if photo["id"][:8] in line]
    assert f"{received.astimezone(UTC):%m-%d %H:%M}" in row, table.stdout
    seoul = run_intake(
        "--tz",
        "Asia/Seoul",
        "inbox",
        "list",
        "--config",
        config,
        cwd=home,
        env={**UNLOCKED, "INTAKE_KEY": "operator.key"},
    )
    assert_ok(seoul)
    [heading] = [line for line in seoul.stdout.splitlines() if line.strip().startswith("id")]
    assert "received (Asia/Seoul)" in heading, seoul.stdout
    [row] = [line for line in seoul.stdout.splitlines() if photo["id"][:8] in line]
    assert f"{received + timedelta(hours=9):%m-%d %H:%M}" in row, seoul.stdout
    assert [m["id"] for m in lines_of(inbox("list", "--unlinked", "--format", "json"))] == [
        stranger_msg["id"]
    ]
    assert (
        len(lines_of(inbox("list", "--group", "pine-7", "--since", "1h", "--format", "json"))) == 4
    )

    # ---- read: every version, the attachment written 0600 to the folder named, the timeline
    folder = home / "files"
    read = inbox("read", photo["id"][:8], "--attachments", str(folder))
    assert_ok(read)
    assert CAPTION in read.stdout
    [written] = list(folder.iterdir())
    assert written.read_bytes() == PHOTO
    assert mode(written) == 0o600
    assert mode(folder) == 0o700
    assert written.suffix == ".jpg"
    assert "checkin" in read.stdout.split("timeline:")[1]  # the check-in before it
    again = inbox("read", photo["id"][:8], "--attachments", str(folder))
    assert_one_line_error(again, "already exists")
    assert written.read_bytes() == PHOTO
    versions = json.loads(inbox("read", edited["id"], "--format", "json").stdout)
    assert [v["body"]["text"] for v in versions["versions"]] == [
        "at the station",
        "at the bus station",
    ]
    assert "checkin (phrase)" in [e["what"] for e in versions["timeline"]["before"]]

    # ---- seen (read marks it), star, note from standard input
    unread = lines_of(inbox("list", "--unread", "--format", "json"))
    assert {m["id"] for m in unread} == {stranger_msg["id"], original["id"], tea["id"]}
    assert inbox("star", stranger_msg["id"][:10]).stdout == "Starred.\n"
    assert inbox("seen", tea["id"][:8]).stdout == "Seen.\n"
    assert inbox("note", stranger_msg["id"][:8], "-", stdin=NOTE + "\n").stdout == "Note added.\n"
    assert [m["id"] for m in lines_of(inbox("list", "--starred", "--format", "json"))] == [
        stranger_msg["id"]
    ]

    # ---- link re-seals to the group alone; unlink gives it back to operators
    assert await wraps_of(installation, stranger_msg["id"]) == {(None, True)}
    # OAK-2's codebook gains a phrase the stranger's text holds: linking applies it (the
    # bot could not: the text was sealed before anyone knew its group).
    await add_oak_phrase(installation, "canary-stranger")
    linked = inbox("link", stranger_msg["id"][:8], "OAK-2")
    assert linked.stdout == "Linked to OAK-2. Its signal (checkin) was recorded for OAK-2.\n"
    assert await wraps_of(installation, stranger_msg["id"]) == {("OAK-2", False)}
    read = inbox("read", stranger_msg["id"][:8])
    assert_ok(read)
    assert f"note: {NOTE}" in read.stdout
    assert f"Operator ({fingerprint[:16]})" in read.stdout  # the author's name
    assert "canary-stranger" in read.stdout  # opened through OAK-2's key now
    assert_ok(inbox("unlink", stranger_msg["id"][:8]))
    assert await wraps_of(installation, stranger_msg["id"]) == {(None, True)}
    assert_ok(inbox("link", stranger_msg["id"][:8], "PINE-7"))
    relinked = lines_of(inbox("list", "--group", "PINE-7", "--format", "json"))[0]
    assert (relinked["id"], relinked["link_reason"]) == (stranger_msg["id"], "operator")
    assert inbox("link", stranger_msg["id"][:8], "PINE-7").stdout == "Already linked to PINE-7.\n"
    # The operator's own word, whatever the codebook says.
    said = inbox("link", stranger_msg["id"][:8], "PINE-7", "--as", "stage").stdout
    assert said == "Linked to PINE-7. Its signal (stage) was recorded for PINE-7.\n"
    assert_one_line_error(inbox("link", stranger_msg["id"][:8], "ELM-9"), "ELM-9")
    assert_one_line_error(inbox("read", "ffffff"), "no message id starts with ffffff")

    # ---- export: an age file that the age format opens with the operator's identity
    final = inbox("list", "--format", "json")
    exported = inbox("export", "--out", str(home / "inbox.age"))
    assert_ok(exported)
    assert mode(home / "inbox.age") == 0o600
    sealed = (home / "inbox.age").read_bytes()
    assert sealed.startswith(b"age-encryption.org/v1\n")
    assert b"canary" not in sealed
    identity = run_intake("keygen", "--age", "operator.key", cwd=home, env=UNLOCKED)
    assert_ok(identity)
    (home / "identity.txt").write_text(identity.stdout)
    exported_lines = decrypt_with(installation.operator_key, sealed).decode()
    records = [json.loads(line) for line in exported_lines.splitlines()]
    listed_now = lines_of(final)
    assert [
        {k: v for k, v in r.items() if k not in ("notes", "files")} for r in records
    ] == listed_now
    by_id = {r["id"]: r for r in records}
    [attached] = by_id[photo["id"]]["files"]
    assert base64.b64decode(attached["content_base64"]) == PHOTO
    assert attached["kind"] == "photo"
    [noted] = by_id[stranger_msg["id"]]["notes"]
    assert (noted["text"], noted["author"]) == (NOTE, "Operator")
    plain = inbox("export", "--group", "PINE-7", "--plaintext", "--out", str(home / "pine.jsonl"))
    assert "NOT encrypted" in plain.stderr
    assert len((home / "pine.jsonl").read_text().splitlines()) == 5
    assert_one_line_error(inbox("export", "--out", str(home / "pine.jsonl")), "already exists")

    # ---- every read, listing, export, link and note is audited by key, with no content
    rows = await audit_rows(installation)
    actions = [r.action for r in rows]
    for action in (
        "inbox.list",
        "inbox.read",
        "inbox.link",
        "inbox.unlink",
        "inbox.note",
        "inbox.export",
    ):
        assert action in actions, action
    assert actions.count("inbox.read") == 3  # the refused one left nothing
    assert {r.actor for r in rows} == {fingerprint[:16]}
    assert {r.subject for r in rows if r.action == "inbox.link"} == {stranger_msg["id"]}
    logged = json.dumps([[r.actor, r.subject, r.details] for r in rows], ensure_ascii=False)
    assert "canary" not in logged
    assert "P-" not in logged

    # ---- and nothing anyone wrote reached the database in clear
    files = await database_bytes(database)
    for canary in (CAPTION, STRANGER_TEXT[:30], NOTE, "at the bus station"):
        assert find(text_encodings(canary), files) == [], canary
    assert find([PHOTO[:24]], files) == []

    # ---- last, as it needs Debian's `age`: the real tool opens the export
    age = shutil.which("age")
    if age is None:
        pytest.skip("Debian's `age` is not on PATH (.ci/run installs it): the rest is checked")
    opened = age_decrypt(age, identity=home / "identity.txt", file=home / "inbox.age")
    assert opened == exported_lines
    assert [json.loads(x)["id"] for x in opened.splitlines()] == [m["id"] for m in listed]


def test_note_refuses_an_empty_note_before_asking_anything(tmp_path: Path) -> None:
    ran = run_intake("inbox", "note", "abcdef12", "-", cwd=tmp_path, stdin="  \n")
    assert_one_line_error(ran, "the note is empty")


def test_keygen_age_prints_the_identity_that_age_opens_exports_with(tmp_path: Path) -> None:
    made = run_intake(
        "keygen",
        "--out",
        "op.key",
        "--kem",
        "X25519",
        "--allow-classical",
        cwd=tmp_path,
        env=UNLOCKED,
    )
    assert_ok(made)
    identity = run_intake("keygen", "--age", "op.key", cwd=tmp_path, env=UNLOCKED)
    assert_ok(identity)
    assert identity.stdout.startswith("AGE-SECRET-KEY-1")
    assert len(identity.stdout.splitlines()) == 1
    assert "secret" in identity.stderr
    wrong = run_intake(
        "keygen", "--age", "op.key", cwd=tmp_path, env={"INTAKE_PASSPHRASE": "not it"}
    )
    assert_one_line_error(wrong)


HOSTILE = "canary-hostile \x1b]52;c;ZXZpbA==\x07\x1b[2J ALL SAFE \u202eefas\u202c \x9b31m"


async def test_the_command_line_shows_hostile_characters_as_marks_and_shreds_a_stranger(
    tmp_path: Path, database: Database, standin: TelegramStandIn
) -> None:
    if database.backend != "sqlite":
        pytest.skip("the inbox's storage is tested on both databases; this is the printing")
    installation = await install(
        tmp_path / "server",
        standin=standin,
        database_url=database.url,
        extra="delete_forwarded = false",
    )
    await taken_in(installation, standin, strangers_texts=(STRANGER_TEXT, HOSTILE + " arrested"))
    home = tmp_path / "operator"
    home.mkdir()
    cheap = PassphraseCost(memory_kib=8192, iterations=1, lanes=1)
    keyfile.write(home / "operator.key", keyfile.lock(installation.operator_key, PASSPHRASE, cheap))
    config = str(installation.path / "config.toml")

    def inbox(*args: str, env: Mapping[str, str] | None = None) -> Ran:
        return run_intake(
            "inbox",
            *args,
            "--config",
            config,
            cwd=home,
            env={**UNLOCKED, "INTAKE_KEY": "operator.key", **(env or {})},
        )

    # ---- list and read: marks instead of escapes, the danger flag as a column and a field
    table = inbox("list", env={"COLUMNS": "300"})
    assert_ok(table)
    assert "␛]52;c;ZXZpbA==␇␛[2J ALL SAFE ⟨RLO⟩efas" in table.stdout  # shortened
    for raw in ("\x1b", "\x07", "\u202e", "\x9b"):
        assert raw not in table.stdout
    [heading] = [line for line in table.stdout.splitlines() if line.strip().startswith("id")]
    assert "danger" in heading.split()
    [row] = [line for line in table.stdout.splitlines() if "canary-hostile" in line]
    assert " yes " in row  # the danger flag
    listed = lines_of(inbox("list", "--format", "json"))
    hostile = listed[0]
    assert hostile["danger"] is True
    assert hostile["text"] == HOSTILE + " arrested"  # the same data for a program...
    raw_json = inbox("list", "--format", "json").stdout
    assert "\u202e" not in raw_json  # ...with nothing a terminal obeys
    assert "\\u202e" in raw_json
    read = inbox("read", hostile["id"][:8])
    assert_ok(read)
    assert "␛]52;c;ZXZpbA==␇␛[2J ALL SAFE ⟨RLO⟩efas⟨PDF⟩ ⟨U+009B⟩31m arrested" in read.stdout
    assert "\x1b" not in read.stdout
    assert "{" not in read.stdout  # people-readable, no raw dictionaries
    photo = next(m for m in listed if m["kind"] == "photo")
    read_photo = inbox("read", photo["id"][:8])
    assert "{" not in read_photo.stdout
    assert "file size:" in read_photo.stdout or "size:" in read_photo.stdout

    # ---- a narrow terminal gets a table that fits it
    narrow = inbox("list", env={"COLUMNS": "80"})
    assert_ok(narrow)
    assert max(len(line) for line in narrow.stdout.splitlines()) <= 80

    # ---- shred every message of the stranger's pseudonym, confirmed, audited
    stranger = hostile["forwarder"]
    assert_one_line_error(
        run_intake(
            "inbox",
            "shred",
            "--from",
            stranger,
            "--config",
            config,
            cwd=home,
            env={**UNLOCKED, "INTAKE_KEY": "operator.key"},
            stdin="no\n",
        ),
        "not confirmed",
    )
    assert len([m for m in lines_of(inbox("list", "--format", "json"))]) == len(listed)
    shred = inbox("shred", "--from", stranger.lower(), "--yes")
    assert_ok(shred)
    assert "Shredded 2 message" in shred.stdout
    left = lines_of(inbox("list", "--format", "json"))
    assert stranger not in {m["forwarder"] for m in left}
    assert len(left) == len(listed) - 2
    one = inbox("shred", left[0]["id"][:8], "--yes")
    assert_ok(one)
    shredded = [r for r in await audit_rows(installation) if r.action == "inbox.shred"]
    assert len(shredded) == 3
    files = await database_bytes(database)
    assert find(text_encodings("canary-hostile"), files) == []


def test_keygen_shows_the_public_key_again_and_writes_the_age_identity_0600(
    tmp_path: Path,
) -> None:
    made = run_intake(
        "keygen",
        "--out",
        "op.key",
        "--kem",
        "X25519",
        "--allow-classical",
        cwd=tmp_path,
        env=UNLOCKED,
    )
    assert_ok(made)
    # The line carries the operator's signature (#15): the passphrase unlocks it again.
    shown = run_intake("keygen", "--show", "op.key", cwd=tmp_path, env=UNLOCKED)
    assert_ok(shown)
    # The same keys; the signature is made anew (ML-DSA signs with fresh randomness).
    again_made, again_shown = (OperatorIdentity.from_text(r.stdout.strip()) for r in (made, shown))
    assert again_shown.valid()
    assert again_shown.public_key.to_text() == again_made.public_key.to_text()
    assert again_shown.verify_key.to_text() == again_made.verify_key.to_text()
    # The fingerprint's line, not the first line: a classical key is warned about first,
    # and that warning's second word ("a") was looked for in the shown fingerprint's hex
    # digits; it failed when they held no "a" (one run in eight: CI saw it).
    [fingerprint] = [
        line.split()[1] for line in made.stderr.splitlines() if line.startswith("fingerprint ")
    ]
    assert shown.stderr.split() == ["fingerprint", fingerprint]
    written = run_intake(
        "keygen", "--age", "op.key", "--out", "identity.txt", cwd=tmp_path, env=UNLOCKED
    )
    assert_ok(written)
    assert mode(tmp_path / "identity.txt") == 0o600
    assert (tmp_path / "identity.txt").read_text().startswith("AGE-SECRET-KEY-1")
    assert "AGE-SECRET-KEY" not in written.stdout
    again = run_intake(
        "keygen", "--age", "op.key", "--out", "identity.txt", cwd=tmp_path, env=UNLOCKED
    )
    assert_one_line_error(again, "already exists")
