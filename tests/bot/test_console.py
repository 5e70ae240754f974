"""``intake console`` end to end: an installation filled through the real bot and the
stand-in, the real command started as a process, and Debian's Chromium driven by
Selenium (nothing downloaded at test time; skipped, saying why, without it)."""

from __future__ import annotations

import io
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest
import sqlalchemy as sa

from bot.console.app import CSP
from bot.standin import TelegramStandIn
from storage import audit, keyfile
from storage.crypto import KemName, PassphraseCost, ServerKeys
from storage.db import open_database, session_factory
from storage.groups import create_group, get_group, list_groups
from storage.inbox import add_note
from storage.messages import store_message
from storage.models import AuditEvent, MessageKind, Role
from storage.people import (
    create_invite,
    find_by_pseudonym,
    find_person,
    get_or_create_person,
    live_grants,
    pseudonym,
    redeem_invite,
)
from storage.sealing import Keyring
from storage.timeutil import utc_now
from storage.trust import bind_installation
from tests.bot.intake_harness import Installation, install
from tests.bot.test_cli import base_env
from tests.bot.test_cli_inbox import (
    CAPTION,
    PASSPHRASE,
    RELATIVE,
    SCHEDULE,
    STRANGER_TEXT,
    audit_rows,
    taken_in,
)
from tests.conftest import Database

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
DOCS = Path(__file__).resolve().parents[2] / "docs"
# A stranger's text that, printed raw, would set the clipboard (OSC 52), clear the
# screen and paint a fake row (CSI), and reverse "safe" (a bidi override).
HOSTILE = (
    "canary-hostile \x1b]52;c;ZXZpbA==\x07\x1b[2J\x1b[31mALL SAFE \u202eefas\u202c \u2066x\u2069"
)
NOTE = "canary-note: called the sister back"


def real_photo() -> bytes:
    """A real JPEG (the inline picture must decode in the browser)."""
    from PIL import Image, ImageDraw

    picture = Image.new("RGB", (240, 160), (38, 50, 56))
    draw = ImageDraw.Draw(picture)
    draw.rectangle((20, 100, 220, 140), fill=(46, 125, 50))
    draw.text((24, 30), "bus ticket, Kunming", fill=(255, 255, 255))
    out = io.BytesIO()
    picture.save(out, format="JPEG")
    return out.getvalue()


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    login: str

    @property
    def base(self) -> str:
        return self.login.split("/login/")[0]


def start_console(installation: Installation, home: Path, *extra: str) -> Running:
    home.mkdir(exist_ok=True)
    cheap = PassphraseCost(memory_kib=8192, iterations=1, lanes=1)
    keyfile.write(home / "operator.key", keyfile.lock(installation.operator_key, PASSPHRASE, cheap))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bot.cli",
            "console",
            "--config",
            str(installation.path / "config.toml"),
            "--key",
            "operator.key",
            "--no-browser",
            *extra,
        ],
        cwd=home,
        env=base_env({"INTAKE_PASSPHRASE": PASSPHRASE}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], 60)
    line = process.stdout.readline().decode() if ready else ""
    found = re.search(r"http://127\.0\.0\.1:\d+/login/\S+", line)
    if found is None:
        process.kill()
        _, stderr = process.communicate(timeout=10)
        raise AssertionError(f"the console printed no login URL: {line!r} {stderr.decode()!r}")
    return Running(process, found.group(0))


def stop(running: Running, how: signal.Signals = signal.SIGTERM) -> str:
    if running.process.poll() is None:
        running.process.send_signal(how)
    stdout, _ = running.process.communicate(timeout=30)
    return stdout.decode()


def fetch(url: str, *, cookie: str | None = None, data: bytes | None = None) -> tuple[int, Any]:
    """A request outside the browser: (status, the response with its headers)."""
    request = urllib.request.Request(url, data=data)  # noqa: S310 (our own 127.0.0.1)
    if cookie:
        request.add_header("Cookie", cookie)

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        response = opener.open(request, timeout=30)
        return response.status, response
    except urllib.error.HTTPError as exc:
        return exc.code, exc


def wait_until_left(browser: Any, old: Any) -> None:
    """Wait until the page that held ``old`` is gone. While the next page replaces it,
    Chromium may answer a question about the old node with "Node with given id does not
    belong to the document" instead of "stale": that means gone too, so ask again."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 15, ignored_exceptions=(WebDriverException,)).until(
        expected_conditions.staleness_of(old)
    )


def click_and_wait(browser: Any, element: Any) -> None:
    """Click what leaves the page, and wait for the next one to load."""
    from selenium.webdriver.common.by import By

    old = browser.find_element(By.TAG_NAME, "html")
    element.click()
    wait_until_left(browser, old)


def keys_and_wait(browser: Any, *keys: str) -> None:
    from selenium.webdriver.common.by import By

    old = browser.find_element(By.TAG_NAME, "html")
    browser.find_element(By.TAG_NAME, "body").send_keys(*keys)
    wait_until_left(browser, old)


def chromium_or_skip() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if missing:
        pytest.skip(
            f"no Chromium here ({', '.join(missing)} missing): .ci/run installs Debian's "
            "chromium and chromium-driver"
        )


@pytest.fixture
def browsers(tmp_path: Path) -> Iterator[Any]:
    """Fresh Chromium profiles (each its own cookie jar), headless."""
    chromium_or_skip()
    from selenium import webdriver

    started: list[Any] = []

    def new(name: str) -> Any:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for argument in (
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--window-size=1400,1000",
            f"--user-data-dir={tmp_path / ('profile-' + name)}",
        ):
            options.add_argument(argument)
        driver = webdriver.Chrome(
            options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER)
        )
        driver.implicitly_wait(5)  # a page after a form's POST and redirect
        started.append(driver)
        return driver

    yield new
    for driver in started:
        driver.quit()


async def filled(tmp_path: Path, database: Database, standin: TelegramStandIn) -> Installation:
    installation = await install(
        tmp_path / "server",
        standin=standin,
        database_url=database.url,
        extra="delete_forwarded = false",
    )
    await taken_in(
        installation,
        standin,
        photo=real_photo(),
        strangers_texts=(STRANGER_TEXT, HOSTILE),
    )
    return installation


async def also_for_oak(installation: Installation) -> str:
    """The relative of PINE-7 is invited for OAK-2 too, with the admin's label for her and
    the chat label she chooses that group by; her pseudonym."""
    settings = installation.settings
    server = ServerKeys(settings.server_secret_bytes())
    async with (
        open_database(settings.database.url, migrate_to_head=False) as engine,
        session_factory(engine)() as session,
        session.begin(),
    ):
        oak = await get_group(session, codename="OAK-2")
        mother = await find_person(session, server=server, telegram_id=RELATIVE)
        assert mother is not None
        _, code = await create_invite(
            session,
            server=server,
            role=Role.RELATIVE,
            group=oak,
            ttl=timedelta(days=1),
            now=utc_now(),
            label="Ji-woo",
            chat_label="2",
        )
        await redeem_invite(session, server=server, code=code, person=mother, now=utc_now())
        return pseudonym(mother)


async def live_roles(installation: Installation, name: str) -> list[str]:
    """A person's live grants, read from the database: "relative PINE-7"."""
    async with (
        open_database(installation.settings.database.url, migrate_to_head=False) as engine,
        session_factory(engine)() as session,
    ):
        person = await find_by_pseudonym(session, name=name)
        assert person is not None
        codenames = {g.id: g.codename for g in await list_groups(session)}
        return sorted(
            f"{g.role.value} {codenames[g.group_id]}" if g.group_id else g.role.value
            for g in await live_grants(session, person_id=person.id)
        )


async def revocations(installation: Installation) -> list[AuditEvent]:
    async with (
        open_database(installation.settings.database.url, migrate_to_head=False) as engine,
        session_factory(engine)() as session,
    ):
        query = sa.select(AuditEvent).where(AuditEvent.action == "role.revoke")
        return list((await session.exec(query)).all())


async def test_an_operator_works_the_inbox_in_a_real_browser(
    tmp_path: Path, database: Database, standin: TelegramStandIn, browsers: Any
) -> None:
    if database.backend != "sqlite":
        pytest.skip("the console reads both databases through storage/inbox.py, tested on both")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select, WebDriverWait

    installation = await filled(tmp_path, database, standin)
    mother = await also_for_oak(installation)
    me = installation.operator_key.public_key().fingerprint()[:16]
    running = start_console(installation, tmp_path / "operator")
    try:
        browser = browsers("operator")
        # ---- log in with the printed URL: the board, one labelled time zone
        browser.get(running.login)
        assert browser.current_url == running.base + "/"
        assert browser.find_element(By.ID, "tz").text == "All times UTC"
        board = browser.find_element(By.CSS_SELECTOR, "table.board").text
        assert "PINE-7" in board
        assert "OAK-2" in board
        pictures = browser.find_elements(By.CSS_SELECTOR, "figure.timeline img")
        assert len(pictures) == 2  # each group's journey, drawn
        WebDriverWait(browser, 30).until(
            lambda b: all(
                b.execute_script("return arguments[0].complete && arguments[0].naturalWidth", p)
                for p in pictures
            )
        )
        if os.environ.get("INTAKE_SCREENSHOTS"):
            browser.save_screenshot(str(DOCS / "console-board.png"))

        # ---- filter the inbox: the unlinked are the stranger's two texts
        browser.get(running.base + "/inbox")
        browser.find_element(By.CSS_SELECTOR, "input[name=unlinked]").click()
        click_and_wait(
            browser, browser.find_element(By.CSS_SELECTOR, "#filters button[type=submit]")
        )
        rows = browser.find_elements(By.CSS_SELECTOR, "table.inbox tbody tr.row")
        assert len(rows) == 2
        assert "unlinked=1" in browser.current_url

        # ---- a stranger's ESC, OSC and bidi characters are marks, never interpreted
        hostile_row = next(r for r in rows if "canary-hostile" in r.text)
        click_and_wait(browser, hostile_row.find_element(By.CSS_SELECTOR, "td.text a"))
        body = browser.find_element(By.CSS_SELECTOR, "pre.body")
        shown = body.text
        assert "␛]52;c;ZXZpbA==␇␛[2J␛[31mALL SAFE ⟨RLO⟩efas⟨PDF⟩ ⟨LRI⟩x⟨PDI⟩" in shown
        assert not any(c in shown for c in "\x1b\x07\u202e\u202c\u2066\u2069")
        assert len(body.find_elements(By.CSS_SELECTOR, "span.ctl")) == 8

        # ---- the photo message: the picture inline; then link, star and note it
        browser.get(running.base + "/inbox?kind=photo")
        click_and_wait(browser, browser.find_element(By.CSS_SELECTOR, "table.inbox td.text a"))
        assert CAPTION in browser.find_element(By.CSS_SELECTOR, "pre.body").text
        picture = browser.find_element(By.CSS_SELECTOR, "img.picture")
        assert browser.execute_script("return arguments[0].naturalWidth", picture) == 240
        photo_url = browser.current_url
        photo_id = photo_url.rsplit("/", 1)[1]
        browser.find_element(By.ID, "note-text").send_keys(NOTE)
        click_and_wait(browser, browser.find_element(By.ID, "add-note"))
        assert NOTE in browser.find_element(By.CSS_SELECTOR, ".note pre").text
        # Its author by name: this console was given the installation's server secret.
        author = browser.find_element(By.CSS_SELECTOR, ".note .author")
        assert (author.text, author.get_attribute("title")) == ("Operator", me)
        click_and_wait(browser, browser.find_element(By.ID, "star-button"))
        assert "Unstar" in browser.find_element(By.ID, "star-button").text
        if os.environ.get("INTAKE_SCREENSHOTS"):
            browser.save_screenshot(str(DOCS / "console-message.png"))
        # Linked by the relative's only group; the operator moves it to OAK-2.
        Select(browser.find_element(By.ID, "link-group")).select_by_visible_text("OAK-2")
        click_and_wait(browser, browser.find_element(By.ID, "link-button"))
        assert "OAK-2 (linked by operator)" in browser.find_element(By.CSS_SELECTOR, "dl").text

        # ---- keyboard: j to the first row, s stars it
        browser.get(running.base + "/inbox?group=PINE-7")
        first = browser.find_element(By.CSS_SELECTOR, "table.inbox tbody tr.row")
        assert "☆" in first.text
        browser.find_element(By.TAG_NAME, "body").send_keys("j")
        assert "focused" in first.get_attribute("class")
        keys_and_wait(browser, "s")
        first = browser.find_element(By.CSS_SELECTOR, "table.inbox tbody tr.row")
        assert "★" in first.text
        keys_and_wait(browser, "j", Keys.ENTER)
        assert "/message/" in browser.current_url

        # ---- people: the admin's label and a relative's chat labels; revoke one grant,
        # asked again, as `intake role revoke` would (this console has the server secret)
        browser.get(running.base + "/people")
        row = browser.find_element(By.ID, f"person-{mother}")
        assert row.find_element(By.CSS_SELECTOR, "td.label").text == "Ji-woo"
        grants = row.find_elements(By.CSS_SELECTOR, "li.grant")
        assert [g.text.split(" Revoke")[0] for g in grants] == [
            "relative PINE-7",
            "relative OAK-2 · chat label “2”",
        ]
        assert not row.find_elements(By.CSS_SELECTOR, "code.command")
        click_and_wait(browser, grants[1].find_element(By.CSS_SELECTOR, "button.revoke"))
        assert (
            f"{mother} loses relative OAK-2 at once"
            in browser.find_element(By.TAG_NAME, "main").text
        )
        assert await live_roles(installation, mother) == ["relative OAK-2", "relative PINE-7"]
        click_and_wait(browser, browser.find_element(By.ID, "confirm-revoke"))
        assert browser.find_element(By.ID, "done").text == f"Revoked {mother}: relative OAK-2."
        assert await live_roles(installation, mother) == ["relative PINE-7"]
        browser.get(running.base + "/people")
        row = browser.find_element(By.ID, f"person-{mother}")
        oak = row.find_elements(By.CSS_SELECTOR, "li.grant")[1]
        assert "revoked" in oak.get_attribute("class")
        assert "(revoked " in oak.text
        assert not oak.find_elements(By.CSS_SELECTOR, "button")
        assert len(row.find_elements(By.CSS_SELECTOR, "button.revoke")) == 1  # PINE-7's

        # ---- the audit trail shows each, verified, under the operator's name
        browser.get(running.base + "/audit")
        assert browser.find_element(By.ID, "verdict").text.startswith("chain verified")
        trail = browser.find_element(By.CSS_SELECTOR, "table.audit").text
        for action in (
            "inbox.link",
            "inbox.star",
            "inbox.note",
            "inbox.read",
            "inbox.list",
            "role.revoke",
        ):
            assert action in trail
        assert NOTE not in trail
        assert "canary" not in trail
        cells = [
            [td.text for td in r.find_elements(By.TAG_NAME, "td")]
            for r in browser.find_elements(By.CSS_SELECTOR, "table.audit tbody tr")
        ]
        actors = {c[2] for c in cells if c[3].startswith(("inbox.", "role."))}
        assert actors == {"Operator"}

        # ---- without the session, or without the CSRF token, nothing is done
        cookie = "intake_console=" + browser.get_cookie("intake_console")["value"]
        assert browser.get_cookie("intake_console")["httpOnly"] is True
        assert browser.get_cookie("intake_console")["sameSite"] == "Strict"
        act = f"action=star&ids={photo_id}".encode()
        assert fetch(running.base + "/act", data=act)[0] == 403
        assert fetch(running.base + "/act", cookie=cookie, data=act)[0] == 403
        assert fetch(running.base + "/act", cookie=cookie, data=act + b"&csrf=guess")[0] == 403
        assert fetch(running.base + "/inbox")[0] == 403
        revoke = f"pseudonym={mother}&role=relative&group=PINE-7&confirm=yes".encode()
        assert fetch(running.base + "/revoke", cookie=cookie, data=revoke)[0] == 403
        assert fetch(running.base + "/revoke", data=revoke + b"&csrf=guess")[0] == 403
        assert await live_roles(installation, mother) == ["relative PINE-7"]

        # ---- a second browser profile, without the token, gets nothing (not even
        # with the spent login URL)
        other = browsers("stranger")
        for url in (running.base + "/", running.base + "/inbox", photo_url, running.login):
            other.get(url)
            assert "canary" not in other.page_source
            assert "PINE-7" not in other.page_source
        assert "used already" in other.page_source
    finally:
        said = stop(running, signal.SIGHUP)  # the terminal closes
    assert running.process.returncode == 0
    assert "the key is forgotten" in said
    assert NOTE not in said
    assert "canary" not in said
    actions = [e.action for e in await audit_rows(installation)]
    assert {"inbox.note", "inbox.link", "inbox.star"} <= set(actions)
    [revoked] = await revocations(installation)
    assert (revoked.actor, revoked.subject) == (me, mother)
    assert '"relative OAK-2"' in revoked.details


async def test_every_console_response_carries_the_csp_and_no_store_and_no_external_url(
    tmp_path: Path, database: Database, standin: TelegramStandIn
) -> None:
    if database.backend != "sqlite":
        pytest.skip("the console reads both databases through storage/inbox.py, tested on both")
    installation = await filled(tmp_path, database, standin)
    running = start_console(installation, tmp_path / "operator")
    try:
        status, response = fetch(running.login)
        assert status == 303
        cookie = response.headers["Set-Cookie"].split(";")[0]
        assert "HttpOnly" in response.headers["Set-Cookie"]
        seen: dict[str, int] = {}
        queue = ["/", "/inbox", "/people", "/audit", "/message/nonsense", "/no-such-page"]
        while queue and len(seen) < 60:
            path = queue.pop(0)
            if path in seen:
                continue
            status, response = fetch(running.base + path, cookie=cookie)
            seen[path] = status
            assert response.headers["Content-Security-Policy"] == CSP, path
            assert response.headers["Cache-Control"] == "no-store", path
            body = response.read().decode(errors="replace")
            kind = response.headers.get("Content-Type", "")
            if "html" in kind or "css" in kind or "javascript" in kind:
                assert "<script>" not in body, path  # no inline script
                assert " on" not in re.sub(r"\s+", " ", " ".join(re.findall(r"<[^>]+>", body)))
                for ref in re.findall(r'(?:href|src|action)="([^"]*)"', body) + re.findall(
                    r"url\(([^)]*)\)", body
                ):
                    assert "://" not in ref, (path, ref)
                    assert not ref.startswith("//"), (path, ref)
                    if ref.startswith("/") and not ref.startswith(("/login", "/logout")):
                        queue.append(ref.split("#")[0].replace("&amp;", "&"))
        assert seen["/"] == seen["/inbox"] == seen["/audit"] == 200
        assert seen["/message/nonsense"] == 404
        assert seen["/no-such-page"] == 404
        assert any(p.startswith("/message/") and s == 200 for p, s in seen.items())
        assert any(p.startswith("/attachment/") and s == 200 for p, s in seen.items())
        assert any(p.startswith("/static/") for p in seen)
        assert any(p.startswith("/timeline/") for p in seen)
        # Refusals carry the headers too; a foreign Host (DNS rebinding) is refused.
        status, response = fetch(running.base + "/")
        assert status == 403
        assert response.headers["Cache-Control"] == "no-store"

        # ---- shred: asked again, then done, audited; one message, then a stranger's all
        status, page = fetch(running.base + "/inbox?unlinked=1", cookie=cookie)
        html = page.read().decode()
        csrf = re.search(r'name="csrf" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]
        unlinked = re.findall(r'data-href="/message/([0-9a-f-]+)"', html)
        assert len(unlinked) == 2
        first = f"csrf={csrf}&action=shred&ids={unlinked[0]}".encode()
        status, page = fetch(running.base + "/act", cookie=cookie, data=first)
        assert status == 200
        assert 'id="confirm-shred"' in page.read().decode()
        assert fetch(running.base + f"/message/{unlinked[0]}", cookie=cookie)[0] == 200
        status, page = fetch(running.base + "/act", cookie=cookie, data=first + b"&confirm=yes")
        assert status == 200
        assert "Shredded 1 message" in page.read().decode()
        assert fetch(running.base + f"/message/{unlinked[0]}", cookie=cookie)[0] == 404
        status, page = fetch(running.base + f"/message/{unlinked[1]}", cookie=cookie)
        stranger = re.search(r'name="sender" value="(P-[0-9A-F]+)"', page.read().decode())
        assert stranger is not None
        everything = f"csrf={csrf}&action=shred&sender={stranger.group(1)}&confirm=yes".encode()
        status, page = fetch(running.base + "/act", cookie=cookie, data=everything)
        assert "Shredded 1 message" in page.read().decode()
        assert fetch(running.base + f"/message/{unlinked[1]}", cookie=cookie)[0] == 404
    finally:
        said = stop(running)
    assert running.process.returncode == 0, said
    # A shred's audit row names the message it shredded as its subject.
    shredded = [
        cast(str, e.subject) for e in await audit_rows(installation) if e.action == "inbox.shred"
    ]
    assert sorted(shredded) == sorted(unlinked)


async def a_case_without_the_bot(installation: Installation) -> tuple[str, str]:
    """Through storage alone: a relative invited with the admin's label and a chat label,
    her message linked to PINE-7, the operator's note on it and an operator's read in the
    audit trail. Her pseudonym and the message's id."""
    settings = installation.settings
    server = ServerKeys(settings.server_secret_bytes())
    now = utc_now()
    async with open_database(settings.database.url) as engine:
        bind_installation(
            engine, secret=settings.server_secret_bytes(), config_dir=installation.path
        )
        async with session_factory(engine)() as session, session.begin():
            pine = await create_group(
                session, codename="PINE-7", schedule=SCHEDULE, kem=KemName.X25519, now=now
            )
            person = await get_or_create_person(
                session, server=server, telegram_id=RELATIVE, chat_id=RELATIVE, now=now
            )
            _, code = await create_invite(
                session,
                server=server,
                role=Role.RELATIVE,
                group=pine,
                ttl=timedelta(days=1),
                now=now,
                label="Ji-woo",
                chat_label="1",
            )
            await redeem_invite(session, server=server, code=code, person=person, now=now)
            stored = await store_message(
                session,
                server=server,
                kind=MessageKind.TEXT,
                body={"text": "at the border", "caption": None},
                received_at=now,
                group=pine,
                sender=person,
            )
            keyring = await Keyring.for_key(session, installation.operator_key)
            await add_note(
                session, operator_id=keyring.operator.id, message=stored, text="called", now=now
            )
            await audit.append(
                session,
                actor=keyring.operator.fingerprint[:16],
                action="inbox.read",
                subject=str(stored.id),
                at=now,
            )
            return pseudonym(person), str(stored.id)


async def test_a_console_without_the_server_secret_names_by_fingerprint_and_never_revokes(
    tmp_path: Path, database: Database, standin: TelegramStandIn, browsers: Any
) -> None:
    """Given a copy (or a URL) and the key alone, the console is an operator's, not an
    admin's: a person's label stays sealed, an author is a labelled fingerprint, and a
    revocation is the command to give an admin."""
    if database.backend != "sqlite":
        pytest.skip("the console reads both databases through storage/, tested on both")
    from selenium.webdriver.common.by import By

    installation = await install(tmp_path / "server", standin=standin, database_url=database.url)
    name, message_id = await a_case_without_the_bot(installation)
    short = installation.operator_key.public_key().fingerprint()[:9]
    (installation.path / "token").unlink()
    (installation.path / "server_secret").unlink()
    copy = "sqlite:///" + installation.settings.database.url.split("///", 1)[1]
    running = start_console(installation, tmp_path / "operator", "--database", copy)
    try:
        browser = browsers("operator")
        browser.get(running.login)
        browser.get(running.base + "/people")
        page = browser.find_element(By.TAG_NAME, "main").text
        assert "was not given the installation's config and server secret" in page
        row = browser.find_element(By.ID, f"person-{name}")
        assert row.find_element(By.CSS_SELECTOR, "td.label").text == "sealed"
        assert "Ji-woo" not in browser.page_source
        [grant] = row.find_elements(By.CSS_SELECTOR, "li.grant")
        assert grant.text.startswith("relative PINE-7 · chat label “1”")
        command = grant.find_element(By.CSS_SELECTOR, "code.command").text
        assert command == f"intake role revoke {name} --role relative --group PINE-7"
        assert not browser.find_elements(By.CSS_SELECTOR, "button.revoke")

        # Even asked directly, with the session and its CSRF token, it refuses.
        cookie = "intake_console=" + browser.get_cookie("intake_console")["value"]
        csrf = browser.find_element(By.CSS_SELECTOR, "input[name=csrf]").get_attribute("value")
        form = f"csrf={csrf}&pseudonym={name}&role=relative&group=PINE-7&confirm=yes"
        status, response = fetch(running.base + "/revoke", cookie=cookie, data=form.encode())
        assert status == 403
        assert command in response.read().decode()
        assert await live_roles(installation, name) == ["relative PINE-7"]

        # A note's author and an audit entry's actor: the operator's short fingerprint.
        browser.get(running.base + f"/message/{message_id}")
        author = browser.find_element(By.CSS_SELECTOR, ".note .author")
        assert author.text == f"operator {short}…"
        browser.get(running.base + "/audit")
        assert browser.find_element(By.ID, "verdict").text.startswith("not verified here")
        cells = [
            [td.text for td in r.find_elements(By.TAG_NAME, "td")]
            for r in browser.find_elements(By.CSS_SELECTOR, "table.audit tbody tr")
        ]
        assert [c[2] for c in cells if c[3] == "inbox.read"] == [f"operator {short}…"]
    finally:
        said = stop(running)
    assert running.process.returncode == 0, said


async def test_the_console_stops_by_itself_when_idle(
    tmp_path: Path, database: Database, standin: TelegramStandIn
) -> None:
    if database.backend != "sqlite":
        pytest.skip("nothing here depends on the database")
    installation = await install(tmp_path / "server", standin=standin, database_url=database.url)
    (installation.path / "token").unlink()
    (installation.path / "server_secret").unlink()  # nor the server secret, given --database
    running = start_console(
        installation,
        tmp_path / "operator",
        "--idle",
        "0.03",
        "--database",
        "sqlite:///" + installation.settings.database.url.split("///", 1)[1],
    )
    started = time.monotonic()
    said = stop_when_done(running)
    assert time.monotonic() - started < 30
    assert "the key is forgotten" in said
    assert not answers(running.base + "/")  # the port is closed


def answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=5)  # noqa: S310 (our own 127.0.0.1)
    except urllib.error.HTTPError:
        return True
    except urllib.error.URLError:
        return False
    return True


def stop_when_done(running: Running) -> str:
    stdout, _ = running.process.communicate(timeout=60)
    assert running.process.returncode == 0
    return stdout.decode()
