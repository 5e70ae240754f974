"""Someone who can write the database but holds no operator's signing key: a swapped
group key, an inserted operator and a changed codebook meaning, each written straight
into the database, are not used; nothing is sealed to the intruder's key, no changed
meaning is acted on, and each row is named (for the admins and `intake audit verify`).
On SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from storage import trust as trust_module
from storage.codebook import add_phrase, all_phrases
from storage.crypto import (
    CryptoError,
    KemName,
    PrivateKey,
    ServerKeys,
    SigningKey,
    VerifyKey,
    unwrap_key,
)
from storage.groups import create_group
from storage.messages import open_message, store_message
from storage.models import (
    CodebookEntry,
    Group,
    KeyWrap,
    Message,
    MessageKind,
    Operator,
    Signal,
)
from storage.operators import add_operator
from storage.sealing import Keyring, active_operators, data_key_binding
from storage.session import AsyncSession
from storage.timeutil import utc_now
from storage.trust import (
    OperatorIdentity,
    Signers,
    Trust,
    bind,
    sign,
    sign_unsigned,
    unverified,
)
from tests.storage.helpers import SCHEDULE

ATTACKER = PrivateKey.generate(KemName.X25519)


@pytest.fixture
def signing() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
async def trust(
    engine: AsyncEngine,
    session: AsyncSession,
    server: ServerKeys,
    operator_key: PrivateKey,
    signing: SigningKey,
) -> Trust:
    """An installation whose one operator's signing key is pinned, with a signed group."""
    signers = Signers()
    signers.pin(operator_key.public_key().fingerprint(), signing.verify_key())
    trust = Trust(signers)
    bind(engine, server=server, trust=trust)
    await add_operator(
        session,
        server=server,
        public_key=operator_key.public_key(),
        name="Operator One",
        now=utc_now(),
        identity=OperatorIdentity.make(operator_key, signing),
    )
    await create_group(
        session,
        codename="PINE-7",
        schedule=SCHEDULE,
        kem=KemName.X25519,
        now=utc_now(),
        signing=signing,
    )
    await session.commit()
    assert await unverified(session, trust) == []
    return trust


async def _sql(engine: AsyncEngine, statement: str, **params: object) -> None:
    async with engine.begin() as conn:
        await conn.execute(sa.text(statement), params)


async def _group(session: AsyncSession) -> Group:
    session.expire_all()
    group = (await session.exec(select(Group).where(Group.codename == "PINE-7"))).one()
    await session.commit()  # SQLite: the intruder's write below waits for no lock of ours
    return group


async def _opens_with_attacker_key(session: AsyncSession) -> int:
    opened = 0
    for wrap in (await session.exec(select(KeyWrap))).all():
        try:
            unwrap_key(
                wrap.wrapped, ATTACKER, data_key_binding(wrap.subject_table, wrap.subject_id)
            )
            opened += 1
        except CryptoError:
            pass
    return opened


async def _store(session: AsyncSession, server: ServerKeys, group: Group | None) -> uuid.UUID:
    message = await store_message(
        session,
        server=server,
        kind=MessageKind.TEXT,
        body={"text": "CANARY-TRUST-TEXT"},
        received_at=utc_now(),
        group=group,
    )
    await session.commit()
    return message.id


async def test_a_swapped_group_key_is_never_sealed_to(
    trust: Trust,
    engine: AsyncEngine,
    session: AsyncSession,
    server: ServerKeys,
    operator_key: PrivateKey,
) -> None:
    group = await _group(session)
    await _sql(
        engine,
        "UPDATE groups SET public_key = :key WHERE id = :id",
        key=ATTACKER.public_key().raw,
        id=group.id.hex if engine.dialect.name == "sqlite" else group.id,
    )
    group = await _group(session)
    message_id = await _store(session, server, group)

    assert await _opens_with_attacker_key(session) == 0
    wraps = (await session.exec(select(KeyWrap).where(KeyWrap.subject_id == message_id))).all()
    assert [w.group_id for w in wraps] == [None]  # sealed to the operator instead: not lost
    keyring = await Keyring.for_key(session, operator_key)
    stored = await session.get_one(Message, message_id)
    assert (await open_message(session, keyring, stored))["text"] == "CANARY-TRUST-TEXT"
    assert [(r.table, r.row_id, r.reason) for r in trust.untold()] == [
        ("groups", group.id, "bad signature")
    ]
    assert trust.untold() == []  # told once
    named = await unverified(session, trust)
    assert [(r.table, r.row_id) for r in named] == [("groups", group.id)]


@pytest.mark.parametrize("forged", [False, True])
async def test_an_inserted_operator_is_never_wrapped_to(
    trust: Trust, engine: AsyncEngine, session: AsyncSession, server: ServerKeys, forged: bool
) -> None:
    intruder = Operator(
        id=uuid.uuid4(),
        name_sealed=b"x",
        kem=ATTACKER.kem.value,
        public_key=ATTACKER.public_key().raw,
        fingerprint=ATTACKER.public_key().fingerprint(),
        created_at=utc_now(),
    )
    if forged:  # signed with the intruder's own signing key, which nobody pinned
        sign(intruder, SigningKey.generate())
    session.add(intruder)
    await session.commit()

    assert [op.fingerprint for op in await active_operators(session)] != []
    assert intruder.id not in {op.id for op in await active_operators(session)}
    await _store(session, server, None)  # an unlinked message: wrapped to every operator

    assert await _opens_with_attacker_key(session) == 0
    named = await unverified(session, trust)
    assert [(r.table, r.row_id) for r in named] == [("operators", intruder.id)]
    reason = "signed by a key that is not pinned (or was removed)" if forged else "unsigned"
    assert named[0].reason == reason
    assert [r.row_id for r in trust.untold()] == [intruder.id]


async def test_a_changed_codebook_meaning_is_not_acted_on(
    trust: Trust,
    engine: AsyncEngine,
    session: AsyncSession,
    server: ServerKeys,
    signing: SigningKey,
) -> None:
    group = await _group(session)
    entry = await add_phrase(
        session,
        server=server,
        group=group,
        phrase="the weather is cold",
        means=Signal.DURESS,
        now=utc_now(),
        signing=signing,
    )
    await session.commit()
    assert [p.means for p in await all_phrases(session, server=server)] == [Signal.DURESS]
    await session.commit()

    await _sql(
        engine,
        "UPDATE codebook_entries SET means = 'checkin' WHERE id = :id",
        id=entry.id.hex if engine.dialect.name == "sqlite" else entry.id,
    )
    session.expire_all()
    assert await all_phrases(session, server=server) == []  # never an all-clear
    named = await unverified(session, trust)
    assert [(r.table, r.row_id, r.reason) for r in named] == [
        ("codebook_entries", entry.id, "bad signature")
    ]


async def test_signing_an_old_installation_signs_what_is_unsigned_and_never_a_bad_row(
    engine: AsyncEngine,
    session: AsyncSession,
    server: ServerKeys,
    operator: Operator,
    signing: SigningKey,
    operator_key: PrivateKey,
) -> None:
    # An installation from before signatures: nothing signed, no signers file.
    group = await create_group(
        session, codename="OAK-2", schedule=SCHEDULE, kem=KemName.X25519, now=utc_now()
    )
    await add_phrase(
        session, server=server, group=group, phrase="fine", means=Signal.CHECKIN, now=utc_now()
    )
    tampered = await add_phrase(
        session,
        server=server,
        group=group,
        phrase="cold",
        means=Signal.DURESS,
        now=utc_now(),
        signing=SigningKey.generate(),  # someone else's signature
    )
    await session.commit()
    signers = Signers()
    signers.pin(operator_key.public_key().fingerprint(), signing.verify_key())
    trust = Trust(signers)
    bind(engine, server=server, trust=trust)
    assert len(await unverified(session, trust)) == 4  # operator, group and both entries

    done = await sign_unsigned(session, signing=signing, operator=operator, trust=trust)
    await session.commit()
    assert (done.operators, done.groups, done.entries) == (1, ("OAK-2",), 1)
    assert [r.row_id for r in done.refused] == [tampered.id]
    assert [r.row_id for r in await unverified(session, trust)] == [tampered.id]
    entries = (await session.exec(select(CodebookEntry).order_by(CodebookEntry.means))).all()
    assert len(entries) == 2


def _pin(keys: dict[str, tuple[PrivateKey, SigningKey]], key: PrivateKey) -> tuple[str, VerifyKey]:
    fingerprint = key.public_key().fingerprint()
    return fingerprint, keys[fingerprint][1].verify_key()


def test_an_operator_pinned_while_the_bot_runs_counts_at_once_and_a_deleted_file_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trust_module, "_LOOK_EVERY", 0.0)
    first, second = (PrivateKey.generate(KemName.X25519) for _ in range(2))
    keys = {k.public_key().fingerprint(): (k, SigningKey.generate()) for k in (first, second)}
    path = tmp_path / "operator_signers"
    signers = Signers()
    signers.pin(
        first.public_key().fingerprint(), keys[first.public_key().fingerprint()][1].verify_key()
    )
    signers.save(path)
    trust = Trust(Signers.load(path), path)

    def row(key: PrivateKey) -> Operator:
        op = Operator(
            id=uuid.uuid4(),
            name_sealed=b"x",
            kem=key.kem.value,
            public_key=key.public_key().raw,
            fingerprint=key.public_key().fingerprint(),
        )
        sign(op, keys[op.fingerprint][1])
        return op

    assert trust.problem(row(first)) is None
    assert trust.problem(row(second)) is not None
    signers.pin(
        second.public_key().fingerprint(), keys[second.public_key().fingerprint()][1].verify_key()
    )
    signers.save(path)  # `intake operator add` on the server, while the bot runs
    assert trust.problem(row(second)) is None
    path.unlink()  # someone removes the file: enforcement stays
    assert trust.problem(dataclasses.replace(row(first), signature=None)) == "unsigned"


def test_the_listener_hears_of_each_rejected_row_once_and_of_no_trusted_row(
    operator_key: PrivateKey, signing: SigningKey
) -> None:
    signers = Signers()
    signers.pin(operator_key.public_key().fingerprint(), signing.verify_key())
    trust = Trust(signers)
    heard: list[None] = []
    trust.listen(lambda: heard.append(None))

    def operator(key: PrivateKey) -> Operator:
        return Operator(
            name_sealed=b"x",
            kem=key.kem.value,
            public_key=key.public_key().raw,
            fingerprint=key.public_key().fingerprint(),
        )

    trusted = operator(operator_key)
    sign(trusted, signing)
    unsigned = operator(ATTACKER)
    for _ in range(3):  # a row is checked again at every use
        assert trust.check(trusted)
        assert not trust.check(unsigned)
    assert len(heard) == 1
    assert not trust.check(operator(PrivateKey.generate(KemName.X25519)))
    assert len(heard) == 2
    assert [r.reason for r in trust.untold()] == ["unsigned", "unsigned"]

    trust.listen(None)  # the bot stopping
    assert not trust.check(operator(PrivateKey.generate(KemName.X25519)))
    assert len(heard) == 2
