"""The picture read on a phone: no two pieces of text overlap (measured with matplotlib's
own text extents) on crowded and on empty journeys, in English and Korean, and the zone on
the axis is the zone in the caption."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import matplotlib.dates as mdates
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from bot.i18n import Words
from bot.timeline import Journey, caption, figure, render, spread
from storage.models import Status
from tests.bot.test_timeline import empty

T0 = datetime(2026, 8, 12, 3, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
SEOUL = ZoneInfo("Asia/Seoul")


def crowded() -> Journey:
    """Two days of a group that flips every half hour, checks in every 20 minutes, and
    is alerted and acknowledged over and over: far more labels than fit."""
    cycle = (Status.OK, Status.LATE, Status.SILENT, Status.DETAINED, Status.PAUSED)
    statuses = [(T0, Status.PENDING)] + [
        (T0 + (30 * i + 5) * MINUTE, cycle[i % len(cycle)]) for i in range(96)
    ]
    checkins = tuple(T0 + 20 * i * MINUTE for i in range(1, 140))
    return Journey(
        codename="PINE-7",
        start=T0,
        now=T0 + 48 * 60 * MINUTE,
        checkins=checkins,
        windows=tuple((t + 60 * MINUTE, t + 90 * MINUTE) for t in checkins),
        stages=tuple((T0 + 7 * i * 60 * MINUTE, i) for i in range(1, 7)),
        statuses=tuple(statuses),
        alerts=tuple(T0 + (95 * i + 3) * MINUTE for i in range(30)),
        acknowledgements=tuple(T0 + (95 * i + 9) * MINUTE for i in range(30)),
        next_due=T0 + 49 * 60 * MINUTE,
        leg_names={i: f"Kunming bus depot {i} and the long road" for i in range(1, 7)},
    )


def bunched() -> Journey:
    """Everything within the same two minutes: all the labels want the same place."""
    at = T0 + 10 * MINUTE
    return Journey(
        codename="OAK-2",
        start=T0,
        now=T0 + 12 * MINUTE,
        checkins=(at,),
        windows=((at + MINUTE, at + 2 * MINUTE),),
        stages=((at, 1), (at, 2)),
        statuses=((T0, Status.PENDING), (at, Status.OK), (at, Status.PAUSED), (at, Status.OK)),
        alerts=(at, at),
        acknowledgements=(at,),
        next_due=at + MINUTE,
    )


def drawn_texts(fig: Figure) -> list[tuple[str, Bbox]]:
    """Every visible piece of text and its extent on the canvas, as drawn."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()  # type: ignore[no-untyped-call]  # backend_agg has no annotations
    renderer = canvas.get_renderer()  # type: ignore[no-untyped-call]  # as above
    found: list[tuple[str, Bbox]] = []
    for text in fig.findobj(Text):
        assert isinstance(text, Text)
        if not text.get_visible() or not text.get_text().strip():
            continue
        box = text.get_window_extent(renderer)
        if box.width == 0 or box.height == 0:
            continue
        found.append((text.get_text(), box))
    return found


@pytest.mark.parametrize("journey", [crowded, bunched, empty], ids=["crowded", "bunched", "empty"])
@pytest.mark.parametrize("language", ["en", "ko"])
def test_no_two_labels_overlap(journey: object, language: str) -> None:
    assert callable(journey)
    fig = figure(journey(), Words(language, SEOUL))
    texts = drawn_texts(fig)
    assert len(texts) > 10  # title, axis, ticks, labels, footer, legend
    canvas_box = fig.bbox
    for name, box in texts:
        assert canvas_box.contains(box.x0, box.y0), name
        assert canvas_box.contains(box.x1, box.y1), name
    for (a, box_a), (b, box_b) in itertools.combinations(texts, 2):
        assert not box_a.overlaps(box_b), f"{a!r} overlaps {b!r}"


def test_a_crowded_journey_keeps_now_next_due_and_the_latest_labels() -> None:
    fig = figure(crowded(), Words("en", SEOUL))
    shown = [t for t, _ in drawn_texts(fig)]
    assert any(t.endswith(" now") for t in shown)
    assert any(t.endswith(" next check-in due") for t in shown)
    assert any("earlier, not labelled" in t for t in shown)
    assert any(t.startswith("08-14 11:") for t in shown)  # the last hour before now (KST)


def test_every_kind_of_mark_is_in_the_legend() -> None:
    fig = figure(crowded(), Words("en", SEOUL))
    [legend] = fig.legends
    entries = {t.get_text() for t in legend.get_texts()}
    assert {
        "check-in",
        "check-in due",
        "grace period",
        "leg reached",
        "alert sent",
        "acknowledged",
        "now",
        "next check-in due",
    } <= entries
    assert {"PENDING", "OK", "LATE", "SILENT", "DETAINED", "PAUSED"} <= entries


@pytest.mark.parametrize(
    ("zone", "abbreviation"), [("Asia/Seoul", "KST"), ("UTC", "UTC"), ("Asia/Bangkok", "UTC+07")]
)
def test_the_axis_and_the_caption_name_the_same_zone(zone: str, abbreviation: str) -> None:
    words = Words("en", ZoneInfo(zone))
    journey = crowded()
    fig = figure(journey, words)
    [axes] = fig.axes
    assert axes.get_ylabel() == f"time ({abbreviation})"
    said = caption(journey, words)
    assert re.findall(r"\d\d:\d\d (\S+?)\.", said) == [abbreviation, abbreviation]
    footer = [t for t, _ in drawn_texts(fig) if t.startswith("Up to ")]
    assert footer
    assert footer[0].startswith(said.removeprefix("PINE-7: "))


@pytest.mark.parametrize(("journey", "shape"), [(crowded, "%m-%d %H:%M"), (empty, "%H:%M:%S")])
def test_the_axis_ticks_are_times_in_the_readers_zone(journey: object, shape: str) -> None:
    assert callable(journey)
    fig = figure(journey(), Words("en", SEOUL))
    FigureCanvasAgg(fig).draw()  # type: ignore[no-untyped-call]  # backend_agg has no annotations
    axes = fig.axes[0]
    ticks = [(t.get_position()[1], t.get_text()) for t in axes.get_yticklabels() if t.get_text()]
    assert len(ticks) >= 3
    for where, label in ticks:
        moment = mdates.num2date(where)  # type: ignore[no-untyped-call]  # matplotlib.dates has none
        assert label == moment.astimezone(SEOUL).strftime(shape)


def test_spread_keeps_labels_apart_inside_the_plot() -> None:
    placed = spread([0.5] * 10, 0.08)
    assert all(a - b >= 0.08 - 1e-9 for a, b in itertools.pairwise(placed))
    assert min(placed) >= 0.04 - 1e-9
    assert max(placed) <= 0.96 + 1e-9
    assert spread([0.9, 0.5, 0.1], 0.08) == [0.9, 0.5, 0.1]  # room enough: untouched


def test_svg_and_png_are_the_same_picture() -> None:
    words = Words("ko", SEOUL)
    svg = render(crowded(), "svg", words=words).decode()
    assert "PINE-7" in svg
    assert "지금" in svg
    assert render(crowded(), "png", words=words).startswith(b"\x89PNG")
