"""Check-in schedules: validating a policy and computing when a check-in is due.

Pure functions: time is passed in. Cron times are computed by APScheduler in
the group's own time zone and compared in UTC, so a daylight-saving change
neither skips nor doubles a deadline.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol
from zoneinfo import ZoneInfo

from bot.durations import format_duration
from storage.timeutil import zone_named
from storage.vocabulary import ScheduleKind

if TYPE_CHECKING:
    # Imported where used: `intake status` computes due times from a light read of the
    # groups (storage.glance), without SQLAlchemy, and interval schedules need no cron.
    from apscheduler.triggers.cron import CronTrigger

    from storage.groups import Schedule

CODENAME = re.compile(r"[A-Z0-9][A-Z0-9-]{1,31}")


class BadSchedule(ValueError):
    pass


class Scheduled(Protocol):
    """A group's schedule, as a ``storage.models.Group`` or a ``storage.glance.GroupGlance``
    holds it."""

    @property
    def codename(self) -> str: ...
    @property
    def schedule_kind(self) -> ScheduleKind: ...
    @property
    def interval_s(self) -> int | None: ...
    @property
    def cron(self) -> str | None: ...
    @property
    def tz(self) -> str | None: ...


def normalise_codename(text: str) -> str:
    codename = text.strip().upper()
    if not CODENAME.fullmatch(codename):
        raise BadSchedule(f"codename {text!r}: use 2 to 32 letters, digits and dashes, like PINE-7")
    return codename


_CRONTAB_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _crontab_days(field: str, expression: str) -> str:
    """Crontab's day-of-week field (0 and 7 are Sunday) as day names.

    APScheduler 3 numbers days from Monday = 0, so a crontab "1-5" would
    silently become Tuesday to Saturday; names mean the same to both.
    """
    if field in ("*", "?"):
        return "*"
    days: set[int] = set()
    for item in field.lower().split(","):
        span, _, step_text = item.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if span == "*":
                first, last = 0, 6
            else:
                low, _, high = span.partition("-")
                first = _CRONTAB_DAYS.index(low) if low in _CRONTAB_DAYS else int(low)
                last = (
                    (_CRONTAB_DAYS.index(high) if high in _CRONTAB_DAYS else int(high))
                    if high
                    else first
                )
        except ValueError:
            raise BadSchedule(f"cron expression {expression!r}: bad day of week {item!r}") from None
        if not (0 <= first <= 7 and 0 <= last <= 7 and first <= last and step > 0):
            raise BadSchedule(f"cron expression {expression!r}: bad day of week {item!r}")
        days.update(day % 7 for day in range(first, last + 1, step))
    return ",".join(_CRONTAB_DAYS[d] for d in sorted(days))


def cron_trigger(expression: str, tz: str) -> CronTrigger:
    from apscheduler.triggers.cron import CronTrigger

    zone = zone_named(tz)
    if zone is None:
        raise BadSchedule(f"unknown time zone {tz!r} (use a name like Asia/Shanghai)")
    fields = expression.split()
    if len(fields) != 5:
        raise BadSchedule(
            f"cron expression {expression!r}: five fields, minute hour day month weekday"
        )
    minute, hour, day, month, weekday = fields
    try:
        return CronTrigger(
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=_crontab_days(weekday, expression),
            timezone=zone,
        )
    except ValueError as exc:
        raise BadSchedule(f"cron expression {expression!r}: {exc}") from None


def make_schedule(
    *,
    interval: timedelta | None,
    cron: str | None,
    tz: str | None,
    grace: timedelta,
    detained_after: timedelta,
) -> Schedule:
    from storage.groups import Schedule

    if interval is not None and cron is not None:
        raise BadSchedule("give either --interval or --cron, not both")
    if cron is not None:
        if not tz:
            raise BadSchedule("--cron needs --tz, the time zone the times are in")
        cron_trigger(cron, tz)
    elif tz:
        raise BadSchedule("--tz goes with --cron")
    if interval is not None and interval <= timedelta(0):
        raise BadSchedule("the interval must be positive")
    if detained_after <= grace:
        raise BadSchedule("detained-after must be longer than the grace period")
    return Schedule(interval=interval, cron=cron, tz=tz, grace=grace, detained_after=detained_after)


def next_due(group: Scheduled, *, after: datetime) -> datetime:
    """The first check-in deadline strictly after ``after`` under the group's policy."""
    if after.utcoffset() is None:
        raise ValueError("next_due needs a timezone-aware time")
    if group.schedule_kind is ScheduleKind.INTERVAL and group.interval_s is not None:
        return after + timedelta(seconds=group.interval_s)
    if group.cron is None or group.tz is None:
        raise BadSchedule(f"group {group.codename} has no schedule")
    zone = ZoneInfo(group.tz)
    trigger = cron_trigger(group.cron, group.tz)
    # APScheduler answers "at or after", and inside the hour that the autumn
    # change repeats it can answer with an earlier time; so step forward a
    # whole minute (cron's resolution) past anything not strictly later.
    moment = after + timedelta(microseconds=1)
    for _ in range(_MAX_STEPS):
        fire: datetime | None = trigger.get_next_fire_time(None, moment)
        if fire is None:
            raise BadSchedule(f"group {group.codename}: its cron expression never fires again")
        if fire > after and not _repeated_wall_time(fire, zone):
            return fire.astimezone(UTC)
        moment = max(moment, fire).replace(second=0, microsecond=0) + timedelta(minutes=1)
    raise BadSchedule(f"group {group.codename}: no deadline found after {after.isoformat()}")


# Enough minutes to leave any repeated hour behind.
_MAX_STEPS = 24 * 60


def _repeated_wall_time(fire: datetime, zone: ZoneInfo) -> bool:
    """True for the second occurrence of a wall-clock time that the autumn change
    repeats: the cron matched its first occurrence already, and the group agreed
    to one deadline at that time, not two."""
    local = fire.astimezone(UTC).astimezone(zone)
    if local.fold != 1:
        return False
    return local.replace(fold=0).astimezone(UTC) != local.astimezone(UTC)


def describe(group: Scheduled) -> str:
    if group.schedule_kind is ScheduleKind.INTERVAL and group.interval_s is not None:
        return "every " + format_duration(timedelta(seconds=group.interval_s))
    return f"cron {group.cron} ({group.tz})"
