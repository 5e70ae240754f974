"""Setting up: the installation (`intake init`) and an operator's key pair (`intake keygen`)."""

from __future__ import annotations

import base64
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from bot.cli.common import (
    ADMIN_ACTOR,
    PASSPHRASE_ENV,
    ConfigOption,
    app,
    err,
    fail,
    out,
    run,
    unlock_operator_key,
    unlock_operator_keys,
)
from bot.config import (
    example_config_text,
    load_settings,
)
from storage import audit, keyfile
from storage.age_export import age_identity
from storage.crypto import KemName, PrivateKey, ServerKeys, SigningKey
from storage.db import open_database, session_factory
from storage.timeutil import utc_now
from storage.trust import OperatorIdentity, Signers, bind_installation, signers_path

# --------------------------------------------------------------------------- init


@app.command()
def init(
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="Folder to set up (default: the current one).", file_okay=False),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="postgresql://USER@HOST/DATABASE instead of the SQLite file intake.db. "
            "A URL with a password is written to the file database_url (0600), not the config.",
            show_default=False,
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Set up a new installation: config.toml, the server secret, and the database."""
    if (
        config is not None
        and directory is not None
        and config.parent.resolve() != directory.resolve()
    ):
        fail("--config and --dir name different folders")
    target = directory or (config.parent if config else Path.cwd())
    config_path = config or target / "config.toml"
    target.mkdir(parents=True, exist_ok=True)
    secret_path = target / "server_secret"
    url_path = target / "database_url"
    pins_path = signers_path(target)
    # An old log's recorded checkpoints would fail the new log's `intake audit verify`.
    for path in (config_path, secret_path, url_path, pins_path, audit.checkpoints_path(target)):
        if path.exists():
            fail(f"{path} already exists; intake init never overwrites an installation")
    text = example_config_text()
    if database_url is not None:
        text = _with_database_url(text, database_url, url_path)
    secret = base64.urlsafe_b64encode(ServerKeys.generate_secret()).decode()
    _create_private(secret_path, secret + "\n")
    _create_private(config_path, text)
    # The operators' signing keys, pinned outside the database: empty until
    # `intake operator add`, and from now on every group key, operator and codebook
    # meaning the bot uses must carry a pinned operator's signature.
    Signers().save(pins_path)

    async def migrate() -> None:
        # The one command that creates the database (every other one wants it to exist).
        async with open_database(settings.database.url) as engine:
            bind_installation(engine, secret=settings.server_secret_bytes(), config_dir=target)
            async with session_factory(engine)() as session, session.begin():
                await audit.append(session, actor=ADMIN_ACTOR, action="init", at=utc_now())

    try:
        settings = load_settings(config_path, read_token=False)
        run(migrate())
    except BaseException:
        # Nothing half-made is left behind (a PostgreSQL database not yet created, say),
        # so that `intake init` can simply be run again.
        for path in (config_path, secret_path, url_path, pins_path):
            path.unlink(missing_ok=True)
        raise
    out.print(
        f"Wrote {config_path}, {secret_path} and {pins_path} "
        "(mode 0600: keep the secret out of backups)."
    )
    out.print(f"Database ready: {_safe_url(settings.database.url)}")
    out.print("Next: on the operator's own machine, `intake keygen --out operator.key`;")
    out.print(
        "then here, `intake operator add PUBLIC_KEY --name NAME` and `intake group add CODENAME`."
    )


def _with_database_url(example: str, url: str, url_path: Path) -> str:
    """The example config with ``[database] url`` set to ``url``: in the file itself, or,
    when the URL carries a password, as a reference to a 0600 file beside it."""
    from urllib.parse import urlsplit

    if not url.startswith(("postgresql://", "postgres://", "sqlite:///")):
        fail("--database-url: use postgresql://USER@HOST/DATABASE (or sqlite:///PATH)")
    try:
        password = urlsplit(url).password
    except ValueError:
        fail("--database-url: not a URL")
    value = url
    if password is not None:
        _create_private(url_path, url + "\n")
        value = f"file:{url_path.name}"
    line = 'url = "sqlite:///intake.db"'
    if example.count(line) != 1 or '"' in value:
        fail("--database-url: cannot be written to the config")
    return example.replace(line, f'url = "{value}"')


def _create_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def _safe_url(url: str) -> str:
    # Never print a password that a PostgreSQL URL may carry.
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# --------------------------------------------------------------------------- keys


MIN_PASSPHRASE = 12


def _new_passphrase() -> str:
    """A new key file's passphrase, from the prompt or $INTAKE_PASSPHRASE: the same
    rule for both (a script's passphrase guards the same key)."""
    passphrase = os.environ.get(PASSPHRASE_ENV)
    if not passphrase:
        if not sys.stdin.isatty():
            fail(f"no terminal to ask for a passphrase; set {PASSPHRASE_ENV} in scripts")
        passphrase = typer.prompt(
            "Passphrase for the new key", hide_input=True, confirmation_prompt=True
        )
    if len(passphrase) < MIN_PASSPHRASE:
        fail(f"choose a passphrase of at least {MIN_PASSPHRASE} characters")
    return passphrase


@app.command()
def keygen(
    output: Annotated[
        Path | None, typer.Option("--out", help="Where to write the key file.", dir_okay=False)
    ] = None,
    kem: Annotated[
        KemName, typer.Option(help="Key type: the post-quantum hybrid (default) or X25519 alone.")
    ] = KemName.MLKEM768_X25519,
    age: Annotated[
        Path | None,
        typer.Option(
            "--age",
            help="Instead: the age identity of this existing key file, which opens "
            "`intake inbox export` files with `age -d -i` (printed, or written to --out, 0600).",
            dir_okay=False,
        ),
    ] = None,
    show: Annotated[
        Path | None,
        typer.Option(
            "--show",
            help="Instead: print the line `intake operator add` takes for this existing key file "
            "again (asks its passphrase: the line carries the operator's signature).",
            dir_okay=False,
        ),
    ] = None,
    allow_classical: Annotated[
        bool,
        typer.Option(
            "--allow-classical",
            help="Accept --kem X25519: what is sealed to it falls to a future quantum computer.",
        ),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Make an operator key pair. Run it on the operator's own machine, never on the server."""
    del config  # accepted on every command; keygen needs no installation
    if show is not None:
        data = keyfile.read(show)
        public = keyfile.public_key_of(data)
        if keyfile.verify_key_of(data) is None:
            out.print(public.to_text(), soft_wrap=True)  # a key file made before signing keys
        else:
            # The line `intake operator add` takes carries this operator's signature, which
            # only the unlocked signing key can make again: the passphrase is asked.
            keys = unlock_operator_keys(show)
            assert keys.signing is not None  # noqa: S101 (the file records its verify key)
            out.print(OperatorIdentity.make(keys.private, keys.signing).to_text(), soft_wrap=True)
        err.print(f"fingerprint {public.fingerprint()}")
        return
    if age is not None:
        if output is not None and (output.exists() or output.is_symlink()):
            fail(f"{output} already exists; choose another --out")
        identity = age_identity(unlock_operator_key(age))
        if output is None:
            out.print(identity)
        else:
            _create_private(output, identity + "\n")
            out.print(f"Wrote the age identity to {output} (mode 0600).")
        err.print("keep it as secret as the key file itself")
        return
    if output is None:
        fail("give --out FILE for the new key (or --age FILE to print an existing key's identity)")
    if kem is KemName.X25519:
        if not allow_classical:
            fail("--kem X25519 alone is classical only; add --allow-classical to accept that")
        err.print(
            "warning: a classical-only key: what is sealed to it can be opened by whoever "
            "records it now and has a quantum computer later"
        )
    if output.exists():
        fail(f"{output} already exists; choose another --out")  # before asking for a passphrase
    passphrase = _new_passphrase()
    key = PrivateKey.generate(kem)
    signing = SigningKey.generate()
    keyfile.write(output, keyfile.lock(key, passphrase, signing=signing))
    public = key.public_key()
    # One line for `intake operator add`: the public key, the signing key, and this
    # operator's signature binding them (the server pins the signing key).
    out.print(OperatorIdentity.make(key, signing).to_text(), soft_wrap=True)
    err.print(f"fingerprint {public.fingerprint()}  (key file {output}, mode 0600)")
