"""Phone numbers written in a text: a pasted SMS or KakaoTalk message usually carries the
sender's number, which may be a known member's (linking rule 3).

Pure: no I/O. Numbers come back in E.164 (``+8613800138000``), the form
``storage.identifiers.normalise_phone`` stores blind indexes of.

phonenumbers (about 1 MB of the long-running bot's memory, #19) is imported at the first
text with enough digits to hold a number, not when the bot starts: most texts have none.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import phonenumbers

__all__ = ["MOST_NUMBERS", "phone_numbers_in"]

# The most numbers of one text that are looked up (each costs an Argon2id blind index,
# some 20 ms): a pasted SMS carries one or two; a 4,096-character text can hold 273,
# which would hold up everyone else's messages for seconds.
MOST_NUMBERS = 10

DEFAULT_REGIONS = ("CN", "KR")

# No valid number of any region has fewer digits (phonenumbers' shortest national number
# of all; tests/bot/test_phones.py holds it to the library's metadata): a text with fewer
# is answered without loading phonenumbers at all.
FEWEST_DIGITS_ANYWHERE = 4


class _Reading(NamedTuple):
    start: int
    end: int
    not_mobile: bool
    region_rank: int
    e164: str


def _is_mobile(number: phonenumbers.PhoneNumber) -> bool:
    # A traveller texts from a mobile; when one written number reads as a valid number in
    # two regions, the mobile reading wins over the region order. "010-1234-5678" is a
    # Korean mobile and also a Beijing landline (010 is Beijing's area code).
    import phonenumbers  # at first use: see the module docstring

    kind = phonenumbers.number_type(number)
    return kind in (
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    )


def shortest_national(region: str) -> int:
    """The fewest digits of a valid national number of ``region`` (phonenumbers' metadata)."""
    import phonenumbers  # at first use: see the module docstring

    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    desc = metadata.general_desc if metadata else None
    lengths = desc.possible_length if desc else ()
    return min((n for n in lengths if n > 0), default=1)


def _prepared(text: str) -> str:
    # NFKC turns full-width digits, plus signs, hyphens and parentheses into ASCII;
    # format characters (zero-width space, joiners, direction marks) become spaces so
    # they neither hide a number nor glue two numbers into one.
    normal = unicodedata.normalize("NFKC", text)
    return "".join(" " if unicodedata.category(c) == "Cf" else c for c in normal)


@functools.cache
def _fewest_digits(regions: tuple[str, ...]) -> int:
    """The fewest digits a valid number read in ``regions`` can have: the shortest
    national number of those regions, or a country code and the shortest national
    number of any region (written with ``+``, which reads the same everywhere)."""
    import phonenumbers  # at first use: see the module docstring

    international = min(
        len(str(phonenumbers.country_code_for_region(r))) + shortest_national(r)
        for r in phonenumbers.SUPPORTED_REGIONS
    )
    return min([international, *(shortest_national(r) for r in regions)])


def phone_numbers_in(text: str, *, regions: Sequence[str] = DEFAULT_REGIONS) -> list[str]:
    """Every valid phone number written in the text, as E.164, each once, in text order.

    A number without a country code is read as a number of each region in turn; one that
    is valid in several is taken as the mobile reading, else as the first region's.
    Numbers with ``+`` read the same in every region, and are the only ones read when
    ``regions`` is empty. Dates, prices and order numbers are
    not valid numbers and are not returned.
    """
    prepared = _prepared(text)
    digits = sum(c.isdigit() for c in prepared)
    if digits < FEWEST_DIGITS_ANYWHERE:
        return []  # "잘 있어요", "3시": no number, and no need to load the library
    import phonenumbers  # at first use: see the module docstring

    unknown = [r for r in regions if r not in phonenumbers.SUPPORTED_REGIONS]
    if unknown:
        raise ValueError(f"unknown phone regions: {', '.join(unknown)}")
    if digits < _fewest_digits(tuple(regions)):
        return []  # most texts ("12:30", a date): the matcher is the costly part
    readings: list[_Reading] = []
    # With no region only numbers written with their country code are read ("ZZ" is
    # phonenumbers' unknown region).
    for rank, region in enumerate(regions or ("ZZ",)):
        matches = phonenumbers.PhoneNumberMatcher(
            prepared, region, leniency=phonenumbers.Leniency.VALID
        )
        for match in matches:
            number = match.number
            readings.append(
                _Reading(
                    match.start,
                    match.end,
                    not _is_mobile(number),
                    rank,
                    phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
                )
            )
    # Earliest first; at one place, the mobile reading, then the earlier region. A reading
    # overlapping one already taken is the same digits read another way, so it is dropped.
    readings.sort(key=lambda r: (r.start, r.not_mobile, r.region_rank))
    taken: list[_Reading] = []
    for reading in readings:
        if any(reading.start < t.end and t.start < reading.end for t in taken):
            continue
        taken.append(reading)
    return list(dict.fromkeys(r.e164 for r in taken))
