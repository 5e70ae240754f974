"""A picture of a group's journey, made to be read on a phone at night.

Portrait (1080 by 1350 pixels), large type, time running down a labelled axis in
the reader's zone (its abbreviation on the axis and in the caption alike): the
status over time as a coloured strip, each check-in as a dot, each due time
and its grace period as a band, legs reached (by name for the group's
activists, by number otherwise), alerts sent, acknowledgements, now, and the
next check-in due. Every kind of mark is in the legend, and the labels beside
the strip are spread so that no two overlap (a crowded journey keeps its most
recent labels and says how many earlier ones it left out).

It shows no message and no phrase. ``gather`` reads the facts; ``render``
draws them (matplotlib, no display needed).
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import matplotlib

matplotlib.use("Agg")  # files only: no display on a server or in CI

import matplotlib.dates as mdates
from matplotlib import font_manager
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from sqlalchemy import select

from bot import texts
from bot.deadlines import due_window
from bot.i18n import Words, _, pgettext_, zone_abbreviation
from storage.checkins import counts_as_checkin
from storage.crypto import ServerKeys
from storage.legs import leg_name
from storage.models import (
    Acknowledgement,
    Alert,
    AlertPurpose,
    CheckinEvent,
    Flip,
    Group,
    Leg,
    Signal,
    Status,
)
from storage.session import AsyncSession

COLOURS = {
    Status.PENDING: "#bbbbbb",
    Status.OK: "#2e7d32",
    Status.LATE: "#f9a825",
    Status.SILENT: "#ef6c00",
    Status.DETAINED: "#c62828",
    Status.SAFE: "#1565c0",
    Status.PAUSED: "#8e8e8e",
}
DUE, GRACE, ALERT, ACK, NOW, NEXT = "#e65100", "#ffcc80", "#c62828", "#1565c0", "#000000", "#6a1b9a"
# A check-in under a standing report: a cross, dark red (it cleared nothing).
AFTER_REPORT = "#8e0000"
Format = Literal["png", "svg"]
SIZE = (7.2, 9.0)  # inches: 1080 by 1350 pixels at DPI
DPI = 150
TYPE = 13  # points: large enough to read on a phone without zooming
# Where each mark is drawn across the plot (axes fractions): strip, bands, dots, labels.
STRIP, BANDS, DOTS, LABELS = (0.0, 0.09), (0.11, 0.21), 0.26, 0.36

TITLE = _("{codename}: the journey so far")
AXIS = _("time ({zone})")
FOOTER = _("Up to {now}. Next check-in due: {due}.")
FOOTER_NONE = _("Up to {now}. No check-in is due.")
FOOTER_NOT_STARTED = _("Up to {now}. No check-in yet: the schedule starts with the first.")
FOOTER_OVERDUE = _("Up to {now}. A check-in was due at {due} and has not come.")
MORE = _("(+{count} earlier, not labelled)")
MARK_CHECKIN = pgettext_("timeline", "check-in")
MARK_DUE = pgettext_("timeline", "check-in due")
MARK_GRACE = pgettext_("timeline", "grace period")
MARK_LEG = pgettext_("timeline", "leg reached")
MARK_ALERT = pgettext_("timeline", "alert sent")
MARK_ACK = pgettext_("timeline", "acknowledged")
MARK_NOW = pgettext_("timeline", "now")
MARK_NEXT = pgettext_("timeline", "next check-in due")
MARK_AFTER_REPORT = pgettext_("timeline", "check-in after a report (cleared nothing)")
LEG_NUMBER = _("leg {position}")


@dataclass(frozen=True, slots=True)
class Journey:
    codename: str
    start: datetime
    now: datetime
    checkins: tuple[datetime, ...]
    windows: tuple[tuple[datetime, datetime], ...]  # (due, end of grace) after each check-in
    stages: tuple[tuple[datetime, int], ...]  # (when, leg position)
    statuses: tuple[tuple[datetime, Status], ...]  # (since, status), in order
    alerts: tuple[datetime, ...] = ()  # when each alerted flip's first alert went out
    acknowledgements: tuple[datetime, ...] = ()
    next_due: datetime | None = None
    # A check-in that was due and has not come (a LATE or SILENT group): when it was due.
    was_due: datetime | None = None
    # Leg names by position, for the group's activists (who see them in alerts too);
    # empty, the picture says "leg 2".
    leg_names: dict[int, str] = field(default_factory=dict)
    # Check-ins that came while a report stood: drawn apart, as they cleared nothing.
    after_report: tuple[datetime, ...] = ()


async def gather(
    session: AsyncSession, *, group: Group, now: datetime, server: ServerKeys | None = None
) -> Journey:
    """The facts of the picture. With ``server``, legs are named (for the group's
    activists and admins); without, numbered."""
    events = (
        await session.exec(
            select(CheckinEvent).where(CheckinEvent.group_id == group.id).order_by(CheckinEvent.at)
        )
    ).all()
    flips = (
        await session.exec(
            select(Flip).where(Flip.group_id == group.id).order_by(Flip.at, Flip.recorded_at)
        )
    ).all()
    legs = (await session.exec(select(Leg).where(Leg.group_id == group.id))).all()
    positions = {leg.id: leg.position for leg in legs}
    flip_ids = [f.id for f in flips]
    first_alerts = (
        await session.exec(
            select(Alert.flip_id, Alert.created_at).where(
                Alert.flip_id.in_(flip_ids), Alert.purpose == AlertPurpose.ALERT
            )
        )
    ).all()
    alerted: dict[object, datetime] = {}
    for flip_id, at in first_alerts:
        alerted[flip_id] = min(at, alerted.get(flip_id, at))
    acknowledged = (
        await session.exec(
            select(Acknowledgement.at)
            .where(Acknowledgement.flip_id.in_(flip_ids))
            .order_by(Acknowledgement.at)
        )
    ).all()
    checkins = tuple(e.at for e in events if counts_as_checkin(e) and not e.after_report)
    by_position = {leg.position: leg for leg in legs}
    reached = [
        (e.at, positions[e.leg_id])
        for e in events
        if e.signal is Signal.STAGE and e.leg_id in positions
    ]

    def leg_at(moment: datetime) -> Leg | None:
        """The leg in force at a moment: the last one reached by then. Before any was
        reached, or for a group put on a leg without a stage message, its current one."""
        before = [position for at, position in reached if at <= moment]
        if before:
            return by_position.get(before[-1])
        return None if reached or group.current_leg is None else by_position.get(group.current_leg)

    # Each window as the engine judged it: the leg then in force sets interval and grace.
    windows = [due_window(group, at, leg_at(at)) for at in checkins]
    following = was_due = None
    # Due by the clock only while the clock decides the status: not when paused, safe,
    # or detained (a person or a report decides it then).
    if group.status in (Status.OK, Status.LATE, Status.SILENT) and group.shredded_at is None:
        anchors = [t for t in (group.last_checkin_at, group.schedule_from) if t is not None]
        if anchors:
            current = by_position.get(group.current_leg) if group.current_leg is not None else None
            due, _ = due_window(group, max(anchors), current)
            # LATE and SILENT are past their due time: said as overdue, never as "next".
            if due > now:
                following = due
            else:
                was_due = due
    return Journey(
        codename=group.codename,
        start=group.created_at,
        now=now,
        checkins=checkins,
        windows=tuple(windows),
        stages=tuple(
            (e.at, positions[e.leg_id])
            for e in events
            if e.signal is Signal.STAGE and e.leg_id in positions
        ),
        statuses=((group.created_at, Status.PENDING), *((f.at, f.to_status) for f in flips)),
        alerts=tuple(sorted(alerted.values())),
        acknowledgements=tuple(acknowledged),
        next_due=following,
        was_due=was_due,
        leg_names={} if server is None else {leg.position: leg_name(server, leg) for leg in legs},
        after_report=tuple(e.at for e in events if e.after_report),
    )


def _x(moment: datetime) -> float:
    """matplotlib's own day number for a moment (what its date axes plot)."""
    return float(mdates.date2num(moment))  # type: ignore[no-untyped-call]


KOREAN_FONTS = ("NanumGothic", "NanumBarunGothic", "Noto Sans CJK KR", "Noto Sans CJK")


@functools.cache
def hangul_font() -> str | None:
    """A font with Korean letters (Debian's fonts-nanum or fonts-noto-cjk), if installed.
    matplotlib's font list is cached from its first run: a font installed since is added."""
    for path in font_manager.findSystemFonts():
        if "nanum" in path.lower() or "notosanscjk" in path.lower().replace("-", ""):
            try:
                font_manager.fontManager.addfont(path)
            except (OSError, RuntimeError, ValueError):
                continue
    names = {entry.name for entry in font_manager.fontManager.ttflist}
    return next((name for name in KOREAN_FONTS if name in names), None)


def _drawing_words(words: Words) -> tuple[Words, list[str]]:
    """The words to draw with and the font families: a Korean picture needs a font with
    Korean letters; without one it is drawn in English (the caption stays Korean)."""
    if words.language == "ko":
        font = hangul_font()
        if font is not None:
            return words, [font, "DejaVu Sans"]
        return Words("en", words.tz), ["DejaVu Sans"]
    return words, ["DejaVu Sans"]


@dataclass(frozen=True, slots=True)
class _Label:
    at: datetime
    text: str
    colour: str
    keep: bool = False  # "now" and "next due" are always labelled


def _clock_format(journey: Journey) -> str:
    """Seconds for a journey of an hour or less (the demo's), else day and minute."""
    latest = max(journey.now, journey.next_due or journey.now)
    return "%H:%M:%S" if latest - journey.start <= timedelta(hours=1) else "%m-%d %H:%M"


def _labels(journey: Journey, words: Words) -> list[_Label]:
    shape = _clock_format(journey)

    def clock(moment: datetime) -> str:
        return moment.astimezone(words.tz).strftime(shape)

    labels = [
        _Label(at, f"{clock(at)} {texts.status_in(words, status)}", COLOURS[status])
        for at, status in journey.statuses
    ]
    for at, position in journey.stages:
        name = journey.leg_names.get(position) or words._(LEG_NUMBER).format(position=position)
        labels.append(_Label(at, f"{clock(at)} {_shorten(name)}", "#37474f"))
    labels += [_Label(at, f"{clock(at)} {words.p_(MARK_ALERT)}", ALERT) for at in journey.alerts]
    labels += [
        _Label(at, f"{clock(at)} {words.p_(MARK_ACK)}", ACK) for at in journey.acknowledgements
    ]
    labels.append(_Label(journey.now, f"{clock(journey.now)} {words.p_(MARK_NOW)}", NOW, True))
    if journey.next_due is not None:
        labels.append(
            _Label(journey.next_due, f"{clock(journey.next_due)} {words.p_(MARK_NEXT)}", NEXT, True)
        )
    if journey.was_due is not None:
        labels.append(
            _Label(journey.was_due, f"{clock(journey.was_due)} {words.p_(MARK_DUE)}", DUE, True)
        )
    return labels


def _shorten(name: str, most: int = 18) -> str:
    return name if len(name) <= most else name[: most - 1] + "…"


def spread(wanted: list[float], height: float) -> list[float]:
    """Label centres near ``wanted`` (axes fractions, 1 at the top, sorted from the top
    down), each at least ``height`` from the next and within [height/2, 1 - height/2].
    Pure: the caller keeps at most ``1 / height`` labels, so they always fit."""
    placed: list[float] = []
    for y in wanted:
        top = 1 - height / 2 if not placed else placed[-1] - height
        placed.append(min(y, top))
    floor = height / 2
    for i in range(len(placed) - 1, -1, -1):
        placed[i] = max(placed[i], floor)
        floor = placed[i] + height
    return placed


def figure(journey: Journey, words: Words) -> Figure:
    """The picture as a matplotlib figure (``render`` saves it; tests measure it)."""
    words, families = _drawing_words(words)
    with matplotlib.rc_context({"font.family": families, "font.size": TYPE}):
        return _draw(journey, words)


def _draw(journey: Journey, words: Words) -> Figure:
    fig = Figure(figsize=SIZE, dpi=DPI)
    zone = zone_abbreviation(journey.now, words.tz)
    earliest = journey.start
    latest = max(journey.now, journey.next_due or journey.now, earliest + timedelta(minutes=1))
    pad = (latest - earliest) * 0.03
    top, bottom = _x(earliest - pad), _x(latest + pad)
    axes = fig.add_axes((0.24, 0.25, 0.73, 0.67))
    axes.set_ylim(bottom, top)  # time runs down the page
    axes.set_xlim(0, 1)
    axes.set_xticks([])
    for side in ("top", "right", "bottom"):
        axes.spines[side].set_visible(False)
    locator = mdates.AutoDateLocator(tz=words.tz, minticks=3, maxticks=7)  # type: ignore[no-untyped-call]
    axes.yaxis.set_major_locator(locator)
    axes.yaxis.set_major_formatter(mdates.DateFormatter(_clock_format(journey), tz=words.tz))  # type: ignore[no-untyped-call]
    axes.tick_params(axis="y", labelsize=TYPE - 2)
    axes.set_ylabel(words._(AXIS).format(zone=zone), fontsize=TYPE)

    ends = [t for t, _ in journey.statuses[1:]] + [journey.now]
    for (since, status), until in zip(journey.statuses, ends, strict=True):
        axes.axhspan(_x(since), _x(until), xmin=STRIP[0], xmax=STRIP[1], color=COLOURS[status])
    for due, grace_end in journey.windows:
        axes.axhspan(_x(due), _x(grace_end), xmin=BANDS[0], xmax=BANDS[1], color=GRACE)
        axes.hlines(_x(due), BANDS[0], BANDS[1], color=DUE, linewidth=2.5)
    marks = (
        (journey.checkins, DOTS - 0.03, "o", COLOURS[Status.OK]),
        (journey.after_report, DOTS - 0.03, "x", AFTER_REPORT),
        (tuple(at for at, _ in journey.stages), DOTS, "D", "#37474f"),
        (journey.alerts, DOTS + 0.03, "^", ALERT),
        (journey.acknowledgements, DOTS + 0.06, "s", ACK),
    )
    for moments, x, marker, colour in marks:
        if moments:
            axes.plot([x] * len(moments), [_x(m) for m in moments], marker, color=colour, ms=9)
    # Across the marks only: the labels beside them stay clear.
    axes.hlines(_x(journey.now), 0, LABELS - 0.03, color=NOW, linestyle="--", linewidth=1.5)
    if journey.next_due is not None:
        axes.hlines(
            _x(journey.next_due), 0, LABELS - 0.03, color=NEXT, linestyle=":", linewidth=2.5
        )

    left_out = _draw_labels(axes, journey, words, top=top, bottom=bottom)
    fig.suptitle(words._(TITLE).format(codename=journey.codename), y=0.975, fontsize=TYPE + 5)
    footer = _until(journey, words)
    if left_out:
        footer += "\n" + words._(MORE).format(count=left_out)
    fig.text(0.5, 0.225, footer, ha="center", va="top", fontsize=TYPE - 1)
    fig.legend(
        handles=_legend(journey, words),
        loc="lower center",
        bbox_to_anchor=(0.5, 0.02),
        ncol=3,
        fontsize=TYPE - 2,
        frameon=False,
        columnspacing=1.0,
        handletextpad=0.4,
    )
    return fig


def _until(journey: Journey, words: Words) -> str:
    if journey.was_due is not None:
        return words._(FOOTER_OVERDUE).format(
            now=words.local(journey.now), due=words.local(journey.was_due)
        )
    if journey.next_due is None and journey.statuses[-1][1] is Status.PENDING:
        return words._(FOOTER_NOT_STARTED).format(now=words.local(journey.now))
    if journey.next_due is None:
        return words._(FOOTER_NONE).format(now=words.local(journey.now))
    return words._(FOOTER).format(now=words.local(journey.now), due=words.local(journey.next_due))


def caption(journey: Journey, words: Words) -> str:
    """The photo's caption: the picture's own footer, in the same zone as its axis."""
    return f"{journey.codename}: {_until(journey, words)}"


def _draw_labels(axes: Any, journey: Journey, words: Words, *, top: float, bottom: float) -> int:
    """Labels beside the marks, spread so none overlap; returns how many were left out."""
    height_px = fig_height_px(axes) * 1.0
    line = TYPE * 1.5 * DPI / 72  # one label's height with its spacing, in pixels
    height = line / height_px
    room = int(1 / height)
    labels = sorted(_labels(journey, words), key=lambda label: label.at)
    kept = [label for label in labels if label.keep]
    others = [label for label in labels if not label.keep]
    # The most recent matter most at 3 a.m.: the earliest go first when crowded.
    chosen = others[max(0, len(others) - (room - len(kept))) :] + kept
    chosen.sort(key=lambda label: label.at)

    def fraction(moment: datetime) -> float:
        return (_x(moment) - bottom) / (top - bottom)

    wanted = [fraction(label.at) for label in chosen]
    for label, y, want in zip(chosen, spread(wanted, height), wanted, strict=True):
        axes.plot(
            [LABELS - 0.02, LABELS + 0.02],
            [want, y],
            transform=axes.transAxes,
            color=label.colour,
            linewidth=1.2,
        )
        axes.text(
            LABELS + 0.03,
            y,
            label.text,
            transform=axes.transAxes,
            va="center",
            ha="left",
            fontsize=TYPE,
            color="#212121",
        )
    return len(labels) - len(chosen)


def fig_height_px(axes: Any) -> float:
    return float(axes.get_position().height * SIZE[1] * DPI)


def _legend(journey: Journey, words: Words) -> list[Any]:
    def line(label: tuple[str, str], **style: Any) -> Line2D:
        return Line2D([], [], label=words.p_(label), **style)

    handles: list[Any] = [
        line(MARK_CHECKIN, marker="o", color=COLOURS[Status.OK], linestyle="", ms=9),
        line(MARK_DUE, color=DUE, linewidth=2.5),
        Patch(color=GRACE, label=words.p_(MARK_GRACE)),
        line(MARK_LEG, marker="D", color="#37474f", linestyle="", ms=8),
        line(MARK_ALERT, marker="^", color=ALERT, linestyle="", ms=9),
        line(MARK_ACK, marker="s", color=ACK, linestyle="", ms=8),
        line(MARK_NOW, color=NOW, linestyle="--", linewidth=1.5),
        line(MARK_NEXT, color=NEXT, linestyle=":", linewidth=2.5),
    ]
    if journey.after_report:
        handles.append(line(MARK_AFTER_REPORT, marker="x", color=AFTER_REPORT, linestyle="", ms=9))
    seen = dict.fromkeys(status for _, status in journey.statuses)
    handles += [Patch(color=COLOURS[s], label=texts.status_in(words, s)) for s in seen]
    return handles


def render(journey: Journey, fmt: Format, *, words: Words | None = None) -> bytes:
    """The picture as PNG or SVG bytes, in the reader's language and zone."""
    words = words or Words("en", UTC)
    drawing, families = _drawing_words(words)
    with matplotlib.rc_context({"font.family": families, "font.size": TYPE, "svg.hashsalt": "x"}):
        fig = _draw(journey, drawing)
        out = io.BytesIO()
        fig.savefig(out, format=fmt, metadata={"Date": None} if fmt == "svg" else None)
    return out.getvalue()
