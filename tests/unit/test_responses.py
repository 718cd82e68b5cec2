"""The way back (ResponseService): department actions and the coordinator's corrections, on in-memory ports."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from shared.config import RoutingConfig
from shared.contracts import IncidentClassifiedV1
from shared.domain.models import Department, Incident, IncidentStatus, RoutingRule
from shared.services.responses import AccessDenied, ActionError, ActionRefused, ResponseService
from shared.services.routing import RuleDirectory
from tests.builders import T0, make_incident, shipped_deadlines
from tests.fakes import MemoryIncidents, MemoryPublisher

S = IncidentStatus
COORDINATOR = Department(id="coordinator", name="ЦУР", email="cur@region.example")
ROADS = Department(id="roads", name="Дороги", municipality="shakhty", categories=("roads",), email="r@x.example")
PARKS = Department(
    id="parks", name="Благоустройство", municipality="shakhty", categories=("landscaping",), email="p@x.example"
)
SHIPPED_DEADLINES = shipped_deadlines()
CONFIG = RoutingConfig(departments=(COORDINATOR, ROADS, PARKS), rules=(), fallback="coordinator")


class Rig:
    def __init__(self) -> None:
        self.incidents = MemoryIncidents()
        self.publisher = MemoryPublisher()
        self.service = ResponseService(
            self.incidents, RuleDirectory(CONFIG), self.publisher, "incidents", lambda: T0, SHIPPED_DEADLINES
        )
        self.incident = make_incident("1", S.ROUTED, category="roads", department_ids=("roads",), routed_at=T0)
        self.incidents.create(self.incident)

    def stored(self) -> Incident:
        found = self.incidents.get(self.incident.id)
        assert found is not None
        return found


def test_a_department_sees_and_acts_on_its_own_incidents_only() -> None:
    rig = Rig()
    roads, parks = rig.service.actor("roads"), rig.service.actor("parks")
    assert rig.service.view(roads, rig.incident.id).id == rig.incident.id
    with pytest.raises(AccessDenied):
        rig.service.view(parks, rig.incident.id)
    with pytest.raises(AccessDenied):
        rig.service.answer(parks, rig.incident.id, "Не наше")
    assert rig.stored() == rig.incident
    # The coordinator sees everything.
    assert rig.service.view(rig.service.actor("coordinator"), rig.incident.id).id == rig.incident.id
    with pytest.raises(AccessDenied):
        rig.service.actor("nobody")


def test_acknowledge_then_answer_records_the_first_reply_and_the_history() -> None:
    rig = Rig()
    roads = rig.service.actor("roads")
    rig.service.acknowledge(roads, rig.incident.id)
    rig.service.acknowledge(roads, rig.incident.id)  # again: nothing changes
    answered = rig.service.answer(roads, rig.incident.id, "Яму засыплем до пятницы.", request_key="k1")

    assert answered.status is S.ANSWERED
    assert (answered.acknowledged_at, answered.first_reply_at) == (T0, T0)
    assert [h.status for h in answered.status_history] == [S.ROUTED, S.ACKNOWLEDGED, S.ANSWERED]
    assert [(a.text, a.department_id, a.interim) for a in answered.answers] == [
        ("Яму засыплем до пятницы.", "roads", False)
    ]


def test_the_same_answer_request_twice_is_one_answer() -> None:
    rig = Rig()
    roads = rig.service.actor("roads")
    rig.service.answer(roads, rig.incident.id, "Ответ", request_key="same")
    rig.service.answer(roads, rig.incident.id, "Ответ", request_key="same")
    assert len(rig.stored().answers) == 1


def test_an_interim_answer_needs_a_promised_date_and_counts_as_the_first_reply() -> None:
    rig = Rig()
    roads = rig.service.actor("roads")
    with pytest.raises(ActionError, match="promised_by"):
        rig.service.answer(roads, rig.incident.id, "Разбираемся", interim=True)
    interim = rig.service.answer(roads, rig.incident.id, "Разбираемся", interim=True, promised_by=date(2099, 12, 1))
    assert interim.status is S.ANSWERED and interim.first_reply_at == T0
    # The interim answer grants 7 days for the full one (a promised date later than that does not extend it),
    # and remind now watches the resolution clock.
    assert interim.resolve_due_at == T0 + timedelta(days=7)
    assert interim.next_check_at == interim.resolve_due_at - timedelta(hours=2)
    final = rig.service.answer(roads, rig.incident.id, "Отремонтировано")
    assert [a.interim for a in final.answers] == [True, False]
    assert final.events[-1].kind == "answer"


def test_resolve_needs_an_answer_and_closes_the_incident() -> None:
    rig = Rig()
    roads = rig.service.actor("roads")
    with pytest.raises(ActionRefused, match="no answer"):
        rig.service.resolve(roads, rig.incident.id)
    closed = rig.service.resolve(roads, rig.incident.id, "Яма засыпана, спасибо за сигнал.")
    assert closed.status is S.CLOSED and closed.resolved_at == T0 and closed.next_check_at is None
    assert [h.status for h in closed.status_history][-2:] == [S.ANSWERED, S.CLOSED]
    with pytest.raises(ActionRefused):
        rig.service.answer(roads, rig.incident.id, "ещё")


def test_reassign_hands_the_incident_to_the_coordinator_with_the_reason_and_publishes_it_for_route() -> None:
    rig = Rig()
    moved = rig.service.reassign(rig.service.actor("roads"), rig.incident.id, "Это двор, не дорога")
    assert moved.status is S.ROUTED and moved.department_ids == ("coordinator",)
    assert moved.routing_round == 1 and moved.undelivered
    assert "Это двор, не дорога" in moved.status_history[-1].note
    [message] = rig.publisher.on("incidents")
    assert isinstance(message, IncidentClassifiedV1) and message.incident_id == rig.incident.id
    with pytest.raises(ActionError, match="why"):
        rig.service.reassign(rig.service.actor("coordinator"), rig.incident.id, "  ")


def test_the_coordinator_corrects_the_category_and_the_incident_goes_to_its_new_owner() -> None:
    rig = Rig()
    with pytest.raises(AccessDenied):
        rig.service.correct(rig.service.actor("roads"), rig.incident.id, category="landscaping")
    corrected = rig.service.correct(rig.service.actor("coordinator"), rig.incident.id, category="landscaping")
    assert corrected.classification.category == "landscaping"
    assert corrected.department_ids == ("parks",) and corrected.routing_round == 1
    assert "category roads -> landscaping" in corrected.status_history[-1].note
    assert len(rig.publisher.on("incidents")) == 1


def test_a_correction_that_keeps_the_same_departments_is_recorded_without_re_routing() -> None:
    rig = Rig()
    same = RoutingConfig(
        departments=(COORDINATOR, ROADS, PARKS),
        rules=(RoutingRule(municipality="kirov", departments=("roads",)),),
        fallback="coordinator",
    )
    rig.service.directory = RuleDirectory(same)
    corrected = rig.service.correct(rig.service.actor("coordinator"), rig.incident.id, municipality="kirov")
    assert corrected.classification.municipality == "kirov"
    assert corrected.routing_round == 0 and corrected.events[-1].kind == "corrected"
    assert rig.publisher.on("incidents") == []
