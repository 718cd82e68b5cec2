"""classify: decide what a post is about, store it as an incident (once), and hand complaints to routing.

An author's edit of a post already stored (``Post.edited_at``, the same incident id) is not a new post: the edit
rule (shared/domain/edits.py) revises the incident, and what the new text now reads as may route it (a dismissed
post that is a complaint now) or start a round on the fast lane (a routed complaint that is dangerous now). An edit
of a post never stored (older than the first run's window) is the post.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from shared.contracts import PostFetchedV1, incident_classified
from shared.domain.deadlines import Deadlines, schedule
from shared.domain.edits import (
    EDITED_DANGEROUS,
    NOT_A_COMPLAINT,
    EditEffect,
    EditOutcome,
    apply_edit,
    arrived_after_its_edit,
    keep_late_original,
)
from shared.domain.lifecycle import transition
from shared.domain.models import Classification, Incident, IncidentStatus, Post, StatusChange
from shared.ports import Clock, DepartmentDirectory, IncidentRepository, Publisher
from shared.services.group_posts import PostGrouper, grouping_fields
from shared.services.grouping import Decision, ProblemKey
from shared.services.routing import departments_of
from shared.services.threads import ThreadReplies

log = logging.getLogger(__name__)
ACTOR = "classify"
S = IncidentStatus


class Classifier(Protocol):
    @property
    def name(self) -> str: ...

    def classify(self, post: Post) -> Classification: ...


class ClassifyService:
    def __init__(
        self,
        classifier: Classifier,
        incidents: IncidentRepository,
        publisher: Publisher,
        topic: str,
        clock: Clock,
        threads: ThreadReplies | None = None,
        grouper: PostGrouper | None = None,
        deadlines: Callable[[], Deadlines] | None = None,
        directory: Callable[[], DepartmentDirectory] | None = None,
    ) -> None:
        self.threads = threads
        self.grouper = grouper
        self.classifier = classifier
        self.incidents = incidents
        self.publisher = publisher
        self.topic = topic
        self.clock = clock
        # Built on first need (an edit that starts a round on the fast lane): most posts never need them.
        self.deadlines = deadlines
        self.directory = directory

    def handle(self, message: PostFetchedV1) -> str:
        post = message.post
        if post.edited_at is not None:
            edited = self._edit(post)
            if edited is not None:
                return edited
            # The original was never stored (older than the first run's window, or the edit came first): the
            # edit is the post. The original, should it come later, finds the incident and changes nothing.
        return self._new_post(post)

    def _new_post(self, post: Post) -> str:
        now = self.clock()
        thread = self.threads.handle(post) if self.threads is not None else None
        if thread is not None and thread.reopened is not None:
            self.publisher.publish(
                self.topic, [incident_classified(thread.reopened)]
            )  # route notifies the department again
        classification = self.classifier.classify(post)
        if thread is not None:
            # Part of an incident's conversation, not a new complaint: kept, counted, never routed.
            classification = classification.model_copy(
                update={"is_complaint": False, "evidence": (*classification.evidence, f"thread: {thread.note}")}
            )
        history = [StatusChange(status=S.NEW, at=now, actor=ACTOR)]
        status = S.NEW
        if not classification.is_complaint:
            status = S.IRRELEVANT
            note = thread.note if thread is not None else NOT_A_COMPLAINT
            history.append(StatusChange(status=status, at=now, actor=ACTOR, note=note))
        incident = Incident(
            id=post.incident_id,
            post=post,
            classification=classification,
            status=status,
            status_history=tuple(history),
            created_at=now,
            updated_at=now,
        )
        if status is S.NEW and self.grouper is not None:
            key, decision = self.grouper.decide(post, classification)
            incident = self._grouped(incident, key, decision, now)
        created = self.incidents.create(incident)
        if not created and post.edited_at is not None:
            # An edit whose original was stored while this ran (both were published together): the edit it is.
            edited = self._edit(post)
            if edited is not None:
                return edited
        if not created:
            # A replay. Keep what is stored (an operator may have corrected it) and only finish the hand-off.
            stored = self.incidents.get(incident.id)
            if stored is None:  # deleted in between: nothing left to hand off
                return f"incident {incident.id} vanished"
            if arrived_after_its_edit(stored, post):
                stored = self.incidents.update(stored.id, lambda i: keep_late_original(i, post, now)) or stored
            incident = stored
        # Also on a replay: the earlier attempt may have stored the incident and died before handing it off.
        handed = self._hand_off(incident, post)
        return f"incident {incident.id} {'created' if created else 'exists'}{handed}"

    def _grouped(self, incident: Incident, key: ProblemKey, decision: Decision, now: datetime) -> Incident:
        """A new complaint as grouping decided: merged into the incident of its problem (join or reopen), or an
        incident of its own that later posts find."""
        if decision.incident_id is None:
            fields = grouping_fields(incident.post, key)
            return incident.model_copy(update={**fields, "related_id": decision.related_id})
        note = decision.reason[:500]
        return transition(incident, S.MERGED, at=now, actor=ACTOR, note=note, merged_into=decision.incident_id)

    def _hand_off(self, incident: Incident, post: Post) -> str:
        """Tell route what it must hear of, and say what became of the post."""
        if incident.status is S.MERGED and self.grouper is not None:
            # Also on a replay: the earlier attempt may have died between storing this post and counting it.
            grouped = self.grouper.attach(incident)
            if grouped.to_route is not None:
                self.publisher.publish(self.topic, [incident_classified(grouped.to_route)])
            parent = grouped.parent
            residents = f", {parent.residents} residents" if parent is not None else ""
            return f" (merged into {incident.merged_into}{residents})"
        if incident.status is S.NEW or started_by(incident, post):
            # A new round is notified once by route, so a second hand-off costs nothing; a lost one would lose it.
            self.publisher.publish(self.topic, [incident_classified(incident)])
        return f" ({incident.status})"

    # --- an author's edit -----------------------------------------------------------------------------

    def _edit(self, post: Post) -> str | None:
        """Apply an edit to its stored incident; None when there is none (the edit is then the post)."""
        stored = self.incidents.get(post.incident_id)
        if stored is None:
            return None
        reading = self.classifier.classify(post)
        # Grouping queries, so it is decided before the transaction: only for a dismissed post that may now
        # become a complaint (the rule decides inside, on the incident as it is then).
        grouping = None
        if stored.status is S.IRRELEVANT and reading.is_complaint and self.grouper is not None:
            grouping = self.grouper.decide(post, reading)
        outcomes: list[EditOutcome] = []

        def change(i: Incident) -> Incident | None:
            now = self.clock()
            outcome = apply_edit(i, post, reading, at=now, actor=ACTOR)
            outcomes[:] = [outcome]  # a transaction may run this again after a conflict: only the last run counts
            if outcome.effect is EditEffect.STALE:
                return None
            if outcome.effect is EditEffect.ROUND_STARTED:
                return self._on_fast_lane(i, outcome.incident, now)
            if outcome.effect is EditEffect.BECAME_COMPLAINT and grouping is not None:
                return self._grouped(outcome.incident, *grouping, now)
            return outcome.incident

        updated = self.incidents.update(post.incident_id, change)
        if updated is None:  # deleted in between: the edit is the post
            return None
        effect = outcomes[-1].effect if outcomes else EditEffect.STALE
        return f"incident {updated.id} edited: {effect}{self._hand_off(updated, post)}"

    def _on_fast_lane(self, before: Incident, moved: Incident, now: datetime) -> Incident:
        """A round started by a dangerous edit, as triage starts one for the operator's verdict: critical incidents
        may have more owners (the duty service), who hear of it now, the others again; the critical clocks count
        from now. Without a directory (tests of other things) it goes to the departments it has, clocks kept."""
        if self.directory is None or self.deadlines is None:
            return moved
        directory, deadlines = self.directory(), self.deadlines()
        targets = [d.id for d in directory.departments_for(moved)]
        moved = moved.model_copy(update={"department_ids": tuple(dict.fromkeys([*before.department_ids, *targets]))})
        departments = departments_of(directory, moved)
        moved = moved.model_copy(update=deadlines.on_routing(moved, departments, now))
        return Incident.model_validate({**dict(moved), **schedule(deadlines, moved, departments)})


def started_by(incident: Incident, post: Post) -> bool:
    """This edit started the incident's current round and route may not have heard of it (a lost hand-off)."""
    return (
        post.edited_at is not None
        and incident.routing_reason == EDITED_DANGEROUS
        and incident.undelivered
        and incident.post.edited_at == post.edited_at
    )
