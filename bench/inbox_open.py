"""How long does an operator wait for the inbox, beside the cryptography it cannot avoid?

    .venv/bin/python bench/inbox_open.py [--messages N] [--kem MLKEM768_X25519|X25519]
        [--database-url postgresql://USER@HOST/DB]

Stores N sealed messages (default 10,000; two in three linked to one of a few groups, the rest
unlinked, as the bot seals them), then times, in the same run:

- **hpke**: the baseline, the bare HPKE opens of the same N data-key wraps (read into memory
  beforehand), with the group keys already unwrapped: the work no inbox can skip (timed before
  and after the others; the faster of the two);
- **list**: ``storage.inbox.list_inbox`` over all N, as ``intake inbox list`` (and ``export``)
  does: read the rows, their wraps, open each key and body, with a fresh keyring;
- **open each**: ``storage.inbox.open_versions`` for every message one by one, in one
  session (``intake inbox read`` and the console open a whole message with
  ``storage.inbox.open_message``, which ``bench/console.py`` times).

Prints one JSON line and one line for people; the ratios are each time over the baseline's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent))
from intake_throughput import fresh_database

from storage.crypto import KemName, PrivateKey, ServerKeys, unwrap_key
from storage.db import open_database, session_factory
from storage.groups import Schedule, create_group
from storage.inbox import list_inbox, open_versions
from storage.messages import MESSAGES, store_message
from storage.models import Group, KeyWrap, Message, MessageKind
from storage.operators import add_operator
from storage.sealing import Keyring, data_key_binding

GROUPS = 8
SCHEDULE = Schedule(
    interval=timedelta(hours=12), grace=timedelta(hours=2), detained_after=timedelta(days=2)
)
T0 = datetime(2026, 8, 10, tzinfo=UTC)


async def fill(url: str, *, key: PrivateKey, kem: KemName, messages: int) -> None:
    server = ServerKeys(ServerKeys.generate_secret())
    async with open_database(url) as engine, session_factory(engine)() as session:
        await add_operator(session, server=server, public_key=key.public_key(), name="Op", now=T0)
        groups = [
            await create_group(session, codename=f"G-{n}", schedule=SCHEDULE, kem=kem, now=T0)
            for n in range(GROUPS)
        ]
        await session.commit()
        for n in range(messages):
            await store_message(
                session,
                server=server,
                kind=MessageKind.TEXT,
                body={"text": f"check-in number {n}: the tea is warm", "caption": None},
                received_at=T0 + timedelta(seconds=n),
                group=groups[n % GROUPS] if n % 3 else None,
            )
            if n % 500 == 499:
                await session.commit()
        await session.commit()


async def bench(url: str, *, key: PrivateKey) -> dict[str, float]:
    async with open_database(url, migrate_to_head=False) as engine:
        factory = session_factory(engine)

        # The baseline: every wrap in memory, every group key already open.
        async with factory() as session:
            keyring = await Keyring.for_key(session, key)
            wraps = (
                await session.exec(select(KeyWrap).where(KeyWrap.subject_table == MESSAGES))
            ).all()
            groups = {
                g.id: await keyring.group_key(session, g)
                for g in (await session.exec(select(Group))).all()
            }

        def bare_opens() -> float:
            start = time.perf_counter()
            for wrap in wraps:
                recipient = groups[wrap.group_id] if wrap.group_id else key
                unwrap_key(wrap.wrapped, recipient, data_key_binding(MESSAGES, wrap.subject_id))
            return time.perf_counter() - start

        first = bare_opens()

        async with factory() as session:
            start = time.perf_counter()
            keyring = await Keyring.for_key(session, key)
            items = await list_inbox(session, keyring)
            listed = time.perf_counter() - start
        assert len(items) == len(wraps)
        assert all(i.readable for i in items)

        async with factory() as session:
            rows = (await session.exec(select(Message))).all()
            start = time.perf_counter()
            keyring = await Keyring.for_key(session, key)
            for row in rows:
                await open_versions(session, keyring, message=row)
            each = time.perf_counter() - start
        # Measured again after, the faster of the two: a busy machine slows the
        # baseline too, and the ratios should not flatter the inbox.
        hpke = min(first, bare_opens())
    return {"hpke": hpke, "list": listed, "each": each}


async def main_async(args: argparse.Namespace) -> None:
    kem = KemName(args.kem)
    key = PrivateKey.generate(kem)
    with tempfile.TemporaryDirectory() as folder:
        async with fresh_database(args.database_url, Path(folder)) as url:
            await fill(url, key=key, kem=kem, messages=args.messages)
            times = await bench(url, key=key)
    backend = "sqlite" if args.database_url is None else "postgresql"
    result = {
        "messages": args.messages,
        "kem": kem.value,
        "backend": backend,
        "hpke_open_seconds": round(times["hpke"], 3),
        "list_seconds": round(times["list"], 3),
        "open_each_seconds": round(times["each"], 3),
        "list_ratio": round(times["list"] / times["hpke"], 2),
        "open_each_ratio": round(times["each"] / times["hpke"], 2),
    }
    print(json.dumps(result))
    print(
        f"{args.messages:,} messages ({kem.value}, {backend}): bare HPKE opens "
        f"{times['hpke']:.2f} s; listing all {times['list']:.2f} s "
        f"({result['list_ratio']}x); opening each with open_versions {times['each']:.2f} s "
        f"({result['open_each_ratio']}x)"
    )


def arguments() -> argparse.ArgumentParser:
    """The options of this bench and of ``bench/console.py``, which fills the same inbox."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument(
        "--kem", choices=[k.value for k in KemName], default=KemName.MLKEM768_X25519.value
    )
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server to bench on (a throwaway database is made there); "
        "default: a SQLite file",
    )
    return parser


def main() -> None:
    asyncio.run(main_async(arguments().parse_args()))


if __name__ == "__main__":
    main()
