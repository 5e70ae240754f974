"""The bot's one TLS context, shared by every HTTP client in its process.

httpx builds a context for each client it makes, and each one parses certifi's
bundle of authorities: python-telegram-bot's two clients (getUpdates and the rest)
cost about 0.8 MB and 50 ms apiece at every start, and a heartbeat or a checkpoint
that makes its own client paid that again at every beat. One context, made as httpx
makes it (``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` honoured), verifies the same.

`intake run` starts making it on a thread of its own (``prepare``) before it imports
the rest of the bot: OpenSSL reads the bundle (about 30 ms) with the GIL released, so
that time runs beside the imports instead of after them."""

from __future__ import annotations

import ssl
import threading
from concurrent.futures import Future

import certifi
import httpx

_made: Future[ssl.SSLContext] = Future()
_started = threading.Lock()  # held for good by whoever makes the context


def _make() -> None:
    try:
        _made.set_result(httpx.create_ssl_context())
    except BaseException as exc:  # raised again by context(), in the caller's thread
        _made.set_exception(exc)


def prepare() -> None:
    """Start making the context in the background (idempotent)."""
    if _started.acquire(blocking=False):
        # What the thread will import, here in the caller's thread: certifi finds its
        # bundle (and caches the path) through importlib.resources, whose readers load
        # at first use, and two threads importing at once can meet each other's
        # half-made modules. The thread is then left with OpenSSL's work alone.
        certifi.where()
        threading.Thread(target=_make, name="tls-context", daemon=True).start()


def context() -> ssl.SSLContext:
    """The context: made here if nothing started it; waited for if it is on its way."""
    if _started.acquire(blocking=False):
        _make()
    return _made.result()
