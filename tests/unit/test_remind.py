"""Deadlines in working time and remind's escalation ladder, with the clock driven by the test (no sleeping):
an incident routed on Friday evening, holidays of the production calendar, a critical one at night, a
department answering just before the deadline, two remind runs at once, a receiver that is down."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from shared.config import RoutingConfig
from shared.contracts import IncidentClassifiedV1
from shared.domain.deadlines import Deadlines
from shared.domain.models import (
    Channel,
    Classification,
    Department,
    Incident,
    IncidentStatus,
    Person,
    Priority,
    WorkingHours,
)
from shared.domain.worktime import Duration, WorkingClock
from shared.services.notify import Notifier
from shared.services.remind import RemindService
from shared.services.responses import ResponseService
from shared.services.route import RouteService
from shared.services.routing import RuleDirectory
from tests.builders import make_incident, shipped_deadlines
from tests.fakes import MemoryIncidents, MemoryNotifications, MemoryPublisher, RecordingSender

CALENDAR = shipped_deadlines().calendar
POLICY = shipped_deadlines().policy
MSK = ZoneInfo("Europe/Moscow")
S = IncidentStatus


def msk(*args: int) -> datetime:
    return datetime(*args, tzinfo=MSK).astimezone(UTC)  # type: ignore[misc]


# --- working time -----------------------------------------------------------------------------------------

OFFICE = WorkingClock(CALENDAR, WorkingHours(), "Europe/Moscow")  # Mon-Fri 9:00-18:00


@pytest.mark.parametrize(
    ("start", "duration", "expected"),
    [
        # Friday 17:00: one hour on Friday, eight on Monday.
        (msk(2026, 11, 27, 17, 0), Duration(working_hours=9), msk(2026, 11, 30, 17, 0)),
        # Friday 20:00, after hours: the clock starts on Monday morning.
        (msk(2026, 11, 27, 20, 0), Duration(working_hours=9), msk(2026, 11, 30, 18, 0)),
        # 3 November 2026 is a shortened pre-holiday day (to 17:00), 4 November a holiday (Wednesday).
        (msk(2026, 11, 3, 16, 0), Duration(working_hours=9), msk(2026, 11, 5, 17, 0)),
        # New Year: 31 December 2026 and 1-8 January 2027 are off; 9-10 January a weekend.
        (msk(2026, 12, 30, 16, 0), Duration(working_hours=9), msk(2027, 1, 11, 16, 0)),
        # Working days keep the time of day; a holiday does not count.
        (msk(2026, 11, 3, 10, 0), Duration(working_days=1), msk(2026, 11, 5, 10, 0)),
        # Clock hours run at night and on holidays alike.
        (msk(2026, 11, 4, 3, 0), Duration(clock_hours=2), msk(2026, 11, 4, 5, 0)),
        (msk(2026, 11, 27, 17, 0), Duration(days=7), msk(2026, 12, 4, 17, 0)),
    ],
)
def test_working_time_skips_evenings_weekends_and_holidays(
    start: datetime, duration: Duration, expected: datetime
) -> None:
    assert OFFICE.add(start, duration) == expected


def test_a_round_the_clock_service_works_on_holidays() -> None:
    duty = WorkingClock(CALENDAR, WorkingHours(days=(1, 2, 3, 4, 5, 6, 7), start="00:00", end="23:59"), "Europe/Moscow")  # type: ignore[arg-type]
    assert duty.add(msk(2026, 11, 4, 3, 0), Duration(working_hours=2)) == msk(2026, 11, 4, 5, 0)


def test_deadlines_follow_the_department_time_zone() -> None:
    yekaterinburg = WorkingClock(CALENDAR, WorkingHours(), "Asia/Yekaterinburg")  # UTC+5: 9:00 there is 7:00 MSK
    assert yekaterinburg.add(msk(2026, 11, 27, 15, 0), Duration(working_hours=2)) == msk(2026, 11, 30, 8, 0)


# --- the ladder -------------------------------------------------------------------------------------------

ROADS = Department(
    id="roads",
    name="Дороги",
    municipality="shakhty",
    categories=("roads",),
    webhook_url="https://hooks.example/roads",  # type: ignore[arg-type]
    email="roads@shakhty.example",
    supervisor=Person(name="Начальник", email="chief@shakhty.example"),
)
COORDINATOR = Department(id="coordinator", name="ЦУР", email="cur@region.example")
CONFIG = RoutingConfig(departments=(COORDINATOR, ROADS), fallback="coordinator")


class Rig:
    def __init__(self, now: datetime) -> None:
        self.now = now
        self.incidents = MemoryIncidents()
        self.notifications = MemoryNotifications()
        self.webhook, self.email = RecordingSender(), RecordingSender()
        self.publisher = MemoryPublisher()
        directory = RuleDirectory(CONFIG)
        deadlines = Deadlines(POLICY, CALENDAR)
        notifier = Notifier(
            self.notifications, {Channel.WEBHOOK: self.webhook, Channel.EMAIL: self.email}, self.clock, 60
        )
        self.route = RouteService(self.incidents, directory, notifier, deadlines, self.clock)
        self.remind = RemindService(self.incidents, directory, notifier, deadlines, self.publisher, "incidents", 50)
        self.responses = ResponseService(self.incidents, directory, self.publisher, "incidents", self.clock, deadlines)

    def clock(self) -> datetime:
        return self.now

    def routed(self, priority: Priority = Priority.NORMAL, post_id: str = "1") -> Incident:
        c = Classification(
            category="roads", is_complaint=True, priority=priority, municipality="shakhty", confidence=1, classifier="t"
        )
        incident = make_incident(post_id, S.NEW, classification=c)
        self.incidents.create(incident)
        self.route.handle(
            IncidentClassifiedV1(
                incident_id=incident.id,
                category="roads",
                priority=priority,
                danger=False,
                municipality="shakhty",
                classified_at=self.now,
            )
        )
        self.webhook.sent.clear()
        self.email.sent.clear()
        return self.stored(incident.id)

    def stored(self, incident_id: str) -> Incident:
        found = self.incidents.get(incident_id)
        assert found is not None
        return found

    def run_at(self, moment: datetime) -> list[str]:
        self.now = moment
        return self.remind.run(moment).steps

    def sent(self) -> list[tuple[str, str]]:
        return [(d.department.id, d.kind) for d in [*self.webhook.sent, *self.email.sent]]


def test_an_incident_routed_on_friday_evening_climbs_the_ladder_in_working_time() -> None:
    rig = Rig(msk(2026, 11, 27, 17, 0))  # Friday
    incident = rig.routed()
    assert incident.reply_due_at == msk(2026, 11, 30, 17, 0)  # 9 working hours: Monday 17:00
    assert incident.resolve_due_at == msk(2026, 12, 11, 17, 0)  # 10 working days
    assert incident.next_check_at == msk(2026, 11, 30, 15, 0)  # the reminder, 2 h before

    assert rig.run_at(msk(2026, 11, 28, 12, 0)) == []  # Saturday: nothing due
    assert rig.run_at(msk(2026, 11, 30, 15, 0)) == [f"{incident.id} reply.remind"]
    assert sorted(rig.sent()) == [("roads", "reply.remind.r0"), ("roads", "reply.remind.r0")]  # webhook + e-mail
    assert rig.run_at(msk(2026, 11, 30, 16, 0)) == []  # reminded once

    assert rig.run_at(msk(2026, 11, 30, 17, 0)) == [f"{incident.id} reply.overdue"]
    overdue = rig.stored(incident.id)
    assert overdue.overdue and overdue.overdue_at == msk(2026, 11, 30, 17, 0)
    # The supervisor after 4 more working hours (Tuesday 12:00), the coordinator after one working day.
    assert overdue.next_check_at == msk(2026, 12, 1, 12, 0)
    assert rig.run_at(msk(2026, 12, 1, 11, 59)) == []
    assert rig.run_at(msk(2026, 12, 1, 12, 0)) == [f"{incident.id} reply.supervisor"]
    assert ("roads-supervisor", "reply.supervisor.r0") in rig.sent()
    assert rig.run_at(msk(2026, 12, 1, 17, 0)) == [f"{incident.id} reply.coordinator"]
    assert ("coordinator", "reply.coordinator.r0") in rig.sent()
    done = rig.stored(incident.id)
    assert [e.kind for e in done.events] == [
        "reminder",
        "overdue",
        "escalated_to_supervisor",
        "escalated_to_coordinator",
    ]
    assert done.next_check_at is None  # the reply ladder is done; the clerk's answer starts the next clock
    assert len(rig.sent()) == len(set(rig.sent())) + 2  # webhook+e-mail pairs only: nothing twice


def test_an_answer_just_before_the_deadline_is_never_flagged_overdue() -> None:
    rig = Rig(msk(2026, 11, 27, 17, 0))
    incident = rig.routed()
    rig.run_at(msk(2026, 11, 30, 15, 0))
    rig.now = msk(2026, 11, 30, 16, 59)
    answered = rig.responses.answer(rig.responses.actor("roads"), incident.id, "Яму засыплем в среду.")
    assert answered.next_check_at == answered.resolve_due_at - timedelta(hours=2)  # type: ignore[operator]
    assert rig.run_at(msk(2026, 11, 30, 17, 0)) == []
    assert not rig.stored(incident.id).overdue


def test_a_critical_incident_at_night_is_due_within_hours_around_the_clock() -> None:
    rig = Rig(msk(2026, 11, 4, 3, 0))  # a holiday, at night
    incident = rig.routed(Priority.CRITICAL)
    assert incident.reply_due_at == msk(2026, 11, 4, 5, 0)
    # A 2-hour clock gets no reminder (the urgent notice was sent 2 hours ago): the deadline is the first step.
    assert incident.next_check_at == incident.reply_due_at
    assert rig.run_at(msk(2026, 11, 4, 4, 59)) == []
    assert rig.run_at(msk(2026, 11, 4, 5, 0)) == [f"{incident.id} reply.overdue"]
    assert rig.run_at(msk(2026, 11, 4, 5, 0)) == []
    assert all(d.urgent for d in rig.email.sent if d.kind.startswith("reply.overdue"))


def test_two_remind_runs_at_once_send_each_message_once_and_record_each_step_once() -> None:
    rig = Rig(msk(2026, 11, 27, 17, 0))
    ids = [rig.routed(post_id=str(n)).id for n in range(5)]
    rig.now = msk(2026, 11, 30, 15, 0)
    barrier = threading.Barrier(2)

    def run() -> None:
        barrier.wait()
        rig.remind.run(rig.now)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(rig.sent()) == sorted([("roads", "reply.remind.r0")] * 10)  # 5 incidents x 2 channels
    for incident_id in ids:
        assert [e.kind for e in rig.stored(incident_id).events] == ["reminder"]


def test_a_step_whose_message_could_not_be_sent_is_retried_next_run_without_resending_the_rest() -> None:
    rig = Rig(msk(2026, 11, 27, 17, 0))
    incident = rig.routed()
    rig.webhook.failures = 1
    rig.now = msk(2026, 11, 30, 15, 0)
    report = rig.remind.run(rig.now)
    assert report.steps == [] and report.waiting == [incident.id]
    assert rig.sent() == [("roads", "reply.remind.r0")]  # the e-mail went out
    assert rig.stored(incident.id).events == ()

    assert rig.run_at(msk(2026, 11, 30, 15, 15)) == [f"{incident.id} reply.remind"]
    assert sorted(rig.sent()) == [("roads", "reply.remind.r0"), ("roads", "reply.remind.r0")]


def test_a_missed_run_is_caught_up_step_by_step_in_one_run() -> None:
    rig = Rig(msk(2026, 11, 27, 17, 0))
    incident = rig.routed()
    steps = rig.run_at(msk(2026, 12, 2, 12, 0))  # remind was down for days
    assert [s.split(" ")[1] for s in steps] == [
        "reply.remind",
        "reply.overdue",
        "reply.supervisor",
        "reply.coordinator",
    ]
    assert rig.stored(incident.id).overdue_at == msk(2026, 12, 2, 12, 0)


def test_a_run_is_bounded_and_says_more_are_pending() -> None:
    rig = Rig(msk(2026, 11, 27, 17, 0))
    for n in range(5):
        rig.routed(post_id=str(n))
    rig.remind.batch_size = 2
    rig.now = msk(2026, 11, 30, 15, 0)
    first = rig.remind.run(rig.now)
    assert len(first.steps) == 2 and first.more_pending
    second = rig.remind.run(rig.now)
    third = rig.remind.run(rig.now)
    assert len(second.steps) == 2 and len(third.steps) == 1 and not third.more_pending


def test_an_interim_answer_moves_remind_to_the_resolution_clock() -> None:
    rig = Rig(msk(2026, 11, 27, 17, 0))
    incident = rig.routed()
    rig.now = msk(2026, 11, 30, 10, 0)
    rig.responses.answer(
        rig.responses.actor("roads"), incident.id, "Разбираемся", interim=True, promised_by=date(2026, 12, 20)
    )
    stored = rig.stored(incident.id)
    assert stored.resolve_due_at == msk(2026, 12, 7, 10, 0)  # the interim grant: 7 days
    assert rig.run_at(msk(2026, 12, 7, 8, 0)) == [f"{incident.id} resolution.remind"]
    assert rig.run_at(msk(2026, 12, 7, 10, 0)) == [f"{incident.id} resolution.overdue"]


def test_undelivered_incidents_are_handed_back_to_route_after_a_while() -> None:
    rig = Rig(msk(2026, 11, 27, 17, 0))
    stuck = make_incident(
        "9", S.ROUTED, undelivered=True, routed_at=msk(2026, 11, 27, 16, 0), delivery={"roads/webhook": "sending"}
    )
    rig.incidents.create(stuck)
    report = rig.remind.run(msk(2026, 11, 27, 17, 0))
    assert report.redelivered == [stuck.id]
    [message] = rig.publisher.on("incidents")
    assert isinstance(message, IncidentClassifiedV1) and message.incident_id == stuck.id
