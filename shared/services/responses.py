"""The way back: what a department does with an incident routed to it — take it into work, answer the author
(an interim answer with a promised date counts as the first reply), resolve it, or hand it on with a reason —
and what the regional coordinator does when the classifier got it wrong: correct the category or municipality,
which re-routes the incident and notifies the new department.

Every action is checked against who acts: a department sees and acts on its own incidents only; the
coordinator (the directory's fallback) on all. Re-routing bumps ``routing_round`` and publishes the incident
for route again, which then sends the new department a ``rerouted.N`` notification exactly once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from shared.contracts import IncidentAnsweredV1, incident_classified
from shared.domain.deadlines import Deadlines, schedule
from shared.domain.lifecycle import record_event, transition
from shared.domain.models import Answer, Incident, IncidentStatus
from shared.ports import Clock, DepartmentDirectory, IncidentRepository, Publisher
from shared.services.routing import departments_of

S = IncidentStatus
MAX_ANSWER_CHARS = 4000  # Answer.text's limit


class ActionError(Exception):
    """An action refused; ``status`` is the HTTP status the API answers with."""

    status = 400


class AccessDenied(ActionError):
    status = 403


class NoSuchIncident(ActionError):
    status = 404


class ActionRefused(ActionError):
    """Not possible in the incident's state (answering a closed incident, ...)."""

    status = 409


@dataclass(frozen=True)
class Actor:
    department_id: str
    coordinator: bool
    via: str = "api"  # api, answer-page: recorded in the history

    @property
    def name(self) -> str:
        return f"{self.department_id} ({self.via})"


class ResponseService:
    def __init__(
        self,
        incidents: IncidentRepository,
        directory: DepartmentDirectory,
        publisher: Publisher,
        topic_incidents: str,
        clock: Clock,
        deadlines: Deadlines,
    ) -> None:
        self.deadlines = deadlines
        self.incidents = incidents
        self.directory = directory
        self.publisher = publisher
        self.topic_incidents = topic_incidents
        self.clock = clock

    def actor(self, department_id: str, via: str = "api") -> Actor:
        if self.directory.department(department_id) is None:
            raise AccessDenied(f"department {department_id!r} is not in the directory")
        return Actor(department_id, department_id == self.directory.fallback, via)

    def view(self, actor: Actor, incident_id: str) -> Incident:
        incident = self.incidents.get(incident_id)
        if incident is None:
            raise NoSuchIncident(f"no incident {incident_id}")
        if not actor.coordinator and actor.department_id not in incident.department_ids:
            # The same answer as for a missing one would hide existence; a clerk is better served by the truth.
            raise AccessDenied(f"incident {incident_id} is not routed to {actor.department_id}")
        return incident

    # --- department actions ---------------------------------------------------------------------------

    def acknowledge(self, actor: Actor, incident_id: str) -> Incident:
        self.view(actor, incident_id)

        def change(i: Incident) -> Incident | None:
            if i.status is not S.ROUTED:
                return None  # already taken into work or answered: acknowledging again changes nothing
            now = self.clock()
            return transition(i, S.ACKNOWLEDGED, at=now, actor=actor.name, note="taken into work", acknowledged_at=now)

        return self._update(incident_id, change)

    def answer(
        self,
        actor: Actor,
        incident_id: str,
        text: str,
        interim: bool = False,
        promised_by: date | None = None,
        request_key: str | None = None,
    ) -> Incident:
        text = text.strip()
        if not text:
            raise ActionError("the answer text is empty")
        if len(text) > MAX_ANSWER_CHARS:  # refused here, not by Answer's validation inside the update (a 500)
            raise ActionError(f"the answer is longer than {MAX_ANSWER_CHARS} characters")
        if interim and promised_by is None:
            raise ActionError("an interim answer needs promised_by: the date the full answer will come")
        self.view(actor, incident_id)

        which: list[int] = []  # the index of this request's answer

        def change(i: Incident) -> Incident | None:
            earlier = [n for n, a in enumerate(i.answers) if request_key and a.request_key == request_key]
            which[:] = earlier or [len(i.answers)]
            if earlier:
                return None  # the same request again (a double click, a client's retry)
            if i.status not in (S.ROUTED, S.ACKNOWLEDGED, S.ANSWERED):
                raise ActionRefused(f"incident {i.id} is {i.status}: it cannot be answered")
            now = self.clock()
            answer = Answer(
                text=text,
                at=now,
                department_id=actor.department_id,
                interim=interim,
                promised_by=promised_by,
                request_key=request_key,
            )
            changes: dict[str, object] = {"answers": (*i.answers, answer)}
            if i.first_reply_at is None:
                changes["first_reply_at"] = now
            if interim:
                # The full answer is now due within the interim grant (or by the promised date, if sooner).
                changes["resolve_due_at"] = self.deadlines.interim_resolution(now, promised_by)
                changes["resolve_level"] = 0
            note = f"interim answer, full answer promised by {promised_by}" if interim else "answer"
            if i.status is S.ANSWERED:
                return self._scheduled(record_event(i, "answer", at=now, actor=actor.name, note=note, **changes))
            return self._scheduled(transition(i, S.ANSWERED, at=now, actor=actor.name, note=note, **changes))

        updated = self._update(incident_id, change)
        # Route posts it under the author's post where the network allows. Published again on a resent request
        # too (the first publish may have been lost): route's notification record makes it one comment.
        [index] = which
        posted = IncidentAnsweredV1(incident_id=updated.id, answer_index=index, answered_at=updated.answers[index].at)
        self.publisher.publish(self.topic_incidents, [posted])
        return updated

    def resolve(
        self, actor: Actor, incident_id: str, text: str | None = None, request_key: str | None = None
    ) -> Incident:
        """Close as solved. With ``text`` it is also the answer to the author (if none was given yet, it is the
        first reply too)."""
        if text and text.strip():
            self.answer(actor, incident_id, text, request_key=request_key)
        incident = self.view(actor, incident_id)
        if incident.status is S.CLOSED:
            return incident
        if incident.status is not S.ANSWERED:
            raise ActionRefused(f"incident {incident_id} has no answer yet: answer the author before resolving")

        def change(i: Incident) -> Incident | None:
            if i.status is S.CLOSED:
                return None
            now = self.clock()
            closed = transition(i, S.CLOSED, at=now, actor=actor.name, note="resolved", resolved_at=now)
            return self._scheduled(closed)

        return self._update(incident_id, change)

    def reassign(self, actor: Actor, incident_id: str, reason: str, to_department: str | None = None) -> Incident:
        """ "Not ours": hand the incident to ``to_department`` (or back to the coordinator) with a reason."""
        reason = reason.strip()
        if not reason:
            raise ActionError("say why the incident is not yours (reason)")
        target = to_department or self.directory.fallback
        if self.directory.department(target) is None:
            raise ActionError(f"no department {target!r} in the directory")
        self.view(actor, incident_id)
        note = f"reassigned by {actor.department_id} to {target}: {reason}"

        def departments(i: Incident) -> tuple[str, ...]:
            return (target,)

        return self._reroute(incident_id, actor, departments, note)

    # --- coordinator actions --------------------------------------------------------------------------

    def correct(
        self,
        actor: Actor,
        incident_id: str,
        category: str | None = None,
        municipality: str | None = None,
        reason: str = "",
    ) -> Incident:
        """Fix what the classifier decided; the incident goes to whoever owns the corrected one."""
        if not actor.coordinator:
            raise AccessDenied("only the regional coordinator corrects classifications")
        if category is None and municipality is None:
            raise ActionError("give a category or a municipality to correct")
        incident = self.view(actor, incident_id)
        c = incident.classification
        corrected = c.model_copy(
            update={
                "category": category or c.category,
                "municipality": municipality or c.municipality,
                "evidence": (*c.evidence, f"operator: corrected by {actor.department_id}"),
            }
        )
        changes = []
        if corrected.category != c.category:
            changes.append(f"category {c.category} -> {corrected.category}")
        if corrected.municipality != c.municipality:
            changes.append(f"municipality {c.municipality} -> {corrected.municipality}")
        if not changes:
            return incident
        note = "corrected: " + ", ".join(changes) + (f" ({reason.strip()})" if reason.strip() else "")

        def departments(i: Incident) -> tuple[str, ...]:
            return tuple(d.id for d in self.directory.departments_for(i))

        return self._reroute(incident_id, actor, departments, note, classification=corrected)

    # --- helpers --------------------------------------------------------------------------------------

    def _reroute(
        self,
        incident_id: str,
        actor: Actor,
        departments: Callable[[Incident], tuple[str, ...]],
        note: str,
        **changes: object,
    ) -> Incident:
        moved: list[bool] = []

        def change(i: Incident) -> Incident | None:
            if i.status is S.MERGED:
                raise ActionRefused(f"incident {i.id} is merged into {i.merged_into}: correct that one, or split it")
            if i.status in (S.CLOSED, S.IRRELEVANT, S.REJECTED):
                raise ActionRefused(f"incident {i.id} is {i.status}: reopen it before re-routing")
            now = self.clock()
            candidate = Incident.model_validate({**dict(i), **changes}) if changes else i
            targets = departments(candidate)
            if set(targets) == set(i.department_ids):
                moved.append(False)
                return record_event(candidate, "corrected", at=now, actor=actor.name, note=note + "; same departments")
            moved.append(True)
            rerouted = transition(
                candidate,
                S.ROUTED,
                at=now,
                actor=actor.name,
                note=note,
                department_ids=targets,
                routing_round=i.routing_round + 1,
                # Undelivered until route confirms: if the publish below is lost, remind still sees it.
                undelivered=True,
                delivery={},
                routed_at=now,
                routing_reason="rerouted",
            )
            # The author's clocks keep running: the new department inherits the deadlines, not a fresh start.
            return self._scheduled(rerouted)

        updated = self._update(incident_id, change)
        if moved and moved[-1]:
            self.publisher.publish(self.topic_incidents, [incident_classified(updated)])
        return updated

    def _scheduled(self, incident: Incident) -> Incident:
        departments = departments_of(self.directory, incident)
        return incident.model_copy(update=schedule(self.deadlines, incident, departments))

    def _update(self, incident_id: str, change: Callable[[Incident], Incident | None]) -> Incident:
        updated = self.incidents.update(incident_id, change)
        if updated is None:
            raise NoSuchIncident(f"no incident {incident_id}")
        return updated
