"""remind: walk the escalation ladder of every incident whose ``next_check_at`` has come — remind the department
before the deadline, flag it overdue and tell the department at the deadline, then its supervisor, then the
regional coordinator — and hand undelivered incidents back to route.

Bounded: at most ``batch_size`` incidents per run; the rest wait for the next run (``more_pending``).
Exactly once: each step's messages are notifications with their own ids (claimed before sending, see
services/notify.py), and the step is recorded on the incident in a transaction that re-checks it was not
recorded meanwhile — two runs at once, or a retried run, send nothing twice and record each step once. A step
whose message could not be sent yet (a receiver down) is not recorded: the next run tries again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from shared.contracts import incident_classified
from shared.domain.deadlines import LADDER, Deadlines, Due, Step, schedule
from shared.domain.lifecycle import record_event
from shared.domain.models import Channel, Department, Incident, NotificationStatus
from shared.ports import Delivery, DepartmentDirectory, IncidentRepository, Publisher
from shared.services.notify import Notifier, Outcome
from shared.services.route import REPLYING_SOURCES
from shared.services.routing import departments_of

log = logging.getLogger(__name__)
ACTOR = "remind"
FOLLOWUP = "followup"

STEP_EVENTS = {
    Step.REMIND: "reminder",
    Step.OVERDUE: "overdue",
    Step.SUPERVISOR: "escalated_to_supervisor",
    Step.COORDINATOR: "escalated_to_coordinator",
}


@dataclass
class RemindReport:
    now: datetime
    checked: int = 0
    steps: list[str] = field(default_factory=list)  # "<incident> <clock>.<step>"
    flagged: list[str] = field(default_factory=list)  # incidents newly flagged overdue
    waiting: list[str] = field(default_factory=list)  # a step whose message is still being retried
    redelivered: list[str] = field(default_factory=list)  # undelivered incidents handed back to route
    more_pending: bool = False


class RemindService:
    def __init__(
        self,
        incidents: IncidentRepository,
        directory: DepartmentDirectory,
        notifier: Notifier,
        deadlines: Deadlines,
        publisher: Publisher,
        topic_incidents: str,
        batch_size: int,
        undelivered_after: timedelta = timedelta(minutes=30),
    ) -> None:
        self.incidents = incidents
        self.directory = directory
        self.notifier = notifier
        self.deadlines = deadlines
        self.publisher = publisher
        self.topic_incidents = topic_incidents
        self.batch_size = batch_size
        self.undelivered_after = undelivered_after

    def run(self, now: datetime) -> RemindReport:
        report = RemindReport(now=now)
        candidates = self.incidents.due_for_check(now, self.batch_size)
        report.checked = len(candidates)
        report.more_pending = len(candidates) == self.batch_size
        for candidate in candidates:
            # Catch up: a step that came due while an earlier one was pending (a critical incident's reminder and
            # its deadline, a run that was missed) is taken in the same run, one at a time.
            current: Incident | None = candidate
            for _ in range(len(LADDER) * 2):
                if current is None or not self._advance(current, now, report):
                    break
                current = self.incidents.get(candidate.id)
        self._redeliver(now, report)
        log.info(
            "remind run",
            extra={
                "json_fields": {"checked": report.checked, "steps": len(report.steps), "waiting": len(report.waiting)}
            },
        )
        return report

    # --- the ladder -----------------------------------------------------------------------------------

    def _departments(self, incident: Incident) -> list[Department]:
        return departments_of(self.directory, incident)

    def _advance(self, candidate: Incident, now: datetime, report: RemindReport) -> bool:
        """Take the step due on this incident, if any; True if one was recorded."""
        departments = self._departments(candidate)
        due = self.deadlines.next_step(candidate, departments)
        if due is None or due.at > now:
            # Answered, closed or re-planned since it was scheduled: only its next check moves.
            self.incidents.update(candidate.id, lambda i: self._rescheduled(i, departments))
            return False
        outcomes = self._send(candidate, due, departments)
        if any(o.status is NotificationStatus.SENDING for o in outcomes):
            report.waiting.append(candidate.id)
            return False  # not recorded: the next run sends what is missing (nothing twice) and then records it
        recorded: list[bool] = []

        def change(i: Incident) -> Incident | None:
            # Re-checked in the transaction: another run may have recorded this step, or the clerk answered.
            current = self.deadlines.next_step(i, departments)
            recorded[:] = []
            if current is None or (current.clock, current.level) != (due.clock, due.level) or current.at > now:
                return self._rescheduled(i, departments)
            recorded.append(True)
            return self._recorded(i, due, now, departments, outcomes)

        self.incidents.update(candidate.id, change)
        if recorded:
            report.steps.append(f"{candidate.id} {due.clock}.{due.step}")
            if due.step is Step.OVERDUE and due.clock == "reply":
                report.flagged.append(candidate.id)
        return bool(recorded)

    def _recorded(
        self, i: Incident, due: Due, now: datetime, departments: list[Department], outcomes: list[Outcome]
    ) -> Incident:
        level = {"reply_level": due.level + 1} if due.clock == "reply" else {"resolve_level": due.level + 1}
        changes: dict[str, object] = dict(level)
        if due.step is Step.OVERDUE:
            changes.update(overdue=True, overdue_at=now)
        if self._asks_author(i, due) and any(o.channel is Channel.COMMENT for o in outcomes):
            changes.update(followup_asked_at=now)
        failed = [o.error for o in outcomes if o.status is NotificationStatus.FAILED]
        clock_name = "first reply" if due.clock == "reply" else "resolution"
        note = f"{clock_name} due {due.due.isoformat()}" + (
            f"; not delivered: {'; '.join(map(str, failed))}" if failed else ""
        )
        stepped = record_event(i, f"{STEP_EVENTS[due.step]}", at=now, actor=ACTOR, note=note, **changes)
        return stepped.model_copy(update=schedule(self.deadlines, stepped, departments))

    def _rescheduled(self, i: Incident, departments: list[Department]) -> Incident | None:
        planned = schedule(self.deadlines, i, departments)
        return None if planned["next_check_at"] == i.next_check_at else i.model_copy(update=planned)

    def _send(self, incident: Incident, due: Due, departments: list[Department]) -> list[Outcome]:
        kind = f"{due.clock}.{due.step}.r{incident.routing_round}"
        urgent = due.step is not Step.REMIND
        targets = self._targets(due.step, departments)
        outcomes = []
        for target in targets:
            for channel in target.channels:
                outcomes.append(self.notifier.send(Delivery(target, incident, "", kind, urgent, None), channel))
        if self._asks_author(incident, due) and departments:
            # "Is it fixed?" under the author's post. Failing for good (comments closed) does not hold the step.
            ask = Delivery(departments[0], incident, "", f"{FOLLOWUP}.r{incident.routing_round}")
            asked = self.notifier.send(ask, Channel.COMMENT)
            if asked.status is not NotificationStatus.FAILED:
                outcomes.append(asked)
        return outcomes

    @staticmethod
    def _asks_author(incident: Incident, due: Due) -> bool:
        return (
            due.clock == "resolution"
            and due.step is Step.OVERDUE
            and incident.status == "answered"
            and incident.followup_asked_at is None
            and incident.post.source in REPLYING_SOURCES
        )

    def _targets(self, step: Step, departments: list[Department]) -> list[Department]:
        if step in (Step.REMIND, Step.OVERDUE):
            return departments
        if step is Step.SUPERVISOR:
            # The supervisor hears by e-mail, addressed as a department of one so the same channel code serves.
            return [
                Department(
                    id=f"{d.id}-supervisor",
                    name=f"{d.supervisor.name} ({d.name})",
                    email=d.supervisor.email,
                    timezone=d.timezone,
                )
                for d in departments
                if d.supervisor is not None
            ]
        coordinator = self.directory.department(self.directory.fallback)
        return [coordinator] if coordinator is not None else []

    # --- undelivered ------------------------------------------------------------------------------------

    def _redeliver(self, now: datetime, report: RemindReport) -> None:
        """Incidents some department has not received for ``undelivered_after``: route gets them again and
        finishes what is still being retried (a failed-for-good channel was already reported)."""
        stuck = self.incidents.undelivered_since(now - self.undelivered_after, self.batch_size)
        retry = [
            i for i in stuck if any(v == NotificationStatus.SENDING for v in i.delivery.values()) or not i.delivery
        ]
        if not retry:
            return
        self.publisher.publish(self.topic_incidents, [incident_classified(i) for i in retry])
        report.redelivered.extend(i.id for i in retry)
