"""An author's edit of a post Otklik already holds (VK ``wall_post_edit``/``wall_reply_edit``, Telegram
``edited_message``, MAX ``message_edited``): the same post, so the same incident, with new words.

The rule (:func:`apply_edit`):

- Only an edit newer than every version the incident knows counts: the same edit delivered twice, or an older
  one arriving after a newer (Pub/Sub keeps no order), changes nothing.
- An incident nobody has answered yet (:data:`~shared.domain.lifecycle.EDITABLE`: new, routed, acknowledged,
  irrelevant, merged) shows the edit: its post's text, attachments and geo become the edit's, the version it
  replaces is kept in ``Incident.post_versions`` and the history says so («автор изменил текст»).
- An answered, closed or rejected incident keeps the text the department answered; the edit is kept beside it
  (``shown=False``) and the history says so.

What the edited text now reads as (the classifier's verdict on it, which the caller passes):

- irrelevant by the classifier's own verdict, and now a complaint: it becomes new, and is routed like any new
  one. Set aside by an operator, or as part of another incident's thread, it stays so: their decision stands;
- a complaint (new, routed, acknowledged) that now reads as dangerous where it was not critical becomes critical;
  one already routed starts a new routing round (``edited_dangerous.N``) so its departments hear of it at once,
  on the fast lane (the caller adds the owners of critical incidents and their clocks, as triage does for the
  operator's ``marked_dangerous.N``);
- any other change (category, municipality, no longer a complaint, no longer dangerous) is noted in the history
  for the operator and changes nothing: the departments at work keep the incident, the operator corrects or
  dismisses it in triage, and an author's edit never lowers a priority;
- a merged post stays a report of the incident it joined, now with the new text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from shared.domain.categories import category_name
from shared.domain.lifecycle import EDITABLE, new_routing_round, record_event, transition
from shared.domain.models import Classification, Incident, IncidentStatus, Post, PostVersion, Priority

S = IncidentStatus
EDITED = "edited"  # the history event of an edit
EDITED_DANGEROUS = "edited_dangerous"  # the routing reason of a round an edit started by reading as dangerous
# The note classify writes when its classifier dismisses a post: only such a verdict is the classifier's to revise.
NOT_A_COMPLAINT = "not a complaint"
# Versions kept on the incident: the original and the latest edits. Edits are few, but an author can edit a post a
# hundred times, and the document must stay far below Firestore's 1 MiB; every edit stays in the history's notes.
MAX_POST_VERSIONS = 20
EXCERPT_CHARS = 200
SET_ASIDE = {S.ANSWERED: "после ответа ведомства", S.CLOSED: "после закрытия", S.REJECTED: "после отклонения"}


class EditEffect(StrEnum):
    STALE = "stale"  # the same edit again, or older than what the incident shows: nothing changed
    REVISED = "revised"  # the incident shows the edit
    KEPT_ASIDE = "kept_aside"  # answered, closed or rejected: the edit is recorded, the answered text stays
    BECAME_COMPLAINT = "became_complaint"  # dismissed as not a complaint, a complaint now: new, to be routed
    ROUND_STARTED = "round_started"  # routed, and dangerous now: critical, in a new routing round


@dataclass(frozen=True)
class EditOutcome:
    incident: Incident
    effect: EditEffect


def latest_edit(incident: Incident) -> datetime | None:
    """When the newest version the incident knows was written; None: it knows only the post as first published."""
    times = [t for t in (incident.post.edited_at, *(v.edited_at for v in incident.post_versions)) if t is not None]
    return max(times, default=None)


def is_newer_edit(incident: Incident, edit: Post) -> bool:
    latest = latest_edit(incident)
    return edit.edited_at is not None and (latest is None or edit.edited_at > latest)


def apply_edit(incident: Incident, edit: Post, reading: Classification, *, at: datetime, actor: str) -> EditOutcome:
    """The incident after its author's ``edit``, which the classifier reads as ``reading`` (the rule: above)."""
    if edit.incident_id != incident.id:
        raise ValueError(f"post {edit.incident_id} is not an edit of incident {incident.id}")
    if not is_newer_edit(incident, edit):
        return EditOutcome(incident, EditEffect.STALE)
    if incident.status not in EDITABLE:
        return _kept_aside(incident, edit, reading, at=at, actor=actor)
    earlier = f"прежний текст: «{excerpt(incident.post.text)}»"
    shown = incident.model_copy(
        update={
            "post": edit_of(incident.post, edit),
            "post_versions": bounded((*incident.post_versions, version_of(incident.post, at, shown=True))),
        }
    )
    if incident.status is S.MERGED:
        return _edited(shown, EditEffect.REVISED, [earlier], at=at, actor=actor)
    if incident.status is S.IRRELEVANT:
        return _reread_dismissed(shown, reading, earlier, at=at, actor=actor)
    return _reread_complaint(shown, reading, earlier, at=at, actor=actor)


def arrived_after_its_edit(incident: Incident, post: Post) -> bool:
    """The original of a post whose edit came first (Pub/Sub keeps no order) and was stored as the post."""
    return (
        post.edited_at is None
        and incident.post.edited_at is not None
        and all(v.edited_at is not None for v in incident.post_versions)
    )


def keep_late_original(incident: Incident, original: Post, at: datetime) -> Incident | None:
    """The incident shows the newer text; the original is kept beside it (once: a redelivery finds it there), so
    every published version of a post is on its incident."""
    if not arrived_after_its_edit(incident, original):
        return None
    version = version_of(original, at, shown=False)
    return incident.model_copy(update={"post_versions": bounded((version, *incident.post_versions))})


def edit_of(post: Post, edit: Post) -> Post:
    """The post with the edit's words; where and when it was published, and by whom, stay."""
    return post.model_copy(
        update={"text": edit.text, "attachments": edit.attachments, "geo": edit.geo, "edited_at": edit.edited_at}
    )


def version_of(post: Post, at: datetime, *, shown: bool) -> PostVersion:
    return PostVersion(
        text=post.text,
        attachments=post.attachments,
        geo=post.geo,
        edited_at=post.edited_at,
        received_at=at,
        shown=shown,
    )


def bounded(versions: tuple[PostVersion, ...]) -> tuple[PostVersion, ...]:
    """The original and the latest versions, at most :data:`MAX_POST_VERSIONS`."""
    if len(versions) <= MAX_POST_VERSIONS:
        return versions
    return (versions[0], *versions[-(MAX_POST_VERSIONS - 1) :])


def excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"


def reads_newly_dangerous(current: Classification, reading: Classification) -> bool:
    return current.priority is not Priority.CRITICAL and (reading.danger or reading.priority is Priority.CRITICAL)


def dismissed_by_classifier(incident: Incident, actor: str) -> bool:
    """Irrelevant by the classifier's own verdict (``actor`` is classify), not by an operator or as a comment that
    is part of another incident's conversation."""
    last = incident.status_history[-1] if incident.status_history else None
    return last is not None and last.status is S.IRRELEVANT and last.actor == actor and last.note == NOT_A_COMPLAINT


def _edited(
    incident: Incident, effect: EditEffect, remarks: list[str], *, at: datetime, actor: str, **changes: object
) -> EditOutcome:
    note = "; ".join(remarks)[:500]
    return EditOutcome(record_event(incident, EDITED, at=at, actor=actor, note=note, **changes), effect)


def _kept_aside(incident: Incident, edit: Post, reading: Classification, *, at: datetime, actor: str) -> EditOutcome:
    remarks = [
        f"{SET_ASIDE.get(incident.status, 'поздно')}: обращение показывает прежний текст",
        f"новый текст: «{excerpt(edit.text)}»",
    ]
    if reads_newly_dangerous(incident.classification, reading):
        remarks.append("по новому тексту — опасность для людей: проверьте")
    versions = bounded((*incident.post_versions, version_of(edit, at, shown=False)))
    return _edited(incident, EditEffect.KEPT_ASIDE, remarks, at=at, actor=actor, post_versions=versions)


def _reread_dismissed(
    incident: Incident, reading: Classification, earlier: str, *, at: datetime, actor: str
) -> EditOutcome:
    if not dismissed_by_classifier(incident, actor):
        remarks = [earlier]
        if reading.is_complaint:
            remarks.append("по новому тексту это похоже на обращение, но отложил его не классификатор: проверьте")
        return _edited(incident, EditEffect.REVISED, remarks, at=at, actor=actor)
    if not reading.is_complaint:
        return _edited(incident, EditEffect.REVISED, [earlier], at=at, actor=actor, classification=reading)
    edited = _edited(incident, EditEffect.BECAME_COMPLAINT, [earlier], at=at, actor=actor).incident
    note = "по новому тексту автора это обращение"
    return EditOutcome(
        transition(edited, S.NEW, at=at, actor=actor, note=note, classification=reading), EditEffect.BECAME_COMPLAINT
    )


def _reread_complaint(
    incident: Incident, reading: Classification, earlier: str, *, at: datetime, actor: str
) -> EditOutcome:
    current = incident.classification
    remarks = [earlier, *_differences(current, reading)]
    if not reads_newly_dangerous(current, reading):
        return _edited(incident, EditEffect.REVISED, remarks, at=at, actor=actor)
    raised = current.model_copy(
        update={"danger": True, "priority": Priority.CRITICAL, "evidence": (*current.evidence, "author's edit: danger")}
    )
    remarks.append("по новому тексту — опасность для людей: приоритет повышен до критического")
    edited = _edited(incident, EditEffect.REVISED, remarks, at=at, actor=actor, classification=raised)
    if incident.status is S.NEW:
        return edited  # not routed yet: route routes it as critical
    note = "автор изменил текст: опасность для людей, приоритет повышен до критического"
    moved = new_routing_round(edited.incident, EDITED_DANGEROUS, at=at, actor=actor, note=note)
    return EditOutcome(moved, EditEffect.ROUND_STARTED)


def _differences(current: Classification, reading: Classification) -> list[str]:
    """What the classifier reads differently in the new text, for the operator (Russian: people read it)."""
    found = []
    if not reading.is_complaint:
        found.append("по новому тексту это не похоже на обращение: проверьте")
    elif reading.category != current.category:
        found.append(
            f"по новому тексту категория «{category_name(reading.category)}», "
            f"а не «{category_name(current.category)}»: проверьте маршрут"
        )
    if reading.municipality is not None and reading.municipality != current.municipality:
        found.append(
            f"по новому тексту муниципалитет {reading.municipality}, "
            f"а не {current.municipality or 'не определён'}: проверьте маршрут"
        )
    if current.priority is Priority.CRITICAL and not (reading.danger or reading.priority is Priority.CRITICAL):
        found.append("по новому тексту опасности не видно; приоритет оставлен критическим")
    return found
