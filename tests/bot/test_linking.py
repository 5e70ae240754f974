"""The linking rules, each alone and in conflict with the others."""

from __future__ import annotations

import uuid

import pytest

from bot.linking import UNLINKED, Evidence, Link, decide
from storage.models import LinkReason

A, B, C = (uuid.UUID(int=n) for n in (1, 2, 3))


def f(*groups: uuid.UUID) -> frozenset[uuid.UUID]:
    return frozenset(groups)


CASES = {
    "nothing at all": (Evidence(), UNLINKED),
    "chosen alone": (Evidence(chosen=A), Link(A, LinkReason.CHOSEN)),
    "origin alone": (Evidence(origin_groups=f(A)), Link(A, LinkReason.MEMBER_ORIGIN)),
    "phone alone": (Evidence(phone_groups=f(A)), Link(A, LinkReason.MEMBER_PHONE)),
    "phrase alone": (Evidence(phrase_groups=f(A)), Link(A, LinkReason.PHRASE)),
    "sole group alone": (Evidence(forwarder_groups=f(A)), Link(A, LinkReason.SOLE_GROUP)),
    "chosen beats origin": (
        Evidence(chosen=A, origin_groups=f(B)),
        Link(A, LinkReason.CHOSEN),
    ),
    "origin beats phone": (
        Evidence(origin_groups=f(A), phone_groups=f(B)),
        Link(A, LinkReason.MEMBER_ORIGIN),
    ),
    "phone beats phrase": (
        Evidence(phone_groups=f(B), phrase_groups=f(C)),
        Link(B, LinkReason.MEMBER_PHONE),
    ),
    "phrase beats the relative's only group": (
        Evidence(phrase_groups=f(B), forwarder_groups=f(A)),
        Link(B, LinkReason.PHRASE),
    ),
    "origin in two groups is ambiguous": (Evidence(origin_groups=f(A, B)), UNLINKED),
    "ambiguity is not resolved by a weaker rule": (
        Evidence(origin_groups=f(A, B), phone_groups=f(A), forwarder_groups=f(A)),
        UNLINKED,
    ),
    "phones of two groups are ambiguous": (
        Evidence(phone_groups=f(A, B), forwarder_groups=f(A)),
        UNLINKED,
    ),
    "phrases of two groups are ambiguous": (
        Evidence(phrase_groups=f(A, C), forwarder_groups=f(A)),
        UNLINKED,
    ),
    "a phrase of two of the relative's own groups asks which": (
        Evidence(phrase_groups=f(A, B), forwarder_groups=f(A, B, C)),
        Link(None, None, ask=(A, B)),
    ),
    "a relative of several groups is asked": (
        Evidence(forwarder_groups=f(B, A)),
        Link(None, None, ask=(A, B)),
    ),
    "a relative of several groups is not asked when a phrase places it": (
        Evidence(phrase_groups=f(B), forwarder_groups=f(A, B)),
        Link(B, LinkReason.PHRASE),
    ),
    "a stronger rule outside the relative's groups still wins": (
        Evidence(origin_groups=f(C), forwarder_groups=f(A)),
        Link(C, LinkReason.MEMBER_ORIGIN),
    ),
}


@pytest.mark.parametrize(("evidence", "expected"), list(CASES.values()), ids=list(CASES))
def test_linking_rules(evidence: Evidence, expected: Link) -> None:
    assert decide(evidence) == expected
