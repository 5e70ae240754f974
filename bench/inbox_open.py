"""How fast does an operator list and open the sealed inbox, beside the bare HPKE opens?

    .venv/bin/python bench/inbox_open.py [--messages 10000] [--kem MLKEM768_X25519|X25519]
        [--database-url postgresql://USER@HOST/DB]

Seals N messages to one group, then times, in the same run:
- ``storage.inbox.list_inbox`` over all of them (the query, the group key unwrapped once,
  each message's data key unwrapped and its body opened and parsed): what `intake inbox list`
  does;
- the bare cryptography for the same messages: one HPKE unwrap and one AEAD open each, on
  bytes already in memory.
Prints one JSON line and one line for people; the ratio is the price of the database and the
model layer over the cryptography itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from intake_throughput import fresh_database

from storage.crypto import Binding, KemName, PrivateKey, ServerKeys, open_content, unwrap_key
from storage.db import open_database, session_factory
from storage.groups import Schedule, create_group
from storage.inbox import list_inbox
from storage.models import Message, MessageKind
from storage.operators import add_operator
from storage.sealing import Keyring, data_key_binding, seal_record
from storage.timeutil import utc_now

SCHEDULE = Schedule(
    interval=timedelta(hours=12), grace=timedelta(hours=2), detained_after=timedelta(days=2)
)


async def bench(args: argparse.Namespace) -> dict[str, object]:
    kem = KemName(args.kem)
    key = PrivateKey.generate(kem)
    with tempfile.TemporaryDirectory(prefix="intake-inbox-bench-") as tmp:
        async with (
            fresh_database(args.database_url, Path(tmp)) as url,
            open_database(url) as engine,
        ):
            sessions = session_factory(engine)
            sealed_bodies: list[tuple[uuid.UUID, bytes, bytes]] = []
            async with sessions() as session, session.begin():
                await add_operator(
                    session,
                    server=ServerKeys(ServerKeys.generate_secret()),
                    public_key=key.public_key(),
                    name="Bench",
                    now=utc_now(),
                )
                group = await create_group(
                    session, codename="PINE-7", schedule=SCHEDULE, kem=kem, now=utc_now()
                )
                for n in range(args.messages):
                    row_id = uuid.uuid4()
                    body = json.dumps({"text": f"check-in {n:05d}: the tea is warm"}).encode()
                    sealed = seal_record(
                        table="messages",
                        row_id=row_id,
                        fields={"body_sealed": body},
                        groups=[group],
                    )
                    session.add(
                        Message(
                            id=row_id,
                            kind=MessageKind.TEXT,
                            group_id=group.id,
                            body_sealed=sealed.columns["body_sealed"],
                            received_at=utc_now(),
                        )
                    )
                    session.add_all(sealed.wraps)
                    sealed_bodies.append(
                        (row_id, sealed.wraps[0].wrapped, sealed.columns["body_sealed"])
                    )
            async with sessions() as session:
                keyring = await Keyring.for_key(session, key)
                group_key = await keyring.group_key(session, group)
                started = time.perf_counter()
                items = await list_inbox(session, keyring)
                inbox_s = time.perf_counter() - started
            assert len(items) == args.messages
            started = time.perf_counter()
            for row_id, wrapped, blob in sealed_bodies:
                data_key = unwrap_key(wrapped, group_key, data_key_binding("messages", row_id))
                json.loads(open_content(data_key, blob, Binding("messages", "body_sealed", row_id)))
            bare_s = time.perf_counter() - started
            backend = url.split(":")[0]
    return {
        "backend": backend,
        "kem": kem.value,
        "messages": args.messages,
        "inbox_seconds": inbox_s,
        "bare_hpke_seconds": bare_s,
        "ratio": inbox_s / bare_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--kem", default=KemName.MLKEM768_X25519.value)
    parser.add_argument("--database-url")
    f = asyncio.run(bench(parser.parse_args()))
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in f.items()}))
    print(
        f"{f['messages']:,} messages ({f['kem']}, {f['backend']}): listed and opened in "
        f"{f['inbox_seconds']:.2f} s; the bare HPKE opens of the same take "
        f"{f['bare_hpke_seconds']:.2f} s; ratio {f['ratio']:.2f}"
    )


if __name__ == "__main__":
    main()
