"""``intake operator share`` and ``intake operator remove``: the set of operators
changes, and every group key follows, one group per transaction (resumable)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress
from sqlalchemy import select

from bot.cli.common import (
    ADMIN_ACTOR,
    ConfigOption,
    Format,
    FormatOption,
    KeyOption,
    Refused,
    err,
    fail,
    iso,
    key_path,
    operator_app,
    operator_workspace,
    out,
    passphrase_for,
    print_json,
    run,
    unlock_operator_key,
    unlock_operator_keys,
    when,
    workspace,
)
from bot.config import load_settings, resolve_config_path
from storage import audit, keyfile
from storage.crypto import CryptoError, KemName, PrivateKey, PublicKey, VerifyKey
from storage.db import open_database, reclaim_deleted
from storage.groups import list_groups
from storage.models import Group, Operator
from storage.operators import add_operator
from storage.rekey import (
    REKEYED_TABLES,
    LastOperator,
    OperatorRemoved,
    hand_over_records,
    live_groups,
    retire,
    rotate_group,
    share_group,
    share_unlinked,
    stranded,
)
from storage.sealing import Keyring
from storage.session import AsyncSession
from storage.timeutil import utc_now
from storage.trust import (
    OperatorIdentity,
    Signers,
    installation_of,
    sign_unsigned,
    signers_path,
    take_over_signatures,
)

Fingerprint = Annotated[str, typer.Argument(help="The operator's key fingerprint (or its start).")]
# One group's step: (session, the acting keyring, the group, the other operator) -> done now?
Step = Callable[[AsyncSession, Keyring, Group, Operator], Awaitable[bool]]


@operator_app.command("share")
def operator_share(
    fingerprint: Fingerprint, config: ConfigOption = None, key: KeyOption = None
) -> None:
    """Wrap every group's key, and every unlinked record's, for an operator added later.
    Run by an operator who holds them (their --key); safe to run again."""
    private = unlock_operator_key(key)
    done = run(share_with(config, private, fingerprint))
    out.print(f"Shared {done} group key(s) with {fingerprint}.")


@operator_app.command("remove")
def operator_remove(
    fingerprint: Fingerprint, config: ConfigOption = None, key: KeyOption = None
) -> None:
    """Remove an operator: each group gets a new key pair they never held, and their
    wraps go, so their key opens nothing in the database. Resumable."""
    keys = unlock_operator_keys(key)
    done = run(_remove(config, keys, fingerprint))
    out.print(f"Removed {fingerprint}: {done} group key(s) rotated; their key opens nothing here.")


async def share_with(config: Path | None, private: PrivateKey, fingerprint: str) -> int:
    """Give the operator ``fingerprint`` every group key and unlinked record that the
    holder of ``private`` opens; the number of groups shared now."""
    async with operator_workspace(config, private) as ow:
        target = await _other_operator(ow.ws.session, ow.keyring, fingerprint)
        if target.removed_at is not None:
            raise Refused(f"operator {fingerprint} was removed; register a new key instead")
        codenames = [g.codename for g in await live_groups(ow.ws.session)]

    async def share(session: AsyncSession, keyring: Keyring, group: Group, to: Operator) -> bool:
        return await share_group(session, keyring, group=group, newcomer=to)

    done = await _each_group(
        config, keyfile.OperatorKeys(private, None), fingerprint, codenames, share, "operator.share"
    )
    async with operator_workspace(config, private) as ow:
        session = ow.ws.session
        target = await _operator(session, fingerprint)
        try:
            records = await share_unlinked(session, ow.keyring, newcomer=target)
        except OperatorRemoved as exc:  # removed by someone else meanwhile
            raise Refused(str(exc)) from None
        await audit.append(
            session,
            actor=_actor(ow.keyring),
            action="operator.share",
            subject=target.fingerprint[:16],
            at=utc_now(),
            details={"groups": done, "records": records},
        )
    return done


async def _remove(config: Path | None, keys: keyfile.OperatorKeys, fingerprint: str) -> int:
    private = keys.private
    async with operator_workspace(config, private, keys.signing) as ow:
        session = ow.ws.session
        pins = signers_path(ow.ws.settings.config_dir)
        signers = Signers.load(pins)
        if signers is not None and keys.signing is None:
            raise Refused(
                "the new group keys must be signed: run `intake operator sign --key FILE` "
                "with your key file first"
            )
        target = await _other_operator(session, ow.keyring, fingerprint)
        # Checked before anything changes: once retired, the leaver's key can no
        # longer share what only it opens.
        left = await stranded(session, ow.keyring, leaver=target)
        if left:
            raise Refused(
                f"{fingerprint} alone opens {', '.join(left.groups) or 'no group'} and "
                f"{left.records} record(s) your key does not; they must first run "
                f"`intake operator share {ow.keyring.operator.fingerprint[:16]} --key THEIR_KEY`"
            )
        if target.removed_at is None:
            try:
                await retire(session, leaver=target, now=utc_now())
            except LastOperator as exc:
                raise Refused(str(exc)) from None
            await audit.append(
                session,
                actor=_actor(ow.keyring),
                action="operator.retire",
                subject=target.fingerprint[:16],
                at=utc_now(),
            )
        leaver_key = _pinned_key(signers, target)
        if signers is not None:
            # The leaver's signatures count no more: what they signed is signed again
            # by the remover, and their key is marked removed in the pinned file.
            if leaver_key is not None and keys.signing is not None:
                await take_over_signatures(session, leaver=leaver_key, signing=keys.signing)
            signers.retire(target.fingerprint)
            signers.save(pins)
        codenames = [g.codename for g in await live_groups(session)]

    async def rotate(session: AsyncSession, keyring: Keyring, group: Group, of: Operator) -> bool:
        return await rotate_group(session, keyring, group=group, leaver=of)

    done = await _each_group(config, keys, fingerprint, codenames, rotate, "operator.rotate")
    async with operator_workspace(config, private) as ow:
        session = ow.ws.session
        target = await _operator(session, fingerprint)
        added, dropped = await hand_over_records(session, ow.keyring, leaver=target)
        await audit.append(
            session,
            actor=_actor(ow.keyring),
            action="operator.remove",
            subject=target.fingerprint[:16],
            at=utc_now(),
            details={"groups": done, "records_rewrapped": added, "wraps_deleted": dropped},
        )
    await _reclaim(config)
    return done


async def _each_group(
    config: Path | None,
    keys: keyfile.OperatorKeys,
    fingerprint: str,
    codenames: list[str],
    step: Step,
    action: str,
) -> int:
    """Run ``step`` on each group in its own transaction, so an interrupted run keeps
    what it finished and a rerun skips it (the step says whether it had work)."""
    done = 0
    with Progress(console=err.rich, transient=True) as progress:
        task = progress.add_task(
            action.replace("operator.", "") + " group keys", total=len(codenames)
        )
        for codename in codenames:
            async with operator_workspace(config, keys.private, keys.signing) as ow:
                session = ow.ws.session
                group = (
                    await session.exec(select(Group).where(Group.codename == codename))
                ).first()
                target = await _operator(session, fingerprint)
                if group is not None and group.shredded_at is None:
                    try:
                        changed = await step(session, ow.keyring, group, target)
                    except OperatorRemoved as exc:
                        raise Refused(str(exc)) from None
                    if changed:
                        done += 1
                        await audit.append(
                            session,
                            actor=_actor(ow.keyring),
                            action=action,
                            subject=codename,
                            at=utc_now(),
                            details={"operator": target.fingerprint[:16]},
                        )
            progress.advance(task)
    return done


async def _reclaim(config: Path | None) -> None:
    """After the commits: PostgreSQL keeps replaced and deleted wraps in its files
    until they are rewritten, and the leaver's key opens those."""
    settings = load_settings(resolve_config_path(config), read_token=False)
    async with open_database(
        settings.database.url, migrate_to_head=False, must_exist=True
    ) as engine:
        await reclaim_deleted(engine, tables=REKEYED_TABLES)


def _pinned_key(signers: Signers | None, operator: Operator) -> VerifyKey | None:
    for pinned in signers.pinned if signers else []:
        if pinned.operator == operator.fingerprint:
            return pinned.verify_key
    return None


def _actor(keyring: Keyring) -> str:
    return keyring.operator.fingerprint[:16]


async def _other_operator(session: AsyncSession, keyring: Keyring, fingerprint: str) -> Operator:
    target = await _operator(session, fingerprint)
    if target.id == keyring.operator.id:
        raise Refused("use another operator's key to change this one")
    return target


def bare_fingerprint(text: str) -> str:
    """A fingerprint as typed, with or without its colons, in any case: hex digits alone."""
    return "".join(c for c in text.strip().lower() if c not in ": ")


async def _operator(session: AsyncSession, fingerprint: str) -> Operator:
    wanted = bare_fingerprint(fingerprint)
    # Compared in Python (a handful of operators): the column keeps the colons.
    everyone = (await session.exec(select(Operator))).all() if len(wanted) >= 8 else []
    found = [op for op in everyone if bare_fingerprint(op.fingerprint).startswith(wanted)]
    if len(found) != 1:
        raise Refused(f"no single operator has a fingerprint starting {fingerprint!r}")
    return found[0]


# --------------------------------------------------------------------------- sign


@operator_app.command("sign")
def operator_sign(config: ConfigOption = None, key: KeyOption = None) -> None:
    """Sign what the bot trusts, once, on an installation older than signatures: your
    own operator row, then every group key and codebook entry that has no signature yet.
    A key file without a signing key gets one (same passphrase); the signing key is
    pinned in the signers file. Rows whose signature fails are named, never signed."""
    path = key_path(key)
    passphrase = passphrase_for(path)
    original = keyfile.read(path)
    data, keys = keyfile.with_signing_key(original, passphrase)
    signing = keys.signing
    assert signing is not None  # noqa: S101 (with_signing_key always returns one)

    async def go() -> None:
        async with operator_workspace(config, keys.private) as ow:
            session = ow.ws.session
            pins = signers_path(ow.ws.settings.config_dir)
            signers = Signers.load(pins) or Signers()
            signers.pin(ow.keyring.operator.fingerprint, signing.verify_key())
            installation = installation_of(session)
            assert installation is not None  # noqa: S101 (bound by workspace)
            installation.trust.signers = signers
            done = await sign_unsigned(
                session, signing=signing, operator=ow.keyring.operator, trust=installation.trust
            )
            await audit.append(
                session,
                actor=_actor(ow.keyring),
                action="operator.sign",
                at=utc_now(),
                details={
                    "operator": done.operators,
                    "groups": len(done.groups),
                    "codebook_entries": done.entries,
                    "refused": len(done.refused),
                },
            )
            if data != original:
                keyfile.replace(path, data)
                err.print(f"{path}: now also holds your signing key")
            signers.save(pins)
        out.print(
            f"Signed your operator key, {len(done.groups)} group key(s) "
            f"({', '.join(done.groups) or 'none'}) and {done.entries} codebook entr(y/ies)."
        )
        for rejected in done.refused:
            err.print(f"not signed (its signature fails): {rejected.text()}")

    try:
        run(go())
    except CryptoError as exc:
        raise Refused(str(exc)) from None


# --------------------------------------------------------------------------- add


@operator_app.command("add")
def operator_add(
    public_key: Annotated[
        str,
        typer.Argument(
            help="The line `intake keygen` printed (ckop1:...: the key, the operator's signing "
            "key and their signature; an older ckpk1: key is added unsigned)."
        ),
    ],
    name: Annotated[
        str, typer.Option("--name", help="Who this operator is (sealed in the database).")
    ],
    share_key: Annotated[
        Path | None,
        typer.Option(
            "--key",
            help="An existing operator's key file: share every group key with the new one at "
            "once (else later, with `intake operator share`).",
            dir_okay=False,
        ),
    ] = None,
    allow_classical: Annotated[
        bool,
        typer.Option(
            "--allow-classical",
            help="Accept an X25519-only key: what is sealed to it falls to a future quantum "
            "computer.",
        ),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Register an operator's public key: new content is sealed to it from now on, and
    their signing key is pinned in the signers file beside the server secret."""
    identity = OperatorIdentity.from_text(public_key) if public_key.startswith("ckop1:") else None
    key = identity.public_key if identity else PublicKey.from_text(public_key)
    if key.kem is KemName.X25519:
        # Every group key is wrapped to each operator: one classical key makes every
        # group's content fall to whoever records it now and has a quantum computer later.
        if not allow_classical:
            fail(
                "this operator key is X25519 alone, classical only; add --allow-classical "
                "to accept that"
            )
        err.print(
            "warning: a classical-only operator key: every group key wrapped to it can be "
            "opened by whoever records it now and has a quantum computer later"
        )
    sharer = unlock_operator_key(share_key) if share_key else None  # before any transaction

    async def go() -> int:
        async with workspace(config) as ws:
            op = await add_operator(
                ws.session,
                server=ws.server,
                public_key=key,
                name=name,
                now=utc_now(),
                identity=identity,
            )
            pins = signers_path(ws.settings.config_dir)
            signers = Signers.load(pins)
            if identity is not None:
                signers = signers or Signers()
                signers.pin(op.fingerprint, identity.verify_key)
                signers.save(pins)  # before the commit: a pin without a row trusts nothing
            elif signers is not None:
                err.print(
                    "note: an unsigned key (ckpk1:): nothing is sealed to it until this operator "
                    "runs `intake operator sign --key THEIR_KEY`"
                )
            await audit.append(
                ws.session,
                actor=ADMIN_ACTOR,
                action="operator.add",
                subject=op.fingerprint,
                at=utc_now(),
            )
            return len(await list_groups(ws.session))

    groups = run(go())
    out.print(f"Operator {key.fingerprint()} added.")
    if sharer is not None:
        shared = run(share_with(config, sharer, key.fingerprint()))
        out.print(f"Shared {shared} group key(s) with {key.fingerprint()}.")
    elif groups:
        err.print(
            f"note: {groups} existing group(s) are not yet readable with this key; an existing "
            f"operator shares them with `intake operator share {key.fingerprint()} --key FILE`."
        )


# --------------------------------------------------------------------------- list


@dataclass(frozen=True, slots=True)
class _OperatorRow:
    name: str
    fingerprint: str
    kem: str
    groups_readable: int
    groups: int
    added_at: datetime
    removed_at: datetime | None


@operator_app.command("list")
def operator_list(output: FormatOption = Format.TABLE, config: ConfigOption = None) -> None:
    """Every operator key: its name, fingerprint, type, and how many groups it opens."""
    from rich.table import Table
    from sqlalchemy import func

    from storage.models import GroupKeyWrap
    from storage.operators import operator_name

    async def go() -> list[_OperatorRow]:
        async with workspace(config) as ws:
            query = select(Operator).order_by(Operator.created_at)
            operators = (await ws.session.exec(query)).all()
            per_operator = select(GroupKeyWrap.operator_id, func.count()).group_by(
                GroupKeyWrap.operator_id
            )
            shared = dict((await ws.session.exec(per_operator)).all())
            groups = len([g for g in await list_groups(ws.session) if g.shredded_at is None])
            return [
                _OperatorRow(
                    name=operator_name(ws.server, op),
                    fingerprint=op.fingerprint,
                    kem=op.kem,
                    groups_readable=int(shared.get(op.id, 0)),
                    groups=groups,
                    added_at=op.created_at,
                    removed_at=op.removed_at,
                )
                for op in operators
            ]

    rows = run(go())
    if output is Format.JSON:
        print_json(
            [
                {
                    **asdict(row),
                    "added_at": iso(row.added_at),
                    "removed_at": iso(row.removed_at),
                }
                for row in rows
            ]
        )
        return
    if not rows:
        out.print("No operators yet. Add one with `intake operator add PUBLIC_KEY --name NAME`.")
        return
    table = Table("name", "fingerprint", "key type", "opens", "added", "removed")
    for row in rows:
        table.add_row(
            row.name,
            row.fingerprint[:16],
            row.kem,
            f"{row.groups_readable} of {row.groups} groups",
            when(row.added_at),
            when(row.removed_at),
        )
    out.print(table)
