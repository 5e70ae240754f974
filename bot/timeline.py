"""A picture of a group's journey: check-ins on a time axis, due windows and
grace as bands, legs reached, and the status over time in colour.

It shows times, statuses and leg numbers only: never a message, a phrase or a
leg's name, so an activist may be sent it as well as an operator. ``gather``
reads the facts; ``render`` draws them (matplotlib, no display needed).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import matplotlib

matplotlib.use("Agg")  # files only: no display on a server or in CI

import matplotlib.dates as mdates
from matplotlib.figure import Figure
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.schedules import next_due
from storage.checkins import counts_as_checkin
from storage.models import CheckinEvent, Flip, Group, Leg, Signal, Status

COLOURS = {
    Status.PENDING: "#bbbbbb",
    Status.OK: "#2e7d32",
    Status.LATE: "#f9a825",
    Status.SILENT: "#ef6c00",
    Status.DETAINED: "#c62828",
    Status.SAFE: "#1565c0",
    Status.PAUSED: "#8e8e8e",
}
Format = Literal["png", "svg"]


@dataclass(frozen=True, slots=True)
class Journey:
    codename: str
    start: datetime
    now: datetime
    checkins: tuple[datetime, ...]
    windows: tuple[tuple[datetime, datetime], ...]  # (due, end of grace) after each check-in
    stages: tuple[tuple[datetime, int], ...]  # (when, leg position)
    statuses: tuple[tuple[datetime, Status], ...]  # (since, status), in order
    # Check-ins that came while a report stood: drawn apart, as they cleared nothing.
    after_report: tuple[datetime, ...] = ()


async def gather(session: AsyncSession, *, group: Group, now: datetime) -> Journey:
    events = (
        await session.exec(
            select(CheckinEvent)
            .where(CheckinEvent.group_id == group.id)
            .order_by(col(CheckinEvent.at))
        )
    ).all()
    flips = (
        await session.exec(
            select(Flip)
            .where(Flip.group_id == group.id)
            .order_by(col(Flip.at), col(Flip.recorded_at))
        )
    ).all()
    positions = {
        leg.id: leg.position
        for leg in (await session.exec(select(Leg).where(Leg.group_id == group.id))).all()
    }
    checkins = tuple(e.at for e in events if counts_as_checkin(e) and not e.after_report)
    grace = timedelta(seconds=group.grace_s)
    windows = []
    for at in checkins:
        due = next_due(group, after=at)
        windows.append((due, due + grace))
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
        after_report=tuple(e.at for e in events if e.after_report),
    )


def _x(moment: datetime) -> float:
    """matplotlib's own day number for a moment (what its date axes plot)."""
    return float(mdates.date2num(moment))  # type: ignore[no-untyped-call]


def render(journey: Journey, fmt: Format) -> bytes:
    figure = Figure(figsize=(10, 3))
    axes = figure.add_subplot()
    axes.set_title(f"{journey.codename}: the journey so far")
    ends = [t for t, _ in journey.statuses[1:]] + [journey.now]
    for (since, status), until in zip(journey.statuses, ends, strict=True):
        axes.axvspan(_x(since), _x(until), ymin=0, ymax=0.12, color=COLOURS[status], linewidth=0)
        axes.text(_x(since), 0.06, status.value, fontsize=7, va="center", clip_on=True)
    for due, grace_end in journey.windows:
        axes.axvspan(_x(due), _x(grace_end), ymin=0.2, color="#f9a825", alpha=0.25, linewidth=0)
        axes.axvline(_x(due), ymin=0.2, color="#f9a825", linewidth=1)
    points = [_x(at) for at in journey.checkins]
    axes.plot(points, [0.5] * len(points), "o", color="#2e7d32", label="check-in")
    if journey.after_report:
        forced = [_x(at) for at in journey.after_report]
        axes.plot(
            forced,
            [0.5] * len(forced),
            "x",
            color="#c62828",
            label="check-in after a report (cleared nothing)",
        )
    for at, position in journey.stages:
        axes.annotate(f"leg {position}", (_x(at), 0.75), fontsize=8, ha="center")
    axes.set_ylim(0, 1)
    axes.set_yticks([])
    axes.set_xlim(_x(journey.start), _x(max(journey.now, journey.start + timedelta(seconds=1))))
    locator = mdates.AutoDateLocator()  # type: ignore[no-untyped-call]
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    axes.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format=fmt, metadata={"Date": None} if fmt == "svg" else None)
    return out.getvalue()
