"""Reading a database as a thief would: every byte of its files."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import Database


def text_encodings(value: str) -> list[bytes]:
    return [value.encode("utf-8"), value.encode("utf-16-le"), value.encode("utf-16-be")]


def integer_encodings(value: int) -> list[bytes]:
    """How the databases store an integer: big-endian in SQLite's record format
    (in the smallest of 1, 2, 3, 4, 6 or 8 bytes), little-endian in PostgreSQL's
    int8, and as decimal text anywhere."""
    forms = [str(value).encode(), str(value).encode("utf-16-le")]
    for size in (4, 6, 8):
        if value < 1 << (8 * size - 1):
            forms += [value.to_bytes(size, "big"), value.to_bytes(size, "little")]
    return forms


async def database_bytes(db: Database) -> dict[str, bytes]:
    """Every file the database keeps: SQLite's file and all beside it (journal,
    WAL), or PostgreSQL's data files for this database after a checkpoint."""
    if db.path is not None:
        return {p.name: p.read_bytes() for p in db.path.parent.iterdir() if p.is_file()}
    engine = create_async_engine(db.url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.exec_driver_sql("CHECKPOINT")
            data_dir = (await conn.execute(sa.text("SHOW data_directory"))).scalar_one()
            oid = (
                await conn.execute(
                    sa.text("SELECT oid FROM pg_database WHERE datname = current_database()")
                )
            ).scalar_one()
    finally:
        await engine.dispose()
    base = Path(data_dir) / "base" / str(oid)
    try:
        return {str(p): p.read_bytes() for p in base.rglob("*") if p.is_file()}
    except OSError:
        # The server is on another machine or another user's: read every row instead
        # (bytea comes out as hex, which find() also looks for).
        return {"rows": await _all_rows(db)}


async def _all_rows(db: Database) -> bytes:
    engine = create_async_engine(db.url)
    try:
        async with engine.connect() as conn:
            tables = (
                await conn.execute(
                    sa.text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
                )
            ).scalars()
            dump = []
            for table in list(tables):
                rows = await conn.execute(sa.text(f'SELECT row_to_json(t)::text FROM "{table}" t'))
                dump += [r.encode() for r in rows.scalars()]
    finally:
        await engine.dispose()
    return b"\n".join(dump)


def find(needles: list[bytes], files: dict[str, bytes]) -> list[str]:
    """The files where any needle, raw or as hex, appears."""
    forms = needles + [n.hex().encode() for n in needles if len(n) >= 4]
    return sorted({name for name, data in files.items() for n in forms if n in data})
