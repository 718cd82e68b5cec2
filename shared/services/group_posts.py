"""Incidents, not posts: classify asks :class:`PostGrouper` what a complaint does before storing it — start a new
incident, or join (or reopen) the incident already tracking the same problem (the rule: ``grouping.py``).

A post that joins is still stored, as its own document with status ``merged`` and ``merged_into`` — every
published post stays accounted for, and its document id (the post's) is what makes a replay harmless. The
incident it joined gets a :class:`~shared.domain.models.Report` with the post's link, its count of different
residents, its latest post time and index keys, and, by :func:`raised_priority`, a higher priority when more
residents write or a report says it is dangerous. A priority raised to critical, or a resolved incident reopened,
starts a new routing round, so the departments hear of it (``raised.N``, ``reopened.N``).

Order, for at-least-once delivery: the merged document is created first, then the incident is updated in a
transaction that adds the report only if it is not there yet; a replay finds the merged document, repeats the
update (a no-op the second time) and, if that report started a routing round that is still the incident's
current one, hands the incident to route again (route notifies once per round).

Two posts about a new problem classified at the same moment (the same pothole in three publics, fetched by one
ingest run) both find nothing and both become incidents. Route asks :meth:`PostGrouper.earlier_twin` before it
routes a new incident, when both are stored: the later of two new twins (by ``created_at``, then id) folds into
the earlier, and a new incident folds into a twin already routed - never the other way, so two twins never both
give way, and the department hears of the problem once. Only where one twin is routed before the other is even
stored, and the other is the earlier by ``created_at``, do both stay; the operator merges them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.domain.deadlines import Deadlines, schedule
from shared.domain.ids import incident_id_for
from shared.domain.lifecycle import new_routing_round, record_event, transition
from shared.domain.models import (
    Classification,
    Department,
    Incident,
    IncidentStatus,
    Post,
    Priority,
    Report,
)
from shared.ports import Clock, DepartmentDirectory, GroupCandidates, IncidentRepository
from shared.services.grouping import (
    OPEN_JOIN_MAX,
    REOPEN_DAYS,
    Candidate,
    Decision,
    ProblemKey,
    candidate_keys,
    decide,
    is_place_key,
    key_of_post,
    query_keys,
)
from shared.services.routing import departments_of

log = logging.getLogger(__name__)
S = IncidentStatus
ACTOR = "classify"
MAX_CANDIDATES = 50
MAX_GROUP_KEYS = 60  # an incident's index keys: its own and those of its reports, bounded
# Reports kept on the incident (about 250 bytes each): far below Firestore's 1 MiB per document. Posts beyond
# are still stored as merged documents pointing at it; the count of residents stops growing there.
MAX_REPORTS = 500
# How long before an incident a twin may have been stored: classify stamps created_at when a message arrives and
# stores the incident a moment later (the function's timeout is a minute); ten minutes leaves room for skew.
TWIN_WINDOW = timedelta(minutes=10)
RAISE_TO_HIGH = 3  # different residents writing about one problem: it matters to more than one household
PRIORITY_ORDER = (Priority.LOW, Priority.NORMAL, Priority.HIGH, Priority.CRITICAL)


def raised_priority(current: Priority, residents: int, report: Classification) -> Priority:
    """The incident's priority after one more report: never lowered; at least high from :data:`RAISE_TO_HIGH`
    residents; critical when a report is (a hazard seen by one more person is still a hazard)."""
    wanted = current
    if residents >= RAISE_TO_HIGH:
        wanted = max(wanted, Priority.HIGH, key=PRIORITY_ORDER.index)
    if report.danger or report.priority is Priority.CRITICAL:
        wanted = Priority.CRITICAL
    return max(current, wanted, key=PRIORITY_ORDER.index)


def count_residents(author_id: str | None, report_authors: Iterable[str | None]) -> int:
    """Different authors of an incident's post and its reports. Posts without an author (RSS, inbox) count as one
    resident each: a feed does not repeat itself."""
    authors = [author_id, *report_authors]
    return max(1, len({a for a in authors if a is not None}) + sum(a is None for a in authors))


def grouping_fields(post: Post, key: ProblemKey) -> dict[str, object]:
    """What a new incident stores so that later posts find it."""
    return {"group": key.to_dict(), "group_keys": tuple(candidate_keys(key)), "last_post_at": post.published_at}


@dataclass(frozen=True)
class Grouped:
    """The outcome for one merged post: the incident it joined (None: gone), and that incident again when route
    must hear of it (a new routing round, or a replay of the post that started the current one)."""

    parent: Incident | None
    to_route: Incident | None = None


class PostGrouper:
    def __init__(
        self,
        incidents: IncidentRepository,
        candidates: GroupCandidates,
        clock: Clock,
        deadlines: Callable[[], Deadlines],
        directory: Callable[[], DepartmentDirectory],
    ) -> None:
        self.incidents = incidents
        self.candidates = candidates
        self.clock = clock
        self.deadlines = deadlines  # built on first need: most posts start a new incident
        self.directory = directory

    def decide(self, post: Post, classification: Classification) -> tuple[ProblemKey, Decision]:
        key = key_of_post(post, classification)
        since = post.published_at - OPEN_JOIN_MAX
        found = self._candidates(key, lambda keys: self.candidates.group_candidates(keys, since, MAX_CANDIDATES))
        if post.parent_post_id is not None:
            # A comment under a post is most likely about that post's problem: its incident is a candidate even
            # when the comment names no place (the rule still has to agree).
            parent = self.incidents.get(incident_id_for(post.source, post.community, post.parent_post_id))
            if parent is not None and parent.status is S.MERGED and parent.merged_into:
                parent = self.incidents.get(parent.merged_into)
            if parent is not None and parent.id not in {i.id for i in found}:
                found.append(parent)
        return key, decide(key, [candidate_of(i) for i in found if i.id != post.incident_id])

    @staticmethod
    def _candidates(key: ProblemKey, read: Callable[[list[str]], list[Incident]]) -> list[Incident]:
        """The incidents under the post's place keys (address, numbered landmark, geo cells), then those under
        its broad keys (municipality and category). Two queries, as each is ordered and limited: in one, a city's
        other complaints of the category would push out the incident at the very same address."""
        keys = query_keys(key)
        placed = [k for k in keys if is_place_key(k)]
        found = {i.id: i for i in read(placed)} if placed else {}
        for incident in read([k for k in keys if not is_place_key(k)]):
            found.setdefault(incident.id, incident)
        return list(found.values())

    def earlier_twin(self, incident: Incident) -> Decision | None:
        """An open incident about the same problem that ``incident`` (new, not yet routed) should fold into: one
        already routed, or a new one stored before it. None: route it."""
        if incident.status is not S.NEW or incident.routing_round or not incident.group_keys:
            return None  # grouping was off when it was classified, or it has been routed before
        if any(change.status is S.MERGED for change in incident.status_history):
            return None  # split out of an incident by the operator: their decision stands
        key = stored_key(incident)  # its own post's: a new incident has no reports yet
        # A twin is what classify could not see: stored while this one was being classified, so moments before
        # it, or after it. One stored earlier than that was there to be seen (classify would have joined it).
        since = incident.created_at - TWIN_WINDOW
        found = self._candidates(key, lambda keys: self.candidates.group_stored_since(keys, since, MAX_CANDIDATES))
        mine = (incident.created_at, incident.id)
        earlier = [
            candidate_of(i)
            for i in found
            if i.id != incident.id
            and i.status in (S.NEW, S.ROUTED, S.ACKNOWLEDGED)  # joining a twin at work, not reopening
            and (i.status is not S.NEW or (i.created_at, i.id) < mine)
        ]
        decision = decide(key, earlier)
        return decision if decision.action == "join" else None

    def fold(self, incident: Incident, decision: Decision, actor: str) -> Grouped | None:
        """Make new ``incident`` a report of the twin ``decision`` names: merged first, then counted (``attach``),
        so a replay that finds it merged only repeats the count. None: it is no longer new (routed meanwhile)."""
        twin = decision.incident_id
        assert twin is not None

        def give(i: Incident) -> Incident | None:
            if i.status is not S.NEW:
                return None
            note = f"the same problem as {twin}, stored at the same moment: {decision.reason}"
            return transition(
                i, S.MERGED, at=self.clock(), actor=actor, note=note[:500], merged_into=twin, group_keys=()
            )

        merged = self.incidents.update(incident.id, give)
        if merged is None or merged.status is not S.MERGED:
            return None
        return self.attach(merged)

    def attach(self, merged: Incident) -> Grouped:
        """Add ``merged``'s post to the incident it was grouped into (idempotent: a replay adds nothing), with the
        reports ``merged`` itself had gathered (a twin folded by route after others joined it)."""
        parent_id = merged.merged_into
        assert parent_id is not None
        started: list[Incident] = []

        def change(i: Incident) -> Incident | None:
            started.clear()  # a transaction may run this again after a conflict: only the last run counts
            if i.status is S.MERGED:
                return None  # merged itself meanwhile: follow it (below)
            if len(i.reports) >= MAX_REPORTS or any(r.incident_id == merged.id for r in i.reports):
                return None
            have = {r.incident_id for r in i.reports}
            carried = tuple(r for r in merged.reports if r.incident_id not in have)
            return self._with_report(i.model_copy(update={"reports": (*i.reports, *carried)}), merged, started)

        parent: Incident | None = None
        # The incident joined may itself have been merged since (by the operator, or folded into its twin by
        # route): follow the chain, a few hops at most.
        for _ in range(5):
            parent = self.incidents.update(parent_id, change)
            if parent is None or parent.status is not S.MERGED or parent.merged_into is None:
                break
            parent_id = parent.merged_into
        if parent is None:
            log.warning("incident %s was grouped into %s, which no longer exists", merged.id, parent_id)
            return Grouped(None)
        if started:
            return Grouped(parent, started[0])
        # A replay: hand the incident to route again if this report started its current round (route sends a
        # round's notifications once, so a second hand-off costs nothing; a lost one would lose them).
        mine = next((r for r in parent.reports if r.incident_id == merged.id), None)
        if mine is not None and mine.routing_round is not None and mine.routing_round == parent.routing_round:
            return Grouped(parent, parent)
        return Grouped(parent)

    def _with_report(self, i: Incident, merged: Incident, started: list[Incident]) -> Incident:
        now = self.clock()
        post = merged.post
        residents = count_residents(i.post.author_id, [*(r.author_id for r in i.reports), post.author_id])
        # The merged post's own key. A twin route folded stored it as its group (unless reports joined it since,
        # which moved its group on to their latest post).
        key = stored_key(merged) if merged.group and not merged.reports else key_of_post(post, merged.classification)
        keys = tuple(dict.fromkeys([*i.group_keys, *candidate_keys(key)]))[:MAX_GROUP_KEYS]
        last = max(i.last_post_at or i.post.published_at, post.published_at)
        priority = raised_priority(i.classification.priority, residents, merged.classification)
        # decide()'s reopen rule, again on the incident as it is now (and the same on a replay)
        resolved_at = i.resolved_at if i.resolved_at is not None else (i.updated_at if i.status is S.CLOSED else None)
        reopen = (
            resolved_at is not None
            and timedelta(0) <= post.published_at - resolved_at <= REOPEN_DAYS
            and i.status in (S.CLOSED, S.ANSWERED)
        )
        escalated = (
            priority is Priority.CRITICAL
            and i.classification.priority is not Priority.CRITICAL
            and i.status in (S.ROUTED, S.ACKNOWLEDGED, S.ANSWERED)
        )
        action = "reopen" if reopen else "raise" if escalated else "join"
        report = Report(
            incident_id=merged.id,
            source=post.source,
            url=post.url,
            author_id=post.author_id,
            published_at=post.published_at,
            action=action,
        )
        changes: dict[str, object] = {
            "residents": residents,
            "group_keys": keys,
            "last_post_at": last,
            "group": key.to_dict() if post.published_at >= (i.last_post_at or i.post.published_at) else i.group,
        }
        if priority is not i.classification.priority:
            changes["classification"] = i.classification.model_copy(update={"priority": priority})
        note = f"{residents} residents reported; {post.source} {post.url}"
        if reopen:
            moved = self._new_round(i, "reopened", now, f"reopened: the problem is reported again ({post.url})")
            moved = moved.model_copy(update={**changes, "resolved_at": None})
            return self._started(moved, report, started)
        if escalated:
            moved = self._new_round(i, "raised", now, f"priority raised to critical: {note}")
            moved = Incident.model_validate({**dict(moved), **changes})
            # Critical incidents may have more owners (the duty dispatch service): they hear of it now; those
            # already routed to keep it (and hear of the raise).
            targets = [d.id for d in self.directory().departments_for(moved)]
            moved = moved.model_copy(update={"department_ids": tuple(dict.fromkeys([*i.department_ids, *targets]))})
            return self._started(moved, report, started)
        if "classification" in changes:
            note = f"priority {i.classification.priority} -> {priority}: {note}"
        return record_event(i, "report", at=now, actor=ACTOR, note=note[:500], reports=(*i.reports, report), **changes)

    def _started(self, moved: Incident, report: Report, started: list[Incident]) -> Incident:
        report = report.model_copy(update={"routing_round": moved.routing_round})
        moved = moved.model_copy(update={"reports": (*moved.reports, report)})
        # The new round's clocks count from now, with the (possibly raised) priority's rule.
        departments = self._departments(moved)
        moved = moved.model_copy(update=self.deadlines().on_routing(moved, departments, moved.updated_at))
        moved = moved.model_copy(update=schedule(self.deadlines(), moved, departments))
        started[:] = [Incident.model_validate(dict(moved))]
        return started[0]

    def _new_round(self, i: Incident, reason: str, now: datetime, note: str) -> Incident:
        return new_routing_round(i, reason, at=now, actor=ACTOR, note=note[:500])

    def _departments(self, incident: Incident) -> list[Department]:
        return departments_of(self.directory(), incident)


def stored_key(incident: Incident) -> ProblemKey:
    """The key classify stored with the incident (of its latest post), read back without the morphology: route
    never loads pymorphy3. Incidents stored before grouping get their key from their post."""
    if incident.group:
        return ProblemKey.from_dict(incident.group)
    return key_of_post(incident.post, incident.classification)


def candidate_of(incident: Incident) -> Candidate:
    """What the rule needs of a stored incident."""
    return Candidate(
        id=incident.id,
        key=stored_key(incident),
        status=incident.status.value,
        created_at=incident.created_at,
        last_post_at=incident.last_post_at,
        resolved_at=incident.resolved_at,
    )
