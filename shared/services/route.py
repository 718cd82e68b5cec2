"""route: mark an incident routed to its departments with a reply deadline, and notify each department on
each of its channels exactly once (per notification record), however often the message is replayed."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.contracts import IncidentClassifiedV1
from shared.domain.errors import PermanentError, TransientError
from shared.domain.ids import notification_id_for
from shared.domain.lifecycle import record_event, transition
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
REROUTED = "rerouted"
DELIVERY_FAILED = "delivery_failed"


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
        answer_url: Callable[[str, str], str | None] = lambda incident_id, department_id: None,
    ) -> None:
        self.incidents = incidents
        self.directory = directory
        self.notifications = notifications
        self.senders = senders
        self.deadlines = deadlines
        self.clock = clock
        self.lease_seconds = lease_seconds
        self.answer_url = answer_url

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
        kind = notification_kind(incident.routing_round)
        urgent = incident.classification.danger or incident.classification.priority is Priority.CRITICAL
        outcomes: dict[str, Outcome] = {}
        for dep_id in incident.department_ids:
            department = self.directory.department(dep_id)
            if department is None:
                outcomes[f"{dep_id}/-"] = Outcome(
                    NotificationStatus.FAILED, f"routed to {dep_id!r}, which is no longer in the directory"
                )
                continue
            if not department.channels:
                outcomes[f"{dep_id}/-"] = Outcome(NotificationStatus.FAILED, "the department has no channel")
                continue
            # Every channel the department has, at once: for a dangerous incident the fast lane is this plus
            # the urgent mark; nothing waits for an earlier channel to succeed.
            answer_url = self.answer_url(incident.id, dep_id)
            for channel in department.channels:
                delivery = Delivery(department, incident, "", kind, urgent, answer_url)
                outcomes[f"{dep_id}/{channel}"] = self._notify(delivery, channel)
        self._record_delivery(incident, outcomes)
        retry = [f"{key}: {o.error}" for key, o in outcomes.items() if o.status is NotificationStatus.SENDING]
        if retry:
            # Everything else was sent and is recorded; the redelivery only finishes these.
            raise TransientError("; ".join(retry))
        return f"incident {incident.id} -> " + ", ".join(f"{k} {o.status}" for k, o in outcomes.items())

    def _notify(self, delivery: Delivery, channel: Channel) -> Outcome:
        department, incident = delivery.department, delivery.incident
        now = self.clock()
        nid = notification_id_for(incident.id, department.id, channel, delivery.kind)
        fresh = Notification(
            id=nid,
            incident_id=incident.id,
            department_id=department.id,
            channel=channel,
            kind=delivery.kind,
            status=NotificationStatus.SENDING,
        )
        claim = self.notifications.claim(fresh, self.lease_seconds, now)
        if claim.state is ClaimState.DONE:
            return Outcome(claim.notification.status, claim.notification.last_error)
        if claim.state is ClaimState.BUSY:
            # Another delivery of this message is sending it; come back to confirm it was sent.
            return Outcome(NotificationStatus.SENDING, f"{nid} is being sent by another worker")
        claimed = claim.notification
        sender = self.senders.get(channel)
        if sender is None:
            return self._save(claimed, NotificationStatus.FAILED, f"no sender configured for {channel}")
        try:
            sender.send(dataclasses.replace(delivery, event_id=nid))
        except PermanentError as exc:
            log.error("notification %s failed for good: %s", nid, exc)
            return self._save(claimed, NotificationStatus.FAILED, str(exc))
        except Exception as exc:
            log.warning("notification %s failed, will retry: %s", nid, exc)
            return self._save(claimed, NotificationStatus.SENDING, f"{type(exc).__name__}: {exc}", release=True)
        return self._save(claimed, NotificationStatus.SENT, None)

    def _save(self, n: Notification, status: NotificationStatus, error: str | None, release: bool = False) -> Outcome:
        update: dict[str, object] = {"status": status, "last_error": error}
        if status is NotificationStatus.SENT:
            update["sent_at"] = self.clock()
        if release:
            update["claimed_at"] = None  # let the redelivery try at once
        self.notifications.save(n.model_copy(update=update))
        return Outcome(status, error)

    def _record_delivery(self, incident: Incident, outcomes: dict[str, Outcome]) -> None:
        """Write each channel's state on the incident, so "undelivered" is visible to clerks and to remind, and
        tell the regional coordinator once about a channel that failed for good (a bounce, a dead URL)."""
        delivery = {key: str(o.status) for key, o in outcomes.items()}
        failed = {key: o.error or "" for key, o in outcomes.items() if o.status is NotificationStatus.FAILED}

        def change(current: Incident) -> Incident | None:
            merged = {**current.delivery, **delivery}
            undelivered = any(v != NotificationStatus.SENT for v in merged.values())
            new_failures = [k for k in failed if current.delivery.get(k) != NotificationStatus.FAILED]
            if merged == current.delivery and undelivered == current.undelivered and not new_failures:
                return None
            now = self.clock()
            updated = current.model_copy(update={"delivery": merged, "undelivered": undelivered, "updated_at": now})
            for key in new_failures:
                updated = record_event(updated, "delivery_failed", at=now, actor=ACTOR, note=f"{key}: {failed[key]}")
            return updated

        stored = self.incidents.update(incident.id, change)
        if failed and stored is not None:
            self._report_failures(stored, failed)

    def _report_failures(self, incident: Incident, failed: dict[str, str]) -> None:
        coordinator = self.directory.department(self.directory.fallback)
        if coordinator is None:
            return
        for key in failed:
            if key.startswith(f"{coordinator.id}/"):
                continue  # the coordinator's own channel failed: the other one, if any, still tells them
            kind = f"{DELIVERY_FAILED}.{key.replace('/', '.')}"
            for channel in coordinator.channels:
                self._notify(Delivery(coordinator, incident, "", kind, True, None), channel)


@dataclass(frozen=True)
class Outcome:
    status: NotificationStatus
    error: str | None


def notification_kind(routing_round: int) -> str:
    """A re-routed incident is a new notification (the new department must hear of it); a replay is not."""
    return NEW_INCIDENT if routing_round == 0 else f"{REROUTED}.{routing_round}"
