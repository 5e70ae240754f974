"""How close does the intake bot come to the store's own seal-and-commit rate?

    .venv/bin/python bench/seal_commit.py [--updates N] [--relatives K]
        [--database-url postgresql://USER@HOST/DB] [--kem MLKEM768_X25519|X25519]

The intake bot's work per text update is sealing it and committing it, and around that:
Telegram's HTTP round trips, parsing the update, finding the sender, understanding the
text, marking the update processed, the receipt and the deletion. This bench measures the
sealing and committing alone and sets the intake's rate beside it, so that the ratio says
how much of the intake's time the store itself accounts for.

Three runs, each on a fresh installation (``intake_throughput.install``: a SQLite file in
a temporary folder, or a throwaway PostgreSQL database; one operator key of ``--kem``):

- **raw, batched**: N text messages stored in this process through the storage layer
  with the arguments ``bot/intake.py`` gives for a text from a relative of no group
  (``storage.messages.store_message`` with its sender, update id and chat reference,
  sealed to every operator, the operators and the K senders read or made before the
  clock starts), 100 to a transaction, as the intake commits a getUpdates batch. Only
  the message and its key wraps: no processed-update row, no meaning, no sender lookup;
- **raw, one commit each**: the same, one transaction per message;
- **intake**: ``intake run`` as its own process against a Telegram stand-in, with a burst
  of N updates from K relatives, timed as ``bench/intake_throughput.py`` times it (its
  functions are imported, not copied).

Rate = N / seconds (raw: from the first transaction to the last commit, in this process;
intake: from the bot's first getUpdates to the last update confirmed). ``ratio`` =
intake rate / raw batched rate (``ratio_single`` against one commit each): 1.0 would mean
everything around the store costs nothing. Prints one JSON line and one line for people;
nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))
from intake_throughput import (
    FIRST_RELATIVE,
    INTAKE_RUN,
    child_env,
    fresh_database,
    install,
    queue_burst,
    stored_count,
    timed_run,
)

from bot.standin import TelegramStandIn
from storage.crypto import KemName, ServerKeys
from storage.db import open_database, session_factory
from storage.messages import ChatRef, store_message
from storage.models import MessageKind, Operator, Person
from storage.people import add_person
from storage.sealing import active_operators
from storage.timeutil import utc_now

BATCH = 100  # what one getUpdates call gives at most, and so one intake transaction
FIRST_UPDATE = 900_000_001


@dataclass(frozen=True)
class Rate:
    messages: int
    seconds: float
    cpu_seconds: float | None  # None where the bot's CPU time cannot be read (not Linux)

    @property
    def per_second(self) -> float:
        return self.messages / self.seconds

    @property
    def cpu_ms_per_message(self) -> float | None:
        return None if self.cpu_seconds is None else 1000 * self.cpu_seconds / self.messages


# ------------------------------------------------------------------ the store alone


async def store_raw(
    database_url: str,
    server: ServerKeys,
    *,
    messages: int,
    relatives: int,
    per_commit: int,
) -> Rate:
    """Seal and commit ``messages`` texts, ``per_commit`` to a transaction; the senders
    and the operators exist (and are read) before the clock starts."""
    async with open_database(database_url, migrate_to_head=False) as engine:
        sessions = session_factory(engine)
        async with sessions() as session, session.begin():
            operators: Sequence[Operator] = await active_operators(session)
            senders: list[Person] = [
                await add_person(
                    session,
                    server=server,
                    telegram_id=FIRST_RELATIVE + n,
                    chat_id=FIRST_RELATIVE + n,
                    now=utc_now(),
                )
                for n in range(relatives)
            ]
        cpu_started = time.process_time()
        started = time.perf_counter()
        for first in range(0, messages, per_commit):
            async with sessions() as session, session.begin():
                for n in range(first, min(messages, first + per_commit)):
                    sender = senders[n % relatives]
                    now = utc_now()
                    await store_message(
                        session,
                        server=server,
                        kind=MessageKind.TEXT,
                        body={"text": f"raw check-in {n:05d}", "caption": None},
                        received_at=now,
                        sender=sender,
                        update_id=FIRST_UPDATE + n,
                        sent_at=now,
                        chat_ref=ChatRef(chat_id=FIRST_RELATIVE + n % relatives, message_id=n + 1),
                        operators=operators,
                        flush=False,  # as the intake: the commit writes the batch
                    )
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
    return Rate(messages=messages, seconds=seconds, cpu_seconds=cpu)


async def raw_run(
    standin: TelegramStandIn, args: argparse.Namespace, *, per_commit: int
) -> tuple[Rate, str]:
    """``store_raw`` on a fresh installation; also returns the database's backend name."""
    with tempfile.TemporaryDirectory(prefix="intake-seal-bench-") as tmp:
        folder = Path(tmp)
        async with fresh_database(args.database_url, folder) as database_url:
            await install(folder, standin, database_url, KemName(args.kem))
            secret = base64.urlsafe_b64decode((folder / "server_secret").read_text())
            rate = await store_raw(
                database_url,
                ServerKeys(secret),
                messages=args.updates,
                relatives=args.relatives,
                per_commit=per_commit,
            )
            stored = await stored_count(database_url)
            if stored != args.updates:
                raise SystemExit(f"the store kept {stored} of {args.updates} messages")
            return rate, make_url(database_url).get_backend_name()


# ------------------------------------------------------------------ the intake bot


async def intake_run(standin: TelegramStandIn, args: argparse.Namespace) -> Rate:
    """``intake run`` taking in a burst, as ``bench/intake_throughput.py`` times it."""
    with tempfile.TemporaryDirectory(prefix="intake-seal-bench-") as tmp:
        folder = Path(tmp)
        async with fresh_database(args.database_url, folder) as database_url:
            config = await install(folder, standin, database_url, KemName(args.kem))
            burst = queue_burst(standin, args.updates, args.relatives, "intake")
            run = await timed_run(
                standin,
                "intake",
                [sys.executable, *INTAKE_RUN, str(config)],
                env=child_env(),
                updates=args.updates,
                done=lambda: burst <= standin.confirmed_update_ids(),
                within=args.timeout,
            )
            stored = await stored_count(database_url)
            if stored != args.updates:
                raise SystemExit(f"intake stored {stored} of {args.updates} messages")
    return Rate(messages=run.updates, seconds=run.seconds, cpu_seconds=run.cpu_seconds)


# ------------------------------------------------------------------ the whole run


async def bench(args: argparse.Namespace) -> dict[str, object]:
    async with TelegramStandIn() as standin:
        batched, backend = await raw_run(standin, args, per_commit=BATCH)
        single, _ = await raw_run(standin, args, per_commit=1)
        intake = await intake_run(standin, args)
    return {
        "bench": "seal_commit",
        "updates": args.updates,
        "relatives": args.relatives,
        "database": backend,
        "kem": args.kem,
        "raw_batch": BATCH,
        "raw_batch_seconds": round(batched.seconds, 3),
        "raw_batch_per_s": round(batched.per_second, 1),
        "raw_batch_cpu_ms_per_message": _round(batched.cpu_ms_per_message),
        "raw_single_seconds": round(single.seconds, 3),
        "raw_single_per_s": round(single.per_second, 1),
        "raw_single_cpu_ms_per_message": _round(single.cpu_ms_per_message),
        "intake_seconds": round(intake.seconds, 3),
        "intake_updates_per_s": round(intake.per_second, 1),
        "intake_cpu_ms_per_update": _round(intake.cpu_ms_per_message),
        "ratio": round(intake.per_second / batched.per_second, 3),
        "ratio_single": round(intake.per_second / single.per_second, 3),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def describe(r: dict[str, object]) -> str:
    return (
        f"{r['updates']} texts on {r['database']} ({r['kem']}): the store alone seals and "
        f"commits {r['raw_batch_per_s']}/s {r['raw_batch']} to a commit "
        f"({r['raw_batch_cpu_ms_per_message']} ms CPU each), {r['raw_single_per_s']}/s "
        f"one commit each ({r['raw_single_cpu_ms_per_message']} ms CPU each); the intake bot "
        f"takes in {r['intake_updates_per_s']} updates/s "
        f"({r['intake_cpu_ms_per_update']} ms CPU each): ratio {r['ratio']} of the batched "
        f"store ({r['ratio_single']} of one commit each)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=2_000, help="messages per run (2000)")
    parser.add_argument("--relatives", type=int, default=8, help="their senders (8)")
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server to bench on (a throwaway database is made there for each "
        "run); default: a SQLite file",
    )
    parser.add_argument(
        "--kem", default=KemName.MLKEM768_X25519.value, choices=[k.value for k in KemName]
    )
    parser.add_argument("--timeout", type=float, default=1800, help="for the bot, seconds")
    args = parser.parse_args()
    result = asyncio.run(bench(args))
    print(json.dumps(result))
    print(describe(result))


if __name__ == "__main__":
    main()
