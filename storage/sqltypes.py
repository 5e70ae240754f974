"""Column types of our own, for the tables (storage.models) and the migrations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import types
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.sql.operators import OperatorType


class UTCDateTime(types.TypeDecorator[datetime]):
    """A moment: written only with its zone (a naive datetime is refused, since nothing
    would say which clock it came from), read back aware, in UTC.

    PostgreSQL keeps it as ``timestamp with time zone``. SQLite keeps text without an
    offset, which is UTC because everything written was converted to UTC first.
    Compared with a ``timedelta`` (``at + interval``), the other side is an interval."""

    impl = types.DateTime
    cache_ok = True

    def __init__(self) -> None:
        super().__init__(timezone=True)

    def __repr__(self) -> str:
        return "UTCDateTime()"

    def coerce_compared_value(self, op: OperatorType | None, value: Any) -> types.TypeEngine[Any]:
        if isinstance(value, timedelta):
            return types.Interval()
        return self

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.utcoffset() is None:
            raise ValueError(f"a naive datetime cannot be stored (no zone): {value.isoformat()}")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.utcoffset() is None:  # SQLite: stored in UTC, without an offset
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
