"""Time in one place: always timezone-aware UTC, and the zones people name."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def utc_now() -> datetime:
    return datetime.now(UTC)


def zone_named(name: str) -> ZoneInfo | None:
    """The IANA time zone ``name`` (Asia/Seoul), or None if there is none by that name.
    ZoneInfo raises ValueError for a malformed name, ZoneInfoNotFoundError for an unknown
    one, and OSError (IsADirectoryError) for a region's name alone, like Asia."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None
