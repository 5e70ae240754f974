"""What an alert says, and how fast the sender may speak: pure pieces of bot.alerts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.alerts import Facts, Limiter, render
from storage.models import AlertPurpose, Status

SINCE = datetime(2026, 8, 11, 2, 0, tzinfo=UTC)
FACTS = Facts(
    codename="PINE-7",
    status=Status.SILENT,
    basis="grace ran out",
    since=SINCE,
    last_checkin_at=SINCE - timedelta(hours=14),
    leg="Kunming",
)
SEOUL = ZoneInfo("Asia/Seoul")


def test_an_alert_says_codename_status_basis_last_check_in_and_leg_in_local_time() -> None:
    text = render(
        AlertPurpose.ALERT, FACTS, language="en", tz=SEOUL, now=SINCE + timedelta(minutes=5)
    )
    assert text.splitlines() == [
        "⚠ PINE-7 is SILENT (grace ran out) since 2026-08-11 11:00 KST.",
        "Last check-in 14h5m ago, at 2026-08-10 21:00 KST.",
        "Leg: Kunming.",
    ]


def test_an_alert_in_korean_keeps_codename_status_and_times() -> None:
    text = render(AlertPurpose.ALERT, FACTS, language="ko", tz=SEOUL, now=SINCE)
    assert "PINE-7" in text
    assert "SILENT" in text
    assert "유예 시간 끝남" in text
    assert "2026-08-11 11:00 KST" in text
    assert "구간: Kunming." in text


@pytest.mark.parametrize("language", ["en", "ko"])
def test_every_alert_sentence_has_a_translation(language: str) -> None:
    notices = [
        json.dumps({"kind": kind, "act": act, "who": "Min", "first": "Ji", "within_s": 1800})
        for kind in ("asked", "done", "confirmed")
        for act in ("pause", "safe", "clear", "resume")
    ]
    for purpose in AlertPurpose:
        abouts = [*notices, None] if purpose is AlertPurpose.NOTICE else ["Min"]
        for about in abouts:
            text = render(purpose, FACTS, language=language, tz=SEOUL, now=SINCE, about=about)
            assert "{" not in text
            if language == "ko":
                assert not any(
                    word in text
                    for word in ("is SILENT", "Last check-in", "handling", "asked", "clear it")
                )


async def test_the_limiter_keeps_one_message_a_second_per_chat_and_thirty_overall() -> None:
    clock = [0.0]

    async def sleep(seconds: float) -> None:
        clock[0] += seconds

    limiter = Limiter(clock=lambda: clock[0], sleep=sleep)
    sent: list[tuple[float, int]] = []
    for chat in [1, 1, 1]:
        await limiter.wait(chat)
        sent.append((clock[0], chat))
    assert [t for t, _ in sent] == [0.0, 1.0, 2.0]
    start = clock[0]
    for chat in range(100, 160):
        await limiter.wait(chat)
        sent.append((clock[0], chat))
    times = [t for t, _ in sent[3:]]
    assert max(sum(1 for t in times if w <= t < w + 1.0) for w in times) <= 30
    assert times[-1] - start >= 1.0
