"""The console's web application: aiohttp and Jinja2 (autoescaping on), on 127.0.0.1.

Who may use it: whoever opened the one-time login URL first; that browser gets an
HttpOnly, SameSite=Strict session cookie, every other browser gets nothing. Every
action is a POST carrying the session's CSRF token. Every response carries a
strict Content-Security-Policy (scripts, styles and pictures from this server
alone, no inline script) and ``Cache-Control: no-store``. A request whose Host is
not this console's own address is refused (no DNS rebinding).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from aiohttp import web
from markupsafe import Markup, escape
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.visible import visible_parts
from storage.crypto import PrivateKey
from storage.db import session_factory
from storage.sealing import Keyring
from storage.session import AsyncSession
from storage.trust import bound

HERE = Path(__file__).resolve().parent
COOKIE = "intake_console"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # "no-referrer" would make Origin "null"
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
OPEN_PATHS = ("/login/",)
log = logging.getLogger(__name__)  # what a request without a session may reach

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Console:
    """The running console: the unlocked key, the database, who is logged in."""

    engine: AsyncEngine
    private_key: PrivateKey | None
    tz: ZoneInfo
    idle_seconds: float
    # The operator's own audit file, beside the key: every read and act is written there,
    # and into the database's chain too where the server secret keys it (a copy opened
    # without the secret keeps them here until `intake audit merge`).
    local_audit: Path
    login_token: str | None = field(default_factory=lambda: secrets.token_urlsafe(32))
    sessions: dict[str, str] = field(default_factory=dict)  # session id -> CSRF token
    last_request: float = field(default_factory=time.monotonic)
    stopped: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0
    # The operator's keyring, kept between pages so that each group key is unwrapped
    # once per console rather than once per page; rebuilt after any failed page.
    keyring: Keyring | None = None

    @property
    def has_server_secret(self) -> bool:
        """Started with the installation's config and its server secret: what names
        people and operators, and what `intake role revoke` itself needs (the admin's)."""
        return bound(self.engine) is not None

    def drop_key(self) -> None:
        """Forget the key, the login and every session: nothing opens any more."""
        self.private_key = None
        self.keyring = None
        self.login_token = None
        self.sessions.clear()
        self.stopped.set()

    @contextlib.asynccontextmanager
    async def operator(self) -> AsyncIterator[tuple[AsyncSession, Keyring]]:
        """One transaction and the operator's keyring (committed if the page succeeds)."""
        if self.private_key is None:
            raise web.HTTPServiceUnavailable(text="the console has stopped")
        async with session_factory(self.engine)() as session, session.begin():
            if self.keyring is None:
                self.keyring = await Keyring.for_key(session, self.private_key)
            try:
                yield session, self.keyring
            except BaseException:
                self.keyring = None  # a re-keyed group, a removed operator: look again
                raise

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        async with session_factory(self.engine)() as session, session.begin():
            yield session


CONSOLE: web.AppKey[Console] = web.AppKey("console", Console)
TEMPLATES: web.AppKey[jinja2.Environment] = web.AppKey("templates", jinja2.Environment)


def marks(text: object) -> Markup:
    """A Jinja2 filter: the text escaped, its control and bidi characters as marks."""
    return Markup("").join(
        Markup('<span class="ctl" title="a hidden character, shown">{}</span>').format(piece)
        if is_mark
        else escape(piece)
        for piece, is_mark in visible_parts(str(text))
    )


def templates(tz: ZoneInfo) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["marks"] = marks

    def when(moment: datetime | None) -> str:
        return "—" if moment is None else moment.astimezone(tz).strftime("%Y-%m-%d %H:%M")

    env.filters["when"] = when
    return env


def render(request: web.Request, name: str, **context: Any) -> web.Response:
    console = request.app[CONSOLE]
    sid = request.cookies.get(COOKIE, "")
    body = (
        request.app[TEMPLATES]
        .get_template(name)
        .render(
            csrf=console.sessions.get(sid, ""), tz=str(console.tz), path=request.path, **context
        )
    )
    return web.Response(text=body, content_type="text/html", charset="utf-8")


# --------------------------------------------------------------------------- middlewares


def _secure(response: web.StreamResponse) -> web.StreamResponse:
    for name, value in HEADERS.items():
        response.headers[name] = value
    return response


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every response carries HEADERS: a page, a refusal, and a failure too."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _secure(exc)
        raise
    except Exception:
        # The route's pattern, never the path: a login path holds the token.
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "?"
        log.exception("the console failed on %s %s", request.method, route)
        failed = web.HTTPInternalServerError(
            text="The console failed on this page; the terminal that started it says why."
        )
        _secure(failed)
        raise failed from None
    return _secure(response)


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Own host only; a session for everything but the login; a CSRF token on
    every action; and the idle clock reset."""
    console = request.app[CONSOLE]
    allowed = {f"127.0.0.1:{console.port}", f"localhost:{console.port}"}
    if request.host not in allowed:
        raise web.HTTPForbidden(text="this console answers on its own address only")
    if console.private_key is None:
        raise web.HTTPServiceUnavailable(text="the console has stopped")
    if not request.path.startswith(OPEN_PATHS):
        sid = request.cookies.get(COOKIE, "")
        csrf = console.sessions.get(sid)
        if csrf is None:
            raise web.HTTPForbidden(text="not logged in: open the URL the console printed")
        if request.method not in ("GET", "HEAD"):
            origin = request.headers.get("Origin")
            if origin is not None and origin != f"http://{request.host}":
                raise web.HTTPForbidden(text="a request from another site")
            form = await request.post()
            if not hmac.compare_digest(str(form.get("csrf", "")), csrf):
                raise web.HTTPForbidden(text="the form's CSRF token is missing or wrong")
    console.last_request = time.monotonic()
    return await handler(request)


# --------------------------------------------------------------------------- login


async def login(request: web.Request) -> web.StreamResponse:
    """The one-time URL: the first browser to open it gets the session; the token
    is spent, so a second browser (or the same URL from the history) gets nothing."""
    console = request.app[CONSOLE]
    token = request.match_info["token"]
    if console.login_token is None or not hmac.compare_digest(token, console.login_token):
        raise web.HTTPForbidden(text="this login link was used already or is wrong")
    console.login_token = None
    sid = secrets.token_urlsafe(32)
    console.sessions[sid] = secrets.token_urlsafe(32)
    # A plain 303: aiohttp deprecates returning an HTTPSeeOther.
    response = web.Response(status=303, headers={"Location": "/"})
    response.set_cookie(COOKIE, sid, httponly=True, samesite="Strict", path="/")
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    request.app[CONSOLE].drop_key()
    return web.Response(text="The console has stopped and forgotten the key.")


def make_app(console: Console) -> web.Application:
    from bot.console import views

    app = web.Application(middlewares=[security_headers, guard], client_max_size=1024**2)
    app[CONSOLE] = console
    app[TEMPLATES] = templates(console.tz)
    app.router.add_get("/login/{token}", login)
    app.router.add_post("/logout", logout)
    views.add_routes(app)
    app.router.add_static("/static/", HERE / "static", append_version=False)
    return app


async def watch_idle(console: Console) -> None:
    """Stop after ``idle_seconds`` without a request."""
    while not console.stopped.is_set():
        left = console.idle_seconds - (time.monotonic() - console.last_request)
        if left <= 0:
            console.drop_key()
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(left, 5.0)):
                await console.stopped.wait()


async def serve(console: Console, *, on_ready: Callable[[str], None]) -> None:
    """Serve until the idle clock runs out, the operator logs out, or the task is
    cancelled (the terminal closed); the key is dropped in every case."""
    app = make_app(console)
    runner = web.AppRunner(app, access_log=None)  # no URL (and no token) in any log
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", console.port)
        await site.start()
        server = site._server
        assert server is not None  # noqa: S101 (started just above)
        sockets = getattr(server, "sockets", None) or []
        console.port = sockets[0].getsockname()[1]
        on_ready(f"http://127.0.0.1:{console.port}/login/{console.login_token}")
        await watch_idle(console)
    finally:
        console.drop_key()
        await runner.cleanup()
