"""Comments in an incident's own thread, which are not new complaints but part of the conversation:

- an answer written directly under the post by an official account (the community itself, or an account
  configured as official) marks the incident answered — departments that answer in VK by hand are counted;
- the author's reply to the follow-up question ("is it fixed?") closes the incident on a yes and reopens it on
  a no (the department hears of it again, as ``reopened.N``).

Such a comment is still stored, as an incident of its own with status irrelevant and a note saying what it
was, so every published post stays accounted for.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from shared.domain.deadlines import Deadlines, schedule
from shared.domain.errors import TransientError
from shared.domain.ids import incident_id_for
from shared.domain.lifecycle import new_routing_round, record_event, transition
from shared.domain.models import Answer, Department, Incident, IncidentStatus, Post
from shared.ports import Clock, DepartmentDirectory, IncidentRepository, MarkerSet
from shared.services.routing import departments_of

S = IncidentStatus
ACTOR = "classify"
OFFICIAL = "official-account"

# The author's answer to "is it fixed?": a short reply, judged by its first words. Anything else is treated
# as an ordinary comment (classified like any post), never guessed.
_NO = re.compile(r"^\s*(нет|неа|не\s+(сделали|решено|решили|починили|исправили|убрали)|ничего|до\s+сих\s+пор)\b", re.I)
_YES = re.compile(r"^\s*(да|решено|решили|сделали|починили|исправили|убрали|спасибо)\b", re.I)


@dataclass(frozen=True)
class ThreadOutcome:
    parent_id: str
    note: str  # what the comment was, for the comment's own record
    reopened: Incident | None = None  # to hand to route again


class ThreadReplies:
    def __init__(
        self,
        incidents: IncidentRepository,
        is_official: Callable[[Post], bool],
        clock: Clock,
        deadlines: Callable[[], Deadlines],
        directory: Callable[[], DepartmentDirectory],
        published: MarkerSet | None = None,
    ) -> None:
        self.published = published
        self.incidents = incidents
        self.is_official = is_official
        self.clock = clock
        # Built on first need: most comments are ordinary, and classify should not read the directory for them.
        self.deadlines = deadlines
        self.directory = directory

    def _departments(self, incident: Incident) -> list[Department]:
        return departments_of(self.directory(), incident)

    def _scheduled(self, incident: Incident) -> Incident:
        return incident.model_copy(update=schedule(self.deadlines(), incident, self._departments(incident)))

    def handle(self, post: Post) -> ThreadOutcome | None:
        """What this comment means for its post's incident; None if it is an ordinary comment."""
        if post.parent_post_id is None:
            return None
        parent_id = incident_id_for(post.source, post.community, post.parent_post_id)
        parent = self.incidents.get(parent_id)
        if parent is None:
            if self.is_official(post) and self.published is not None and not self.published.unseen([parent_id]):
                # The post was published with this comment and is being classified right now (Pub/Sub does not
                # keep order): wait for it, so the answer is counted on its incident.
                raise TransientError(f"official comment {post.incident_id}: its post {parent_id} is not stored yet")
            return None
        if self.is_official(post):
            return self._official_answer(parent, post)
        if parent.followup_asked_at is not None and post.author_id == parent.post.author_id:
            return self._followup_reply(parent, post)
        return None

    def _official_answer(self, parent: Incident, post: Post) -> ThreadOutcome:
        def change(i: Incident) -> Incident | None:
            if any(a.request_key == post.incident_id for a in i.answers) or any(a.text in post.text for a in i.answers):
                return None  # seen already, or the comment Otklik itself posted from a department's answer
            if i.status not in (S.NEW, S.ROUTED, S.ACKNOWLEDGED, S.ANSWERED):
                return None
            now = self.clock()
            answer = Answer(
                text=post.text[:4000] or "(без текста)",
                at=post.published_at,
                department_id=OFFICIAL,
                request_key=post.incident_id,
            )
            changes: dict[str, object] = {"answers": (*i.answers, answer)}
            if i.first_reply_at is None:
                changes["first_reply_at"] = post.published_at
            note = f"answered in the thread by official account {post.author_id}"
            if i.status in (S.NEW, S.ANSWERED):
                # NEW: the answer came before routing (the comment was classified first). Route still routes it,
                # so the department knows; the first-reply clock is already stopped by first_reply_at.
                return self._scheduled(record_event(i, "answer", at=now, actor=ACTOR, note=note, **changes))
            return self._scheduled(transition(i, S.ANSWERED, at=now, actor=ACTOR, note=note, **changes))

        self.incidents.update(parent.id, change)
        return ThreadOutcome(parent.id, f"official answer in the thread of incident {parent.id}")

    def _followup_reply(self, parent: Incident, post: Post) -> ThreadOutcome | None:
        text = post.text.strip()
        if _NO.match(text):
            verdict = "no"
        elif _YES.match(text):
            verdict = "yes"
        else:
            return None
        reopened: list[Incident] = []

        def change(i: Incident) -> Incident | None:
            if i.followup_asked_at is None or i.status not in (S.ANSWERED, S.CLOSED):
                return None  # answered already (a replayed comment), or reopened meanwhile
            now = self.clock()
            if verdict == "yes":
                if i.status is S.CLOSED:
                    return record_event(i, "followup_yes", at=now, actor=ACTOR, note=text[:200], followup_asked_at=None)
                return transition(
                    i,
                    S.CLOSED,
                    at=now,
                    actor=ACTOR,
                    note=f"the author confirms it is fixed: {text[:200]}",
                    resolved_at=now,
                    followup_asked_at=None,
                    next_check_at=None,
                )
            moved = new_routing_round(
                i, "reopened", at=now, actor=ACTOR, note=f"reopened: the author says it is not fixed: {text[:200]}"
            )
            # New clocks from now: the department gets the policy's full time to answer the reopened incident.
            moved = moved.model_copy(update=self.deadlines().on_routing(moved, self._departments(moved), now))
            reopened[:] = [self._scheduled(moved)]
            return reopened[0]

        self.incidents.update(parent.id, change)
        return ThreadOutcome(
            parent.id, f"the author's answer ({verdict}) to the follow-up of incident {parent.id}", *reopened[:1]
        )
