"""A throwaway PostgreSQL cluster of the test's own: initdb into a temporary folder with
the machine's PostgreSQL binaries, on its own port, so that a test can stop and start
it for real. The shared server on 5432 is never touched."""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

BINARIES = "/usr/lib/postgresql/*/bin"


def _binaries() -> Path | None:
    found = sorted(glob.glob(BINARIES))
    return Path(found[-1]) if found and Path(found[-1], "initdb").exists() else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    bin: Path
    data: Path
    port: int
    run_as: dict[str, Any]

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            [str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-t", "60", *args],
            check=True,
            capture_output=True,
            timeout=90,
            **self.run_as,
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._ctl("-o", options, "-l", str(self.data / "server.log"), "start")

    def stop(self) -> None:
        self._ctl("-m", "fast", "stop")

    async def restart(self, down_for: float = 0.0) -> None:
        """Stop the server (fast: open connections are cut), wait, start it again."""
        await asyncio.to_thread(self.stop)
        await asyncio.sleep(down_for)
        await asyncio.to_thread(self.start)


def _initdb(binaries: Path, data: Path, run_as: dict[str, Any]) -> None:
    subprocess.run(
        [str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-N"],
        check=True,
        capture_output=True,
        timeout=120,
        **run_as,
    )


@contextlib.asynccontextmanager
async def throwaway_cluster() -> AsyncIterator[Cluster]:
    binaries = _binaries()
    if binaries is None:
        pytest.skip(f"no PostgreSQL binaries in {BINARIES} (.ci/run installs postgresql)")
    run_as: dict[str, Any] = {}
    folder = Path(tempfile.mkdtemp(prefix="intake-pg-"))
    if os.geteuid() == 0:  # initdb refuses to run as root
        try:
            shutil.chown(folder, "postgres")
        except (LookupError, OSError):
            shutil.rmtree(folder)
            pytest.skip("running as root and there is no postgres user to run initdb as")
        run_as = {"user": "postgres"}
    data = folder / "data"
    try:
        await asyncio.to_thread(_initdb, binaries, data, run_as)
        cluster = Cluster(bin=binaries, data=data, port=_free_port(), run_as=run_as)
        await asyncio.to_thread(cluster.start)
        try:
            yield cluster
        finally:
            with contextlib.suppress(subprocess.SubprocessError):
                await asyncio.to_thread(cluster.stop)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
