"""Is the operator's console quick on a large inbox, beside the cryptography it cannot avoid?

    .venv/bin/python bench/console.py [--messages N] [--kem MLKEM768_X25519|X25519]
        [--database-url postgresql://USER@HOST/DB]

Stores N sealed messages (default 10,000) as ``bench/inbox_open.py`` does, then times, in the
same run:

- **hpke**: the baseline, the bare HPKE opens of the N data-key wraps (read into memory
  beforehand, the group keys already open; the faster of two runs);
- **open all**: ``storage.inbox.list_inbox`` over all N (what ``inbox export`` does), with a
  fresh keyring, each run after one of the baseline's (the faster of two): aim, at most 1.5
  times the baseline. Both are timed on the clock and in CPU time (``time.process_time``, the
  database thread's included): on a shared machine the clock also counts the waits for a core,
  which the opens' tight loop suffers less than a run with a database thread to hand over to;
- **first page**: ``GET /inbox`` of the running console (50 messages, filters, unread counts,
  the audit entry), over HTTP on 127.0.0.1, the median of 7: aim, 300 ms;
- **message**: ``GET /message/ID`` (every version, files, notes, the timeline, the mark and the
  audit entry), the median over 25 messages: aim, 50 ms.

Prints one JSON line and one line for people.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent))
from inbox_open import arguments, fill
from intake_throughput import fresh_database

from bot.console.app import Console, serve
from storage.crypto import KemName, PrivateKey, unwrap_key
from storage.db import open_database, session_factory
from storage.inbox import list_inbox
from storage.messages import MESSAGES
from storage.models import Group, KeyWrap, Message
from storage.sealing import Keyring, data_key_binding

AIMS = {"open_all_ratio": 1.5, "first_page_ms": 300, "message_ms": 50}


async def bench(url: str, *, key: PrivateKey) -> dict[str, float]:
    async with open_database(url, migrate_to_head=False) as engine:
        factory = session_factory(engine)
        async with factory() as session:
            keyring = await Keyring.for_key(session, key)
            wraps = (
                await session.exec(select(KeyWrap).where(KeyWrap.subject_table == MESSAGES))
            ).all()
            groups = {
                g.id: await keyring.group_key(session, g)
                for g in (await session.exec(select(Group))).all()
            }
            ids = [m.id for m in (await session.exec(select(Message).limit(25))).all()]

        def bare_opens() -> tuple[float, float]:
            start, cpu = time.perf_counter(), time.process_time()
            for wrap in wraps:
                recipient = groups[wrap.group_id] if wrap.group_id else key
                unwrap_key(wrap.wrapped, recipient, data_key_binding(MESSAGES, wrap.subject_id))
            return time.perf_counter() - start, time.process_time() - cpu

        async def opened_all() -> tuple[float, float]:
            async with factory() as session:
                start, cpu = time.perf_counter(), time.process_time()
                items = await list_inbox(session, await Keyring.for_key(session, key))
                taken = time.perf_counter() - start, time.process_time() - cpu
            assert len(items) == len(wraps)
            assert all(i.readable for i in items)
            return taken

        runs = [(bare_opens(), await opened_all()) for _ in range(2)]
        hpke, hpke_cpu = (min(run[0][i] for run in runs) for i in (0, 1))
        open_all, open_all_cpu = (min(run[1][i] for run in runs) for i in (0, 1))

        console = Console(
            engine=engine,
            private_key=key,
            tz=ZoneInfo("UTC"),
            idle_seconds=600,
            port=0,
            local_audit=Path(tempfile.mkdtemp()) / "operator.key.audit",
        )
        ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        server = asyncio.create_task(serve(console, on_ready=ready.set_result))
        login = await ready
        base = login.split("/login/")[0]
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
            async with client.get(login) as response:
                assert response.status == 200, response.status

            async def timed(path: str) -> float:
                start = time.perf_counter()
                async with client.get(base + path) as response:
                    await response.read()
                    assert response.status == 200, (path, response.status)
                return time.perf_counter() - start

            await timed("/inbox")  # warm: templates compiled, group keys opened
            pages = [await timed("/inbox") for _ in range(7)]
            messages = [await timed(f"/message/{i}") for i in ids]
        console.drop_key()
        await server
    return {
        "hpke": hpke,
        "hpke_cpu": hpke_cpu,
        "open_all": open_all,
        "open_all_cpu": open_all_cpu,
        "first_page": statistics.median(pages),
        "message": statistics.median(messages),
    }


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
        "open_all_seconds": round(times["open_all"], 3),
        "open_all_ratio": round(times["open_all"] / times["hpke"], 2),
        "open_all_cpu_ratio": round(times["open_all_cpu"] / times["hpke_cpu"], 2),
        "first_page_ms": round(times["first_page"] * 1000, 1),
        "message_ms": round(times["message"] * 1000, 1),
    }
    met = {name: result[name] <= aim for name, aim in AIMS.items()}
    print(json.dumps(result | {"aims_met": met}))
    print(
        f"{args.messages:,} messages ({kem.value}, {backend}): bare HPKE opens "
        f"{times['hpke']:.2f} s; opening all {times['open_all']:.2f} s "
        f"({result['open_all_ratio']}x, aim {AIMS['open_all_ratio']}x; in CPU time "
        f"{result['open_all_cpu_ratio']}x); the console's first "
        f"inbox page {result['first_page_ms']} ms (aim {AIMS['first_page_ms']}); one message "
        f"{result['message_ms']} ms (aim {AIMS['message_ms']})"
    )


def main() -> None:
    asyncio.run(main_async(arguments().parse_args()))


if __name__ == "__main__":
    main()
