"""One-time invites: `intake invite`, redeemed in Telegram with `/start CODE`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from bot.cli.common import (
    ADMIN_ACTOR,
    ConfigOption,
    app,
    duration_option,
    err,
    fail,
    out,
    run,
    when,
    workspace,
)
from bot.schedules import normalise_codename
from storage import audit
from storage.groups import get_group, list_groups
from storage.models import Role
from storage.people import create_invite
from storage.session import AsyncSession
from storage.timeutil import utc_now

# --------------------------------------------------------------------------- invites


@app.command()
def invite(
    role: Annotated[Role, typer.Option("--role", help="What the invite grants.")],
    group: Annotated[
        str | None, typer.Option("--group", help="The group (relatives and activists).")
    ] = None,
    ttl: Annotated[
        str | None,
        typer.Option("--ttl", help="How long the code stays valid (default [invites] ttl)."),
    ] = None,
    label: Annotated[
        str | None,
        typer.Option(
            "--label",
            help='What you call the person ("Ji-woo"); sealed, and how notices to admins '
            "and `intake people list` name them, beside their pseudonym.",
        ),
    ] = None,
    chat_label: Annotated[
        str | None,
        typer.Option(
            "--chat-label",
            help="For a relative of several groups: the short, neutral word their chat shows "
            "for this group when asking which one (never the codename). Default: 1, 2, ...",
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Make a one-time invite code; the person redeems it with /start CODE."""

    async def go() -> tuple[str, datetime, str | None]:
        async with workspace(config) as ws:
            target = (
                await get_group(ws.session, codename=normalise_codename(group)) if group else None
            )
            if chat_label is not None:
                await _not_a_codename(ws.session, chat_label)
            now = utc_now()
            lifetime = duration_option(ttl, "--ttl") or ws.settings.invites.ttl
            inv, code = await create_invite(
                ws.session,
                server=ws.server,
                role=role,
                group=target,
                ttl=lifetime,
                now=now,
                label=_label(label),
                chat_label=chat_label,
            )
            await audit.append(
                ws.session,
                actor=ADMIN_ACTOR,
                action="invite.create",
                subject=str(inv.id),
                at=now,
                # Whether a label was given, never the label itself (the audit log is not sealed).
                details={
                    "role": role.value,
                    "group": target.codename if target else None,
                    "labelled": bool(label),
                },
            )
            return code, inv.expires_at, ws.settings.telegram.username

    code, expires, username = run(go())
    out.print(code)
    if username:
        out.print(f"https://t.me/{username}?start={code}")
    else:
        out.print(f"t.me/<bot>?start={code}   (set [telegram] username to get the full link)")
    err.print(f"one use, valid until {when(expires)}")


async def _not_a_codename(session: AsyncSession, chat_label: str) -> None:
    """No codename appears in the relative's chat (issue #14): a chat label that is one
    (whatever the case, spaces or dashes) is refused."""
    said = _plain(chat_label)
    if any(_plain(group.codename) == said for group in await list_groups(session)):
        fail("--chat-label: that is a group's codename, which a relative's chat never shows")


def _plain(text: str) -> str:
    return "".join(c for c in text.casefold() if c.isalnum())


def _label(text: str | None) -> str | None:
    if text is None:
        return None
    label = " ".join(text.split())
    if not label or len(label) > 64:
        fail("--label: give 1 to 64 characters")
    return label
