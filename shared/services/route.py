"""route: mark an incident routed to its departments with a reply deadline, and notify each department on
each of its channels exactly once (per notification record), however often the message is replayed."""

from __future__ import annotations

import logging
from collections.abc import Callable

from shared.contracts import IncidentAnsweredV1, IncidentClassifiedV1
from shared.domain.deadlines import Deadlines, schedule
from shared.domain.errors import PermanentError, TransientError
from shared.domain.lifecycle import record_event, transition
from shared.domain.models import (
    FINAL_NOTIFICATION_STATUSES,
    Channel,
    Department,
    Incident,
    IncidentStatus,
    NotificationStatus,
    Priority,
)
from shared.ports import (
    Clock,
    Delivery,
    DepartmentDirectory,
    IncidentRepository,
)
from shared.services.group_posts import PostGrouper
from shared.services.notify import Notifier, Outcome

log = logging.getLogger(__name__)
ACTOR = "route"
NEW_INCIDENT = "new_incident"
REROUTED = "rerouted"
DELIVERY_FAILED = "delivery_failed"
# Open and owned by its departments: each of them is told, even once another took it into work or the city
# answered the author in the thread (the problem itself is still theirs to fix).
ROUTABLE = frozenset({IncidentStatus.NEW, IncidentStatus.ROUTED, IncidentStatus.ACKNOWLEDGED, IncidentStatus.ANSWERED})
ANSWER = "answer"
REPLYING_SOURCES = frozenset({"vk"})  # networks where Otklik can comment under the author's post


class RouteService:
    def __init__(
        self,
        incidents: IncidentRepository,
        directory: DepartmentDirectory,
        notifier: Notifier,
        deadlines: Deadlines,
        clock: Clock,
        answer_url: Callable[[str, str], str | None] = lambda incident_id, department_id: None,
        grouping: PostGrouper | None = None,
    ) -> None:
        self.incidents = incidents
        self.directory = directory
        self.notifier = notifier
        self.deadlines = deadlines
        self.clock = clock
        self.answer_url = answer_url
        self.grouping = grouping

    def handle_answered(self, message: IncidentAnsweredV1) -> str:
        """Post the department's answer under the author's post, once (VK ``wall.createComment`` with a guid)."""
        incident = self.incidents.get(message.incident_id)
        if incident is None:
            raise PermanentError(f"incident {message.incident_id} does not exist")
        if message.answer_index >= len(incident.answers):
            raise PermanentError(f"incident {incident.id} has no answer {message.answer_index}")
        if incident.post.source not in REPLYING_SOURCES:
            return f"incident {incident.id}: {incident.post.source} takes no replies from us"
        answer = incident.answers[message.answer_index]
        department = self.directory.department(answer.department_id) or self.directory.department(
            self.directory.fallback
        )
        if department is None:
            raise PermanentError(f"no department {answer.department_id} to sign the answer")
        delivery = Delivery(department, incident, "", f"{ANSWER}.{message.answer_index}")
        outcome = self.notifier.send(delivery, Channel.COMMENT)
        if outcome.status is NotificationStatus.SENDING:
            raise TransientError(f"answer of {incident.id} not posted yet: {outcome.error}")
        return f"answer {message.answer_index} of {incident.id}: comment {outcome.status}"

    def handle(self, message: IncidentClassifiedV1) -> str:
        incident = self.incidents.get(message.incident_id)
        if incident is None:
            raise PermanentError(f"incident {message.incident_id} does not exist")
        if self.grouping is not None:
            folded = self._fold_into_twin(incident)
            if folded is not None:
                if incident.undelivered:  # merged after it was routed: its notifications are not needed any more
                    self._drop_delivery(incident)
                return folded
        if incident.status not in ROUTABLE:
            return self._drop_delivery(incident)
        # The departments of the incident as it is inside the transaction: classify may have raised its priority
        # (another resident's dangerous report) since it was read above, and critical ones have more owners.
        routed = self.incidents.update(incident.id, lambda i: self._mark_routed(i, self.directory.departments_for(i)))
        if routed is None:
            raise PermanentError(f"incident {message.incident_id} disappeared while routing")
        if routed.status not in ROUTABLE:
            return self._drop_delivery(routed)
        return self._notify_all(routed)

    def _drop_delivery(self, incident: Incident) -> str:
        """An incident closed, rejected, merged or found irrelevant while some department was still to be told:
        nobody has to act on it any more, so it stops being undelivered (or remind would hand it back for ever)."""
        if not incident.undelivered:
            return f"incident {incident.id} is {incident.status}: nothing to route"

        def settle(i: Incident) -> Incident | None:
            if not i.undelivered or i.status in ROUTABLE:
                return None
            note = f"{i.status} before every department was told; not sent: " + ", ".join(
                k for k, v in i.delivery.items() if v != NotificationStatus.SENT
            )
            return record_event(i, "delivery_dropped", at=self.clock(), actor=ACTOR, note=note[:500], undelivered=False)

        self.incidents.update(incident.id, settle)
        return f"incident {incident.id} is {incident.status}: its undelivered notifications are not needed any more"

    def _fold_into_twin(self, incident: Incident) -> str | None:
        """Two posts about one new problem classified at the same moment made two incidents (group_posts.py):
        the later becomes a report of the earlier, not a second card for the department. None: route it."""
        assert self.grouping is not None
        if incident.status is IncidentStatus.MERGED and incident.merged_into:
            grouped = self.grouping.attach(incident)  # a replay after folding: finish the count (a no-op if done)
        else:
            decision = self.grouping.earlier_twin(incident)
            if decision is None:
                return None
            outcome = self.grouping.fold(incident, decision, ACTOR)
            if outcome is None:
                return None  # routed meanwhile by another delivery of this message: finish that
            grouped = outcome
        parent = grouped.parent
        if parent is None:
            return f"incident {incident.id}: the incident it joined no longer exists"
        folded = f"incident {incident.id} is the same problem as {parent.id}: merged, {parent.residents} residents"
        if grouped.to_route is not None:
            # This report started a new round of its twin (a dangerous report made it critical): notify it.
            return f"{folded}; {self._notify_all(grouped.to_route)}"
        return folded

    def _mark_routed(self, incident: Incident, departments: list[Department]) -> Incident | None:
        if incident.status is not IncidentStatus.NEW:
            return None  # routed by an earlier delivery of this message: keep its time and deadline
        now = self.clock()
        names = ", ".join(d.id for d in departments)
        routed = transition(
            incident,
            IncidentStatus.ROUTED,
            at=now,
            actor=ACTOR,
            note=f"to {names}",
            department_ids=tuple(d.id for d in departments),
            routed_at=now,
            **self.deadlines.on_routing(incident, departments, now),
        )
        return routed.model_copy(update=schedule(self.deadlines, routed, departments))

    def _notify_all(self, incident: Incident) -> str:
        # The stored routing decides who hears about it: a redelivery after a config change still finishes
        # the notifications of the departments this incident was routed to, with their current contacts.
        kind = notification_kind(incident)
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
                outcomes[f"{dep_id}/{channel}"] = self.notifier.send(delivery, channel)
        self._record_delivery(incident, outcomes)
        retry = [f"{key}: {o.error}" for key, o in outcomes.items() if o.status is NotificationStatus.SENDING]
        if retry:
            # Everything else was sent and is recorded; the redelivery only finishes these.
            raise TransientError("; ".join(retry))
        return f"incident {incident.id} -> " + ", ".join(f"{k} {o.status}" for k, o in outcomes.items())

    def _record_delivery(self, incident: Incident, outcomes: dict[str, Outcome]) -> None:
        """Write each channel's state on the incident, so "undelivered" is visible to clerks and to remind, and
        tell the regional coordinator once about a channel that failed for good (a bounce, a dead URL)."""
        delivery = {key: str(o.status) for key, o in outcomes.items()}
        failed = {key: o.error or "" for key, o in outcomes.items() if o.status is NotificationStatus.FAILED}

        def change(current: Incident) -> Incident | None:
            if current.routing_round != incident.routing_round:
                return None  # a new round began meanwhile (re-routed, reopened, raised): these outcomes are stale
            # Whichever copy of the message records last: "sending" from one that found a channel claimed by
            # another worker does not undo that worker's "sent".
            merged = {
                **current.delivery,
                **{
                    k: v
                    for k, v in delivery.items()
                    if current.delivery.get(k) not in FINAL_NOTIFICATION_STATUSES or v != NotificationStatus.SENDING
                },
            }
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
                self.notifier.send(Delivery(coordinator, incident, "", kind, True, None), channel)


def notification_kind(incident: Incident) -> str:
    """A re-routed or reopened incident is a new notification (the department must hear of it); a replay is
    not: ``rerouted.1``, ``reopened.2``."""
    if incident.routing_round == 0:
        return NEW_INCIDENT
    return f"{incident.routing_reason}.{incident.routing_round}"
