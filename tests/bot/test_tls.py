"""The bot's one TLS context (``bot.tls``): made on a thread of its own while `intake run`
imports the rest, and the same, verifying context httpx itself would make."""

from __future__ import annotations

import importlib
import ssl
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest

import bot.tls


@pytest.fixture
def tls() -> Iterator[ModuleType]:
    """``bot.tls`` with nothing made yet (its state is the module's); fresh again after."""
    yield importlib.reload(bot.tls)
    importlib.reload(bot.tls)


@pytest.fixture
def made_on(tls: ModuleType, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the threads that made the context, one per making."""
    makers: list[str] = []
    make = tls._make

    def watched() -> None:
        makers.append(threading.current_thread().name)
        make()

    monkeypatch.setattr(tls, "_make", watched)
    return makers


def test_the_prepared_context_verifies_as_httpx_would_and_is_shared(
    tls: ModuleType, made_on: list[str]
) -> None:
    tls.prepare()
    tls.prepare()  # a second call starts nothing more
    first = tls.context()
    assert tls.context() is first
    assert made_on == ["tls-context"]  # made once, off the main thread
    assert first.verify_mode == ssl.CERT_REQUIRED
    assert first.check_hostname
    assert first.get_ca_certs() == httpx.create_ssl_context().get_ca_certs()
    assert len(first.get_ca_certs()) > 50  # certifi's authorities, not an empty store


def test_without_prepare_the_context_is_made_where_it_is_asked_for(
    tls: ModuleType, made_on: list[str]
) -> None:
    context = tls.context()
    assert made_on == [threading.current_thread().name]
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert tls.context() is context
    assert made_on == [threading.current_thread().name]  # not made again


def test_a_context_that_cannot_be_made_fails_in_the_thread_that_asks(
    tls: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", "/nonexistent/bundle.pem")  # honoured, as by httpx
    tls.prepare()
    for _ in range(2):  # every caller is told, not only the first
        with pytest.raises(FileNotFoundError):
            tls.context()


def test_the_thread_imports_nothing(tmp_path: Path) -> None:
    """Two threads importing at once can meet each other's half-made modules: whatever
    making the context needs is imported by ``prepare``'s caller, and the thread only
    asks OpenSSL. A fresh interpreter, as `intake run` is, records who imports what."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        textwrap.dedent(
            """
            import sys, threading

            class Witness:
                seen = []

                def find_spec(self, name, path=None, target=None):
                    self.seen.append((threading.current_thread().name, name))
                    return None

            witness = Witness()
            sys.meta_path.insert(0, witness)
            from bot import tls

            tls.prepare()
            tls.context()
            print(sorted({name for thread, name in witness.seen if thread == "tls-context"}))
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(probe)], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout
