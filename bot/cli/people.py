"""People and their roles: `intake people list` and `intake role revoke`.

People are named by the label the admin gave at invite time and their
pseudonym, never by an identifier (none is stored in clear). A revocation takes
effect at once: the person gets no further alert, and every command and button
press of theirs is refused like a stranger's (``bot.commands``, ``bot.activists``).
"""

from __future__ import annotations

import enum
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

import sqlalchemy as sa
import typer
from rich import box
from rich.table import Table
from rich.text import Text
from sqlalchemy import select

from bot.cli.common import (
    ADMIN_ACTOR,
    ConfigOption,
    Refused,
    app,
    codename_argument,
    iso,
    out,
    run,
    when,
    workspace,
)
from storage import audit
from storage.groups import get_group
from storage.models import Group, Invite, Message, Person, Role, RoleGrant
from storage.people import find_by_pseudonym, label_of_invite, pseudonym, revoke_roles
from storage.timeutil import utc_now

people_app = typer.Typer(
    help="People who hold a role, by label and pseudonym.", no_args_is_help=True
)
role_app = typer.Typer(help="Roles: revoke one at once (a seized phone).", no_args_is_help=True)
app.add_typer(people_app, name="people")
app.add_typer(role_app, name="role")


class Format(enum.StrEnum):
    TABLE = "table"
    JSON = "json"


COLUMNS = (
    ("pseudonym", 9),
    ("label", 12),
    ("roles", 18),
    ("granted", 20),
    ("last seen", 20),
    ("revoked", 18),
)


@dataclass(frozen=True, slots=True)
class Listed:
    pseudonym: str
    label: str | None
    roles: list[str]  # live grants, "activist PINE-7", "admin"
    revoked: list[str]
    granted_at: datetime | None
    last_seen_at: datetime | None

    def as_json(self) -> dict[str, object]:
        return {
            "pseudonym": self.pseudonym,
            "label": self.label,
            "roles": self.roles,
            "revoked": self.revoked,
            "granted_at": iso(self.granted_at),
            "last_seen_at": iso(self.last_seen_at),
        }


def _role_text(grant: RoleGrant, codenames: dict[uuid.UUID, str]) -> str:
    if grant.group_id is None:
        return grant.role.value
    return f"{grant.role.value} {codenames.get(grant.group_id, '?')}"


@people_app.command("list")
def people_list(
    role: Annotated[Role | None, typer.Option("--role", help="Only people with this role.")] = None,
    group: Annotated[
        str | None, typer.Option("--group", help="Only people with a role for this group.")
    ] = None,
    output: Annotated[
        Format, typer.Option("--format", help="A table, or JSON lines.")
    ] = Format.TABLE,
    config: ConfigOption = None,
) -> None:
    """Everyone who holds or held a role: pseudonym, label, roles, granted, last seen."""
    now = utc_now()

    async def go() -> list[Listed]:
        async with workspace(config) as ws:
            session = ws.session
            target = await get_group(session, codename=codename_argument(group)) if group else None
            codenames = {g.id: g.codename for g in (await session.exec(select(Group))).all()}
            grants = (await session.exec(select(RoleGrant).order_by(RoleGrant.granted_at))).all()
            invites = {
                i.id: i
                for i in (
                    await session.exec(
                        select(Invite).where(
                            Invite.id.in_([g.invite_id for g in grants if g.invite_id])
                        )
                    )
                ).all()
            }
            wanted = {
                g.person_id
                for g in grants
                if g.revoked_at is None
                and (role is None or g.role is role)
                and (target is None or g.group_id == target.id)
            }
            if role is None and target is None:
                wanted = {g.person_id for g in grants}
            people = (await session.exec(select(Person).where(Person.id.in_(list(wanted))))).all()
            wrote = dict(
                (
                    await session.exec(
                        select(Message.sender_id, sa.func.max(Message.received_at))
                        .where(Message.sender_id.in_(list(wanted)))
                        .group_by(Message.sender_id)
                    )
                ).all()
            )
            listed = []
            for person in people:
                own = [g for g in grants if g.person_id == person.id]
                labels = [
                    label_of_invite(ws.server, invites[g.invite_id])
                    for g in own
                    if g.invite_id in invites
                ]
                seen = [t for t in (person.last_seen_at, wrote.get(person.id)) if t is not None]
                live = [g for g in own if g.revoked_at is None]
                listed.append(
                    Listed(
                        pseudonym=pseudonym(person),
                        label=next((x for x in reversed(labels) if x), None),
                        roles=[_role_text(g, codenames) for g in live],
                        revoked=[_role_text(g, codenames) for g in own if g.revoked_at],
                        granted_at=min((g.granted_at for g in live), default=None),
                        last_seen_at=max(seen, default=None),
                    )
                )
            await audit.append(
                session,
                actor=ADMIN_ACTOR,
                action="people.list",
                subject=target.codename if target else None,
                at=now,
                details={"people": len(listed), "role": role.value if role else None},
            )
            return sorted(listed, key=lambda x: ((x.label or "").lower(), x.pseudonym))

    listed = run(go())
    if output is Format.JSON:
        for item in listed:
            out.print(json.dumps(item.as_json(), ensure_ascii=False), soft_wrap=True, emoji=False)
        return
    if not listed:
        out.print("No people.")
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    # Wide enough for whole values even on an 80-column terminal (or none): a
    # truncated pseudonym or label would name nobody.
    for heading, width in COLUMNS:
        table.add_column(heading, no_wrap=True, min_width=width)
    for item in listed:
        cells = (
            item.pseudonym,
            item.label or "—",
            ", ".join(item.roles) or "—",
            when(item.granted_at),
            when(item.last_seen_at),
            ", ".join(item.revoked) or "—",
        )
        # As written: a label is the admin's text, and no ":name:" in it becomes an emoji.
        table.add_row(*(Text(c) for c in cells))
    out.print(table)


@role_app.command("revoke")
def role_revoke(
    person: Annotated[str, typer.Argument(metavar="PSEUDONYM", help="Like P-4310A9.")],
    role: Annotated[
        Role | None, typer.Option("--role", help="Only this role (default: every role).")
    ] = None,
    group: Annotated[
        str | None, typer.Option("--group", help="Only the grant for this group.")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Take a person's roles away, at once: no more alerts; every command and
    button press of theirs is refused like a stranger's."""
    now = utc_now()

    async def go() -> tuple[str, list[str], int]:
        async with workspace(config) as ws:
            session = ws.session
            found = await find_by_pseudonym(session, name=person)
            if found is None:
                raise Refused(f"nobody has the pseudonym {person.strip().upper()}")
            target = await get_group(session, codename=codename_argument(group)) if group else None
            revoked = await revoke_roles(
                session,
                person=found,
                role=role,
                group_id=target.id if target else None,
                now=now,
            )
            if not revoked.grants:
                raise Refused(f"{pseudonym(found)} holds no such live role")
            codenames = {g.id: g.codename for g in (await session.exec(select(Group))).all()}
            roles = [_role_text(g, codenames) for g in revoked.grants]
            dropped = revoked.alerts_dropped
            await audit.append(
                session,
                actor=ADMIN_ACTOR,
                action="role.revoke",
                subject=pseudonym(found),
                at=now,
                details={"roles": roles, "alerts_dropped": dropped},
            )
            return pseudonym(found), roles, dropped

    name, roles, dropped = run(go())
    out.print(f"Revoked {name}: {', '.join(roles)}.")
    if dropped:
        out.print(f"{dropped} alert(s) waiting for them will not be sent.")
