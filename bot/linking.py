"""Which group a message is about, and why: the linking rules, strongest first.

Pure: the caller gathers the evidence (who the forward origin is, which phone
numbers and phrases the text holds, which groups the relative forwards for)
and this decides. Evidence that points at two groups at the same strength is
ambiguous, and an ambiguous message waits in the unlinked queue for an
operator rather than being guessed into a group.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from storage.models import LinkReason


@dataclass(frozen=True, slots=True)
class Evidence:
    chosen: uuid.UUID | None = None  # 1. the relative chose the group
    origin_groups: frozenset[uuid.UUID] = frozenset()  # 2. the forward origin is a member
    phone_groups: frozenset[uuid.UUID] = frozenset()  # 3. a member's number is in the text
    phrase_groups: frozenset[uuid.UUID] = frozenset()  # 4. a group's own phrase is in the text
    forwarder_groups: frozenset[uuid.UUID] = frozenset()  # 5. the relative's groups


@dataclass(frozen=True, slots=True)
class Link:
    group_id: uuid.UUID | None
    reason: LinkReason | None
    # Groups to offer the relative ("which group is this about?"), when they
    # forward for several and nothing stronger placed the message.
    ask: tuple[uuid.UUID, ...] = field(default=())


UNLINKED = Link(None, None)

_RULES = (
    ("origin_groups", LinkReason.MEMBER_ORIGIN),
    ("phone_groups", LinkReason.MEMBER_PHONE),
    ("phrase_groups", LinkReason.PHRASE),
)


def decide(evidence: Evidence) -> Link:
    if evidence.chosen is not None:
        return Link(evidence.chosen, LinkReason.CHOSEN)
    for name, reason in _RULES:
        groups: frozenset[uuid.UUID] = getattr(evidence, name)
        if len(groups) == 1:
            return Link(next(iter(groups)), reason)
        if len(groups) > 1 and name == "phrase_groups" and groups <= evidence.forwarder_groups:
            # A phrase of several of the relative's own groups: they are asked which.
            return Link(None, None, ask=tuple(sorted(groups)))
        if len(groups) > 1:
            return UNLINKED
    if len(evidence.forwarder_groups) == 1:
        return Link(next(iter(evidence.forwarder_groups)), LinkReason.SOLE_GROUP)
    if len(evidence.forwarder_groups) > 1:
        return Link(None, None, ask=tuple(sorted(evidence.forwarder_groups)))
    return UNLINKED
