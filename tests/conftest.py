"""Shared fixtures: every storage test runs on SQLite, and on PostgreSQL too when
INTAKE_TEST_DATABASE_URL names a server (``.ci/run`` sets it)."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from storage.crypto import KemName, PrivateKey, ServerKeys
from storage.db import open_database, session_factory
from storage.models import Operator
from storage.operators import add_operator
from storage.sealing import Keyring
from storage.session import AsyncSession
from storage.timeutil import utc_now
from storage.trust import Trust, bind

PG_ENV = "INTAKE_TEST_DATABASE_URL"


def _backends() -> list[str]:
    return ["sqlite", "postgresql"] if os.environ.get(PG_ENV) else ["sqlite"]


@dataclass(frozen=True)
class Database:
    """A fresh, migrated database for one test."""

    backend: str
    url: str
    path: Path | None  # the SQLite file, whose bytes the canary tests read


def _async_pg_url(url: str) -> sa.URL:
    parsed = make_url(url)
    return parsed.set(drivername="postgresql+asyncpg")


@pytest.fixture(params=_backends())
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        path = tmp_path / "intake.db"
        db = Database("sqlite", f"sqlite+aiosqlite:///{path}", path)
        async with open_database(db.url):
            pass
        yield db
        return
    admin_url = _async_pg_url(os.environ[PG_ENV])
    name = f"intake_test_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = admin_url.set(database=name).render_as_string(hide_password=False)
    try:
        async with open_database(url):
            pass
        yield Database("postgresql", url, None)
    finally:
        async with admin.connect() as conn:
            await conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.dispose()


@pytest.fixture
async def engine(database: Database, server: ServerKeys) -> AsyncIterator[AsyncEngine]:
    async with open_database(database.url, migrate_to_head=False) as eng:
        # Keys the audit chain; no signers file, as in an installation older than signing.
        bind(eng, server=server, trust=Trust(None))
        yield eng


@pytest.fixture
async def session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    async with session_factory(engine)() as s:
        yield s


@pytest.fixture
def server_secret() -> bytes:
    return ServerKeys.generate_secret()


@pytest.fixture
def server(server_secret: bytes) -> ServerKeys:
    return ServerKeys(server_secret)


@pytest.fixture(params=[KemName.MLKEM768_X25519])
def operator_key(request: pytest.FixtureRequest) -> PrivateKey:
    return PrivateKey.generate(request.param)


@pytest.fixture
async def operator(session: AsyncSession, server: ServerKeys, operator_key: PrivateKey) -> Operator:
    op = await add_operator(
        session,
        server=server,
        public_key=operator_key.public_key(),
        name="Operator One",
        now=utc_now(),
    )
    await session.commit()
    return op


@pytest.fixture
async def keyring(session: AsyncSession, operator: Operator, operator_key: PrivateKey) -> Keyring:
    return Keyring(operator=operator, private_key=operator_key)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the developer's own INTAKE_* variables."""
    for name in ("INTAKE_CONFIG", "INTAKE_PASSPHRASE"):
        monkeypatch.delenv(name, raising=False)


# --------------------------------------------------------------------------- hygiene

_STARTED = time.time()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """After the whole run: no canary in any database, journal, WAL or log the tests
    made (tests/hygiene.py says what is read). A find fails the run."""
    config = session.config
    if config.getoption("collectonly") or session.testscollected == 0:
        return
    from tests.hygiene import scan

    temporary = config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]  # pytest's own
    done, found = scan(temporary=temporary, postgres_data=_local_postgres_data(), since=_STARTED)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    lines = [
        f"plaintext scan: {done.files} database, journal, WAL and log files, "
        f"{done.size / 1e6:.1f} MB, {len(found)} with a canary"
        + (f" ({done.skipped})" if done.skipped else "")
    ]
    lines += [f"  canary in {f.path} at byte {f.offset}: {f.excerpt!r}" for f in found[:20]]
    if reporter is not None:
        reporter.write_line("")
        for line in lines:
            reporter.write_line(line, red=bool(found))
    if found:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _local_postgres_data() -> Path | None:
    """The data directory of the tests' PostgreSQL server, if it runs on this machine."""
    url = os.environ.get(PG_ENV)
    if not url or make_url(url).host not in ("127.0.0.1", "localhost", "::1", None):
        return None

    async def ask() -> str:
        engine = create_async_engine(_async_pg_url(url))
        try:
            async with engine.connect() as conn:
                return str((await conn.exec_driver_sql("SHOW data_directory")).scalar_one())
        finally:
            await engine.dispose()

    try:
        return Path(asyncio.run(ask()))
    except Exception:  # a server that is gone by now: nothing to read
        return None
