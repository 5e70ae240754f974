"""The catalogues the bot reads are the translators' catalogues, compiled."""

from __future__ import annotations

import gettext
import io
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.i18n import (
    DEFAULT,
    LANGUAGES,
    Words,
    compiled_catalogue,
    source_catalogue,
    translator,
    zone_abbreviation,
)


@pytest.mark.parametrize("language", sorted(set(LANGUAGES) - {DEFAULT}))
def test_each_compiled_catalogue_is_its_po_compiled(language: str) -> None:
    with source_catalogue(language).open("rb") as source:
        catalogue = read_po(source, locale=language, domain="intake")
    compiled = io.BytesIO()
    write_mo(compiled, catalogue)
    compiled.seek(0)
    expected = _messages(gettext.GNUTranslations(compiled))
    shipped = _messages(
        gettext.GNUTranslations(io.BytesIO(compiled_catalogue(language).read_bytes()))
    )
    assert shipped == expected, (
        f"bot/locale/{language}/LC_MESSAGES/intake.mo is stale: run "
        "`.venv/bin/pybabel compile -d bot/locale -D intake`"
    )


def _messages(translations: gettext.GNUTranslations) -> dict[Any, str]:
    # Every message and its translation, without the header (msgid ""), whose
    # POT-Creation-Date Babel sets to the moment of compiling when the .po has none.
    catalogue: dict[Any, str] = translations._catalog  # type: ignore[attr-defined]
    return {key: text for key, text in catalogue.items() if key != ""}


def test_the_bot_speaks_korean_from_the_compiled_catalogue() -> None:
    with source_catalogue("ko").open("rb") as source:
        catalogue = read_po(source, locale="ko", domain="intake")
    said = [
        (m.id, m.string)
        for m in catalogue
        if isinstance(m.id, str) and m.id and isinstance(m.string, str) and m.context is None
    ]
    assert said
    for english, korean in said:
        assert translator("ko")(english) == korean


# What Babel wrote before the bot stopped loading it (#19): its CLDR units and patterns.
@settings(max_examples=300)
@given(
    seconds=st.one_of(
        st.integers(0, 120),
        st.integers(0, 3 * 86400),
        st.integers(0, 4000 * 86400),
    ),
    language=st.sampled_from(sorted(LANGUAGES)),
)
def test_a_duration_reads_as_babel_wrote_it(seconds: int, language: str) -> None:
    from babel.units import format_unit

    parts = []
    left = seconds
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        amount, left = divmod(left, size)
        if amount:
            parts.append((amount, unit))
    if not parts:
        parts = [(left, "second")]
    babel = " ".join(
        format_unit(amount, f"duration-{unit}", locale=language) for amount, unit in parts[:2]
    )
    words = Words(language, ZoneInfo("UTC"))
    assert words.duration(timedelta(seconds=seconds)) == babel


@settings(max_examples=300)
@given(
    moment=st.datetimes(
        min_value=datetime(2020, 1, 1),  # noqa: DTZ001 (hypothesis takes naive bounds)
        max_value=datetime(2040, 1, 1),  # noqa: DTZ001
        timezones=st.just(UTC),
    ),
    zone=st.sampled_from(
        ["UTC", "Asia/Seoul", "Asia/Shanghai", "Asia/Bangkok", "America/New_York"]
    ),
    language=st.sampled_from(sorted(LANGUAGES)),
)
def test_a_time_reads_as_babel_wrote_it(moment: datetime, zone: str, language: str) -> None:
    from babel.dates import format_datetime

    tz = ZoneInfo(zone)
    words = Words(language, tz)
    name = zone_abbreviation(moment, tz)
    local = format_datetime(moment, "yyyy-MM-dd HH:mm", tzinfo=tz, locale=language)
    clock = format_datetime(moment, "HH:mm", tzinfo=tz, locale=language)
    assert words.local(moment) == f"{local} {name}"
    assert words.clock(moment) == f"{clock} {name}"


def test_a_time_without_a_zone_is_utc_as_babel_read_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from babel.dates import format_datetime

    naive = datetime(2026, 12, 7, 3, 12)  # noqa: DTZ001 (the case under test)
    seoul = ZoneInfo("Asia/Seoul")
    expected = format_datetime(naive, "yyyy-MM-dd HH:mm", tzinfo=seoul, locale="ko")
    # On a machine whose own zone is not UTC: where taking the machine's zone would show.
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        said = Words("ko", seoul).local(naive)
    finally:
        monkeypatch.undo()
        time.tzset()
    assert said == f"{expected} KST" == "2026-12-07 12:12 KST"


SAYING = """
import sys
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo
from bot.i18n import Words
for language in ("en", "ko"):
    words = Words(language, ZoneInfo("Asia/Seoul"))
    now = datetime.now(UTC)
    print(words.local(now), words.clock(now), words.ago(now - timedelta(hours=14), now))
print("babel" in sys.modules)
"""


def test_saying_times_and_durations_loads_no_babel() -> None:
    # A language's CLDR data is about 4 MB of objects for the life of the bot.
    done = subprocess.run(
        [sys.executable, "-c", SAYING], capture_output=True, text=True, check=True, timeout=60
    )
    lines = done.stdout.splitlines()
    assert "14시간 전" in lines[1]
    assert lines[-1] == "False"
