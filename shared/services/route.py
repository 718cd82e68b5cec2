"""route: mark an incident routed to its departments with a reply deadline, and notify each department on
each of its channels exactly once (per notification record), however often the message is replayed."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.contracts import IncidentClassifiedV1
from shared.domain.errors import PermanentError, TransientError
from shared.domain.ids import notification_id_for
from shared.domain.lifecycle import transition
from shared.domain.models import (
    Channel,
    Department,
    Incident,
    IncidentStatus,
    Notification,
    NotificationStatus,
    Priority,
)
from shared.ports import (
    ChannelSender,
    ClaimState,
    Clock,
    Delivery,
    DepartmentDirectory,
    IncidentRepository,
    NotificationLog,
)

log = logging.getLogger(__name__)
ACTOR = "route"
NEW_INCIDENT = "new_incident"


@dataclass(frozen=True)
class DeadlinePolicy:
    reply_hours: float
    critical_reply_hours: float

    def reply_due(self, routed_at: datetime, priority: Priority) -> datetime:
        hours = self.critical_reply_hours if priority is Priority.CRITICAL else self.reply_hours
        return routed_at + timedelta(hours=hours)


class RouteService:
    def __init__(
        self,
        incidents: IncidentRepository,
        directory: DepartmentDirectory,
        notifications: NotificationLog,
        senders: dict[Channel, ChannelSender],
        deadlines: DeadlinePolicy,
        clock: Clock,
        lease_seconds: float,
    ) -> None:
        self.incidents = incidents
        self.directory = directory
        self.notifications = notifications
        self.senders = senders
        self.deadlines = deadlines
        self.clock = clock
        self.lease_seconds = lease_seconds

    def handle(self, message: IncidentClassifiedV1) -> str:
        incident = self.incidents.get(message.incident_id)
        if incident is None:
            raise PermanentError(f"incident {message.incident_id} does not exist")
        if incident.status not in (IncidentStatus.NEW, IncidentStatus.ROUTED):
            return f"incident {incident.id} is {incident.status}: nothing to route"
        departments = self.directory.departments_for(incident)
        routed = self.incidents.update(incident.id, lambda i: self._mark_routed(i, departments))
        if routed is None:
            raise PermanentError(f"incident {message.incident_id} disappeared while routing")
        return self._notify_all(routed)

    def _mark_routed(self, incident: Incident, departments: list[Department]) -> Incident | None:
        if incident.status is not IncidentStatus.NEW:
            return None  # routed by an earlier delivery of this message: keep its time and deadline
        now = self.clock()
        names = ", ".join(d.id for d in departments)
        return transition(
            incident,
            IncidentStatus.ROUTED,
            at=now,
            actor=ACTOR,
            note=f"to {names}",
            department_ids=tuple(d.id for d in departments),
            routed_at=now,
            reply_due_at=self.deadlines.reply_due(now, incident.classification.priority),
        )

    def _notify_all(self, incident: Incident) -> str:
        # The stored routing decides who hears about it: a redelivery after a config change still finishes
        # the notifications of the departments this incident was routed to, with their current contacts.
        results: list[str] = []
        retry: list[str] = []
        for dep_id in incident.department_ids:
            department = self.directory.department(dep_id)
            if department is None:
                raise PermanentError(f"incident {incident.id} is routed to {dep_id!r}, which is no longer configured")
            for channel in department.channels:
                try:
                    results.append(self._notify(incident, department, channel))
                except TransientError as exc:
                    retry.append(f"{dep_id}/{channel}: {exc}")
        if retry:
            # Everything else was sent and is recorded; the redelivery only finishes these.
            raise TransientError("; ".join(retry))
        return f"incident {incident.id} -> " + ", ".join(results)

    def _notify(self, incident: Incident, department: Department, channel: Channel) -> str:
        now = self.clock()
        nid = notification_id_for(incident.id, department.id, channel, NEW_INCIDENT)
        fresh = Notification(
            id=nid,
            incident_id=incident.id,
            department_id=department.id,
            channel=channel,
            kind=NEW_INCIDENT,
            status=NotificationStatus.SENDING,
        )
        claim = self.notifications.claim(fresh, self.lease_seconds, now)
        if claim.state is ClaimState.DONE:
            return f"{department.id}/{channel} already {claim.notification.status}"
        if claim.state is ClaimState.BUSY:
            # Another delivery of this message is sending it; come back to confirm it was sent.
            raise TransientError(f"{nid} is being sent by another worker")
        claimed = claim.notification
        sender = self.senders.get(channel)
        if sender is None:
            self._save(claimed, NotificationStatus.FAILED, f"no sender configured for {channel}")
            return f"{department.id}/{channel} failed"
        try:
            sender.send(Delivery(department=department, incident=incident, event_id=nid))
        except PermanentError as exc:
            self._save(claimed, NotificationStatus.FAILED, str(exc))
            log.error("notification %s failed for good: %s", nid, exc)
            return f"{department.id}/{channel} failed"
        except Exception as exc:
            self._save(claimed, NotificationStatus.SENDING, f"{type(exc).__name__}: {exc}", release=True)
            raise TransientError(str(exc)) from exc
        self._save(claimed, NotificationStatus.SENT, None)
        return f"{department.id}/{channel} sent"

    def _save(self, n: Notification, status: NotificationStatus, error: str | None, release: bool = False) -> None:
        update: dict[str, object] = {"status": status, "last_error": error}
        if status is NotificationStatus.SENT:
            update["sent_at"] = self.clock()
        if release:
            update["claimed_at"] = None  # let the redelivery try at once
        self.notifications.save(n.model_copy(update=update))
