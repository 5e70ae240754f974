"""The tamper-evident audit log: a keyed hash chain over append-only rows.

Each entry's hash is an HMAC, keyed from the server secret (which is not in the
database), over its own fields and the previous entry's hash: an edited,
removed or reordered entry breaks every hash after it, and someone who can
write the database but does not hold the secret cannot compute the chain again.
The database itself refuses UPDATE and DELETE on the table, and the head is
checkpointed off the server (bot/integrity), which catches a cut tail.

Installations older than the keyed chain hold unkeyed (SHA-256) entries first:
they are accepted only before the first keyed entry, whose HMAC covers them.
Details never carry message text or identifiers: codenames, roles, counts and
row ids only.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import select

from storage.crypto import ServerKeys, digests_equal, sha256
from storage.models import AuditEvent
from storage.session import AsyncSession
from storage.trust import installation_of

GENESIS = bytes(32)
# Every checkpoint the bot sends, also kept on the server beside the config and the
# server secret, outside the database: `intake audit verify` checks each one.
CHECKPOINTS_FILE = "audit_checkpoints"
# Any constant: PostgreSQL's advisory lock that serialises appends across
# processes, so two writers never both extend the same head.
_PG_LOCK = 0x43_4B_49_41  # "CKIA"


class AuditChainBroken(Exception):
    pass


class CheckpointsFileError(Exception):
    """The recorded checkpoints cannot be read; the message is one line."""


class AuditUnkeyed(Exception):
    """No server key is bound to this database (storage.trust.bind): an entry
    written now could be recomputed by anyone, so none is written."""


def _key(session: AsyncSession) -> ServerKeys:
    installation = installation_of(session)
    if installation is None:
        raise AuditUnkeyed("the audit chain's key is not bound to this database")
    return installation.server


def _entry_body(
    prev: bytes,
    *,
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    subject: str | None,
    details: str,
) -> bytes:
    body = json.dumps(
        [
            seq,
            at.astimezone(UTC).isoformat(timespec="microseconds"),
            actor,
            action,
            subject,
            details,
        ],
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()
    return prev + body


def _legacy_hash(body: bytes) -> bytes:
    """The unkeyed hash of entries written before the chain was keyed."""
    return sha256(body)


async def append(
    session: AsyncSession,
    *,
    actor: str,
    action: str,
    at: datetime,
    subject: str | None = None,
    details: Mapping[str, object] | None = None,
) -> AuditEvent:
    """Add an entry in the caller's transaction (it commits with the change it records)."""
    server = _key(session)
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        await session.exec(sa.select(sa.func.pg_advisory_xact_lock(_PG_LOCK)))
    head = (await session.exec(select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1))).first()
    seq = 1 if head is None else head.seq + 1
    prev = GENESIS if head is None else head.hash
    text = json.dumps(
        dict(details or {}), sort_keys=True, ensure_ascii=False, separators=(",", ":")
    )
    at = at.astimezone(UTC)  # hashed as the database gives it back: UTC
    event = AuditEvent(
        seq=seq,
        at=at,
        actor=actor,
        action=action,
        subject=subject,
        details=text,
        prev_hash=prev,
        hash=server.audit_mac(
            _entry_body(
                prev, seq=seq, at=at, actor=actor, action=action, subject=subject, details=text
            )
        ),
    )
    session.add(event)
    await session.flush()
    return event


@dataclass(frozen=True, slots=True)
class ChainHead:
    seq: int
    hash: bytes
    # Entries from before the chain was keyed (an older installation's first ones).
    legacy: int = 0

    def text(self) -> str:
        return f"{self.seq}:{self.hash.hex()}"

    @classmethod
    def parse(cls, text: str) -> ChainHead:
        """``SEQ:HASH`` as ``text`` writes it (ValueError otherwise)."""
        seq, colon, digest = text.partition(":")
        head = cls(seq=int(seq), hash=bytes.fromhex(digest))
        if not colon or head.seq < 0 or len(head.hash) != len(GENESIS):
            raise ValueError(text)
        return head


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A head kept where the database's writers cannot change it, and where it was
    kept (said when the log does not match it)."""

    head: ChainHead
    source: str = "the checkpoint"


def checkpoints_path(config_dir: Path) -> Path:
    return config_dir / CHECKPOINTS_FILE


def record_checkpoint(path: Path, head: ChainHead, *, at: datetime) -> None:
    """Append ``head`` to the server's file of checkpoints (0600): one line,
    ``SEQ:HASH`` and the time it was taken. Written with O_APPEND, so bot processes
    sharing the folder never interleave a line."""
    line = f"{head.text()} {at.astimezone(UTC).isoformat(timespec='seconds')}\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="ascii") as f:
        f.write(line)


def recorded_checkpoints(path: Path) -> list[Checkpoint]:
    """Every checkpoint recorded in ``path``, oldest first (none without the file)."""
    try:
        lines = path.read_text(encoding="ascii").splitlines()
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise CheckpointsFileError(f"{path}: cannot be read ({exc})") from None
    found = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            text, _, at = line.partition(" ")
            taken = datetime.fromisoformat(at.strip())
            head = ChainHead.parse(text)
        except ValueError:
            raise CheckpointsFileError(
                f"{path}: line {number} is not SEQ:HASH and a time"
            ) from None
        found.append(Checkpoint(head, f"the checkpoint of {taken:%Y-%m-%d %H:%M:%S} UTC"))
    return found


async def head(session: AsyncSession) -> ChainHead:
    """The last entry as stored (unverified: what a checkpoint records)."""
    last = (await session.exec(select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1))).first()
    return ChainHead(seq=0, hash=GENESIS) if last is None else ChainHead(last.seq, last.hash)


async def local_ids(session: AsyncSession) -> set[str]:
    """The ``local_id`` of every entry that names one (operators' reads, which are
    also kept in the operator's local audit file)."""
    rows = await session.exec(
        select(AuditEvent.details).where(AuditEvent.details.contains('"local_id"'))
    )
    found = set()
    for text in rows.all():
        value = json.loads(text).get("local_id")
        if isinstance(value, str):
            found.add(value)
    return found


async def length(session: AsyncSession) -> int:
    """How many entries the log holds (the total a progress bar counts to)."""
    return int((await session.exec(select(sa.func.count()).select_from(AuditEvent))).one())


async def verify(
    session: AsyncSession,
    *,
    checkpoint: ChainHead | None = None,
    checkpoints: Iterable[Checkpoint] = (),
    on_entry: Callable[[int], None] | None = None,
) -> ChainHead:
    """Check every link; against checkpoints kept where the database's writers cannot
    reach (``checkpoint``, pasted from Telegram; ``checkpoints``, the server's file),
    also detect a cut tail, or a chain rewritten by someone who held the key: each
    checkpoint's entry must be there with the same hash. ``on_entry`` is told each
    sequence number as it is checked (for a progress bar)."""
    server = _key(session)
    kept = [*checkpoints, *([Checkpoint(checkpoint)] if checkpoint is not None else [])]
    # Entry 0 is the empty log's genesis: nothing to compare.
    wanted: dict[int, list[Checkpoint]] = {}
    for one in kept:
        if one.head.seq:
            wanted.setdefault(one.head.seq, []).append(one)
    prev, seq, legacy, keyed = GENESIS, 0, 0, False
    result = await session.stream(select(AuditEvent).order_by(AuditEvent.seq))
    async for (event,) in result:
        seq += 1
        if on_entry is not None:
            on_entry(seq)
        if event.seq != seq:
            raise AuditChainBroken(f"entry {seq} is missing (found {event.seq})")
        body = _entry_body(
            prev,
            seq=event.seq,
            at=event.at,
            actor=event.actor,
            action=event.action,
            subject=event.subject,
            details=event.details,
        )
        if event.prev_hash != prev:
            raise AuditChainBroken(f"entry {event.seq} was altered")
        if digests_equal(event.hash, server.audit_mac(body)):
            keyed = True
        elif not keyed and digests_equal(event.hash, _legacy_hash(body)):
            legacy += 1
        else:
            raise AuditChainBroken(f"entry {event.seq} was altered")
        for one in wanted.get(seq, ()):
            if not digests_equal(event.hash, one.head.hash):
                raise AuditChainBroken(f"entry {seq} does not match {one.source}")
        prev = event.hash
    if legacy and not keyed:
        raise AuditChainBroken(
            f"none of the {legacy} entries is keyed: anyone could have written them "
            "(an older installation: the next change, such as `intake operator sign`, keys it)"
        )
    beyond = [one for one in kept if one.head.seq > seq]
    if beyond:
        last = max(beyond, key=lambda one: one.head.seq)
        raise AuditChainBroken(f"the log ends at {seq}, before {last.source} at {last.head.seq}")
    return ChainHead(seq=seq, hash=prev, legacy=legacy)


async def append_operator_act(
    session: AsyncSession,
    local: Path,
    *,
    actor: str,
    action: str,
    at: datetime,
    subject: str | None = None,
    details: Mapping[str, object] | None = None,
) -> None:
    """An operator's read or act, written to their own audit file (``local``, beside the
    key file, 0600) and, where this database's chain can be keyed (the server secret is
    known here), appended to it with the local entry's id, so that `intake audit merge`
    never adds it twice. On a copy of the database opened without the server secret the
    local file alone holds it until it is merged into the real log."""
    entry = {
        "id": uuid.uuid4().hex,
        "at": at.isoformat(),
        "actor": actor,
        "action": action,
        "subject": subject,
        "details": dict(details or {}),
    }
    fd = os.open(local, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry, sort_keys=True) + "\n")
    if installation_of(session) is None:
        return
    await append(
        session,
        actor=actor,
        action=action,
        subject=subject,
        at=at,
        details={**dict(details or {}), "local_id": entry["id"]},
    )
