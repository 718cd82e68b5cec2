"""Deadlines and the escalation ladder (config/deadlines.yaml): two clocks per incident — a first reply and a
resolution — by priority and category, counted in the department's working time; and the steps remind takes
when a clock runs out: remind the department, flag it overdue, tell the supervisor, then the coordinator.

Pure: given an incident, a policy and the working clocks, say when remind should look next and what to do
then. Every writer of an incident (route, the department API, remind) stores ``next_check_at`` from here, so
remind's one query is "next_check_at <= now".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from shared.domain.models import Department, Incident, IncidentStatus, Priority
from shared.domain.worktime import Duration, ProductionCalendar, WorkingClock

S = IncidentStatus


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClockRule(_Config):
    """The two clocks for incidents of this priority and/or category (None: any)."""

    priority: Priority | None = None
    category: str | None = None
    first_reply: Duration
    resolution: Duration

    @property
    def specificity(self) -> int:
        return (self.priority is not None) + (self.category is not None)


class Escalation(_Config):
    remind_before_hours: float = Field(default=2.0, ge=0, description="remind the department this long before")
    supervisor_after: Duration = Duration(working_hours=4)
    coordinator_after: Duration = Duration(working_days=1)


class DeadlinePolicy(_Config):
    rules: tuple[ClockRule, ...] = Field(min_length=1)
    interim_grants: Duration = Duration(days=7)
    escalation: Escalation = Escalation()

    def model_post_init(self, __context: object) -> None:
        if not any(r.specificity == 0 for r in self.rules):
            raise ValueError("rules need a default: one rule with neither priority nor category")

    def rule_for(self, category: str, priority: Priority) -> ClockRule:
        matching = [
            r
            for r in self.rules
            if (r.priority is None or r.priority == priority) and (r.category is None or r.category == category)
        ]
        return max(matching, key=lambda r: r.specificity)  # the default always matches


class Step(StrEnum):
    REMIND = "remind"  # the deadline is near
    OVERDUE = "overdue"  # the deadline passed: flag it, tell the department
    SUPERVISOR = "supervisor"
    COORDINATOR = "coordinator"


LADDER = (Step.REMIND, Step.OVERDUE, Step.SUPERVISOR, Step.COORDINATOR)


@dataclass(frozen=True)
class Due:
    clock: str  # "reply" or "resolution"
    due: datetime
    level: int  # steps of LADDER already taken on this clock
    step: Step
    at: datetime  # when that step is due


ClockFor = Callable[[Department | None], WorkingClock]


class Deadlines:
    def __init__(self, policy: DeadlinePolicy, calendar: ProductionCalendar) -> None:
        self.policy = policy
        self.calendar = calendar

    def clock(self, department: Department | None) -> WorkingClock:
        if department is None:
            from shared.domain.models import WorkingHours

            return WorkingClock(self.calendar, WorkingHours(), "Europe/Moscow")
        return WorkingClock(self.calendar, department.working_hours, department.timezone)

    def due(self, start: datetime, departments: list[Department], duration: Duration) -> datetime:
        """The earliest among the departments' clocks: the author waits for the fastest to answer."""
        if not departments:
            return self.clock(None).add(start, duration)
        return min(self.clock(d).add(start, duration) for d in departments)

    def on_routing(self, incident: Incident, departments: list[Department], at: datetime) -> dict[str, object]:
        rule = self.policy.rule_for(incident.classification.category, incident.classification.priority)
        return {
            "reply_due_at": self.due(at, departments, rule.first_reply),
            "resolve_due_at": self.due(at, departments, rule.resolution),
            "reply_level": 0,
            "resolve_level": 0,
        }

    def interim_resolution(self, answered_at: datetime, promised_by: date | None) -> datetime:
        """An interim answer grants ``interim_grants`` for the full answer (a promised date, if sooner)."""
        granted = answered_at + timedelta(days=self.policy.interim_grants.days or 0)
        if self.policy.interim_grants.unit != "days":
            granted = self.clock(None).add(answered_at, self.policy.interim_grants)
        if promised_by is not None:
            promised = datetime.combine(promised_by, time(23, 59), UTC)
            return min(granted, promised) if promised > answered_at else granted
        return granted

    def next_step(self, incident: Incident, departments: list[Department]) -> Due | None:
        """What remind does next on this incident and when; None when nothing is pending."""
        replied = incident.first_reply_at is not None
        if incident.status in (S.ROUTED, S.ACKNOWLEDGED) and not replied and incident.reply_due_at is not None:
            return self._ladder("reply", incident.reply_due_at, incident.reply_level, departments, incident.routed_at)
        open_after_reply = incident.status is S.ANSWERED or (replied and incident.status in (S.ROUTED, S.ACKNOWLEDGED))
        if open_after_reply and incident.resolve_due_at is not None:
            started = incident.answers[-1].at if incident.answers else None
            return self._ladder("resolution", incident.resolve_due_at, incident.resolve_level, departments, started)
        return None

    def _ladder(
        self, clock: str, due: datetime, level: int, departments: list[Department], started: datetime | None
    ) -> Due | None:
        e = self.policy.escalation
        if level == 0 and started is not None and due - timedelta(hours=e.remind_before_hours) <= started:
            level = 1  # a clock shorter than the reminder's lead (a critical incident): no reminder, the notice was one
        if level >= len(LADDER):
            return None
        step = LADDER[level]
        if step is Step.REMIND:
            at = due - timedelta(hours=e.remind_before_hours)
        elif step is Step.OVERDUE:
            at = due
        elif step is Step.SUPERVISOR:
            at = self.due(due, departments, e.supervisor_after)
        else:
            at = self.due(due, departments, e.coordinator_after)
        return Due(clock, due, level, step, at)


def schedule(deadlines: Deadlines, incident: Incident, departments: list[Department]) -> dict[str, object]:
    """``next_check_at`` for the incident as it is now (None: remind has nothing to do with it)."""
    step = deadlines.next_step(incident, departments)
    return {"next_check_at": step.at if step else None}
