"""The bot's words in English and Korean, from standard gettext catalogues.

English is the source language (the msgids); ``bot/locale/<lang>/LC_MESSAGES/
intake.po`` holds each translation, read with Babel at start-up.
"""

from __future__ import annotations

import functools
import gettext
import io
from collections.abc import Callable
from importlib import resources

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LANGUAGES = {"en": "English", "ko": "한국어"}
DEFAULT = "en"
DOMAIN = "intake"


@functools.cache
def _catalogue(language: str) -> gettext.NullTranslations:
    if language == DEFAULT:
        return gettext.NullTranslations()
    po = resources.files("bot").joinpath("locale", language, "LC_MESSAGES", f"{DOMAIN}.po")
    with po.open("rb") as source:
        catalogue = read_po(source, locale=language, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalogue)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


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
