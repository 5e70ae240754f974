"""Identifiers of people, normalised so that one person has one blind index."""

from __future__ import annotations

import re
import unicodedata

from storage.models import IdentifierKind


class BadIdentifier(ValueError):
    pass


def normalise_phone(text: str, *, region: str | None = None) -> str:
    """E.164 form (``+8613800138000``). Without a region the number needs its ``+``."""
    # Imported here: only an operator's `member add` and the first texts with a number
    # need it, and the long-running bot would carry its 1 MB from the start (#19).
    import phonenumbers

    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise BadIdentifier(
            "not a phone number (write it with its country code, e.g. +86...)"
        ) from exc
    if not phonenumbers.is_possible_number(number):
        raise BadIdentifier("not a possible phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_username(text: str) -> str:
    name = text.strip().removeprefix("@").casefold()
    if not re.fullmatch(r"[a-z0-9_]{4,32}", name):
        raise BadIdentifier("not a Telegram username")
    return name


def normalise_telegram_id(value: int | str) -> str:
    try:
        number = int(str(value).strip())
    except ValueError as exc:
        raise BadIdentifier("not a Telegram id") from exc
    if number <= 0:
        raise BadIdentifier("not a Telegram id")
    return str(number)


def normalise_hidden_name(text: str) -> str:
    """The name Telegram shows for a hidden forward origin, folded for comparison."""
    folded = " ".join(unicodedata.normalize("NFKC", text).casefold().split())
    if not folded:
        raise BadIdentifier("empty name")
    return folded


def normalise(kind: IdentifierKind, value: str) -> str:
    match kind:
        case IdentifierKind.PHONE:
            return normalise_phone(value)
        case IdentifierKind.USERNAME:
            return normalise_username(value)
        case IdentifierKind.TELEGRAM_ID:
            return normalise_telegram_id(value)
        case IdentifierKind.HIDDEN_NAME:
            return normalise_hidden_name(value)
