"""The weekly report letter: last full local week, to the coordinator and its supervisor, once per week."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from shared.config import RoutingConfig
from shared.domain.errors import PermanentError
from shared.domain.models import Department, Person
from shared.services.notify import Notifier
from shared.services.reports import REPORT_ZONE, Names
from shared.services.routing import RuleDirectory
from shared.services.texts import RenderedEmail
from shared.services.weekly_report import WeeklyReportService, last_week
from tests.builders import T0, make_incident
from tests.fakes import MemoryIncidents, MemoryNotifications

COORDINATOR = Department(
    id="region-coordinator",
    name="ЦУР",
    email="cur@region.example",
    supervisor=Person(name="Лаптева О. С.", email="lapteva@region.example"),
)
CONFIG = RoutingConfig(departments=(COORDINATOR,), fallback="region-coordinator")
MONDAY = datetime(2026, 11, 23, tzinfo=REPORT_ZONE)  # T0 (09:00 UTC) is on this Monday


class Letters:
    def __init__(self) -> None:
        self.sent: list[tuple[str, RenderedEmail, str]] = []

    def send_rendered(self, to: str, rendered: RenderedEmail, event_id: str) -> None:
        self.sent.append((to, rendered, event_id))


def test_last_week_is_the_last_full_local_week() -> None:
    assert last_week(T0) == (MONDAY - timedelta(days=7), MONDAY)
    # Sunday 23:30 in Moscow: this week is not over yet, so the last full one is the week before.
    sunday_night = MONDAY - timedelta(minutes=30)
    assert last_week(sunday_night) == (MONDAY - timedelta(days=14), MONDAY - timedelta(days=7))


def test_coordinators_get_last_weeks_report_once() -> None:
    incidents = MemoryIncidents()
    for n, days_before in enumerate([1, 2, 3, 9]):  # three last week, one the week before
        incidents.create(make_incident(str(n), created_at=MONDAY - timedelta(days=days_before)))
    incidents.create(make_incident("today", created_at=T0))  # this week: not reported yet
    letters = Letters()
    service = WeeklyReportService(
        incidents, RuleDirectory(CONFIG), Notifier(MemoryNotifications(), {}, lambda: T0, 60), letters, Names()
    )

    run = service.run(T0)

    assert run.complaints == 3 and run.sent == ["region-coordinator", "region-coordinator-supervisor"]
    assert [to for to, _, _ in letters.sent] == ["cur@region.example", "lapteva@region.example"]
    _, letter, event_id = letters.sent[0]
    assert event_id == "weekly_report.region-coordinator.2026-11-16"
    assert letter.subject == "Отчёт об обращениях за неделю 16.11.2026 — 22.11.2026: обращений 3 (неделей раньше 1)"
    assert "| Дороги | 3 | 1 | +2 (+200,0 %) |" in letter.text and "<svg" in letter.html
    again = service.run(T0 + timedelta(hours=1))
    assert again.sent == [] and len(again.skipped) == 2 and len(letters.sent) == 2


def test_without_a_mail_provider_it_refuses() -> None:
    service = WeeklyReportService(
        MemoryIncidents(), RuleDirectory(CONFIG), Notifier(MemoryNotifications(), {}, lambda: T0, 60), None, Names()
    )
    with pytest.raises(PermanentError):
        service.run(T0)
