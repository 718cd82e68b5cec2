"""An author's edit of a post already stored (shared/domain/edits.py, and classify applying it) with the in-memory
ports: the rule by status, idempotence, out-of-order edits, and what the new text does to routing."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from shared.contracts import IncidentClassifiedV1, PostFetchedV1
from shared.domain.edits import (
    EDITED,
    EDITED_DANGEROUS,
    MAX_POST_VERSIONS,
    NOT_A_COMPLAINT,
    EditEffect,
    apply_edit,
)
from shared.domain.lifecycle import EDITABLE, transition
from shared.domain.models import (
    Answer,
    Attachment,
    Channel,
    Classification,
    Geo,
    Incident,
    IncidentStatus,
    Post,
    Priority,
    StatusChange,
)
from shared.ports import Delivery
from shared.services.classify import ClassifyService
from shared.services.group_posts import PostGrouper
from shared.services.notify import Notifier
from shared.services.route import RouteService
from shared.services.routing import RuleDirectory
from shared.services.texts import incident_email
from tests.builders import EDDS, ROADS_AND_DUTY_SERVICE, T0, make_incident, make_post, shipped_deadlines
from tests.fakes import MemoryIncidents, MemoryNotifications, MemoryPublisher, RecordingSender

S = IncidentStatus
DEADLINES = shipped_deadlines()
CONFIG = ROADS_AND_DUTY_SERVICE

CHATTER = "Доброе утро, Шахты! Хорошего всем дня"
POTHOLE = "На ул. Ленина, 102 огромная яма на дороге, машины пробивают колёса, засыпьте яму!"
POTHOLE_FIXED_TYPO = "На ул. Ленина, 102 огромная яма на дороге, машины пробивают колёса, засыпьте её!"
MANHOLE = "На ул. Ленина, 102 яма на дороге, а рядом открытый люк, ребёнок чуть не упал!"
LITTER = "На ул. Ленина, 102 мусор не вывозят неделю"


def reading(text: str) -> Classification:
    """What the keyword classifier below makes of a text."""
    complaint = any(word in text for word in ("яма", "люк", "мусор"))
    danger = "люк" in text
    return Classification(
        category="landscaping" if "мусор" in text else "roads" if complaint else "other",
        is_complaint=complaint,
        danger=danger,
        priority=Priority.CRITICAL if danger else Priority.NORMAL,
        municipality="shakhty" if complaint else None,
        confidence=1,
        classifier="keywords",
    )


class KeywordClassifier:
    name = "keywords"

    def classify(self, post: Post) -> Classification:
        return reading(post.text)


def edit(text: str, minutes: float, post_id: str = "1", **kw: object) -> Post:
    """The author's version of post ``post_id`` written ``minutes`` after it was first published (T0)."""
    return make_post(post_id, text, edited_at=T0 + timedelta(minutes=minutes), **kw)


def complaint(status: IncidentStatus, priority: Priority = Priority.NORMAL, **kw: Any) -> Incident:
    return make_incident("1", status, priority=priority, department_ids=("roads",), **kw)


# --- the rule ---------------------------------------------------------------------------------------------


def test_an_edit_of_a_routed_incident_replaces_its_text_and_keeps_the_earlier_one() -> None:
    incident = complaint(S.ROUTED)
    photo = Attachment(kind="photo", url="https://vk.com/photo-1_2")
    new = edit(POTHOLE_FIXED_TYPO, 5, attachments=(photo,), geo=Geo(lat=47.7, lon=40.2))
    at = T0 + timedelta(minutes=6)

    outcome = apply_edit(incident, new, reading(new.text), at=at, actor="classify")

    edited = outcome.incident
    assert outcome.effect is EditEffect.REVISED and edited.status is S.ROUTED
    assert (edited.post.text, edited.post.attachments, edited.post.geo) == (new.text, (photo,), new.geo)
    assert edited.post.edited_at == new.edited_at
    # Where, when and by whom it was published stay; so do the classification and routing.
    assert (edited.post.published_at, edited.post.url, edited.post.author_id) == (T0, incident.post.url, "1001")
    assert edited.classification == incident.classification and edited.department_ids == ("roads",)
    [earlier] = edited.post_versions
    assert (earlier.text, earlier.edited_at, earlier.received_at, earlier.shown) == (
        incident.post.text,
        None,
        at,
        True,
    )
    [event] = edited.events
    assert event.kind == EDITED and event.at == at and edited.updated_at == at
    assert f"прежний текст: «{incident.post.text}»" in event.note


def test_the_same_edit_twice_and_an_older_edit_after_a_newer_change_nothing() -> None:
    incident = complaint(S.ROUTED)
    newer = apply_edit(incident, edit("вторая правка: яма", 10), reading("яма"), at=T0, actor="classify").incident

    again = apply_edit(newer, edit("вторая правка: яма", 10), reading("яма"), at=T0, actor="classify")
    older = apply_edit(newer, edit("первая правка: яма", 5), reading("яма"), at=T0, actor="classify")
    original = apply_edit(newer, make_post("1", "яма"), reading("яма"), at=T0, actor="classify")

    for outcome in (again, older, original):
        assert outcome.effect is EditEffect.STALE and outcome.incident == newer
    assert newer.post.text == "вторая правка: яма"


@pytest.mark.parametrize("status", list(IncidentStatus))
def test_which_statuses_show_an_edit(status: IncidentStatus) -> None:
    incident = complaint(status)
    outcome = apply_edit(incident, edit(POTHOLE_FIXED_TYPO, 5), reading(POTHOLE_FIXED_TYPO), at=T0, actor="x")
    shown = status in (S.NEW, S.ROUTED, S.ACKNOWLEDGED, S.IRRELEVANT, S.MERGED)
    assert (status in EDITABLE) is shown
    assert (outcome.incident.post.text == POTHOLE_FIXED_TYPO) is shown
    assert outcome.effect is (EditEffect.REVISED if shown else EditEffect.KEPT_ASIDE)
    assert outcome.incident.status is status


@pytest.mark.parametrize("status", [S.ANSWERED, S.CLOSED, S.REJECTED])
def test_an_edit_after_the_answer_is_kept_beside_the_answered_text(status: IncidentStatus) -> None:
    answer = Answer(text="Яму засыплем до пятницы.", at=T0, department_id="roads")
    incident = complaint(status, answers=(answer,))
    new = edit("Яму так и не засыпали, уже две недели!", 60 * 24)

    outcome = apply_edit(incident, new, reading(new.text), at=T0 + timedelta(days=1), actor="classify")

    kept = outcome.incident
    assert outcome.effect is EditEffect.KEPT_ASIDE
    assert kept.post == incident.post and kept.answers == (answer,) and kept.status is status
    [late] = kept.post_versions
    assert (late.text, late.edited_at, late.shown) == (new.text, new.edited_at, False)
    [event] = kept.events
    assert event.kind == EDITED and "обращение показывает прежний текст" in event.note and new.text in event.note
    # Redelivered, or an older edit arriving late: nothing more.
    assert apply_edit(kept, new, reading(new.text), at=T0, actor="classify").effect is EditEffect.STALE
    assert apply_edit(kept, edit("яма", 5), reading("яма"), at=T0, actor="classify").effect is EditEffect.STALE


def test_a_post_the_classifier_dismissed_becomes_a_complaint_when_its_edit_reads_as_one() -> None:
    dismissed = make_incident(
        "1",
        S.IRRELEVANT,
        classification=reading(CHATTER),
        status_history=(
            StatusChange(status=S.NEW, at=T0, actor="classify"),
            StatusChange(status=S.IRRELEVANT, at=T0, actor="classify", note=NOT_A_COMPLAINT),
        ),
    )

    outcome = apply_edit(dismissed, edit(POTHOLE, 5), reading(POTHOLE), at=T0, actor="classify")

    assert outcome.effect is EditEffect.BECAME_COMPLAINT
    assert outcome.incident.status is S.NEW and outcome.incident.classification == reading(POTHOLE)
    assert outcome.incident.status_history[-1].note == "по новому тексту автора это обращение"


def test_a_post_an_operator_dismissed_stays_dismissed_whatever_its_edit_says() -> None:
    dismissed = make_incident(
        "1",
        S.IRRELEVANT,
        status_history=(
            StatusChange(status=S.NEW, at=T0, actor="classify"),
            StatusChange(status=S.ROUTED, at=T0, actor="route"),
            StatusChange(status=S.IRRELEVANT, at=T0, actor="region-coordinator (triage)", note=NOT_A_COMPLAINT),
        ),
    )

    outcome = apply_edit(dismissed, edit(POTHOLE_FIXED_TYPO, 5), reading(POTHOLE_FIXED_TYPO), at=T0, actor="classify")

    assert outcome.effect is EditEffect.REVISED and outcome.incident.status is S.IRRELEVANT
    assert outcome.incident.post.text == POTHOLE_FIXED_TYPO
    assert outcome.incident.classification == dismissed.classification
    assert "отложил его не классификатор" in outcome.incident.events[-1].note


@pytest.mark.parametrize("status", [S.ROUTED, S.ACKNOWLEDGED])
def test_a_routed_complaint_whose_edit_reads_as_dangerous_starts_a_round_on_the_fast_lane(
    status: IncidentStatus,
) -> None:
    incident = complaint(status, routing_round=0, undelivered=False)

    outcome = apply_edit(incident, edit(MANHOLE, 5), reading(MANHOLE), at=T0, actor="classify")

    moved = outcome.incident
    assert outcome.effect is EditEffect.ROUND_STARTED
    assert moved.status is S.ROUTED and moved.routing_reason == EDITED_DANGEROUS and moved.routing_round == 1
    assert moved.undelivered and moved.classification.priority is Priority.CRITICAL and moved.classification.danger
    assert "опасность для людей" in moved.status_history[-1].note


def test_a_new_complaint_whose_edit_reads_as_dangerous_is_critical_before_it_is_routed() -> None:
    outcome = apply_edit(complaint(S.NEW), edit(MANHOLE, 5), reading(MANHOLE), at=T0, actor="classify")
    assert outcome.effect is EditEffect.REVISED and outcome.incident.status is S.NEW
    assert outcome.incident.classification.priority is Priority.CRITICAL and outcome.incident.routing_round == 0


def test_another_category_or_no_danger_in_the_edit_is_noted_for_the_operator_and_changes_no_routing() -> None:
    incident = complaint(S.ROUTED, priority=Priority.CRITICAL)

    outcome = apply_edit(incident, edit(LITTER, 5), reading(LITTER), at=T0, actor="classify")

    assert outcome.effect is EditEffect.REVISED
    assert outcome.incident.classification == incident.classification and outcome.incident.routing_round == 0
    note = outcome.incident.events[-1].note
    assert "категория «Благоустройство», а не «Дороги»: проверьте маршрут" in note
    assert "опасности не видно; приоритет оставлен критическим" in note


def test_a_merged_post_edited_stays_a_report_with_the_new_text() -> None:
    merged = make_incident("1", S.MERGED, merged_into="vk:-210000001:9")
    outcome = apply_edit(merged, edit(MANHOLE, 5), reading(MANHOLE), at=T0, actor="classify")
    assert outcome.incident.status is S.MERGED and outcome.incident.merged_into == merged.merged_into
    assert outcome.incident.post.text == MANHOLE and outcome.incident.classification == merged.classification


def test_the_original_and_the_latest_versions_are_kept_however_often_it_is_edited() -> None:
    incident = complaint(S.ROUTED)
    for minute in range(1, MAX_POST_VERSIONS + 10):
        incident = apply_edit(
            incident, edit(f"яма, правка {minute}", minute), reading("яма"), at=T0, actor="c"
        ).incident
    assert len(incident.post_versions) == MAX_POST_VERSIONS
    assert incident.post_versions[0].text == make_post("1").text and incident.post_versions[0].edited_at is None
    assert incident.post_versions[-1].text == f"яма, правка {MAX_POST_VERSIONS + 8}"
    assert len(incident.events) == MAX_POST_VERSIONS + 9  # every edit is in the history


def test_an_edit_of_another_post_is_refused() -> None:
    with pytest.raises(ValueError):
        apply_edit(complaint(S.ROUTED), edit("яма", 5, post_id="2"), reading("яма"), at=T0, actor="classify")


# --- classify -----------------------------------------------------------------------------------------------


class Rig:
    """classify and route with the in-memory ports; the test moves the clock."""

    def __init__(self) -> None:
        self.now = T0
        self.incidents = MemoryIncidents()
        self.publisher = MemoryPublisher()
        self.email = RecordingSender()
        directory = RuleDirectory(CONFIG)
        notifier = Notifier(MemoryNotifications(), {Channel.EMAIL: self.email}, self.clock, 60)
        grouper = PostGrouper(self.incidents, self.incidents, self.clock, lambda: DEADLINES, lambda: directory)
        self.route = RouteService(self.incidents, directory, notifier, DEADLINES, self.clock, grouping=grouper)
        self.classify = ClassifyService(
            KeywordClassifier(),
            self.incidents,
            self.publisher,
            "incidents",
            self.clock,
            grouper=grouper,
            deadlines=lambda: DEADLINES,
            directory=lambda: directory,
        )

    def clock(self) -> datetime:
        return self.now

    def deliver(self, post: Post, route: bool = True) -> str:
        """classify the post; route what it hands on (unless ``route`` is False: the hand-offs stay published)."""
        result = self.classify.handle(PostFetchedV1(post=post, fetched_at=self.now))
        if route:
            for message in self.handed():
                self.route.handle(message)
            self.publisher.published.clear()
        return result

    def handed(self) -> list[IncidentClassifiedV1]:
        return [m for m in self.publisher.on("incidents") if isinstance(m, IncidentClassifiedV1)]

    def stored(self, post_id: str = "1") -> Incident:
        found = self.incidents.get(make_post(post_id).incident_id)
        assert found is not None
        return found

    def sent(self) -> list[tuple[str, str, bool]]:
        return [(d.department.id, d.kind, d.urgent) for d in self.email.sent]


def test_an_edit_of_a_routed_complaint_updates_the_stored_incident_and_tells_nobody() -> None:
    rig = Rig()
    rig.deliver(make_post("1", POTHOLE))
    rig.now += timedelta(minutes=10)

    rig.deliver(edit(POTHOLE_FIXED_TYPO, 9), route=False)

    stored = rig.stored()
    assert stored.status is S.ROUTED and stored.post.text == POTHOLE_FIXED_TYPO
    assert [v.text for v in stored.post_versions] == [POTHOLE]
    assert rig.handed() == [] and rig.sent() == [("roads", "new_incident", False)]


def test_edits_redelivered_and_out_of_order_leave_the_newest_text() -> None:
    rig = Rig()
    rig.deliver(make_post("1", POTHOLE))
    second, first = edit("яма, вторая правка", 20), edit("яма, первая правка", 10)

    for post in (second, second, first, first, make_post("1", POTHOLE)):
        rig.now += timedelta(minutes=1)
        rig.deliver(post)

    stored = rig.stored()
    assert stored.post.text == "яма, вторая правка" and [v.text for v in stored.post_versions] == [POTHOLE]
    assert [e.kind for e in stored.events] == [EDITED]


def test_an_edit_of_a_post_never_stored_is_the_post() -> None:
    rig = Rig()
    late = edit(POTHOLE_FIXED_TYPO, 30)

    assert "created" in rig.deliver(late)
    original = make_post("1", POTHOLE)
    rig.deliver(original)  # the original, fetched after its edit: older news, kept beside it
    rig.deliver(original)  # and redelivered: kept once

    stored = rig.stored()
    assert stored.status is S.ROUTED and stored.post == late
    assert [(v.text, v.edited_at, v.shown) for v in stored.post_versions] == [(POTHOLE, None, False)]
    assert rig.sent() == [("roads", "new_incident", False)]


def test_a_dismissed_post_edited_into_a_complaint_is_routed_like_a_new_one_once() -> None:
    rig = Rig()
    rig.deliver(make_post("1", CHATTER))
    assert rig.stored().status is S.IRRELEVANT
    rig.now += timedelta(hours=1)

    complained = edit(POTHOLE, 55)
    rig.deliver(complained, route=False)
    rig.deliver(complained, route=False)  # Pub/Sub redelivers before route has run: handed again, changed once
    assert [m.incident_id for m in rig.handed()] == [rig.stored().id] * 2
    for message in rig.handed():
        rig.route.handle(message)

    stored = rig.stored()
    assert stored.status is S.ROUTED and stored.post.text == POTHOLE and stored.department_ids == ("roads",)
    assert [c.status for c in stored.status_history] == [S.NEW, S.IRRELEVANT, S.NEW, S.ROUTED]
    assert stored.group_keys  # later posts about the pothole join it
    assert rig.sent() == [("roads", "new_incident", False)]


def test_a_dismissed_post_edited_into_a_complaint_about_a_known_problem_joins_its_incident() -> None:
    rig = Rig()
    rig.deliver(make_post("1", POTHOLE, author_id="1001"))
    rig.deliver(make_post("2", CHATTER, author_id="1002"))
    rig.now += timedelta(hours=1)

    rig.deliver(edit("Ленина 102 — яма на дороге так и не засыпана, колёса пробиваем", 50, post_id="2"))

    joined = rig.stored("2")
    assert joined.status is S.MERGED and joined.merged_into == rig.stored("1").id
    assert rig.stored("1").residents == 2 and [r.incident_id for r in rig.stored("1").reports] == [joined.id]
    assert rig.sent() == [("roads", "new_incident", False)]  # the department heard of the problem once


def test_a_routed_complaint_edited_into_a_dangerous_one_reaches_the_duty_service_on_the_fast_lane() -> None:
    rig = Rig()
    rig.deliver(make_post("1", POTHOLE))
    routed = rig.stored()
    rig.now += timedelta(hours=5)

    dangerous = edit(MANHOLE, 60 * 5)
    rig.deliver(dangerous)

    stored = rig.stored()
    assert stored.routing_reason == EDITED_DANGEROUS and stored.routing_round == 1
    assert stored.classification.priority is Priority.CRITICAL and stored.department_ids == ("roads", "edds")
    assert (
        stored.routed_at == rig.now and stored.reply_due_at is not None and stored.reply_due_at != routed.reply_due_at
    )
    assert rig.sent() == [
        ("roads", "new_incident", False),
        ("roads", "edited_dangerous.1", True),
        ("edds", "edited_dangerous.1", True),
    ]
    assert not stored.undelivered

    # Redelivered after route told everyone: no new round, nobody told again.
    rig.now += timedelta(minutes=5)
    assert "stale" in rig.deliver(dangerous, route=False)
    assert rig.handed() == [] and rig.stored() == stored


def test_a_lost_hand_off_of_a_dangerous_edit_is_made_again_on_redelivery() -> None:
    rig = Rig()
    rig.deliver(make_post("1", POTHOLE))
    dangerous = edit(MANHOLE, 30)
    rig.deliver(dangerous, route=False)
    rig.publisher.published.clear()  # the hand-off was lost

    rig.deliver(dangerous)

    assert rig.stored().routing_round == 1 and not rig.stored().undelivered
    assert [kind for _, kind, _ in rig.sent()] == ["new_incident", "edited_dangerous.1", "edited_dangerous.1"]


def test_an_edit_after_the_answer_is_recorded_and_changes_what_nobody_answered() -> None:
    rig = Rig()
    rig.deliver(make_post("1", POTHOLE))
    answer = Answer(text="Засыплем до пятницы.", at=rig.now, department_id="roads")
    rig.incidents.update(
        rig.stored().id, lambda i: transition(i, S.ANSWERED, at=rig.now, actor="roads", answers=(answer,))
    )

    rig.deliver(edit(MANHOLE, 90), route=False)

    stored = rig.stored()
    assert stored.status is S.ANSWERED and stored.post.text == POTHOLE and stored.answers == (answer,)
    assert [(v.text, v.shown) for v in stored.post_versions] == [(MANHOLE, False)]
    assert "опасность для людей: проверьте" in stored.events[-1].note
    assert rig.handed() == []


def test_the_letter_of_a_dangerous_edit_says_so_and_shows_the_current_text() -> None:
    incident = apply_edit(complaint(S.ROUTED), edit(MANHOLE, 5), reading(MANHOLE), at=T0, actor="classify").incident
    letter = incident_email(Delivery(EDDS, incident, "n-1", f"{EDITED_DANGEROUS}.1", urgent=True))

    assert letter.subject.startswith("Опасно: СРОЧНО:")
    assert "Автор изменил текст обращения" in letter.text and MANHOLE in letter.text
    assert make_post("1").text not in letter.text


def test_an_edit_whose_original_is_stored_while_it_is_classified_is_applied_as_an_edit() -> None:
    """Original and edit published together: classify finds no incident for the edit, and by the time it
    creates one the original's is there. The edit must not vanish."""
    rig = Rig()
    original = make_post("1", POTHOLE)
    real_create = rig.incidents.create

    def create_after_the_original(incident: Incident) -> bool:
        rig.incidents.create = real_create  # type: ignore[method-assign]
        rig.deliver(original, route=False)  # the original's classify wins the race
        return real_create(incident)

    rig.incidents.create = create_after_the_original  # type: ignore[method-assign]
    rig.deliver(edit(POTHOLE_FIXED_TYPO, 5))

    stored = rig.stored()
    assert stored.post.text == POTHOLE_FIXED_TYPO
    assert [(v.text, v.shown) for v in stored.post_versions] == [(POTHOLE, True)]
