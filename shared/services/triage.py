"""Operator triage: what the regional operator (the coordinator) sees and fixes by hand.

- **the queue**: incidents waiting for someone (new, routed, acknowledged, answered), filtered by category,
  municipality, priority, status and overdue, the most urgent first: critical, then overdue, then the oldest;
- **correct** the category or municipality (re-routes: ``ResponseService.correct``);
- **not a complaint**: the classifier was wrong; the incident becomes ``irrelevant`` (remind stops) and the
  post goes to the labelled corpus's feedback (``corpus_feedback``, exported by ``otklik corpus-feedback``);
- **danger**: an immediate hazard to people or not. Dangerous makes it critical, and one already routed starts
  a new routing round (``marked_dangerous.N``, urgent: the duty service that takes critical incidents hears of
  it, as when a resident's dangerous report raises it in grouping); not dangerous lowers critical back (normal, high
  from three residents) without re-routing. Both go to ``corpus_feedback`` with the danger label;
- **merge** incident A into B (the same problem grouping missed): A's post and reports move to B as reports, A
  becomes ``merged``; **split** a merged post out into an incident of its own, routed like a new one.

Both writes of a merge or split are idempotent and ordered so that a retry after a failure finishes the job:
the incident that receives (or loses) the reports is updated first, then the other.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from shared.contracts import incident_classified
from shared.domain.deadlines import schedule
from shared.domain.lifecycle import new_routing_round, record_event, transition
from shared.domain.models import Incident, IncidentStatus, Priority, Report
from shared.ports import Clock, IncidentRepository, Publisher
from shared.services.group_posts import count_residents, grouping_fields, raised_priority
from shared.services.grouping import key_of_post
from shared.services.responses import AccessDenied, ActionError, ActionRefused, Actor, NoSuchIncident, ResponseService
from shared.services.routing import departments_of

S = IncidentStatus
QUEUE_STATUSES = (S.NEW, S.ROUTED, S.ACKNOWLEDGED, S.ANSWERED)
QUEUE_DAYS = 90  # how far back the queue looks; older open incidents are the digest's and reports' business
QUEUE_LIMIT = 2000
PRIORITY_RANK = {Priority.CRITICAL: 0, Priority.HIGH: 1, Priority.NORMAL: 2, Priority.LOW: 3}
MARKED_DANGEROUS = "marked_dangerous"  # the routing reason of a round the operator started by marking danger
# Incidents whose danger is no longer anyone's business, and why (the operator reads it on the page, in Russian).
DANGER_REFUSED = {
    S.CLOSED: "уже решено и закрыто",
    S.REJECTED: "отклонено",
    S.IRRELEVANT: "отмечено как не обращение",
    S.MERGED: "объединено с другим обращением",
}


class OpenIncidentsInRange(Protocol):
    def created_in_range_page(
        self, statuses: tuple[IncidentStatus, ...], start: datetime, end: datetime, limit: int
    ) -> list[Incident]: ...


class CorpusFeedback(Protocol):
    def put(self, incident_id: str, record: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class QueueFilter:
    category: str | None = None
    municipality: str | None = None
    priority: str | None = None
    status: str | None = None
    overdue: bool = False

    def admits(self, i: Incident, now: datetime) -> bool:
        c = i.classification
        return (
            (self.category is None or c.category == self.category)
            and (self.municipality is None or (c.municipality or i.post.municipality_hint) == self.municipality)
            and (self.priority is None or c.priority == self.priority)
            and (self.status is None or i.status == self.status)
            and (not self.overdue or is_overdue(i, now))
        )


def is_overdue(i: Incident, now: datetime) -> bool:
    """Flagged by remind, or a deadline passed that remind has not looked at yet."""
    if i.overdue:
        return True
    if i.status is S.ANSWERED:
        return i.resolve_due_at is not None and i.resolve_due_at <= now
    return i.first_reply_at is None and i.reply_due_at is not None and i.reply_due_at <= now


def ordered_queue(incidents: Iterable[Incident], wanted: QueueFilter, now: datetime) -> list[Incident]:
    found = [i for i in incidents if i.status in QUEUE_STATUSES and wanted.admits(i, now)]
    return sorted(
        found,
        key=lambda i: (PRIORITY_RANK.get(i.classification.priority, 9), not is_overdue(i, now), i.created_at, i.id),
    )


def feedback_record(incident: Incident, actor: Actor, at: datetime, **label: Any) -> dict[str, Any]:
    """A corpus line (corpus/*.jsonl's fields) with what the operator decided, and where it came from."""
    c = incident.classification
    return {
        "id": f"fb-{incident.id}",
        "text": incident.post.text,
        "source": incident.post.source,
        "is_complaint": label.get("is_complaint", c.is_complaint),
        "category": label.get("category", c.category),
        "danger": label.get("danger", c.danger),
        "municipality": label.get("municipality", c.municipality),
        "places": list(c.places),
        "classifier_said": {
            "is_complaint": c.is_complaint,
            "category": c.category,
            "danger": c.danger,
            "municipality": c.municipality,
        },
        "by": actor.department_id,
        "at": at,
    }


def priority_when_dangerous(incident: Incident, dangerous: bool) -> Priority:
    """The incident's priority once the operator has said whether it is dangerous. Dangerous: critical (an
    immediate hazard to people). Not dangerous: a critical one comes down to normal, or high when enough residents
    wrote (grouping's rule, :func:`raised_priority`); any other priority stays."""
    c = incident.classification
    if dangerous:
        return Priority.CRITICAL
    if c.priority is not Priority.CRITICAL:
        return c.priority
    calm = c.model_copy(update={"danger": False, "priority": Priority.NORMAL})
    return raised_priority(Priority.NORMAL, incident.residents, calm)


CORPUS_FIELDS = ("id", "text", "source", "is_complaint", "category", "danger", "municipality", "places")


def corpus_lines(records: Iterable[dict[str, Any]], municipality_names: dict[str, str]) -> list[dict[str, Any]]:
    """Feedback records as ``corpus/*.jsonl`` lines (municipality by its Russian name, as the corpus has it),
    oldest verdict first; ``make train`` learns from them once they are saved under corpus/."""
    ordered = sorted(records, key=lambda r: (str(r.get("at", "")), str(r.get("id", ""))))
    lines = []
    for record in ordered:
        line = {field: record.get(field) for field in CORPUS_FIELDS}
        municipality = line["municipality"]
        line["municipality"] = municipality_names.get(municipality, municipality) if municipality else None
        line["places"] = list(line["places"] or [])
        lines.append(line)
    return lines


class TriageService:
    def __init__(
        self,
        responses: ResponseService,
        incidents: IncidentRepository,
        in_range: OpenIncidentsInRange,
        feedback: CorpusFeedback,
        publisher: Publisher,
        topic_incidents: str,
        clock: Clock,
    ) -> None:
        self.responses = responses
        self.incidents = incidents
        self.in_range = in_range
        self.feedback = feedback
        self.publisher = publisher
        self.topic = topic_incidents
        self.clock = clock

    def operator(self, department_id: str) -> Actor:
        actor = self.responses.actor(department_id, via="triage")
        if not actor.coordinator:
            raise AccessDenied("triage is the regional coordinator's")
        return actor

    def queue(self, wanted: QueueFilter, page: int = 500) -> list[Incident]:
        """Open incidents of the last :data:`QUEUE_DAYS`, read page by page (oldest first), filtered and ordered."""
        now = self.clock()
        start, end = now - timedelta(days=QUEUE_DAYS), now + timedelta(seconds=1)
        found: dict[str, Incident] = {}
        while len(found) < QUEUE_LIMIT:
            batch = self.in_range.created_in_range_page(QUEUE_STATUSES, start, end, page)
            fresh = [i for i in batch if i.id not in found]
            found.update((i.id, i) for i in fresh)
            if len(batch) < page or not fresh:
                break
            start = batch[-1].created_at  # the next page from the last one's time (ids seen are skipped)
        return ordered_queue(found.values(), wanted, now)

    def incident(self, incident_id: str) -> Incident:
        incident = self.incidents.get(incident_id)
        if incident is None:
            raise NoSuchIncident(f"no incident {incident_id}")
        return incident

    def correct(
        self, actor: Actor, incident_id: str, category: str | None, municipality: str | None, reason: str
    ) -> Incident:
        before = self.incident(incident_id)
        after = self.responses.correct(actor, incident_id, category, municipality, reason)
        if after.classification != before.classification:
            label = {"category": after.classification.category, "municipality": after.classification.municipality}
            self.feedback.put(after.id, feedback_record(before, actor, self.clock(), **label))
        return after

    def not_a_complaint(self, actor: Actor, incident_id: str, reason: str) -> Incident:
        def change(i: Incident) -> Incident | None:
            if i.status is S.IRRELEVANT:
                return None
            if i.status not in (S.NEW, S.ROUTED):
                raise ActionRefused(f"incident {i.id} is {i.status}: a department is already working on it")
            note = "not a complaint" + (f": {reason.strip()}" if reason.strip() else "")
            return transition(
                i,
                S.IRRELEVANT,
                at=self.clock(),
                actor=actor.name,
                note=note[:500],
                classification=i.classification.model_copy(update={"is_complaint": False, "danger": False}),
                next_check_at=None,
                group_keys=(),  # no longer a problem later posts should join
            )

        before = self.incident(incident_id)
        updated = self._update(incident_id, change)
        self.feedback.put(
            updated.id, feedback_record(before, actor, self.clock(), is_complaint=False, danger=False, category="other")
        )
        return updated

    def mark_danger(self, actor: Actor, incident_id: str, dangerous: bool, reason: str = "") -> Incident:
        """The operator's verdict on danger (:func:`priority_when_dangerous`). Raised to critical while departments
        work on it, the incident starts a new routing round, as a dangerous report does in grouping
        (``PostGrouper._with_report``): ``marked_dangerous.N``, urgent, to its departments and those that take critical
        incidents (the duty service), with the critical clocks from now. A new incident is handed to route again
        (routed as critical). Lowering re-routes nothing. Marking it as it already is changes nothing, except that
        a raised round whose hand-off to route was lost is handed again (route notifies once per round)."""
        directory, deadlines = self.responses.directory, self.responses.deadlines
        reason = reason.strip()
        handoff: list[Incident] = []  # what route must hear of, from the last run of the change (transactions retry)

        def change(i: Incident) -> Incident | None:
            handoff.clear()
            if i.status in DANGER_REFUSED:
                into = f" (обращение {i.merged_into})" if i.merged_into else ""
                raise ActionRefused(
                    f"Обращение {i.id} {DANGER_REFUSED[i.status]}{into}: опасность отмечают у открытых обращений."
                )
            c = i.classification
            priority = priority_when_dangerous(i, dangerous)
            if c.danger is dangerous and c.priority is priority:
                if dangerous and i.routing_reason == MARKED_DANGEROUS and i.undelivered:
                    handoff.append(i)
                return None
            now = self.clock()
            verdict = "dangerous" if dangerous else "not dangerous"
            why = f" ({reason})" if reason else ""
            classification = c.model_copy(
                update={
                    "danger": dangerous,
                    "priority": priority,
                    "evidence": (*c.evidence, f"operator: {verdict}, by {actor.department_id}"),
                }
            )
            escalated = (
                priority is Priority.CRITICAL
                and c.priority is not Priority.CRITICAL
                and i.status in (S.ROUTED, S.ACKNOWLEDGED, S.ANSWERED)
            )
            if not escalated:
                note = f"marked {verdict} by the operator: priority {c.priority} -> {priority}{why}"
                if priority is c.priority:
                    note = f"marked {verdict} by the operator: priority stays {priority}{why}"
                updated = record_event(
                    i, "corrected", at=now, actor=actor.name, note=note[:500], classification=classification
                )
                if dangerous and i.status is S.NEW:
                    handoff.append(updated)  # not routed yet: route routes it as critical (a lost hand-off finished)
                return updated
            note = f"priority raised to critical by the operator: dangerous{why}"
            moved = new_routing_round(
                i, MARKED_DANGEROUS, at=now, actor=actor.name, note=note[:500], classification=classification
            )
            # Critical incidents may have more owners (the duty service): they hear of it now, the others again.
            targets = [d.id for d in directory.departments_for(moved)]
            moved = moved.model_copy(update={"department_ids": tuple(dict.fromkeys([*i.department_ids, *targets]))})
            departments = departments_of(directory, moved)
            moved = moved.model_copy(update=deadlines.on_routing(moved, departments, now))
            moved = Incident.model_validate({**dict(moved), **schedule(deadlines, moved, departments)})
            handoff.append(moved)
            return moved

        before = self.incident(incident_id)
        updated = self._update(incident_id, change)
        if handoff:
            self.publisher.publish(self.topic, [incident_classified(handoff[-1])])
        self.feedback.put(updated.id, feedback_record(before, actor, self.clock(), danger=dangerous))
        return updated

    def merge(self, actor: Actor, incident_id: str, into_id: str) -> Incident:
        """Merge incident ``incident_id`` into ``into_id``; returns the incident merged into."""
        if incident_id == into_id:
            raise ActionError("an incident cannot be merged into itself")
        source, target = self.incident(incident_id), self.incident(into_id)
        if target.status in (S.MERGED, S.IRRELEVANT, S.REJECTED):
            raise ActionRefused(f"incident {into_id} is {target.status}: merge into an incident being worked on")
        if source.status in (S.IRRELEVANT, S.REJECTED, S.CLOSED):
            raise ActionRefused(f"incident {incident_id} is {source.status}: nothing to merge")
        if source.status is S.MERGED and source.merged_into != into_id:
            raise ActionRefused(f"incident {incident_id} is already merged into {source.merged_into}")
        now = self.clock()
        post = source.post
        moved = (
            Report(
                incident_id=source.id,
                source=post.source,
                url=post.url,
                author_id=post.author_id,
                published_at=post.published_at,
                action="merge",
            ),
            *source.reports,
        )

        def receive(i: Incident) -> Incident | None:
            have = {r.incident_id for r in i.reports}
            new = [r for r in moved if r.incident_id not in have]
            if not new:
                return None
            reports = (*i.reports, *new)
            keys = tuple(dict.fromkeys([*i.group_keys, *source.group_keys]))[:60]
            last = max(i.last_post_at or i.post.published_at, source.last_post_at or post.published_at)
            residents = count_residents(i.post.author_id, [r.author_id for r in reports])
            note = f"merged {source.id} into it by the operator: {residents} residents reported"
            return record_event(
                i,
                "merged",
                at=now,
                actor=actor.name,
                note=note,
                reports=reports,
                group_keys=keys,
                last_post_at=last,
                residents=residents,
            )

        merged = self._update(into_id, receive)

        def give(i: Incident) -> Incident | None:
            if i.status is S.MERGED:
                return None
            return transition(
                i,
                S.MERGED,
                at=now,
                actor=actor.name,
                note=f"merged into {into_id} by the operator",
                merged_into=into_id,
                reports=(),
                group_keys=(),
                next_check_at=None,
                undelivered=False,  # the incident it went into is the departments' now: nothing left to tell
            )

        self._update(incident_id, give)
        return merged

    def split(self, actor: Actor, incident_id: str) -> Incident:
        """A merged post becomes an incident of its own again, routed like a new one; returns it."""
        child = self.incident(incident_id)
        if child.status is not S.MERGED or child.merged_into is None:
            if child.status is S.NEW:
                self.publisher.publish(self.topic, [incident_classified(child)])  # a retry: finish the hand-off
                return child
            raise ActionRefused(f"incident {incident_id} is {child.status}, not merged into another")
        parent_id = child.merged_into

        def release(i: Incident) -> Incident | None:
            reports = tuple(r for r in i.reports if r.incident_id != incident_id)
            if len(reports) == len(i.reports):
                return None
            residents = count_residents(i.post.author_id, [r.author_id for r in reports])
            note = f"split {incident_id} out by the operator: {residents} residents reported"
            return record_event(
                i, "split", at=self.clock(), actor=actor.name, note=note, reports=reports, residents=residents
            )

        self._update(parent_id, release)
        key = key_of_post(child.post, child.classification)

        def own(i: Incident) -> Incident | None:
            if i.status is not S.MERGED:
                return None
            fields = grouping_fields(i.post, key)
            return transition(
                i,
                S.NEW,
                at=self.clock(),
                actor=actor.name,
                note=f"split out of {parent_id} by the operator",
                merged_into=None,
                classification=i.classification.model_copy(update={"is_complaint": True}),
                **fields,
            )

        split = self._update(incident_id, own)
        if split.status is S.NEW:
            self.publisher.publish(self.topic, [incident_classified(split)])
        return split

    def _update(self, incident_id: str, change: Any) -> Incident:
        updated = self.incidents.update(incident_id, change)
        if updated is None:
            raise NoSuchIncident(f"no incident {incident_id}")
        return updated
