"""The incident status lifecycle: new -> routed -> acknowledged -> answered -> closed, plus rejected/irrelevant.

Transitions are explicit so a late or replayed message cannot move an incident backwards by accident.
"""

from __future__ import annotations

from datetime import datetime

from shared.domain.errors import InvalidTransition
from shared.domain.models import HistoryEvent, Incident, IncidentStatus, StatusChange

S = IncidentStatus

ALLOWED: dict[IncidentStatus, frozenset[IncidentStatus]] = {
    # -> merged: an operator merges two incidents about the same problem (triage)
    S.NEW: frozenset({S.ROUTED, S.REJECTED, S.IRRELEVANT, S.MERGED}),
    # routed -> routed: re-routing after an operator corrects the category or municipality
    S.ROUTED: frozenset({S.ROUTED, S.ACKNOWLEDGED, S.ANSWERED, S.REJECTED, S.IRRELEVANT, S.MERGED}),
    S.ACKNOWLEDGED: frozenset({S.ROUTED, S.ANSWERED, S.REJECTED, S.MERGED}),
    # answered -> routed: the author says it is not fixed, the incident is reopened
    S.ANSWERED: frozenset({S.CLOSED, S.ROUTED, S.MERGED}),
    S.CLOSED: frozenset({S.ROUTED}),
    S.REJECTED: frozenset({S.ROUTED}),
    # an operator decides a post dismissed as chatter is a complaint after all
    S.IRRELEVANT: frozenset({S.NEW, S.ROUTED}),
    # grouped into another incident by mistake: an operator splits it out again
    S.MERGED: frozenset({S.NEW, S.ROUTED}),
}

OPEN_FOR_REPLY = (S.NEW, S.ROUTED, S.ACKNOWLEDGED)
# Whose post an author's edit rewrites (shared/domain/edits.py): nobody has answered it yet, including those set
# aside unanswered (not a complaint, or a report of another incident). Answered, closed and rejected ones keep the
# text the department answered.
EDITABLE = frozenset({*OPEN_FOR_REPLY, S.IRRELEVANT, S.MERGED})


def can_transition(current: IncidentStatus, target: IncidentStatus) -> bool:
    return target in ALLOWED[current]


def transition(
    incident: Incident, target: IncidentStatus, *, at: datetime, actor: str, note: str = "", **changes: object
) -> Incident:
    """Return the incident moved to ``target`` with the change recorded in its history."""
    if not can_transition(incident.status, target):
        raise InvalidTransition(f"incident {incident.id}: {incident.status} -> {target} is not allowed")
    change = StatusChange(status=target, at=at, actor=actor, note=note)
    return _changed(
        incident, status=target, status_history=(*incident.status_history, change), updated_at=at, **changes
    )


def new_routing_round(
    incident: Incident, reason: str, *, at: datetime, actor: str, note: str = "", **changes: object
) -> Incident:
    """The incident routed again in a new round (``<reason>.<round>``: rerouted, reopened, raised): route tells
    its departments once more, on fresh delivery state; remind sees it undelivered until route confirms."""
    return transition(
        incident,
        S.ROUTED,
        at=at,
        actor=actor,
        note=note,
        routing_round=incident.routing_round + 1,
        routing_reason=reason,
        undelivered=True,
        delivery={},
        routed_at=at,
        overdue=False,
        followup_asked_at=None,
        **changes,
    )


def record_event(
    incident: Incident, kind: str, *, at: datetime, actor: str, note: str = "", **changes: object
) -> Incident:
    event = HistoryEvent(kind=kind, at=at, actor=actor, note=note)
    return _changed(incident, events=(*incident.events, event), updated_at=at, **changes)


def _changed(incident: Incident, **changes: object) -> Incident:
    """A validated copy: a misspelt field or a naive time is an error here, as everywhere in the model."""
    return Incident.model_validate({**dict(incident), **changes})
