"""classify: decide what a post is about, store it as an incident (once), and hand complaints to routing."""

from __future__ import annotations

import logging
from typing import Protocol

from shared.contracts import PostFetchedV1, incident_classified
from shared.domain.models import Classification, Incident, IncidentStatus, Post, StatusChange
from shared.ports import Clock, IncidentRepository, Publisher
from shared.services.group_posts import PostGrouper, grouping_fields
from shared.services.threads import ThreadReplies

log = logging.getLogger(__name__)
ACTOR = "classify"


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
    ) -> None:
        self.threads = threads
        self.grouper = grouper
        self.classifier = classifier
        self.incidents = incidents
        self.publisher = publisher
        self.topic = topic
        self.clock = clock

    def handle(self, message: PostFetchedV1) -> str:
        post = message.post
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
        history = [StatusChange(status=IncidentStatus.NEW, at=now, actor=ACTOR)]
        status = IncidentStatus.NEW
        if not classification.is_complaint:
            status = IncidentStatus.IRRELEVANT
            note = thread.note if thread is not None else "not a complaint"
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
        if status is IncidentStatus.NEW and self.grouper is not None:
            key, decision = self.grouper.decide(post, classification)
            if decision.incident_id is not None:  # join or reopen
                incident = self.grouper.merged_incident(post, classification, decision, now)
            else:
                fields = grouping_fields(post, key)
                incident = incident.model_copy(update={**fields, "related_id": decision.related_id})
        created = self.incidents.create(incident)
        if not created:
            # A replay. Keep what is stored (an operator may have corrected it) and only finish the hand-off.
            stored = self.incidents.get(incident.id)
            if stored is None:  # deleted in between: nothing left to hand off
                return f"incident {incident.id} vanished"
            incident = stored
        if incident.status is IncidentStatus.MERGED and self.grouper is not None:
            # Also on a replay: the earlier attempt may have died between storing this post and counting it.
            grouped = self.grouper.attach(incident)
            if grouped.to_route is not None:
                self.publisher.publish(self.topic, [incident_classified(grouped.to_route)])
            parent = grouped.parent
            residents = f", {parent.residents} residents" if parent is not None else ""
            return f"incident {incident.id} {'merged' if created else 'exists'} into {incident.merged_into}{residents}"
        if incident.status is IncidentStatus.NEW:
            # Also on a replay: the earlier attempt may have stored the incident and died before publishing.
            self.publisher.publish(self.topic, [incident_classified(incident)])
        return f"incident {incident.id} {'created' if created else 'exists'} ({incident.status})"
