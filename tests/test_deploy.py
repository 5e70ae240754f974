"""docs/deploy.md and the README work as written: every command in their ```sh blocks is
run, in order, in a throwaway folder, against the Telegram stand-in.

What differs from a real machine, and nothing else:
- ``/srv/intake`` and ``/path/to/checkin-intake`` are a throwaway folder and this checkout;
- lines that change the whole machine (``ROOT_ONLY``: installing Debian packages, adding
  the system user, systemctl and journalctl) are left to the page, and ``sudo -u USER`` is
  dropped (the test's user plays ``intake``); a ``sudo -u USER sh -c '...'`` runs without
  the shell's own variables (``$TOKEN``), which sudo's env_reset would not pass on;
- Telegram is the stand-in: its URLs go into the config where the page leaves Telegram's,
  its token is ``$TOKEN``, and the prose step "make a bot with @BotFather" is that; the
  line that waits for the token to be pasted is given it on its standard input;
- the virtualenv: created and installed for real with INTAKE_TEST_DEPLOY_INSTALL=1 (as
  .ci/run sets; a few minutes), else this test's own virtualenv stands in for it;
- PostgreSQL lines run against INTAKE_TEST_DATABASE_URL's server (a fresh database), and
  are skipped without one; their ``init``, which the page runs in place of SQLite's, goes
  into a second throwaway ``/srv/intake`` (the first goes on with SQLite);
- ``intake run`` is started, waited for until its start-up line, and stopped with SIGTERM;
  the systemd unit is checked with ``systemd-analyze verify`` where that tool exists and
  its ExecStart is run that way.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SH_BLOCK = re.compile(r"```sh\n(.*?)```", re.DOTALL)
INI_BLOCK = re.compile(r"```ini\n(.*?)```", re.DOTALL)
ROOT_ONLY = re.compile(
    r"^(apt-get |useradd |install -d -o |systemctl |journalctl |sudo -u postgres )"
)
SUDO = re.compile(r"^sudo -u \w+ ")
SUDO_SH = re.compile(r"^sudo -u \w+ sh -c '")
PASSPHRASE = "correct horse battery staple"
INSTALL_ENV = "INTAKE_TEST_DEPLOY_INSTALL"
PG_ENV = "INTAKE_TEST_DATABASE_URL"


def sh_lines(page: Path) -> list[str]:
    lines = []
    for block in SH_BLOCK.findall(page.read_text()):
        for line in block.splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                lines.append(line.strip())
    return lines


@dataclass
class StandIn:
    process: subprocess.Popen[str]
    base_url: str
    file_base_url: str
    token: str


@pytest.fixture
def standin() -> Iterator[StandIn]:
    process = subprocess.Popen(
        [sys.executable, "-m", "bot.standin", "--port", "0"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    values = dict(process.stdout.readline().split(":", 1) for _ in range(3))
    try:
        yield StandIn(
            process,
            values["base_url"].strip(),
            values["file_base_url"].strip(),
            values["token"].strip(),
        )
    finally:
        process.terminate()
        process.wait(timeout=30)


@dataclass
class Shell:
    cwd: Path
    env: dict[str, str]
    substitutions: dict[str, str]
    ran: list[str] = field(default_factory=list)

    def line(self, line: str) -> str:
        line = SUDO.sub("", line)
        for old, new in self.substitutions.items():
            line = line.replace(old, new)
        return line

    def run(
        self, line: str, stdin: str = "", *, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", line],
            cwd=self.cwd,
            env=self.env if env is None else env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
        assert "Traceback" not in done.stderr, line
        self.ran.append(line)
        return done

    def start_and_stop(self, line: str, env: dict[str, str] | None = None) -> str:
        """``intake run``: until its start-up line, then SIGTERM; its log."""
        process = subprocess.Popen(
            ["bash", "-c", f"exec {line}"],
            cwd=self.cwd,
            env=self.env if env is None else env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stderr is not None
        log = []
        deadline = time.monotonic() + 120
        for row in process.stderr:
            log.append(row)
            if "started:" in row or time.monotonic() > deadline:
                break
        process.send_signal(signal.SIGTERM)
        _, rest = process.communicate(timeout=30)
        text = "".join(log) + rest
        assert process.returncode == 0, f"{line}\n{text}"
        assert any("started: polling as @" in row for row in log), text
        self.ran.append(line)
        return text


def shell_for(tmp_path: Path, standin: StandIn, substitutions: dict[str, str]) -> Shell:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}
    env |= {"INTAKE_PASSPHRASE": PASSPHRASE, "TOKEN": standin.token}
    return Shell(cwd=tmp_path, env=env, substitutions=substitutions)


def service_env(env: dict[str, str], unit_text: str) -> dict[str, str]:
    """The environment systemd gives ``ExecStart``: the unit's ``Environment=`` lines, and
    none of the test machine's own Python settings (PYTHONDONTWRITEBYTECODE, say)."""
    own = {k: v for k, v in env.items() if not k.startswith("PYTHON")}
    return own | dict(
        line.split("=", 1)[1].split("=", 1)
        for line in unit_text.splitlines()
        if line.startswith("Environment=")
    )


def use_standin(config: Path, standin: StandIn) -> None:
    """Telegram is the stand-in: its URLs where the example names Telegram's."""
    text = config.read_text()
    text = text.replace('"https://api.telegram.org/bot"', f'"{standin.base_url}"')
    text = text.replace('"https://api.telegram.org/file/bot"', f'"{standin.file_base_url}"')
    config.write_text(text)


def venv_for(shell: Shell, line: str, venv: Path) -> bool:
    """True if ``line`` makes or fills the virtualenv and was handled here."""
    if not re.search(r"-m venv |/pip install ", line):
        return False
    if os.environ.get(INSTALL_ENV):
        shell.run(line)
    elif not venv.exists():
        venv.parent.mkdir(parents=True, exist_ok=True)
        venv.symlink_to(Path(sys.prefix))  # this test's own virtualenv, with the package
    return True


def fresh_pg_database() -> tuple[str, str] | None:
    admin = os.environ.get(PG_ENV)
    if not admin:
        return None
    name = f"intake_deploy_{uuid.uuid4().hex[:10]}"
    subprocess.run(["psql", admin, "-qc", f'CREATE DATABASE "{name}"'], check=True)
    return admin.rsplit("/", 1)[0] + f"/{name}", name


def drop_pg_database(name: str) -> None:
    admin = os.environ[PG_ENV]
    subprocess.run(
        ["psql", admin, "-qc", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'], check=False
    )


@pytest.mark.slow
def test_every_command_of_deploy_md_runs_as_written(tmp_path: Path, standin: StandIn) -> None:
    srv = tmp_path / "srv" / "intake"
    srv.mkdir(parents=True, mode=0o700)  # what `install -d -o intake -m 0700` makes
    srv_pg = tmp_path / "srv-pg" / "intake"  # the same, on a machine that chose PostgreSQL
    srv_pg.mkdir(parents=True, mode=0o700)
    pg = fresh_pg_database() if shutil.which("psql") else None
    substitutions = {
        "/srv/intake": str(srv),
        "/path/to/checkin-intake": str(ROOT),
        "/var/cache/intake": str(tmp_path / "cache" / "intake"),  # systemd's CacheDirectory=
    }
    if pg is not None:
        substitutions["postgresql://intake@/intake"] = pg[0]
    shell = shell_for(tmp_path, standin, substitutions)
    page = ROOT / "docs" / "deploy.md"
    skipped = []
    try:
        for raw in sh_lines(page):
            if ROOT_ONLY.match(raw):
                skipped.append(raw)
                continue
            line = shell.line(raw)
            if venv_for(shell, line, srv / ".venv"):
                continue
            if "postgresql://intake@/intake" in line:  # no PostgreSQL server for the test
                skipped.append(raw)
                continue
            if pg is not None and pg[0] in line:
                # `init` with PostgreSQL, in place of SQLite's: in the second folder.
                line = line.replace(f"--dir {srv}", f"--dir {srv_pg}")
                assert f"--dir {srv_pg}" in line, raw
                shell.run(line)
                assert pg[0] in (srv_pg / "config.toml").read_text()
                continue
            if "$PUBLIC_KEY" in line and "PUBLIC_KEY" not in shell.env:
                # On the operator's own machine: `intake keygen`, its public key line.
                # The key file stays at hand: `group add --key operator.key` signs with it.
                # As deploy.md says it: the default (hybrid) key, which the server accepts.
                keygen = shell.run(f"{srv}/.venv/bin/intake keygen --out operator.key")
                shell.env["PUBLIC_KEY"] = keygen.stdout.strip()
            # The token is pasted where the page says to (`head -n 1` reads one line).
            pasted = standin.token + "\n" if re.search(r"head -n 1 > \S*/token'", line) else ""
            own = {"TOKEN", "PUBLIC_KEY"}  # the admin's shell's, not passed on by sudo
            env = {k: v for k, v in shell.env.items() if k not in own}
            shell.run(line, stdin=pasted, env=env if SUDO_SH.match(raw) else None)
            if (srv / "config.toml").exists():
                use_standin(srv / "config.toml", standin)
        assert (srv / "token").stat().st_mode & 0o077 == 0
        assert (srv / "token").read_text().strip() == standin.token
        secret = srv / "webhook_secret"  # made as the reverse-proxy section says
        assert secret.stat().st_mode & 0o077 == 0
        assert re.fullmatch(r"[A-Za-z0-9_-]{32,256}", secret.read_text().strip())
        unit = INI_BLOCK.findall(page.read_text())
        assert len(unit) == 1
        unit_text = shell.line(unit[0])
        unit_file = tmp_path / "intake.service"
        unit_file.write_text(unit_text)
        if shutil.which("systemd-analyze"):
            verified = subprocess.run(
                ["systemd-analyze", "verify", str(unit_file)],
                capture_output=True,
                text=True,
                check=False,
            )
            assert verified.returncode == 0, verified.stderr
        exec_start = re.search(r"^ExecStart=(.*)$", unit_text, re.MULTILINE)
        assert exec_start is not None
        log = shell.start_and_stop(exec_start.group(1), env=service_env(shell.env, unit_text))
        # As the unit runs it: optimised, its bytecode in the service's cache folder.
        assert any((tmp_path / "cache").rglob("bot/startup.cpython-*.opt-2.pyc")), "no cache"
        assert "watching 1 group" in log
        assert "stopped (SIGTERM)" in log
        assert standin.token not in log
    finally:
        if pg is not None:
            drop_pg_database(pg[1])
    assert all(ROOT_ONLY.match(line) or "postgresql" in line for line in skipped), skipped
    assert len(shell.ran) >= 8


@pytest.mark.slow
def test_every_command_of_the_readme_runs_as_written(tmp_path: Path, standin: StandIn) -> None:
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))
    shell = shell_for(tmp_path, standin, {})
    for line in sh_lines(ROOT / "README.md"):
        # The quick start makes the virtualenv from a checkout and runs the test suite
        # (.ci/run runs that line verbatim); here the virtualenv is this test's own.
        parts = [p.strip() for p in line.split("&&")]
        parts = [p for p in parts if not re.search(r"-m venv |/pip install |/pytest\b", p)]
        if not parts:
            continue
        line = " && ".join(parts)
        if "intake doctor" in line:
            # The prose step before it: a bot token in a 0600 file, named in the config.
            (tmp_path / "inst" / "token").write_text(standin.token)
            (tmp_path / "inst" / "token").chmod(0o600)
            config = tmp_path / "inst" / "config.toml"
            config.write_text(
                config.read_text().replace(
                    '# token = "env:INTAKE_TELEGRAM_TOKEN"', 'token = "file:token"'
                )
            )
            use_standin(config, standin)
        if "intake run" in line:
            shell.start_and_stop(line)
        else:
            shell.run(line)
    assert (tmp_path / "try" / "config.toml").exists()  # the demo's installation
    assert len(shell.ran) >= 10
