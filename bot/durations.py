"""Durations written the way people write them: ``45s``, ``90m``, ``24h``, ``2h30m``, ``3d``.

A duration is one or more ``<whole number><unit>`` parts with no spaces, units in descending
order (``w`` weeks, ``d`` days, ``h`` hours, ``m`` minutes, ``s`` seconds), each unit at most
once. The total must be more than zero. Pure functions, no I/O.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta

__all__ = ["DURATION_HINT", "format_duration", "parse_duration"]

DURATION_HINT = "write it like 45s, 90m, 24h, 2h30m or 3d"

# ASCII digits only: ``\d`` would also accept other scripts' digits.
_DURATION = re.compile(
    r"(?:(?P<w>[0-9]+)w)?"
    r"(?:(?P<d>[0-9]+)d)?"
    r"(?:(?P<h>[0-9]+)h)?"
    r"(?:(?P<m>[0-9]+)m)?"
    r"(?:(?P<s>[0-9]+)s)?"
)
_UNIT_SECONDS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
_FORMAT_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
_MAX_QUOTED = 40


def _quote(text: str) -> str:
    """The text in double quotes on one line, shortened if long (for error messages)."""
    if len(text) > _MAX_QUOTED:
        text = text[:_MAX_QUOTED] + "…"
    return json.dumps(text, ensure_ascii=False)


def parse_duration(text: str) -> timedelta:
    """Parse ``45s``, ``90m``, ``24h``, ``2h30m``, ``3d``, ``1d12h`` or ``2w`` into a timedelta.

    Raises ValueError, with a message that shows how to write one, for anything else:
    no unit, fractions, signs, spaces, units out of order or repeated, or a zero total.
    """
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a duration; {DURATION_HINT}")
    match = _DURATION.fullmatch(text)
    if text == "" or match is None:
        raise ValueError(f"{_quote(text)} is not a duration; {DURATION_HINT}")
    seconds = sum(
        int(amount) * _UNIT_SECONDS[unit]
        for unit, amount in match.groupdict().items()
        if amount is not None
    )
    if seconds <= 0:
        raise ValueError(f"{_quote(text)} is not a duration (it must be more than 0s)")
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"{_quote(text)} is too long for a duration") from None


def format_duration(duration: timedelta) -> str:
    """The canonical compact form: ``2h30m``, ``3d``, ``45s``; zero is ``0s``.

    Days are the largest unit written (``7d``, not ``1w``). Fractions of a second are dropped,
    so ``parse_duration(format_duration(d)) == d`` for every positive whole-second duration.
    Raises ValueError for a negative duration.
    """
    if duration < timedelta(0):
        raise ValueError("a negative timedelta has no duration form")
    remaining = duration.days * 86400 + duration.seconds
    if remaining == 0:
        return "0s"
    parts: list[str] = []
    for unit, size in _FORMAT_UNITS:
        amount, remaining = divmod(remaining, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts)
