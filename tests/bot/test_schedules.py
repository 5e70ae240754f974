"""Check-in schedules: validating a policy, codenames, and when the next check-in is due."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.schedules import BadSchedule, describe, make_schedule, next_due, normalise_codename
from storage.groups import Schedule
from storage.models import Group, ScheduleKind

BERLIN = ZoneInfo("Europe/Berlin")
GRACE = timedelta(hours=6)
DETAINED = timedelta(days=3)


def interval_group(interval: timedelta, codename: str = "PINE-7") -> Group:
    return Group(
        codename=codename,
        schedule_kind=ScheduleKind.INTERVAL,
        interval_s=int(interval.total_seconds()),
        grace_s=int(GRACE.total_seconds()),
        detained_after_s=int(DETAINED.total_seconds()),
        kem="X25519",
        public_key=b"",
    )


def cron_group(cron: str, tz: str, codename: str = "OAK-2") -> Group:
    return Group(
        codename=codename,
        schedule_kind=ScheduleKind.CRON,
        cron=cron,
        tz=tz,
        grace_s=int(GRACE.total_seconds()),
        detained_after_s=int(DETAINED.total_seconds()),
        kem="X25519",
        public_key=b"",
    )


def schedule(**overrides: object) -> Schedule:
    arguments: dict[str, object] = {
        "interval": timedelta(hours=24),
        "cron": None,
        "tz": None,
        "grace": GRACE,
        "detained_after": DETAINED,
    }
    arguments.update(overrides)
    return make_schedule(**arguments)  # type: ignore[arg-type]


def iterate_due(group: Group, start: datetime, count: int, *, step: timedelta) -> list[datetime]:
    """``count`` deadlines, each asked for ``step`` after the previous one."""
    found: list[datetime] = []
    after = start
    for _ in range(count):
        due = next_due(group, after=after)
        found.append(due)
        after = due + step
    return found


# --------------------------------------------------------------------------- codenames


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PINE-7", "PINE-7"),
        ("pine-7", "PINE-7"),
        ("  oak-2\n", "OAK-2"),
        ("A1", "A1"),
        ("7-SEAS", "7-SEAS"),
        ("X" * 32, "X" * 32),
    ],
)
def test_codename_is_trimmed_and_upper_cased(text: str, expected: str) -> None:
    assert normalise_codename(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "P",  # one character
        "X" * 33,  # too long
        "a b",
        "PINE_7",
        "-PINE",  # must start with a letter or digit
        "PINE-7\nOAK-2",
        "소나무-7",
        "PINE.7",
    ],
)
def test_bad_codename_is_refused_with_an_example(text: str) -> None:
    with pytest.raises(BadSchedule, match="like PINE-7"):
        normalise_codename(text)


# --------------------------------------------------------------------------- make_schedule


def test_interval_schedule_keeps_its_values() -> None:
    made = schedule(interval=timedelta(hours=12), grace=timedelta(hours=2))
    assert made == Schedule(
        interval=timedelta(hours=12),
        cron=None,
        tz=None,
        grace=timedelta(hours=2),
        detained_after=DETAINED,
    )


def test_cron_schedule_keeps_its_values() -> None:
    made = schedule(interval=None, cron="0 8,20 * * *", tz="Asia/Shanghai")
    assert (made.interval, made.cron, made.tz) == (None, "0 8,20 * * *", "Asia/Shanghai")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"cron": "0 8 * * *", "tz": "UTC"}, "either --interval or --cron"),
        ({"interval": None, "cron": "0 8 * * *"}, "--cron needs --tz"),
        ({"interval": None, "cron": "0 8 * * *", "tz": ""}, "--cron needs --tz"),
        ({"interval": None, "cron": "0 8 * * *", "tz": "Mars/Olympus"}, "unknown time zone"),
        ({"interval": None, "cron": "0 8 * * *", "tz": "../../etc/passwd"}, "unknown time zone"),
        ({"interval": None, "cron": "0 25 * * *", "tz": "UTC"}, "cron expression"),
        ({"interval": None, "cron": "0 8 * *", "tz": "UTC"}, "cron expression"),
        ({"interval": None, "cron": "every morning", "tz": "UTC"}, "cron expression"),
        ({"tz": "Asia/Shanghai"}, "--tz goes with --cron"),
        ({"interval": timedelta(0)}, "interval must be positive"),
        ({"interval": timedelta(hours=-1)}, "interval must be positive"),
        ({"grace": timedelta(days=4)}, "longer than the grace period"),
        ({"grace": DETAINED}, "longer than the grace period"),
    ],
    ids=[
        "interval and cron",
        "cron without tz",
        "cron with empty tz",
        "unknown tz",
        "tz as a path",
        "hour 25",
        "four fields",
        "words",
        "tz without cron",
        "zero interval",
        "negative interval",
        "grace longer than detained-after",
        "grace equal to detained-after",
    ],
)
def test_bad_schedule_is_refused(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(BadSchedule, match=message):
        schedule(**overrides)


def test_bad_schedule_message_is_one_line() -> None:
    with pytest.raises(BadSchedule) as raised:
        schedule(interval=None, cron="0 25 * * *", tz="UTC")
    assert "\n" not in str(raised.value)
    assert "'0 25 * * *'" in str(raised.value)


# --------------------------------------------------------------------------- next_due: interval


def test_interval_due_is_one_interval_after() -> None:
    group = interval_group(timedelta(hours=12))
    after = datetime(2026, 3, 28, 23, 15, tzinfo=UTC)
    assert next_due(group, after=after) == datetime(2026, 3, 29, 11, 15, tzinfo=UTC)


def test_interval_due_ignores_daylight_saving() -> None:
    # Intervals are elapsed time: 24h across Berlin's spring-forward is still 24h.
    group = interval_group(timedelta(hours=24))
    after = datetime(2026, 3, 28, 12, tzinfo=UTC)
    assert next_due(group, after=after) - after == timedelta(hours=24)


def test_interval_due_iterates_strictly_increasing() -> None:
    group = interval_group(timedelta(minutes=90))
    start = datetime(2026, 1, 1, tzinfo=UTC)
    dues = iterate_due(group, start, 10, step=timedelta(0))
    assert dues == [start + timedelta(minutes=90) * n for n in range(1, 11)]


# --------------------------------------------------------------------------- next_due: cron


def test_cron_due_is_the_next_local_time_in_utc() -> None:
    group = cron_group("0 8,20 * * *", "Asia/Shanghai")  # UTC+8, no daylight saving
    after = datetime(2026, 5, 1, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai
    due = next_due(group, after=after)
    assert due == datetime(2026, 5, 1, 12, 0, tzinfo=UTC)  # 20:00 in Shanghai
    assert due.utcoffset() == timedelta(0)


def test_cron_due_in_the_past_is_computed_from_after_not_from_now() -> None:
    group = cron_group("0 8 * * *", "UTC")
    after = datetime(2020, 2, 28, 9, 0, tzinfo=UTC)
    assert next_due(group, after=after) == datetime(2020, 2, 29, 8, 0, tzinfo=UTC)


def test_cron_due_is_strictly_after_a_deadline_it_lands_on() -> None:
    # "The first check-in deadline after `after`": a deadline is never due at `after` itself,
    # or a loop that asks for the next deadline after the last one would never move on.
    group = cron_group("0 8 * * *", "UTC")
    deadline = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
    assert next_due(group, after=deadline) == datetime(2026, 5, 2, 8, 0, tzinfo=UTC)


def test_cron_day_of_week_uses_crontab_numbering() -> None:
    # In crontab, day-of-week 0 (and 7) is Sunday and 1-5 is Monday to Friday.
    saturday_noon = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    assert saturday_noon.strftime("%A") == "Saturday"
    sunday = next_due(cron_group("0 8 * * 0", "UTC"), after=saturday_noon)
    assert sunday.strftime("%A %H:%M") == "Sunday 08:00"
    weekday = next_due(cron_group("0 8 * * 1-5", "UTC"), after=saturday_noon)
    assert weekday.strftime("%A %H:%M") == "Monday 08:00"


def test_cron_day_of_week_7_is_sunday() -> None:
    saturday_noon = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    due = next_due(cron_group("0 8 * * 7", "UTC"), after=saturday_noon)
    assert due.strftime("%A %H:%M") == "Sunday 08:00"


def test_cron_group_without_schedule_is_an_error() -> None:
    group = cron_group("0 8 * * *", "UTC")
    group.cron = None
    with pytest.raises(BadSchedule, match="has no schedule"):
        next_due(group, after=datetime(2026, 1, 1, tzinfo=UTC))


# --------------------------------------------------------------------------- daylight saving

# Europe/Berlin: 2026-03-29 02:00 CET jumps to 03:00 CEST, so 02:30 does not exist that day;
# 2026-10-25 03:00 CEST falls back to 02:00 CET, so 02:30 happens twice.
SPRING_FORWARD = (datetime(2026, 3, 26, 12, tzinfo=UTC), date(2026, 3, 29))
FALL_BACK = (datetime(2026, 10, 22, 12, tzinfo=UTC), date(2026, 10, 25))
TRANSITIONS = pytest.mark.parametrize(
    ("start", "transition_day"), [SPRING_FORWARD, FALL_BACK], ids=["spring-forward", "fall-back"]
)


def assert_one_deadline_a_day(dues: list[datetime], start: datetime, transition_day: date) -> None:
    assert all(d.tzinfo is not None and d.utcoffset() == timedelta(0) for d in dues)
    assert all(a < b for a, b in itertools.pairwise(dues)), dues
    assert len(set(dues)) == len(dues)
    local_days = [d.astimezone(BERLIN).date() for d in dues]
    first = start.astimezone(BERLIN).date() + timedelta(days=1)
    assert local_days == [first + timedelta(days=n) for n in range(len(dues))], [
        d.astimezone(BERLIN).isoformat() for d in dues
    ]
    assert transition_day in local_days


@TRANSITIONS
def test_cron_across_daylight_saving_gives_one_deadline_a_day(
    start: datetime, transition_day: date
) -> None:
    group = cron_group("30 2 * * *", "Europe/Berlin")
    dues = iterate_due(group, start, 6, step=timedelta(0))
    assert_one_deadline_a_day(dues, start, transition_day)


@TRANSITIONS
def test_cron_across_daylight_saving_stepping_past_each_deadline(
    start: datetime, transition_day: date
) -> None:
    # The same walk, asking one second after each deadline: separates the daylight-saving
    # behaviour from whether next_due counts `after` itself.
    group = cron_group("30 2 * * *", "Europe/Berlin")
    dues = iterate_due(group, start, 6, step=timedelta(seconds=1))
    assert_one_deadline_a_day(dues, start, transition_day)


def test_cron_on_the_missing_spring_forward_time_is_due_that_day() -> None:
    group = cron_group("30 2 * * *", "Europe/Berlin")
    due = next_due(group, after=datetime(2026, 3, 28, 12, tzinfo=UTC))
    assert due.astimezone(BERLIN).date() == date(2026, 3, 29)
    # after midnight and no later than the first instant past the gap plus 30 minutes
    assert (
        datetime(2026, 3, 28, 23, 0, tzinfo=UTC) < due <= datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    )


def test_cron_on_the_repeated_fall_back_time_is_due_once() -> None:
    group = cron_group("30 2 * * *", "Europe/Berlin")
    first = next_due(group, after=datetime(2026, 10, 24, 12, tzinfo=UTC))
    second = next_due(group, after=first + timedelta(seconds=1))
    assert first.astimezone(BERLIN).date() == date(2026, 10, 25)
    assert second.astimezone(BERLIN).date() == date(2026, 10, 26)


# --------------------------------------------------------------------------- describe


def test_describe_interval_and_cron() -> None:
    assert describe(interval_group(timedelta(hours=12))) == "every 12h"
    assert describe(interval_group(timedelta(minutes=150))) == "every 2h30m"
    assert describe(cron_group("0 8,20 * * *", "Asia/Shanghai")) == (
        "cron 0 8,20 * * * (Asia/Shanghai)"
    )
