"""The bot's words in English and Korean, from standard gettext catalogues.

English is the source language (the msgids); ``bot/locale/<lang>/LC_MESSAGES/
intake.po`` holds each translation, and ``intake.mo`` beside it the same compiled, which
is what the bot reads (the standard library's gettext). After editing a ``.po``::

    .venv/bin/pybabel compile -d bot/locale -D intake

(``tests/bot/test_i18n.py`` fails while a ``.mo`` differs from its ``.po``.)

The running bot does not load Babel (#19): its catalogue reader was in memory for one
read at start-up, and its formatting loaded a language's whole CLDR data (about 4 MB
of objects, kept for the life of the process) to write "2026-12-07 03:12" and
"14 hours". Times are written with fixed numeric patterns, the same in every language,
and durations are the catalogue's plural messages ("{count} hours", "{count}시간"),
which ``tests/bot/test_i18n.py`` holds to Babel's own output.
"""

from __future__ import annotations

import functools
import gettext
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from importlib import resources
from importlib.resources.abc import Traversable

LANGUAGES = {"en": "English", "ko": "한국어"}
DEFAULT = "en"
DOMAIN = "intake"


@functools.cache
def _catalogue(language: str) -> gettext.NullTranslations:
    if language == DEFAULT:
        return gettext.NullTranslations()
    with compiled_catalogue(language).open("rb") as compiled:
        return gettext.GNUTranslations(compiled)


def compiled_catalogue(language: str) -> Traversable:
    """A language's compiled catalogue (``intake.mo``), as the package holds it."""
    return _catalogue_file(language, "mo")


def source_catalogue(language: str) -> Traversable:
    """A language's catalogue as translators edit it (``intake.po``)."""
    return _catalogue_file(language, "po")


def _catalogue_file(language: str, suffix: str) -> Traversable:
    return resources.files("bot").joinpath("locale", language, "LC_MESSAGES", f"{DOMAIN}.{suffix}")


def pick_language(
    chosen: str | None, telegram_language: str | None, *, default: str = DEFAULT
) -> str:
    """The person's own choice, else their Telegram app's language, else ``default``
    (the installation's ``[display] language``, English unless set)."""
    for candidate in (chosen, (telegram_language or "")[:2].lower()):
        if candidate in LANGUAGES:
            return candidate
    return default if default in LANGUAGES else DEFAULT


def translator(language: str) -> Callable[[str], str]:
    return _catalogue(language if language in LANGUAGES else DEFAULT).gettext


def _(message: str) -> str:
    """Marks a string for extraction (pybabel extract -k _); translated at use."""
    return message


def ngettext_of(language: str) -> Callable[[str, str, int], str]:
    return _catalogue(language if language in LANGUAGES else DEFAULT).ngettext


def pgettext_(context: str, message: str) -> tuple[str, str]:
    """Marks a message with a context (pybabel extract -k pgettext_:1c,2): "OK" the
    status is not "OK" the button."""
    return context, message


def N_(singular: str, plural: str) -> tuple[str, str]:  # noqa: N802 (gettext's own name)
    """Marks a plural pair for extraction (pybabel extract -k N_:1,2); chosen at use."""
    return singular, plural


def _aware(moment: datetime) -> datetime:
    # A time without a zone is UTC, as everything stored is (and as Babel read one);
    # datetime.astimezone would take it for the machine's own zone.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def zone_abbreviation(moment: datetime, tz: tzinfo) -> str:
    """The zone's short name at that moment ("KST", "UTC", "CST"); a zone with no
    letters of its own (Asia/Bangkok says "+07") is written "UTC+07"."""
    name = _aware(moment).astimezone(tz).strftime("%Z")
    return f"UTC{name}" if name[:1] in "+-" else name


@dataclass(frozen=True, slots=True)
class Words:
    """Everything said to one person: their language and their time zone, with
    durations in their words ("12분 전") and gettext's plural forms."""

    language: str
    tz: tzinfo

    def _(self, message: str) -> str:
        return translator(self.language)(message)

    def p_(self, pair: tuple[str, str]) -> str:
        return _catalogue(self.language if self.language in LANGUAGES else DEFAULT).pgettext(*pair)

    def n_(self, pair: tuple[str, str], count: int) -> str:
        return ngettext_of(self.language)(pair[0], pair[1], count)

    def local(self, moment: datetime) -> str:
        """A time to the minute in the person's zone, always with the zone's name."""
        when = _aware(moment).astimezone(self.tz).strftime("%Y-%m-%d %H:%M")
        return f"{when} {zone_abbreviation(moment, self.tz)}"

    def clock(self, moment: datetime) -> str:
        """Just the time of day, with the zone ("03:12 KST")."""
        when = _aware(moment).astimezone(self.tz).strftime("%H:%M")
        return f"{when} {zone_abbreviation(moment, self.tz)}"

    def duration(self, length: timedelta) -> str:
        """A length of time in words, to its two largest units ("14 hours 5 minutes",
        "14시간 5분"); under a minute, in seconds."""
        seconds = max(0, int(length.total_seconds()))
        parts = []
        for unit, size in ((DAYS, 86400), (HOURS, 3600), (MINUTES, 60)):
            amount, seconds = divmod(seconds, size)
            if amount:
                parts.append((amount, unit))
        if not parts:
            parts = [(seconds, SECONDS)]
        return " ".join(
            self.n_(unit, amount).format(count=f"{amount:,}") for amount, unit in parts[:2]
        )

    def ago(self, moment: datetime, now: datetime) -> str:
        return self._(AGO).format(duration=self.duration(now - moment))

    def nth(self, number: int) -> str:
        """An ordinal number: "3rd" in English, "3차" in Korean (as numbered
        notices are counted there: "3차 재알림")."""
        if self.language == "ko":
            return f"{number}차"
        if number % 100 in (11, 12, 13):
            return f"{number}th"
        return f"{number}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(number % 10, 'th') }"


AGO = _("{duration} ago")
DAYS = N_("{count} day", "{count} days")
HOURS = N_("{count} hour", "{count} hours")
MINUTES = N_("{count} minute", "{count} minutes")
SECONDS = N_("{count} second", "{count} seconds")
