"""The bot's one TLS context, shared by every HTTP client in its process.

httpx builds a context for each client it makes, and each one parses certifi's
bundle of authorities: python-telegram-bot's two clients (getUpdates and the rest)
cost about 0.8 MB and 50 ms apiece at every start, and a heartbeat or a checkpoint
that makes its own client paid that again at every beat. One context, made as httpx
makes it (``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` honoured), verifies the same."""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def context() -> ssl.SSLContext:
    return httpx.create_ssl_context()
