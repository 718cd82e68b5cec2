"""Domain model: deterministic ids, the incident lifecycle, model validation, routing rules."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from shared.domain.errors import InvalidTransition, PermanentError
from shared.domain.ids import incident_id_for
from shared.domain.lifecycle import can_transition, record_event, transition
from shared.domain.models import (
    Classification,
    Incident,
    IncidentStatus,
    Post,
    Priority,
    RoutingRule,
    StatusChange,
)
from tests.builders import T0, make_incident, make_post

S = IncidentStatus
MSK = timezone(timedelta(hours=3))


def post_fields(**overrides: object) -> dict[str, object]:
    """The fields of a valid post, as a source connector would hand them over."""
    fields: dict[str, object] = {
        "source": "vk",
        "community": "-210000001",
        "post_id": "42",
        "text": "Яма на дороге",
        "published_at": T0,
        "url": "https://vk.com/wall-210000001_42",
    }
    fields.update(overrides)
    return fields


def incident_in(status: IncidentStatus) -> Incident:
    return make_incident(status=status)


# --- deterministic ids ----------------------------------------------------------------------------------


def test_same_source_community_and_post_give_the_same_incident_id() -> None:
    assert incident_id_for("vk", "-210000001", "42") == incident_id_for("vk", "-210000001", "42")
    assert make_post("42").incident_id == make_post("42", text="edited text").incident_id


def test_post_incident_id_is_the_id_of_its_source_community_and_post_id() -> None:
    post = make_post("42")
    assert post.incident_id == incident_id_for(post.source, post.community, post.post_id)


@pytest.mark.parametrize(
    "other",
    [
        ("telegram", "-210000001", "42"),  # another network
        ("vk", "-210000002", "42"),  # another wall
        ("vk", "-210000001", "43"),  # another post
        ("vk", "-21000000", "142"),  # the same characters split differently
    ],
)
def test_a_different_source_community_or_post_gives_a_different_incident_id(
    other: tuple[str, str, str],
) -> None:
    assert incident_id_for(*other) != incident_id_for("vk", "-210000001", "42")


def test_incident_id_is_a_stable_document_friendly_string() -> None:
    incident_id = incident_id_for("vk", "-210000001", "42")
    assert len(incident_id) == 32
    assert incident_id == incident_id.lower()
    assert incident_id.isalnum()


# --- lifecycle ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.NEW, S.ROUTED),
        (S.NEW, S.IRRELEVANT),
        (S.NEW, S.REJECTED),
        (S.ROUTED, S.ROUTED),  # re-routing after a correction
        (S.ROUTED, S.ACKNOWLEDGED),
        (S.ROUTED, S.ANSWERED),
        (S.ACKNOWLEDGED, S.ANSWERED),
        (S.ANSWERED, S.CLOSED),
        (S.ANSWERED, S.ROUTED),  # reopened: the author says it is not fixed
        (S.CLOSED, S.ROUTED),
        (S.REJECTED, S.ROUTED),
        (S.IRRELEVANT, S.NEW),  # an operator decides it is a complaint after all
        (S.IRRELEVANT, S.ROUTED),
    ],
)
def test_allowed_transition_moves_the_incident(current: IncidentStatus, target: IncidentStatus) -> None:
    assert can_transition(current, target)
    moved = transition(incident_in(current), target, at=T0 + timedelta(hours=1), actor="operator")
    assert moved.status is target


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.NEW, S.NEW),
        (S.NEW, S.ACKNOWLEDGED),
        (S.NEW, S.ANSWERED),
        (S.NEW, S.CLOSED),
        (S.ROUTED, S.NEW),
        (S.ACKNOWLEDGED, S.NEW),
        (S.ACKNOWLEDGED, S.CLOSED),
        (S.ANSWERED, S.NEW),
        (S.ANSWERED, S.ACKNOWLEDGED),
        (S.CLOSED, S.NEW),
        (S.CLOSED, S.ANSWERED),
        (S.REJECTED, S.CLOSED),
        (S.IRRELEVANT, S.ANSWERED),
    ],
)
def test_refused_transition_raises_and_leaves_the_incident_as_it_was(
    current: IncidentStatus, target: IncidentStatus
) -> None:
    incident = incident_in(current)
    assert not can_transition(current, target)
    with pytest.raises(InvalidTransition) as raised:
        transition(incident, target, at=T0 + timedelta(hours=1), actor="operator")
    assert str(current) in str(raised.value) and str(target) in str(raised.value)
    assert incident.status is current
    assert len(incident.status_history) == 1


def test_invalid_transition_is_permanent_so_the_message_is_quarantined_not_retried() -> None:
    assert issubclass(InvalidTransition, PermanentError)


def test_transition_records_the_change_in_history_and_applies_the_changes() -> None:
    incident = make_incident()
    at = T0 + timedelta(minutes=5)
    routed = transition(
        incident,
        S.ROUTED,
        at=at,
        actor="route",
        note="to shakhty-roads",
        department_ids=("shakhty-roads",),
        routed_at=at,
    )
    assert [c.status for c in routed.status_history] == [S.NEW, S.ROUTED]
    last = routed.status_history[-1]
    assert (last.at, last.actor, last.note) == (at, "route", "to shakhty-roads")
    assert routed.updated_at == at
    assert routed.department_ids == ("shakhty-roads",)
    assert routed.routed_at == at
    # the original is untouched: incidents are values
    assert incident.status is S.NEW and len(incident.status_history) == 1


def test_a_whole_lifecycle_leaves_a_complete_history() -> None:
    incident = make_incident()
    for hours, (target, actor) in enumerate(
        [(S.ROUTED, "route"), (S.ACKNOWLEDGED, "dept"), (S.ANSWERED, "dept"), (S.CLOSED, "operator")], start=1
    ):
        incident = transition(incident, target, at=T0 + timedelta(hours=hours), actor=actor)
    assert [c.status for c in incident.status_history] == [
        S.NEW,
        S.ROUTED,
        S.ACKNOWLEDGED,
        S.ANSWERED,
        S.CLOSED,
    ]
    assert [c.actor for c in incident.status_history] == ["test", "route", "dept", "dept", "operator"]
    assert incident.updated_at == T0 + timedelta(hours=4)


def test_transition_rejects_a_naive_time() -> None:
    with pytest.raises(ValidationError):
        transition(make_incident(), S.ROUTED, at=datetime(2026, 11, 23, 9, 0), actor="route")


def test_record_event_appends_an_event_without_changing_the_status() -> None:
    incident = make_incident(status=S.ROUTED)
    at = T0 + timedelta(days=1)
    flagged = record_event(incident, "overdue", at=at, actor="remind", note="late", overdue=True, overdue_at=at)
    assert flagged.status is S.ROUTED
    assert flagged.status_history == incident.status_history
    assert [(e.kind, e.at, e.actor, e.note) for e in flagged.events] == [("overdue", at, "remind", "late")]
    assert flagged.overdue is True and flagged.overdue_at == at
    assert flagged.updated_at == at


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"reply_due": T0}, id="misspelt-field"),
        pytest.param({"routed_at": datetime(2026, 11, 23, 9, 0)}, id="naive-routed_at"),
    ],
)
def test_transition_validates_the_changes_it_applies(changes: dict[str, Any]) -> None:
    with pytest.raises((ValidationError, ValueError, TypeError)):
        transition(make_incident(), S.ROUTED, at=T0, actor="route", **changes)


# --- models ---------------------------------------------------------------------------------------------


def test_post_accepts_an_aware_time_and_stores_it_in_utc() -> None:
    post = Post.model_validate(post_fields(published_at=datetime(2026, 11, 23, 12, 0, tzinfo=MSK)))
    assert post.published_at == T0
    assert post.published_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda naive: Post.model_validate(post_fields(published_at=naive)), id="post"),
        pytest.param(lambda naive: StatusChange(status=S.NEW, at=naive, actor="x"), id="status-change"),
        pytest.param(lambda naive: make_incident(created_at=naive), id="incident-created"),
        pytest.param(lambda naive: make_incident(reply_due_at=naive), id="incident-reply-due"),
    ],
)
def test_models_reject_naive_datetimes(build: Callable[[datetime], object]) -> None:
    naive = datetime(2026, 11, 23, 9, 0)
    with pytest.raises(ValidationError, match="time zone"):
        build(naive)


def test_naive_iso_string_is_rejected_too() -> None:
    with pytest.raises(ValidationError):
        Post.model_validate(post_fields(published_at="2026-11-23T09:00:00"))


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda: Post.model_validate(post_fields(likes=3)), id="post"),
        pytest.param(
            lambda: Classification.model_validate(
                {
                    "category": "roads",
                    "is_complaint": True,
                    "confidence": 1,
                    "classifier": "t",
                    "mood": "angry",
                }
            ),
            id="classification",
        ),
        pytest.param(lambda: make_incident(assignee="ivanov"), id="incident"),
        pytest.param(
            lambda: RoutingRule.model_validate({"category": "roads", "departments": ["a"], "municiplity": "x"}),
            id="routing-rule-typo",
        ),
    ],
)
def test_models_reject_unknown_fields(build: Callable[[], object]) -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        build()


def test_models_are_immutable() -> None:
    post = make_post()
    with pytest.raises(ValidationError):
        post.text = "changed"  # type: ignore[misc]


def test_post_requires_source_community_and_post_id() -> None:
    for field in ("source", "community", "post_id"):
        with pytest.raises(ValidationError):
            Post.model_validate(post_fields(**{field: ""}))


# --- routing rules --------------------------------------------------------------------------------------


def rule(**kw: object) -> RoutingRule:
    return RoutingRule.model_validate({"departments": ["dept"], **kw})


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, 0),
        ({"category": "roads"}, 1),
        ({"municipality": "shakhty"}, 1),
        ({"priority": "critical"}, 1),
        ({"category": "roads", "municipality": "shakhty"}, 2),
        ({"municipality": "shakhty", "priority": "critical"}, 2),
        ({"category": "roads", "municipality": "shakhty", "priority": "critical"}, 3),
    ],
)
def test_specificity_counts_the_constrained_fields(fields: dict[str, str], expected: int) -> None:
    assert rule(**fields).specificity == expected


@pytest.mark.parametrize(
    ("fields", "incident", "matches"),
    [
        ({}, ("roads", "shakhty", Priority.NORMAL), True),
        ({}, ("other", None, Priority.LOW), True),
        ({"category": "roads"}, ("roads", "kirov", Priority.CRITICAL), True),
        ({"category": "roads"}, ("landscaping", "shakhty", Priority.NORMAL), False),
        ({"municipality": "shakhty"}, ("roads", "shakhty", Priority.NORMAL), True),
        ({"municipality": "shakhty"}, ("roads", "kirov", Priority.NORMAL), False),
        ({"municipality": "shakhty"}, ("roads", None, Priority.NORMAL), False),
        ({"priority": "critical"}, ("roads", "kirov", Priority.CRITICAL), True),
        ({"priority": "critical"}, ("roads", "kirov", Priority.HIGH), False),
        ({"category": "roads", "municipality": "shakhty"}, ("roads", "shakhty", Priority.LOW), True),
        ({"category": "roads", "municipality": "shakhty"}, ("roads", "kirov", Priority.LOW), False),
    ],
)
def test_rule_matches_when_every_constrained_field_is_equal(
    fields: dict[str, str], incident: tuple[str, str | None, Priority], matches: bool
) -> None:
    assert rule(**fields).matches(*incident) is matches


def test_rule_needs_at_least_one_department() -> None:
    with pytest.raises(ValidationError):
        RoutingRule(category="roads", departments=())
