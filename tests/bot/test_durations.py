from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("45s", timedelta(seconds=45)),
        ("90m", timedelta(minutes=90)),
        ("24h", timedelta(hours=24)),
        ("2h30m", timedelta(hours=2, minutes=30)),
        ("3d", timedelta(days=3)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("2w", timedelta(weeks=2)),
        ("1w2d3h4m5s", timedelta(weeks=1, days=2, hours=3, minutes=4, seconds=5)),
        ("0h1s", timedelta(seconds=1)),
        ("007m", timedelta(minutes=7)),
    ],
)
def test_parse_duration_reads_each_unit_form(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", '"" is not a duration; write it like 45s, 90m, 24h, 2h30m or 3d'),
        ("5", '"5" is not a duration; write it like 45s, 90m, 24h, 2h30m or 3d'),
        ("1.5h", '"1.5h" is not a duration; write it like 45s, 90m, 24h, 2h30m or 3d'),
        ("-3m", '"-3m" is not a duration; write it like 45s, 90m, 24h, 2h30m or 3d'),
        ("3m2h", '"3m2h" is not a duration; write it like 45s, 90m, 24h, 2h30m or 3d'),
        ("0s", '"0s" is not a duration (it must be more than 0s)'),
        ("h", '"h" is not a duration; write it like 45s, 90m, 24h, 2h30m or 3d'),
        ("3 d", '"3 d" is not a duration; write it like 45s, 90m, 24h, 2h30m or 3d'),
        ("2h2h", '"2h2h" is not a duration; write it like 45s, 90m, 24h, 2h30m or 3d'),
        ("2x", '"2x" is not a duration; write it like 45s, 90m, 24h, 2h30m or 3d'),
        ("3D", '"3D" is not a duration; write it like 45s, 90m, 24h, 2h30m or 3d'),
        (" 3d", '" 3d" is not a duration; write it like 45s, 90m, 24h, 2h30m or 3d'),
        ("٣d", '"٣d" is not a duration; write it like 45s, 90m, 24h, 2h30m or 3d'),
        ("3d\n", '"3d\\n" is not a duration; write it like 45s, 90m, 24h, 2h30m or 3d'),
        ("9" * 30 + "w", f'"{"9" * 30}w" is too long for a duration'),
    ],
    ids=lambda value: repr(value) if isinstance(value, str) and len(value) < 35 else None,
)
def test_parse_duration_refuses_malformed_text_and_says_how_to_write_it(
    text: str, message: str
) -> None:
    with pytest.raises(ValueError, match=r".") as raised:
        parse_duration(text)
    assert str(raised.value) == message


def test_parse_duration_error_message_is_one_line_and_short() -> None:
    with pytest.raises(ValueError, match=r"not a duration") as raised:
        parse_duration("x" * 500 + "\nsecond line")
    assert "\n" not in str(raised.value)
    assert len(str(raised.value)) < 120


@pytest.mark.parametrize(
    ("duration", "text"),
    [
        (timedelta(0), "0s"),
        (timedelta(seconds=45), "45s"),
        (timedelta(minutes=90), "1h30m"),
        (timedelta(hours=2, minutes=30), "2h30m"),
        (timedelta(days=3), "3d"),
        (timedelta(weeks=1), "7d"),
        (timedelta(days=1, seconds=1), "1d1s"),
        (timedelta(seconds=59, microseconds=999_999), "59s"),
    ],
)
def test_format_duration_gives_the_canonical_compact_form(duration: timedelta, text: str) -> None:
    assert format_duration(duration) == text


def test_format_duration_refuses_negative_durations() -> None:
    with pytest.raises(ValueError, match="negative"):
        format_duration(timedelta(seconds=-1))


@given(st.integers(min_value=1, max_value=10**9))
def test_format_then_parse_gives_back_the_same_duration(seconds: int) -> None:
    duration = timedelta(seconds=seconds)
    assert parse_duration(format_duration(duration)) == duration


@given(
    st.lists(st.integers(min_value=0, max_value=10_000), min_size=5, max_size=5).filter(any),
)
def test_parse_then_format_is_canonical(amounts: list[int]) -> None:
    text = "".join(f"{n}{unit}" for n, unit in zip(amounts, "wdhms", strict=True) if n)
    duration = parse_duration(text)
    assert format_duration(parse_duration(format_duration(duration))) == format_duration(duration)
    assert parse_duration(format_duration(duration)) == duration
