"""The bot's words in English and Korean, from standard gettext catalogues.

English is the source language (the msgids); ``bot/locale/<lang>/LC_MESSAGES/
intake.po`` holds each translation, and ``intake.mo`` beside it the same compiled, which
is what the bot reads (the standard library's gettext). After editing a ``.po``::

    .venv/bin/pybabel compile -d bot/locale -D intake

(``tests/bot/test_i18n.py`` fails while a ``.mo`` differs from its ``.po``.) The bot does
not read the ``.po`` itself: Babel's catalogue reader would stay in the long-running bot's
memory for one read at start-up (#19). Babel's formatting (dates, durations) is imported
at the first time or duration said, not at start.
"""

from __future__ import annotations

import functools
import gettext
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from importlib import resources
from importlib.resources.abc import Traversable

LANGUAGES = {"en": "English", "ko": "한국어"}
DEFAULT = "en"
DOMAIN = "intake"


@functools.cache
def _catalogue(language: str) -> gettext.NullTranslations:
    if language == DEFAULT:
        return gettext.NullTranslations()
    return gettext.GNUTranslations(io.BytesIO(compiled_catalogue(language).read_bytes()))


def compiled_catalogue(language: str) -> Traversable:
    """A language's compiled catalogue (``intake.mo``), as the package holds it."""
    return resources.files("bot").joinpath("locale", language, "LC_MESSAGES", f"{DOMAIN}.mo")


def source_catalogue(language: str) -> Traversable:
    """A language's catalogue as translators edit it (``intake.po``)."""
    return resources.files("bot").joinpath("locale", language, "LC_MESSAGES", f"{DOMAIN}.po")


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


def zone_abbreviation(moment: datetime, tz: tzinfo) -> str:
    """The zone's short name at that moment ("KST", "UTC", "CST"); a zone with no
    letters of its own (Asia/Bangkok says "+07") is written "UTC+07"."""
    name = moment.astimezone(tz).strftime("%Z")
    return f"UTC{name}" if name[:1] in "+-" else name


@dataclass(frozen=True, slots=True)
class Words:
    """Everything said to one person: their language and their time zone, with
    Babel's locale-aware durations ("12분 전") and gettext's plural forms."""

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
        from babel.dates import format_datetime  # at first use: see the module docstring

        when = format_datetime(moment, "yyyy-MM-dd HH:mm", tzinfo=self.tz, locale=self.language)
        return f"{when} {zone_abbreviation(moment, self.tz)}"

    def clock(self, moment: datetime) -> str:
        """Just the time of day, with the zone ("03:12 KST")."""
        from babel.dates import format_datetime  # at first use: see the module docstring

        when = format_datetime(moment, "HH:mm", tzinfo=self.tz, locale=self.language)
        return f"{when} {zone_abbreviation(moment, self.tz)}"

    def duration(self, length: timedelta) -> str:
        """A length of time in words, to its two largest units ("14 hours 5 minutes",
        "14시간 5분"); under a minute, in seconds."""
        from babel.units import format_unit  # at first use: see the module docstring

        seconds = max(0, int(length.total_seconds()))
        parts = []
        for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
            amount, seconds = divmod(seconds, size)
            if amount:
                parts.append((amount, unit))
        if not parts:
            parts = [(seconds, "second")]
        return " ".join(
            format_unit(amount, f"duration-{unit}", locale=self.language)
            for amount, unit in parts[:2]
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
