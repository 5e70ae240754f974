"""`intake audit verify` and `intake audit checkpoint` against a log an intruder with
the database has changed, removed, reordered, rewritten or cut: on SQLite and on
PostgreSQL, with the append-only triggers dropped first, as such an intruder would.
The intruder holds the database, not the server secret that keys the chain."""

from __future__ import annotations

import base64
import json
import re
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from storage import audit
from storage.audit import _entry_body
from storage.crypto import ServerKeys, sha256
from storage.models import AuditEvent
from storage.session import AsyncSession
from tests.bot.test_cli import (
    Call,
    Ran,
    assert_ok,
    assert_one_line_error,
    intake,
    intake_many,
    mode,
)
from tests.conftest import Database

T0 = datetime(2026, 8, 12, 3, 0, tzinfo=UTC)
ENTRIES = 5


@pytest.fixture
async def log(database: Database, engine: AsyncEngine, session: AsyncSession) -> None:
    """ENTRIES entries, and the append-only triggers dropped."""
    for i in range(ENTRIES):
        await audit.append(
            session,
            actor="admin@cli",
            action="group.add",
            subject=f"G-{i}",
            at=T0 + timedelta(minutes=i),
            details={"n": i},
        )
    await session.commit()
    await _drop_guards(database, engine)


@pytest.fixture
async def install(log: None, database: Database, tmp_path: Path, server_secret: bytes) -> Path:
    """An installation whose config points at the test database (and whose server
    secret is the one the entries were keyed with)."""
    folder = tmp_path / "server"
    folder.mkdir()
    assert_ok(intake("init", cwd=folder))
    (folder / "server_secret").write_text(base64.urlsafe_b64encode(server_secret).decode())
    config = folder / "config.toml"
    text, n = re.subn(
        r'^url = "sqlite:///intake.db"$',
        f'url = "{database.url}"',
        config.read_text(),
        flags=re.M,
    )
    assert n == 1
    config.write_text(text)
    return folder


async def _drop_guards(database: Database, engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        if database.backend == "sqlite":
            await conn.exec_driver_sql("DROP TRIGGER audit_events_no_update")
            await conn.exec_driver_sql("DROP TRIGGER audit_events_no_delete")
        else:
            await conn.exec_driver_sql("DROP TRIGGER audit_events_append_only ON audit_events")


async def _sql(engine: AsyncEngine, *statements: str, **params: object) -> None:
    async with engine.begin() as conn:
        for statement in statements:
            await conn.execute(sa.text(statement), params)


def _verify(folder: Path, checkpoint: str | None = None) -> Ran:
    extra = ("--checkpoint", checkpoint) if checkpoint else ()
    return intake("audit", "verify", *extra, cwd=folder)


def _broken(ran: Ran, reason: str) -> None:
    assert ran.returncode == 1, str(ran)
    assert "Traceback" not in ran.stderr, str(ran)
    assert ran.stdout.strip() == f"BROKEN: {reason}", str(ran)


async def test_verify_prints_the_head_that_checkpoint_prints(install: Path) -> None:
    checkpoint = intake("audit", "checkpoint", cwd=install)
    assert_ok(checkpoint)
    kept = checkpoint.stdout.strip()
    assert re.fullmatch(rf"{ENTRIES}:[0-9a-f]{{64}}", kept)
    ran = intake_many(
        {
            "verify": Call(("audit", "verify"), install),
            "against": Call(("audit", "verify", "--checkpoint", kept), install),
        }
    )
    assert_ok(ran["verify"])
    assert ran["verify"].stdout.strip() == (
        f"OK: {ENTRIES} entries, head {kept}; it matches all 1 recorded checkpoint(s)"
    )
    assert_ok(ran["against"])


async def test_a_changed_entry_is_named(install: Path, engine: AsyncEngine) -> None:
    await _sql(engine, "UPDATE audit_events SET subject = 'G-9' WHERE seq = 3")
    _broken(_verify(install), "entry 3 was altered")


async def test_a_deleted_entry_is_named(install: Path, engine: AsyncEngine) -> None:
    await _sql(engine, "DELETE FROM audit_events WHERE seq = 2")
    _broken(_verify(install), "entry 2 is missing (found 3)")


async def test_reordered_entries_are_named(install: Path, engine: AsyncEngine) -> None:
    await _sql(
        engine,
        "UPDATE audit_events SET seq = -1 WHERE seq = 2",
        "UPDATE audit_events SET seq = 2 WHERE seq = 4",
        "UPDATE audit_events SET seq = 4 WHERE seq = -1",
    )
    _broken(_verify(install), "entry 2 was altered")


async def test_a_cut_tail_is_caught_only_against_a_checkpoint(
    install: Path, engine: AsyncEngine
) -> None:
    kept = intake("audit", "checkpoint", cwd=install)
    assert_ok(kept)
    # Recorded beside the config as well, as the bot records its own checkpoints.
    recorded = (install / "audit_checkpoints").read_text()
    assert recorded.startswith(kept.stdout.strip() + " ")
    assert (install / "audit_checkpoints").stat().st_mode & 0o077 == 0
    await _sql(engine, "DELETE FROM audit_events WHERE seq >= 4")
    caught = _verify(install)
    assert caught.returncode == 1, str(caught)
    assert caught.stdout.startswith("BROKEN: the log ends at 3, before the checkpoint of "), caught
    assert caught.stdout.strip().endswith(f" UTC at {ENTRIES}"), str(caught)
    # Whoever cut the tail may have the server's file too: only the copy kept off the
    # server is left to catch it.
    (install / "audit_checkpoints").unlink()
    ran = intake_many(
        {
            "alone": Call(("audit", "verify"), install),
            "against": Call(("audit", "verify", "--checkpoint", kept.stdout.strip()), install),
        }
    )
    assert_ok(ran["alone"])  # what is left is a whole chain
    assert ran["alone"].stdout.startswith("OK: 3 entries")
    _broken(ran["against"], f"the log ends at 3, before the checkpoint at {ENTRIES}")


def _body(prev: bytes, event: AuditEvent, *, seq: int, details: str) -> bytes:
    """What an entry's hash covers, with the intruder's sequence number and details."""
    return _entry_body(
        prev,
        seq=seq,
        at=event.at,
        actor=event.actor,
        action=event.action,
        subject=event.subject,
        details=details,
    )


# How an intruder without the server secret may recompute the chain: with the old
# code's formula (SHA-256 of the previous hash and the entry), and with the keyed
# formula under a key of their own.
FORMULAS: dict[str, Callable[[bytes], bytes]] = {
    "old unkeyed sha256": sha256,
    "hmac with another key": ServerKeys(ServerKeys.generate_secret()).audit_mac,
}


@pytest.mark.parametrize("formula", FORMULAS)
@pytest.mark.parametrize("first", [1, 2])
async def test_a_chain_recomputed_without_the_key_is_caught(
    install: Path, engine: AsyncEngine, session: AsyncSession, formula: str, first: int
) -> None:
    # The intruder edits entry 2, deletes entry 4, renumbers and recomputes every hash
    # from entry ``first`` on (1: the whole chain).
    events = (await session.exec(select(AuditEvent).order_by(AuditEvent.seq))).all()
    await session.commit()
    await _sql(engine, "DELETE FROM audit_events WHERE seq = 4")
    kept = [e for e in events if e.seq != 4]
    prev = audit.GENESIS if first == 1 else kept[first - 2].hash
    for seq, event in enumerate(kept[first - 1 :], start=first):
        details = '{"n":99}' if event.seq == 2 else event.details
        digest = FORMULAS[formula](_body(prev, event, seq=seq, details=details))
        await _sql(
            engine,
            "UPDATE audit_events SET seq = :seq, details = :details, prev_hash = :prev, "
            "hash = :hash WHERE seq = :old",
            details=details,
            prev=prev,
            hash=digest,
            seq=seq,
            old=event.seq,
        )
        prev = digest
    ran = _verify(install)
    assert ran.returncode == 1, str(ran)
    assert ran.stdout.startswith("BROKEN: "), str(ran)
    if first == 1 and formula == "old unkeyed sha256":
        assert "none of the 4 entries is keyed" in ran.stdout
    else:
        assert f"entry {first} was altered" in ran.stdout


async def _rewrite_with_the_key(
    engine: AsyncEngine, session: AsyncSession, server: ServerKeys
) -> None:
    """Someone who holds the server secret (a seized running server) edits entry 2 and
    recomputes every hash after it: the chain alone verifies again."""
    events = (await session.exec(select(AuditEvent).order_by(AuditEvent.seq))).all()
    await session.commit()
    prev = events[0].hash
    for event in events[1:]:
        details = '{"n":99}' if event.seq == 2 else event.details
        digest = server.audit_mac(_body(prev, event, seq=event.seq, details=details))
        await _sql(
            engine,
            "UPDATE audit_events SET details = :details, prev_hash = :prev, hash = :hash "
            "WHERE seq = :seq",
            details=details,
            prev=prev,
            hash=digest,
            seq=event.seq,
        )
        prev = digest


async def test_a_rewritten_chain_is_caught_against_a_checkpoint(
    install: Path, engine: AsyncEngine, session: AsyncSession, server: ServerKeys
) -> None:
    kept = intake("audit", "checkpoint", cwd=install)
    assert_ok(kept)
    # Even a chain rewritten with the key is caught: by the head recorded beside the
    # config, and, if the rewriter took that file too, by the head kept off the server.
    await _rewrite_with_the_key(engine, session, server)
    caught = _verify(install)
    assert caught.returncode == 1, str(caught)
    assert caught.stdout.startswith(f"BROKEN: entry {ENTRIES} does not match the checkpoint of ")
    (install / "audit_checkpoints").unlink()
    ran = intake_many(
        {
            "alone": Call(("audit", "verify"), install),
            "against": Call(("audit", "verify", "--checkpoint", kept.stdout.strip()), install),
        }
    )
    assert_ok(ran["alone"])
    _broken(ran["against"], f"entry {ENTRIES} does not match the checkpoint")


TAKEN = datetime(2026, 8, 12, 4, 0, tzinfo=UTC)


async def _record(folder: Path, session: AsyncSession) -> audit.ChainHead:
    """What the bot does at each checkpoint: the head, appended to the server's file."""
    head = await audit.head(session)
    await session.commit()
    audit.record_checkpoint(audit.checkpoints_path(folder), head, at=TAKEN)
    return head


async def test_verify_checks_every_recorded_checkpoint_without_pasting(
    install: Path, engine: AsyncEngine, session: AsyncSession, server: ServerKeys
) -> None:
    early = await _record(install, session)  # at entry 5, then two more entries
    for i in range(2):
        await audit.append(
            session, actor="admin@cli", action="group.add", at=TAKEN, subject=f"L-{i}"
        )
    await session.commit()
    late = await _record(install, session)
    assert (early.seq, late.seq) == (ENTRIES, ENTRIES + 2)
    path = install / "audit_checkpoints"
    assert mode(path) == 0o600
    assert path.read_text().splitlines() == [
        f"{early.text()} 2026-08-12T04:00:00+00:00",
        f"{late.text()} 2026-08-12T04:00:00+00:00",
    ]
    ran = _verify(install)
    assert_ok(ran)
    assert ran.stdout.strip() == (
        f"OK: {late.seq} entries, head {late.text()}; it matches all 2 recorded checkpoint(s)"
    )

    # The intruder holds the database and the server secret: the chain alone verifies
    # again, but not against what the server recorded before.
    await _rewrite_with_the_key(engine, session, server)
    _broken(
        _verify(install),
        f"entry {ENTRIES} does not match the checkpoint of 2026-08-12 04:00:00 UTC",
    )


async def test_a_tail_cut_after_a_recorded_checkpoint_is_caught(
    install: Path, engine: AsyncEngine, session: AsyncSession
) -> None:
    await _record(install, session)
    await _sql(engine, "DELETE FROM audit_events WHERE seq >= 4")
    _broken(
        _verify(install),
        f"the log ends at 3, before the checkpoint of 2026-08-12 04:00:00 UTC at {ENTRIES}",
    )


async def test_a_damaged_checkpoints_file_is_one_line(install: Path) -> None:
    (install / "audit_checkpoints").write_text("5:abc 2026-08-12T04:00:00+00:00\n")
    assert_one_line_error(_verify(install), "audit_checkpoints: line 1 is not SEQ:HASH and a time")


@pytest.mark.parametrize(
    "column", ["at", "actor", "action", "subject", "details", "prev_hash", "hash"]
)
async def test_any_changed_field_breaks_the_chain_at_that_entry(
    log: None, engine: AsyncEngine, session: AsyncSession, column: str
) -> None:
    values: dict[str, object] = {
        "at": T0 + timedelta(days=1),
        "actor": "someone else",
        "action": "group.shred",
        "subject": None,
        "details": "{}",
        "prev_hash": bytes(32),
        "hash": bytes(32),
    }
    await _sql(engine, f"UPDATE audit_events SET {column} = :v WHERE seq = 4", v=values[column])
    with pytest.raises(audit.AuditChainBroken, match="entry 4 was altered"):
        await audit.verify(session)


def test_a_checkpoint_that_is_not_seq_colon_hash_is_one_line_error(tmp_path: Path) -> None:
    ran = intake("audit", "verify", "--checkpoint", "five:zz", cwd=tmp_path)
    assert ran.returncode != 0
    assert ran.stderr.splitlines() == [
        "intake: error: --checkpoint: give SEQ:HASH as `intake audit checkpoint` prints it"
    ]


def test_a_read_on_a_copy_of_the_database_is_merged_back_from_the_local_audit_file(
    tmp_path: Path,
) -> None:
    server = tmp_path / "server"
    server.mkdir()
    unlocked = {"INTAKE_PASSPHRASE": "pine seven crosses the river"}
    assert_ok(intake("init", cwd=server))
    made = intake("keygen", "--out", "op.key", cwd=tmp_path, env=unlocked)
    assert_ok(made)
    assert_ok(intake("operator", "add", made.stdout.strip(), "--name", "Op", cwd=server))
    copy = tmp_path / "copy"
    shutil.copytree(server, copy)
    key = str(tmp_path / "op.key")

    assert_ok(intake("inbox", "list", "--key", key, cwd=copy, env=unlocked))
    local = tmp_path / "op.key.audit"
    assert mode(local) == 0o600
    [line] = local.read_text().splitlines()
    assert json.loads(line)["action"] == "inbox.list"

    merged = intake("audit", "merge", "--key", key, cwd=server)
    assert_ok(merged)
    assert merged.stdout.startswith("Merged 1 entry from")
    again = intake("audit", "merge", "--key", key, cwd=server)
    assert again.stdout.startswith("Merged 0 entries")
    verified = intake("audit", "verify", cwd=server)
    assert_ok(verified)
    assert verified.stdout.startswith("OK: 3 entries")  # init, operator.add, the read
