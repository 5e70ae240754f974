"""Check-in schedules: validating a policy and computing when a check-in is due.

Pure functions: time is passed in. Cron times are computed by APScheduler in
the group's own time zone and compared in UTC, so a daylight-saving change
neither skips nor doubles a deadline.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

from bot.durations import format_duration
from storage.groups import Schedule
from storage.models import Group, ScheduleKind

CODENAME = re.compile(r"[A-Z0-9][A-Z0-9-]{1,31}")


class BadSchedule(ValueError):
    pass


def normalise_codename(text: str) -> str:
    codename = text.strip().upper()
    if not CODENAME.fullmatch(codename):
        raise BadSchedule(f"codename {text!r}: use 2 to 32 letters, digits and dashes, like PINE-7")
    return codename


def cron_trigger(expression: str, tz: str) -> CronTrigger:
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadSchedule(f"unknown time zone {tz!r} (use a name like Asia/Shanghai)") from None
    try:
        return CronTrigger.from_crontab(expression, timezone=zone)
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


def next_due(group: Group, *, after: datetime) -> datetime:
    """The first check-in deadline after ``after`` under the group's policy."""
    if group.schedule_kind is ScheduleKind.INTERVAL and group.interval_s is not None:
        return after + timedelta(seconds=group.interval_s)
    if group.cron is None or group.tz is None:
        raise BadSchedule(f"group {group.codename} has no schedule")
    fire: datetime | None = cron_trigger(group.cron, group.tz).get_next_fire_time(None, after)
    if fire is None:
        raise BadSchedule(f"group {group.codename}: its cron expression never fires again")
    return fire.astimezone(UTC)


def describe(group: Group) -> str:
    if group.schedule_kind is ScheduleKind.INTERVAL and group.interval_s is not None:
        return "every " + format_duration(timedelta(seconds=group.interval_s))
    return f"cron {group.cron} ({group.tz})"
