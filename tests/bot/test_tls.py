"""The bot's one TLS context (``bot.tls``): made on a thread of its own while `intake run`
imports the rest, and the same, verifying context httpx itself would make."""

from __future__ import annotations

import importlib
import ssl
import threading
from collections.abc import Iterator
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
