import base64
import re
import traceback
from dataclasses import FrozenInstanceError, fields
from datetime import timedelta
from pathlib import Path

import pytest

from bot.config import (
    SECTIONS,
    ConfigError,
    example_config_text,
    load_settings,
    resolve_config_path,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "bot" / "config.example.toml"
SECRET_BYTES = bytes(range(32))
GOOD_TOKEN = "123456789:AAEexampleexampleexampleexample_-01"
CANARY = "CANARYzq9"  # a value that must never show up outside the settings object
CANARY_TOKEN = f"987654321:{CANARY}{'x' * 30}"


def write_server_secret(folder: Path, raw: bytes = SECRET_BYTES, *, padded: bool = False) -> None:
    text = base64.urlsafe_b64encode(raw).decode()
    (folder / "server_secret").write_text((text if padded else text.rstrip("=")) + "\n")


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    write_server_secret(tmp_path)
    return tmp_path


def write_config(folder: Path, text: str | bytes) -> Path:
    path = folder / "config.toml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def config_error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    return raised.value


DURATION_HINT = "write it like 45s, 90m, 24h, 2h30m or 3d"

# (id, config text, environment, message after "<path>: ")
MALFORMED = [
    ("unknown key", '[telegram]\ntokn = "env:X"\n', {}, "[telegram] tokn: unknown setting"),
    ("unknown section", "[telgram]\n", {}, "[telgram]: unknown section"),
    (
        "key outside any section",
        'mode = "polling"\n',
        {},
        "mode: unknown setting outside any [section]",
    ),
    (
        "section that is not a table",
        "telegram = 5\n",
        {},
        "[telegram]: must be a table of settings: write [section] on its own line",
    ),
    (
        "bad duration",
        '[defaults]\ngrace = "2x"\n',
        {},
        f'[defaults] grace: "2x" is not a duration; {DURATION_HINT}',
    ),
    (
        "zero duration",
        '[alerts]\nrepeat_every = "0s"\n',
        {},
        '[alerts] repeat_every: "0s" is not a duration (it must be more than 0s)',
    ),
    (
        "number instead of duration",
        "[defaults]\ninterval = 5\n",
        {},
        '[defaults] interval: 5 is not a duration; write it in quotes, like "24h" (45s, 90m or 3d)',
    ),
    (
        "port in quotes",
        '[webhook]\nport = "8443"\n',
        {},
        "[webhook] port: must be a whole number, without quotes",
    ),
    ("port too high", "[webhook]\nport = 70000\n", {}, "[webhook] port: must be at most 65535"),
    ("port zero", "[webhook]\nport = 0\n", {}, "[webhook] port: must be at least 1"),
    (
        "attachment limit too high",
        "[intake]\nmax_attachment_mb = 2001\n",
        {},
        "[intake] max_attachment_mb: must be at most 2000",
    ),
    (
        "bool in quotes",
        '[intake]\ndelete_forwarded = "yes"\n',
        {},
        "[intake] delete_forwarded: must be true or false",
    ),
    (
        "receipt kept longer than telegram allows deleting",
        '[intake]\nreceipt_ttl = "3d"\n',
        {},
        "[intake] receipt_ttl: must be at most 48h: "
        "Telegram lets a bot delete a message only within 48 hours",
    ),
    (
        "bad mode",
        '[telegram]\nmode = "push"\n',
        {},
        '[telegram] mode: must be "polling" or "webhook"',
    ),
    (
        "bad log level",
        '[logging]\nlevel = "info"\n',
        {},
        '[logging] level: must be "DEBUG", "INFO", "WARNING" or "ERROR"',
    ),
    (
        "bad kem",
        '[keys]\nkem = "RSA"\n',
        {},
        '[keys] kem: must be "MLKEM768_X25519" or "X25519"',
    ),
    (
        "classical group keys without consent",
        '[keys]\nkem = "X25519"\n',
        {},
        '[keys] kem: "X25519" alone is classical only: what is sealed to it falls to a future '
        "quantum computer; add allow_classical = true to [keys] to accept that",
    ),
    (
        "username with @",
        '[telegram]\nusername = "@intake_bot"\n',
        {},
        "[telegram] username: write the bot's username without the @",
    ),
    (
        "base_url not http",
        '[telegram]\nbase_url = "ftp://api.example.org/bot"\n',
        {},
        "[telegram] base_url: must be an http:// or https:// URL",
    ),
    (
        "public_url not https",
        '[webhook]\npublic_url = "http://intake.example.org/hook"\n',
        {},
        "[webhook] public_url: must be an https:// URL",
    ),
    (
        "literal token refused",
        f'[telegram]\ntoken = "{GOOD_TOKEN}"\n',
        {},
        '[telegram] token: secrets are never written in the config file; use "env:NAME" or '
        '"file:PATH"',
    ),
    (
        "placeholder token",
        '[telegram]\ntoken = "env:INTAKE_TEST_TOKEN"\n',
        {"INTAKE_TEST_TOKEN": "ChangeMe"},
        "[telegram] token: the value from env:INTAKE_TEST_TOKEN is a placeholder; "
        "put the real secret there",
    ),
    (
        "token that is not a bot token",
        '[telegram]\ntoken = "env:INTAKE_TEST_TOKEN"\n',
        {"INTAKE_TEST_TOKEN": "12345"},
        "[telegram] token: the value does not look like a bot token (digits, a colon, then 30 or "
        "more letters, digits, _ or -, as @BotFather gives it)",
    ),
    (
        "env var missing",
        '[telegram]\ntoken = "env:INTAKE_TEST_UNSET"\n',
        {},
        "[telegram] token: environment variable INTAKE_TEST_UNSET is not set",
    ),
    (
        "env var empty",
        '[telegram]\ntoken = "env:INTAKE_TEST_TOKEN"\n',
        {"INTAKE_TEST_TOKEN": ""},
        "[telegram] token: environment variable INTAKE_TEST_TOKEN is empty",
    ),
    (
        "env reference without a name",
        '[telegram]\ntoken = "env:"\n',
        {},
        '[telegram] token: "env:" needs the name of an environment variable, like "env:NAME"',
    ),
    (
        "file missing",
        '[telegram]\ntoken = "file:secrets/token"\n',
        {},
        "[telegram] token: cannot read {dir}/secrets/token: No such file or directory",
    ),
    (
        "webhook secret_token with bad characters",
        '[webhook]\nsecret_token = "env:INTAKE_TEST_HOOK"\n',
        {"INTAKE_TEST_HOOK": "has spaces and !"},
        "[webhook] secret_token: the value must be 1 to 256 characters, each A-Z, a-z, 0-9, _ or "
        "- (Telegram's rule for a webhook secret token)",
    ),
    (
        "webhook secret_token placeholder",
        '[webhook]\nsecret_token = "env:INTAKE_TEST_HOOK"\n',
        {"INTAKE_TEST_HOOK": "secret"},
        "[webhook] secret_token: the value from env:INTAKE_TEST_HOOK is a placeholder; "
        "put the real secret there",
    ),
    (
        "server_secret literal",
        '[keys]\nserver_secret = "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI"\n',
        {},
        '[keys] server_secret: secrets are never written in the config file; use "file:PATH"',
    ),
    (
        "server_secret from env",
        '[keys]\nserver_secret = "env:INTAKE_TEST_SERVER_SECRET"\n',
        {},
        '[keys] server_secret: must be a "file:PATH" reference',
    ),
    (
        "server_secret not 32 bytes",
        '[keys]\nserver_secret = "file:short_secret"\n',
        {},
        "[keys] server_secret: the file must hold 32 random bytes as base64url text, not 16 bytes",
    ),
    (
        "server_secret not base64url",
        '[keys]\nserver_secret = "file:not_base64"\n',
        {},
        "[keys] server_secret: the file must hold 32 random bytes as base64url text "
        '(make one with "intake init")',
    ),
    (
        "server_secret file missing",
        '[keys]\nserver_secret = "file:/nonexistent/intake/server_secret"\n',
        {},
        "[keys] server_secret: cannot read /nonexistent/intake/server_secret: "
        "No such file or directory",
    ),
    (
        "bad database url scheme",
        '[database]\nurl = "mysql://intake@db.example.org/intake"\n',
        {},
        '[database] url: unsupported database "mysql"; use sqlite:///PATH or '
        "postgresql://USER@HOST/DATABASE",
    ),
    (
        "database url that is not a url",
        '[database]\nurl = "intake.db"\n',
        {},
        "[database] url: must be a database URL: sqlite:///PATH or postgresql://USER@HOST/DATABASE",
    ),
    (
        "literal database url with a password",
        '[database]\nurl = "postgresql://intake:hunter2@db.example.org/intake"\n',
        {},
        "[database] url: this URL holds a password, and secrets are never written in the config "
        'file; put the whole URL in "env:NAME" or "file:PATH"',
    ),
    (
        "webhook mode without public_url and secret_token",
        '[telegram]\nmode = "webhook"\n',
        {},
        '[webhook] public_url: [telegram] mode = "webhook" needs [webhook] public_url and '
        "[webhook] secret_token",
    ),
    (
        "webhook mode without secret_token",
        '[telegram]\nmode = "webhook"\n[webhook]\npublic_url = "https://intake.example.org/h"\n',
        {},
        '[webhook] secret_token: [telegram] mode = "webhook" needs [webhook] secret_token',
    ),
    (
        "unknown display time zone",
        '[display]\ntimezone = "Mars/Olympus"\n',
        {},
        "[display] timezone: unknown time zone 'Mars/Olympus' (use a name like Asia/Seoul)",
    ),
    (
        "a region alone as the time zone",
        '[display]\ntimezone = "Asia"\n',
        {},
        "[display] timezone: unknown time zone 'Asia' (use a name like Asia/Seoul)",
    ),
    (
        "invalid toml",
        "[telegram\nmode = 1\n",
        {},
        "not valid TOML: Expected ']' at the end of a table declaration (at line 1, column 10)",
    ),
    (
        "toml with a number past Python's limit",
        "[webhook]\nport = " + "9" * 5000 + "\n",
        {},
        "not valid TOML: a number too long or tables nested too deeply",
    ),
    (
        "toml nested deeper than Python's stack",
        "[alerts]\nheartbeat_url = " + "[" * 5000 + "]" * 5000 + "\n",
        {},
        "not valid TOML: a number too long or tables nested too deeply",
    ),
    (
        "toml that is not utf-8",
        b"[telegram]\nusername = '\xff'\n",
        {},
        "not valid TOML: the file is not UTF-8 text",
    ),
]


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [pytest.param(text, env, message, id=name) for name, text, env, message in MALFORMED],
)
def test_malformed_setting_gives_one_line_error_naming_path_and_setting(
    config_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    text: str | bytes,
    env: dict[str, str],
    message: str,
) -> None:
    monkeypatch.delenv("INTAKE_TEST_UNSET", raising=False)
    monkeypatch.delenv("INTAKE_TEST_SERVER_SECRET", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    (config_dir / "short_secret").write_text(base64.urlsafe_b64encode(bytes(16)).decode())
    (config_dir / "not_base64").write_text("this is not base64!\n")
    path = write_config(config_dir, text)

    error = config_error(path)

    assert str(error) == f"{path}: {message.format(dir=config_dir)}"
    assert "\n" not in str(error)
    assert str(error).startswith(f"{path}: ")
    if not message.startswith("not valid TOML"):
        assert re.match(r"\[\w+\]( \w+)?: |\w+: ", message), "names the setting"
        assert error.setting is not None


def test_missing_config_file_says_how_to_make_one(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    error = config_error(path)
    assert str(error) == f'{path}: no such file; run "intake init" first or pass --config PATH'


def test_error_starts_with_the_path_as_given(
    config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(config_dir, "[telgram]\n")
    monkeypatch.chdir(config_dir)
    assert str(config_error(Path("config.toml"))) == "config.toml: [telgram]: unknown section"


def test_config_that_is_a_directory_is_a_config_error(tmp_path: Path) -> None:
    assert str(config_error(tmp_path)) == f"{tmp_path}: cannot read: Is a directory"


# --- the example ------------------------------------------------------------------------------


def test_example_config_loads_with_only_a_server_secret_beside_it_and_gives_the_defaults(
    config_dir: Path,
) -> None:
    path = write_config(config_dir, example_config_text())
    empty = config_dir / "empty.toml"
    empty.write_text("")

    settings = load_settings(path)
    defaults = load_settings(empty)

    for section in SECTIONS:
        assert getattr(settings, section) == getattr(defaults, section), section
    assert settings.telegram.token is None
    assert settings.telegram.mode == "polling"
    assert settings.telegram.base_url == "https://api.telegram.org/bot"
    assert settings.webhook.port == 8443
    assert settings.database.url == f"sqlite+aiosqlite:///{config_dir}/intake.db"
    assert settings.server_secret_bytes() == SECRET_BYTES
    assert settings.keys.kem == "MLKEM768_X25519"
    assert settings.defaults.interval == timedelta(hours=24)
    assert settings.defaults.grace == timedelta(hours=6)
    assert settings.defaults.detained_after == timedelta(days=3)
    assert settings.alerts.repeat_every == timedelta(minutes=15)
    assert settings.alerts.escalate_after == timedelta(hours=1)
    assert settings.intake.delete_forwarded is True
    assert settings.intake.receipt_ttl == timedelta(seconds=60)
    assert settings.intake.max_attachment_mb == 20
    assert settings.intake.rate_limit_per_hour == 120
    assert settings.invites.ttl == timedelta(days=7)
    assert settings.retention.after_safe == timedelta(days=30)
    assert settings.logging.level == "INFO"
    assert settings.config_path == path
    assert settings.config_dir == config_dir


def test_example_config_is_the_packaged_file_and_the_repo_root_links_to_it() -> None:
    assert example_config_text() == EXAMPLE.read_text(encoding="utf-8")
    root_link = REPO / "config.example.toml"
    assert root_link.is_symlink()
    assert root_link.resolve() == EXAMPLE.resolve()


def example_keys() -> list[tuple[str, str]]:
    """Every ``[section]`` and ``key =`` line in the example, commented out or not."""
    keys: list[tuple[str, str]] = []
    section = ""
    for line in example_config_text().splitlines():
        if found := re.fullmatch(r"#?\s*\[(\w+)\]\s*", line):
            section = found.group(1)
        elif found := re.match(r"#?\s*(\w+)\s*=", line):
            keys.append((section, found.group(1)))
    return keys


def test_every_key_in_the_example_is_a_real_setting() -> None:
    keys = example_keys()
    assert len(keys) == len(set(keys)), "no setting is listed twice"
    for section, key in keys:
        assert section in SECTIONS, section
        assert key in {f.name for f in fields(SECTIONS[section])}, f"[{section}] {key}"


def test_every_setting_is_in_the_example() -> None:
    listed = set(example_keys())
    for section, settings in SECTIONS.items():
        for key in (f.name for f in fields(settings)):
            assert (section, key) in listed, f"[{section}] {key} is missing from the example"


def test_example_lists_the_token_commented_out_with_an_env_reference() -> None:
    assert '# token = "env:INTAKE_TELEGRAM_TOKEN"' in example_config_text().splitlines()


# --- secrets ----------------------------------------------------------------------------------


def test_secrets_resolve_from_env_and_file_and_never_appear_in_repr(
    config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTAKE_TEST_TOKEN", CANARY_TOKEN)
    monkeypatch.setenv("INTAKE_TEST_DB", f"postgresql://intake:{CANARY}@db.example.org/intake")
    (config_dir / "hook").write_text(f"{CANARY}hook\n")
    path = write_config(
        config_dir,
        '[telegram]\ntoken = "env:INTAKE_TEST_TOKEN"\nmode = "webhook"\n'
        '[webhook]\npublic_url = "https://intake.example.org/h"\nsecret_token = "file:hook"\n'
        '[database]\nurl = "env:INTAKE_TEST_DB"\n',
    )

    settings = load_settings(path)

    assert settings.require_token() == CANARY_TOKEN
    assert settings.webhook.secret_token is not None
    assert settings.webhook.secret_token.get_secret_value() == f"{CANARY}hook"
    assert settings.database.url == f"postgresql+asyncpg://intake:{CANARY}@db.example.org/intake"
    secret_b64 = base64.urlsafe_b64encode(SECRET_BYTES).decode().rstrip("=")
    for shown in (repr(settings), str(settings)):
        assert CANARY not in shown
        assert secret_b64 not in shown
        assert repr(SECRET_BYTES) not in shown


@pytest.mark.parametrize(
    ("text", "env"),
    [
        pytest.param(f'[telegram]\ntoken = "{CANARY_TOKEN}"\n', {}, id="literal token"),
        pytest.param(
            '[telegram]\ntoken = "env:INTAKE_TEST_TOKEN"\n',
            {"INTAKE_TEST_TOKEN": f"{CANARY} not a token"},
            id="malformed token",
        ),
        pytest.param(
            '[webhook]\nsecret_token = "env:INTAKE_TEST_HOOK"\n',
            {"INTAKE_TEST_HOOK": f"{CANARY} with spaces"},
            id="bad webhook secret",
        ),
        pytest.param(f'[webhook]\nsecret_token = "{CANARY}"\n', {}, id="literal webhook secret"),
        pytest.param(f'[keys]\nserver_secret = "{CANARY}"\n', {}, id="literal server secret"),
        pytest.param(
            f'[database]\nurl = "postgresql://intake:{CANARY}@db.example.org/intake"\n',
            {},
            id="literal database password",
        ),
        pytest.param(
            '[database]\nurl = "env:INTAKE_TEST_DB"\n',
            {"INTAKE_TEST_DB": f"mysql://intake:{CANARY}@db.example.org/intake"},
            id="database url with a bad scheme",
        ),
        pytest.param(
            '[database]\nurl = "env:INTAKE_TEST_DB"\n',
            {"INTAKE_TEST_DB": f"{CANARY}://intake:{CANARY}@db.example.org/intake"},
            id="database url with a secret in the scheme",
        ),
        pytest.param(
            '[telegram]\ntoken = "env:INTAKE_TEST_TOKEN"\n[telegram.extra]\n',
            {"INTAKE_TEST_TOKEN": CANARY_TOKEN},
            id="later mistake after a good secret",
        ),
    ],
)
def test_secrets_never_appear_in_error_messages_or_tracebacks(
    config_dir: Path, monkeypatch: pytest.MonkeyPatch, text: str, env: dict[str, str]
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    path = write_config(config_dir, text)

    error = config_error(path)

    assert CANARY not in str(error)
    assert CANARY not in "".join(traceback.format_exception(error))
    # No chain either, whose frames' local variables hold what was read.
    assert error.__context__ is None
    assert error.__cause__ is None


def test_require_token_explains_how_to_set_it(config_dir: Path) -> None:
    path = write_config(config_dir, "")
    settings = load_settings(path)
    with pytest.raises(ConfigError) as raised:
        settings.require_token()
    assert str(raised.value) == (
        f'{path}: [telegram] token is not set: add token = "env:NAME" or "file:PATH" to {path}'
    )


def test_server_secret_accepts_padded_base64url(tmp_path: Path) -> None:
    write_server_secret(tmp_path, padded=True)
    settings = load_settings(write_config(tmp_path, ""))
    assert settings.server_secret_bytes() == SECRET_BYTES


def test_settings_are_frozen(config_dir: Path) -> None:
    settings = load_settings(write_config(config_dir, ""))
    with pytest.raises(FrozenInstanceError):
        settings.webhook.port = 1  # type: ignore[misc]


# --- paths ------------------------------------------------------------------------------------


def test_config_path_comes_from_the_flag_then_the_environment_then_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("INTAKE_CONFIG", raising=False)
    assert resolve_config_path(None) == tmp_path / "config.toml"

    monkeypatch.setenv("INTAKE_CONFIG", "/etc/intake/config.toml")
    assert resolve_config_path(None) == Path("/etc/intake/config.toml")
    assert resolve_config_path(Path("other.toml")) == Path("other.toml")

    monkeypatch.setenv("INTAKE_CONFIG", "")
    assert resolve_config_path(None) == tmp_path / "config.toml"


def test_relative_sqlite_and_file_paths_resolve_against_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "etc" / "intake"
    (folder / "secrets").mkdir(parents=True)
    write_server_secret(folder / "secrets")
    (folder / "secrets" / "token").write_text(GOOD_TOKEN + "\n")
    write_config(
        folder,
        '[telegram]\ntoken = "file:secrets/token"\n'
        '[database]\nurl = "sqlite:///data/intake.db"\n'
        '[keys]\nserver_secret = "file:secrets/server_secret"\n',
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    settings = load_settings(Path("../etc/intake/config.toml"))

    assert settings.database.url == f"sqlite+aiosqlite:///{folder}/data/intake.db"
    assert settings.require_token() == GOOD_TOKEN
    assert settings.server_secret_bytes() == SECRET_BYTES
    assert settings.config_path == folder / "config.toml"
    assert settings.config_dir == folder


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "postgresql://intake@db.example.org:5432/intake",
            "postgresql+asyncpg://intake@db.example.org:5432/intake",
        ),
        (
            "postgres://intake@db.example.org/intake",
            "postgresql+asyncpg://intake@db.example.org/intake",
        ),
        (
            "postgresql+asyncpg://intake@db.example.org/intake",
            "postgresql+asyncpg://intake@db.example.org/intake",
        ),
        ("sqlite:////var/lib/intake/intake.db", "sqlite+aiosqlite:////var/lib/intake/intake.db"),
        ("sqlite+aiosqlite:///x/../intake.db", "sqlite+aiosqlite:///{dir}/intake.db"),
        ("sqlite:///:memory:", "sqlite+aiosqlite:///:memory:"),
    ],
)
def test_database_url_is_normalised_to_the_async_driver(
    config_dir: Path, url: str, expected: str
) -> None:
    settings = load_settings(write_config(config_dir, f'[database]\nurl = "{url}"\n'))
    assert settings.database.url == expected.format(dir=config_dir)


def test_database_url_with_a_password_may_come_from_a_file(config_dir: Path) -> None:
    (config_dir / "db_url").write_text("postgresql://intake:pw@db.example.org/intake\n")
    settings = load_settings(write_config(config_dir, '[database]\nurl = "file:db_url"\n'))
    assert settings.database.url == "postgresql+asyncpg://intake:pw@db.example.org/intake"


def test_classical_group_keys_are_taken_only_with_allow_classical(config_dir: Path) -> None:
    text = '[keys]\nkem = "X25519"\nallow_classical = true\n'
    settings = load_settings(write_config(config_dir, text))
    assert settings.keys.kem == "X25519"
    assert settings.keys.allow_classical is True


def test_webhook_mode_loads_with_public_url_and_secret_token(
    config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTAKE_TEST_HOOK", "a" * 256)
    settings = load_settings(
        write_config(
            config_dir,
            '[telegram]\nmode = "webhook"\nusername = "intake_test_bot"\n'
            'base_url = "http://127.0.0.1:8081/bot"\n'
            '[webhook]\nlisten = "0.0.0.0"\nport = 8080\n'
            'public_url = "https://intake.example.org/telegram"\n'
            'secret_token = "env:INTAKE_TEST_HOOK"\n',
        )
    )
    assert settings.telegram.mode == "webhook"
    assert settings.telegram.base_url == "http://127.0.0.1:8081/bot"
    assert settings.webhook.public_url == "https://intake.example.org/telegram"
    assert settings.webhook.port == 8080


def test_durations_are_read_from_their_text_form(config_dir: Path) -> None:
    settings = load_settings(
        write_config(config_dir, '[defaults]\ninterval = "2h30m"\n[invites]\nttl = "2w"\n')
    )
    assert settings.defaults.interval == timedelta(hours=2, minutes=30)
    assert settings.defaults.grace == timedelta(hours=6)
    assert settings.invites.ttl == timedelta(weeks=2)


def test_an_unset_token_stops_only_the_commands_that_read_it(
    config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("INTAKE_TEST_UNSET", raising=False)
    path = write_config(config_dir, '[telegram]\ntoken = "env:INTAKE_TEST_UNSET"\n')
    settings = load_settings(path, read_token=False)
    assert settings.telegram.token is None
    with pytest.raises(ConfigError, match="INTAKE_TEST_UNSET is not set"):
        load_settings(path)
    # A literal token is refused even when the token is not read.
    literal = write_config(config_dir, f'[telegram]\ntoken = "{GOOD_TOKEN}"\n')
    with pytest.raises(ConfigError, match="secrets are never written in the config file"):
        load_settings(literal, read_token=False)


def test_every_secret_file_read_is_listed_for_the_mode_check(config_dir: Path) -> None:
    (config_dir / "token").write_text(GOOD_TOKEN)
    path = write_config(config_dir, '[telegram]\ntoken = "file:token"\n')
    assert set(load_settings(path).secret_files) == {
        config_dir / "token",
        config_dir / "server_secret",
    }
    assert load_settings(path, read_token=False).secret_files == (config_dir / "server_secret",)
