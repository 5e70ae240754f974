"""What a message means: which group it is about, and what it signals.

The evidence is gathered here (members' blind indexes, phone numbers in the
text, codebook phrases, the relative's groups); the decisions are the pure
``bot.linking.decide`` and ``bot.phrases`` functions. Applied in the same
transaction as the message itself, so that a committed message never lacks
its check-in, and a relative's answer to a question is taken in as durably as
a message.
"""

from __future__ import annotations

import base64
import enum
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from bot.linking import Evidence, decide
from bot.phones import MOST_NUMBERS, phone_numbers_in
from bot.phrases import fold, match_phrases, possible_detention, strongest_phrase
from bot.received import Received
from storage.checkins import (
    CHECKIN_SIGNALS,
    already_counted,
    forwarder_labels,
    link_to_chosen,
    record_signal,
)
from storage.codebook import CodebookMark, Phrase, all_phrases, codebook_mark
from storage.crypto import ServerKeys
from storage.identifiers import BadIdentifier
from storage.members import members_with
from storage.models import Group, IdentifierKind, LinkReason, Message, OriginKind, Person, Signal
from storage.session import AsyncSession


@dataclass(frozen=True, slots=True)
class Meaning:
    group: Group | None
    reason: LinkReason | None
    candidates: tuple[Group, ...]  # to ask the relative about
    signal: Signal | None
    leg_id: uuid.UUID | None
    from_member: bool
    possible_detention: bool
    text_digest: bytes | None

    @property
    def ask_confirmation(self) -> bool:
        """A linked message that shows nothing by itself: the relative is asked
        whether it came from the group."""
        return self.group is not None and self.signal is None


def _text(received: Received) -> str:
    return "\n".join(t for t in (received.body.get("text"), received.body.get("caption")) if t)


async def _groups_with(
    session: AsyncSession, server: ServerKeys, kind: IdentifierKind, values: list[str]
) -> frozenset[uuid.UUID]:
    found: set[uuid.UUID] = set()
    for value in values:
        try:
            found |= {
                m.group_id
                for m in await members_with(session, server=server, kind=kind, value=value)
            }
        except BadIdentifier:
            continue
    return frozenset(found)


@dataclass(slots=True)
class Codebook:
    """The opened codebook of a running bot (it lives in the Runtime).

    Opening every phrase for every message cost one AEAD per phrase per message;
    the phrases are opened again only when ``codebook_mark`` shows that entries
    were added or removed since (by the CLI, in another process)."""

    _mark: CodebookMark | None = None
    _phrases: list[Phrase] = field(default_factory=list)

    async def phrases(self, session: AsyncSession, *, server: ServerKeys) -> list[Phrase]:
        # The mark is read before the phrases: an entry added in between is
        # opened now and read again next time, never missed.
        mark = await codebook_mark(session)
        if mark != self._mark:
            self._phrases = await all_phrases(session, server=server)
            self._mark = mark
        return self._phrases


async def understand(
    session: AsyncSession,
    *,
    server: ServerKeys,
    received: Received,
    previous: Message | None,
    forwarders: Sequence[Group],
    phrases: Sequence[Phrase],
) -> Meaning:
    """What ``received`` means, given the sender's groups (``forwarders``, from
    ``storage.checkins.forwarder_groups``) and the opened codebook."""
    text = _text(received)
    origin_groups: frozenset[uuid.UUID] = frozenset()
    if received.origin_kind is OriginKind.USER and received.origin_user_id is not None:
        origin_groups = await _groups_with(
            session, server, IdentifierKind.TELEGRAM_ID, [str(received.origin_user_id)]
        )
    elif received.origin_kind is OriginKind.HIDDEN_USER:
        name = str(received.body.get("origin", {}).get("name") or "")
        origin_groups = await _groups_with(session, server, IdentifierKind.HIDDEN_NAME, [name])
    numbers = phone_numbers_in(text)[:MOST_NUMBERS]
    phone_groups = await _groups_with(session, server, IdentifierKind.PHONE, numbers)
    matched = match_phrases(text, phrases)
    link = decide(
        Evidence(
            # An edit stays with the group its first version went to.
            chosen=previous.group_id if previous is not None else None,
            origin_groups=origin_groups,
            phone_groups=phone_groups,
            phrase_groups=frozenset(p.group_id for p in matched if p.group_id is not None),
            forwarder_groups=frozenset(g.id for g in forwarders),
        )
    )
    group = await session.get(Group, link.group_id) if link.group_id else None
    # The phrases of the group it is linked to, or, when the relative is asked which of
    # several groups whose phrase it holds, of those: the strongest meaning among them is
    # kept (a duress phrase of one of them is never taken for a check-in of another).
    about = {group.id} if group is not None else set(link.ask)
    relevant = [p for p in matched if p.group_id is None or p.group_id in about]
    strongest = strongest_phrase(relevant)
    from_member = group is not None and (group.id in origin_groups or group.id in phone_groups)
    signal = strongest.means if strongest else (Signal.CHECKIN if from_member else None)
    digest = None
    if text and received.origin_at is not None:
        digest = server.digest("checkin-text", f"{fold(text)}|{received.origin_at.isoformat()}")
    return Meaning(
        group=group,
        reason=link.reason,
        candidates=tuple(g for g in forwarders if g.id in link.ask),
        signal=signal,
        leg_id=strongest.leg_id if strongest and strongest.means is Signal.STAGE else None,
        from_member=from_member,
        possible_detention=possible_detention(text),
        text_digest=digest,
    )


def checkin_time(
    *, origin_at: datetime | None, sent_at: datetime | None, received_at: datetime
) -> datetime:
    """The one rule for when a message shows the group was alive: when the traveller
    sent it (the forward origin's date, where Telegram gives one), else when the
    relative sent it, and never later than when the bot received it."""
    return min(origin_at or sent_at or received_at, received_at)


def message_checkin_time(message: Message) -> datetime:
    """``checkin_time`` of a stored message (a relative's answer about it, later)."""
    return checkin_time(
        origin_at=message.origin_at, sent_at=message.sent_at, received_at=message.received_at
    )


async def record(
    session: AsyncSession,
    *,
    meaning: Meaning,
    message: Message,
    at: datetime,
    now: datetime,
    previous: Message | None,
) -> None:
    """The check-in or signal a linked message carries, counted once."""
    group, signal = meaning.group, meaning.signal
    if group is None or signal is None:
        return
    if previous is not None and previous.signal == signal:
        return  # an edit that says the same thing again
    if (
        signal in CHECKIN_SIGNALS
        and meaning.text_digest is not None
        and await already_counted(session, group=group, text_digest=meaning.text_digest)
    ):
        return  # the same check-in, forwarded by another relative
    source = "member" if meaning.from_member and signal is Signal.CHECKIN else "phrase"
    await record_signal(
        session,
        group=group,
        signal=signal,
        at=at,
        source=source,
        now=now,
        message=message,
        leg_id=meaning.leg_id,
    )


# --------------------------------------------------------------------------- questions
#
# Every stored message gets the same follow-up under its receipt, from anyone and
# whatever it matched: "Did this come from them?" [Yes] [No] [flag]. What a press does
# depends on who pressed and on the message, but never shows in the chat beyond the
# next step, which is the same for a phrase, a duress phrase and an ordinary text:
#
#   No          -> "Thank you." (a note: nothing recorded)
#   flag        -> "Are you sure?" [Yes] [No]   (one stray tap raises no alarm)
#   Yes / sure  -> "Thank you.", or for a relative of several groups (whatever placed
#                  the message, or nothing), "Which one?" with the labels fixed at
#                  invite time. A label places a message nothing placed; on a placed one
#                  it adds nothing (the press was applied to the placing group already).
#
# Yes records a check-in of a linked message that showed nothing by itself; a confirmed
# flag records a detention report. Presses of people who forward for no group are
# recorded as nothing (a stranger's chat must look like a relative's, and a stranger's
# "Yes" must not become a signal).

YES, NO, FLAG, SURE = "y", "n", "f", "F"
CONFIRM_CHOICES = {YES: Signal.CHECKIN, NO: None, FLAG: None, SURE: Signal.DETAINED}
# What a label press carries on from the step before it.
CARRIED = (YES, SURE)


class Step(enum.Enum):
    """What the question shows after a press."""

    THANKS = "thanks"
    SURE = "sure"
    WHICH = "which"


@dataclass(frozen=True, slots=True)
class Answer:
    applied: bool  # something was recorded
    then: Step = Step.THANKS
    labels: tuple[tuple[uuid.UUID, str], ...] = ()  # for Step.WHICH: (group id, label)


def _short(value: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(value.bytes).decode().rstrip("=")


def _unshort(text: str) -> uuid.UUID:
    return uuid.UUID(bytes=base64.urlsafe_b64decode(text + "=="))


def which_group_data(message_id: uuid.UUID, group_id: uuid.UUID, carried: str) -> str:
    return f"g:{_short(message_id)}:{_short(group_id)}:{carried}"


def confirm_data(message_id: uuid.UUID, choice: str) -> str:
    return f"c:{_short(message_id)}:{choice}"


@dataclass(frozen=True, slots=True)
class Choice:
    kind: str  # "g" a label, "c" the follow-up's buttons
    message_id: uuid.UUID
    value: str  # "c": one of CONFIRM_CHOICES; "g": YES or SURE, carried on
    group_id: uuid.UUID | None = None  # "g" only


def parse_choice(data: str) -> Choice | None:
    try:
        kind, message, *rest = data.split(":")
        if kind == "c" and len(rest) == 1 and rest[0] in CONFIRM_CHOICES:
            return Choice(kind, _unshort(message), rest[0])
        if kind == "g" and len(rest) == 2 and rest[1] in CARRIED:
            return Choice(kind, _unshort(message), rest[1], _unshort(rest[0]))
        return None
    except ValueError:
        return None


async def apply_choice(
    session: AsyncSession, *, choice: Choice, person: Person, now: datetime
) -> Answer:
    """A press on the follow-up of ``person``'s own message (the caller checked that)."""
    if choice.kind == "c" and choice.value == NO:
        return Answer(False)
    if choice.kind == "c" and choice.value == FLAG:
        return Answer(False, Step.SURE)
    message = await session.get(Message, choice.message_id)
    labelled = await forwarder_labels(session, person_id=person.id)
    if message is None or message.sender_id != person.id or not labelled:
        return Answer(False)  # not a relative of any group: recorded as nothing
    if choice.kind == "g":
        groups = {g.id: g for g, _ in labelled}
        if message.group_id is not None or choice.group_id not in groups:
            # Already placed (a phrase, a member's number or origin, an earlier label), or
            # not one of theirs: the placement stands and its Yes / flag was applied when
            # pressed. A label contradicting it adds nothing: it must never undo what a
            # phrase said (a duress phrase above all), nor count one message for two groups.
            return Answer(False)
        group = groups[choice.group_id]
        await link_to_chosen(session, message=message, group=group)
        if message.signal is not None:
            await record_signal(
                session,
                group=group,
                signal=message.signal,
                at=message_checkin_time(message),
                source="phrase",
                now=now,
                message=message,
            )
        await _confirmed(session, message, group, choice.value, now)
        return Answer(True)  # linked, whatever else the press added
    # A relative of several groups is always asked which one next, whatever placed the
    # message (or nothing did): the step after a press must not tell a code phrase, a
    # duress phrase or a member's number from an ordinary text.
    then: Step = Step.THANKS
    labels: tuple[tuple[uuid.UUID, str], ...] = ()
    if len(labelled) > 1:
        then = Step.WHICH
        labels = tuple((g.id, label) for g, label in labelled)
    if message.group_id is None:
        return Answer(False, then, labels)  # the label press places it (or nothing does)
    linked = await session.get(Group, message.group_id)
    if linked is None:
        return Answer(False, then, labels)
    # Placed already: the press is applied to the group that placed it, now, so that it
    # counts whether or not a label is pressed after it.
    return Answer(await _confirmed(session, message, linked, choice.value, now), then, labels)


async def _confirmed(
    session: AsyncSession, message: Message, group: Group, value: str, now: datetime
) -> bool:
    """Yes (a check-in, where the message showed nothing by itself) or a confirmed flag
    (a detention report, once) about a linked message."""
    signal = CONFIRM_CHOICES[value]
    if signal is None or message.signal is signal:
        return False
    if signal is Signal.CHECKIN and message.signal is not None:
        return False  # it said something already, and that was counted
    message.signal = signal
    message.unconfirmed = False  # confirmed: no longer news that waits for a person
    session.add(message)
    await record_signal(
        session,
        group=group,
        signal=signal,
        at=message_checkin_time(message),
        source="relative",
        now=now,
        message=message,
    )
    return True
