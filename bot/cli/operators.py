"""``intake operator share`` and ``intake operator remove``: the set of operators
changes, and every group key follows, one group per transaction (resumable)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.cli.common import (
    ConfigOption,
    KeyOption,
    Refused,
    err,
    operator_app,
    operator_workspace,
    out,
    run,
    unlock_operator_key,
)
from storage import audit
from storage.crypto import PrivateKey
from storage.models import Group, Operator
from storage.rekey import (
    drop_record_wraps,
    live_groups,
    retire,
    rotate_group,
    share_group,
    share_unlinked,
)
from storage.timeutil import utc_now

Fingerprint = Annotated[str, typer.Argument(help="The operator's key fingerprint (or its start).")]
Step = Callable[..., Awaitable[bool]]


@operator_app.command("share")
def operator_share(
    fingerprint: Fingerprint, config: ConfigOption = None, key: KeyOption = None
) -> None:
    """Wrap every group's key, and every unlinked record's, for an operator added later.
    Run by an operator who holds them (their --key); safe to run again."""
    private = unlock_operator_key(key)
    done = run(_each_group(config, private, fingerprint, share_group, "newcomer", "sharing"))
    out.print(f"Shared {done} group key(s) with {fingerprint}.")


@operator_app.command("remove")
def operator_remove(
    fingerprint: Fingerprint, config: ConfigOption = None, key: KeyOption = None
) -> None:
    """Remove an operator: each group gets a new key pair they never held, and their
    wraps go, so their key opens nothing in the database. Resumable."""
    private = unlock_operator_key(key)
    done = run(_each_group(config, private, fingerprint, rotate_group, "leaver", "rotating"))
    out.print(f"Removed {fingerprint}: {done} group key(s) rotated; their key opens nothing here.")


async def _each_group(
    config: Path | None,
    private: PrivateKey,
    fingerprint: str,
    step: Step,
    role: str,
    verb: str,
) -> int:
    async with operator_workspace(config, private) as ow:  # the one who holds the keys
        target = await _operator(ow.ws.session, fingerprint)
        if target.id == ow.keyring.operator.id:
            raise Refused("use another operator's key to change this one")
        if role == "leaver":
            await retire(ow.ws.session, leaver=target, now=utc_now())
        codenames = [g.codename for g in await live_groups(ow.ws.session)]
    done = 0
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task(f"{verb} group keys", total=len(codenames))
        for codename in codenames:
            async with operator_workspace(config, private) as ow:  # one commit per group
                session = ow.ws.session
                group = (await session.exec(select(Group).where(Group.codename == codename))).one()
                target = await _operator(session, fingerprint)
                if await step(session, ow.keyring, group=group, **{role: target}):
                    done += 1
                    await audit.append(
                        session,
                        actor=ow.keyring.operator.fingerprint[:16],
                        action=f"operator.{'share' if role == 'newcomer' else 'rotate'}",
                        subject=codename,
                        at=utc_now(),
                        details={"operator": target.fingerprint[:16]},
                    )
            progress.advance(task)
    async with operator_workspace(config, private) as ow:
        session = ow.ws.session
        target = await _operator(session, fingerprint)
        if role == "newcomer":
            await share_unlinked(session, ow.keyring, newcomer=target)
        else:
            await drop_record_wraps(session, leaver=target)
        await audit.append(
            session,
            actor=ow.keyring.operator.fingerprint[:16],
            action="operator.share" if role == "newcomer" else "operator.remove",
            subject=target.fingerprint[:16],
            at=utc_now(),
            details={"groups": done},
        )
    return done


async def _operator(session: AsyncSession, fingerprint: str) -> Operator:
    query = select(Operator).where(col(Operator.fingerprint).startswith(fingerprint.strip()))
    found = (await session.exec(query)).all() if len(fingerprint.strip()) >= 8 else []
    if len(found) != 1:
        raise Refused(f"no single operator has a fingerprint starting {fingerprint!r}")
    return found[0]
