"""The daily digest: one letter per department with open incidents, overdue first, once per local day."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.config import RoutingConfig
from shared.domain.errors import PermanentError
from shared.domain.models import Department, IncidentStatus
from shared.services.digest import DigestService
from shared.services.notify import Notifier
from shared.services.routing import RuleDirectory
from shared.services.texts import RenderedEmail
from tests.builders import T0, make_incident, make_post
from tests.fakes import MemoryIncidents, MemoryNotifications

S = IncidentStatus
ROADS = Department(id="roads", name="Отдел дорог", email="roads@shakhty.example")
PARKS = Department(id="parks", name="Благоустройство", email="parks@shakhty.example")
NO_MAIL = Department(id="hooks-only", name="Только webhook", webhook_url="https://hooks.example/x")  # type: ignore[arg-type]
CONFIG = RoutingConfig(departments=(ROADS, PARKS, NO_MAIL), fallback="roads")


class Letters:
    def __init__(self) -> None:
        self.sent: list[tuple[str, RenderedEmail, str]] = []
        self.fail_with: Exception | None = None

    def send_rendered(self, to: str, rendered: RenderedEmail, event_id: str) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.sent.append((to, rendered, event_id))


def notifier() -> Notifier:
    return Notifier(MemoryNotifications(), {}, lambda: T0, 60)


def rig() -> tuple[DigestService, MemoryIncidents, Letters]:
    incidents = MemoryIncidents()
    letters = Letters()
    service = DigestService(
        incidents, RuleDirectory(CONFIG), notifier(), letters, lambda i, d: f"https://api/answer/{i}"
    )
    return service, incidents, letters


def add(
    incidents: MemoryIncidents, post_id: str, status: IncidentStatus, departments: tuple[str, ...], **kw: object
) -> None:
    incidents.create(
        make_incident(
            post_id,
            status,
            post=make_post(post_id, text=f"Обращение {post_id}"),
            department_ids=departments,
            created_at=T0 + timedelta(minutes=int(post_id)),
            **kw,
        )
    )


def test_each_department_gets_its_open_incidents_overdue_first_once_a_day() -> None:
    service, incidents, letters = rig()
    add(incidents, "1", S.ROUTED, ("roads",), reply_due_at=T0 + timedelta(days=2))
    add(incidents, "2", S.ACKNOWLEDGED, ("roads",), reply_due_at=T0 - timedelta(hours=1))  # overdue
    add(incidents, "3", S.ANSWERED, ("roads", "parks"), resolve_due_at=T0 + timedelta(days=5))
    add(incidents, "4", S.CLOSED, ("roads",))  # closed: not in any digest
    add(incidents, "5", S.ROUTED, ("hooks-only",))  # no e-mail address: no letter

    report = service.run(T0)

    assert report.open_incidents == 4 and sorted(report.sent) == ["parks", "roads"]
    roads = next(r for to, r, _ in letters.sent if to == "roads@shakhty.example")
    assert roads.subject == "Сводка обращений на 23.11.2026: открыто 3, просрочено 1"
    text = roads.text
    assert text.index("[ПРОСРОЧЕНО]") < text.index("Обращение 2") < text.index("Обращение 1")
    assert "Обращение 4" not in text and "https://api/answer/" in text
    assert "Обращение 2" in roads.html and "ПРОСРОЧЕНО" in roads.html

    again = service.run(T0 + timedelta(hours=3))  # a second run the same day
    assert again.sent == [] and sorted(again.skipped) == ["parks", "roads"]
    assert len(letters.sent) == 2
    next_day = service.run(T0 + timedelta(days=1))
    assert sorted(next_day.sent) == ["parks", "roads"]


def test_a_letter_that_fails_for_now_is_sent_by_the_next_run() -> None:
    service, incidents, letters = rig()
    add(incidents, "1", S.ROUTED, ("parks",), reply_due_at=T0 + timedelta(days=1))
    letters.fail_with = OSError("connection refused")
    assert service.run(T0).failed == ["parks"]
    letters.fail_with = None
    assert service.run(T0 + timedelta(minutes=5)).sent == ["parks"]


def test_without_a_mail_provider_the_digest_says_so() -> None:
    incidents = MemoryIncidents()
    service = DigestService(incidents, RuleDirectory(CONFIG), notifier(), None, lambda i, d: None)
    with pytest.raises(PermanentError, match="e-mail provider"):
        service.run(T0)


def test_many_open_incidents_are_read_page_by_page() -> None:
    service, incidents, letters = rig()
    for n in range(1, 702):
        add(incidents, str(n), S.ROUTED, ("roads",), reply_due_at=T0 + timedelta(days=1))
    report = service.run(T0)
    assert report.open_incidents == 701
    [(_, letter, _)] = letters.sent
    assert "открыто 701" in letter.subject


@pytest.mark.parametrize("together", [2, 299, 300, 301, 700])
def test_incidents_created_at_one_instant_across_a_page_boundary_are_each_read_once(together: int) -> None:
    # A batch import or a clock with coarse resolution: many incidents share created_at. Paging strictly after
    # the last page's instant skipped those that did not fit on the page.
    service, incidents, letters = rig()
    for n in range(1, 801):
        instant = T0 + timedelta(minutes=max(n, 250) if n < 250 + together else n)
        incidents.create(
            make_incident(
                str(n),
                S.ROUTED,
                post=make_post(str(n), text=f"Обращение {n}"),
                department_ids=("roads",),
                created_at=instant,
                reply_due_at=T0 + timedelta(days=1),
            )
        )
    report = service.run(T0)
    assert report.open_incidents == 800
    [(_, letter, _)] = letters.sent
    assert "открыто 800" in letter.subject
