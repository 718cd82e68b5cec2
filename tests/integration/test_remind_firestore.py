"""Remind against the Firestore emulator: two runs at once, each on its own client (as two instances would be),
send every reminder once and record every step once — the claims and transactions of the real adapters."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from google.cloud import firestore

from shared.adapters.firestore import FirestoreIncidents, FirestoreNotifications
from shared.config import RoutingConfig
from shared.contracts import IncidentClassifiedV1
from shared.domain.models import Channel, Classification, Department, IncidentStatus, Priority
from shared.services.notify import Notifier
from shared.services.remind import RemindService
from shared.services.route import RouteService
from shared.services.routing import RuleDirectory
from tests.builders import make_incident, shipped_deadlines
from tests.fakes import MemoryPublisher, RecordingSender

pytestmark = pytest.mark.integration
DEADLINES = shipped_deadlines()
ROADS = Department(id="roads", name="Дороги", categories=("roads",), email="roads@shakhty.example")
DIRECTORY = RuleDirectory(RoutingConfig(departments=(ROADS,), fallback="roads"))
FRIDAY_EVENING = datetime(2026, 11, 27, 17, 0, tzinfo=ZoneInfo("Europe/Moscow")).astimezone(UTC)
MONDAY_REMINDER = datetime(2026, 11, 30, 15, 0, tzinfo=ZoneInfo("Europe/Moscow")).astimezone(UTC)


def services(project_id: str, email: RecordingSender) -> tuple[RouteService, RemindService, FirestoreIncidents]:
    client = firestore.Client(project=project_id)  # one client per "instance"
    incidents = FirestoreIncidents(client)
    notifier = Notifier(FirestoreNotifications(client), {Channel.EMAIL: email}, lambda: MONDAY_REMINDER, 60)
    route = RouteService(incidents, DIRECTORY, notifier, DEADLINES, lambda: FRIDAY_EVENING)
    remind = RemindService(incidents, DIRECTORY, notifier, DEADLINES, MemoryPublisher(), "incidents", 50)
    return route, remind, incidents


def test_two_remind_runs_at_once_on_firestore_remind_each_incident_once(project_id: str, emulators: Any) -> None:
    if emulators.kind == "standalone":
        # Sending once rests on create() claims, which hold there too; recording the step once rests on a
        # transaction's isolation, which only gcloud's emulator and Firestore itself provide.
        pytest.skip("the standalone Firestore emulator has no transaction isolation")
    email = RecordingSender()
    route, _, incidents = services(project_id, email)
    ids = []
    for n in range(6):
        c = Classification(category="roads", is_complaint=True, municipality="shakhty", confidence=1, classifier="t")
        incident = make_incident(str(n), IncidentStatus.NEW, classification=c, created_at=FRIDAY_EVENING)
        incidents.create(incident)
        route.handle(
            IncidentClassifiedV1(
                incident_id=incident.id,
                category="roads",
                priority=Priority.NORMAL,
                danger=False,
                municipality="shakhty",
                classified_at=FRIDAY_EVENING,
            )
        )
        ids.append(incident.id)
    email.sent.clear()

    runners = [services(project_id, email)[1] for _ in range(2)]
    barrier = threading.Barrier(2)
    reports = []

    def run(remind: RemindService) -> None:
        barrier.wait()
        reports.append(remind.run(MONDAY_REMINDER))

    threads = [threading.Thread(target=run, args=(r,)) for r in runners]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(d.incident.id for d in email.sent) == sorted(ids)  # one reminder each, not two
    assert all(d.kind == "reply.remind.r0" for d in email.sent)
    for incident_id in ids:
        stored = incidents.get(incident_id)
        assert stored is not None and [e.kind for e in stored.events] == ["reminder"]
        assert stored.reply_level == 1 and stored.next_check_at == stored.reply_due_at
    assert sum(len(r.steps) for r in reports) + sum(len(r.waiting) for r in reports) >= len(ids)
