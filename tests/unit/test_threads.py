"""The conversation under a post: answers posted back to VK, official accounts answering by hand, and the
follow-up question ("is it fixed?") that closes or reopens an incident."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from shared.config import RoutingConfig
from shared.contracts import IncidentAnsweredV1, IncidentClassifiedV1, PostFetchedV1
from shared.domain.errors import TransientError
from shared.domain.models import Channel, Classification, Department, Incident, IncidentStatus, Post, Priority
from shared.services.classify import ClassifyService
from shared.services.comments import FOLLOWUP_QUESTION, comment_text
from shared.services.notify import Notifier
from shared.services.remind import RemindService
from shared.services.responses import ResponseService
from shared.services.route import RouteService
from shared.services.routing import RuleDirectory
from shared.services.threads import ThreadReplies
from tests.builders import T0, make_incident, make_post, shipped_deadlines
from tests.fakes import MemoryIncidents, MemoryMarkers, MemoryNotifications, MemoryPublisher, RecordingSender

S = IncidentStatus
DEADLINES = shipped_deadlines()
ROADS = Department(id="roads", name="Отдел дорог г. Шахты", categories=("roads",), email="roads@shakhty.example")
CONFIG = RoutingConfig(departments=(ROADS,), fallback="roads")
COMMUNITY = "-210000001"


class Complaint:
    name = "fixed"

    def classify(self, post: Post) -> Classification:
        return Classification(
            category="roads",
            is_complaint=True,
            priority=Priority.NORMAL,
            municipality="shakhty",
            confidence=1,
            classifier="t",
        )


class Rig:
    def __init__(self) -> None:
        self.now = T0
        self.incidents = MemoryIncidents()
        self.publisher = MemoryPublisher()
        self.comments = RecordingSender()
        self.email = RecordingSender()
        directory = RuleDirectory(CONFIG)
        notifier = Notifier(
            MemoryNotifications(), {Channel.COMMENT: self.comments, Channel.EMAIL: self.email}, self.clock, 60
        )
        self.route = RouteService(self.incidents, directory, notifier, DEADLINES, self.clock)
        self.responses = ResponseService(self.incidents, directory, self.publisher, "incidents", self.clock, DEADLINES)
        self.remind = RemindService(self.incidents, directory, notifier, DEADLINES, self.publisher, "incidents", 50)
        threads = ThreadReplies(
            self.incidents, lambda p: p.author_id == p.community, self.clock, lambda: DEADLINES, lambda: directory
        )
        self.classify = ClassifyService(Complaint(), self.incidents, self.publisher, "incidents", self.clock, threads)

    def clock(self) -> datetime:
        return self.now

    def post(self, post: Post) -> Incident:
        self.classify.handle(PostFetchedV1(post=post, fetched_at=self.now))
        for message in self.publisher.on("incidents"):
            if isinstance(message, IncidentClassifiedV1):
                self.route.handle(message)
        self.publisher.published.clear()
        return self.stored(post.incident_id)

    def stored(self, incident_id: str) -> Incident:
        found = self.incidents.get(incident_id)
        assert found is not None
        return found

    def comment(self, comment_id: str, author: str, text: str, parent: str = "100") -> Post:
        return make_post(
            f"{parent}_{comment_id}", text=text, author_id=author, parent_post_id=parent, published_at=self.now
        )


def test_an_answer_through_the_api_is_posted_once_under_the_vk_post_signed_by_the_department() -> None:
    rig = Rig()
    incident = rig.post(make_post("100"))
    rig.responses.answer(rig.responses.actor("roads"), incident.id, "Яму засыплем в четверг.", request_key="k")
    rig.responses.answer(rig.responses.actor("roads"), incident.id, "Яму засыплем в четверг.", request_key="k")
    messages = [m for m in rig.publisher.on("incidents") if isinstance(m, IncidentAnsweredV1)]
    assert len(messages) == 2  # published again on the resend; route makes it one comment
    for message in messages:
        rig.route.handle_answered(message)
    [posted] = rig.comments.sent
    assert comment_text(posted) == "Яму засыплем в четверг.\n\n— Отдел дорог г. Шахты"


def test_an_official_account_answering_by_hand_marks_the_incident_answered_and_is_not_a_complaint() -> None:
    rig = Rig()
    incident = rig.post(make_post("100", author_id="1001"))
    rig.now = T0 + timedelta(hours=3)
    reply = rig.post(rig.comment("7", COMMUNITY, "Здравствуйте! Передали в дорожную службу, ремонт на этой неделе."))

    answered = rig.stored(incident.id)
    assert answered.status is S.ANSWERED and answered.first_reply_at == T0 + timedelta(hours=3)
    assert [a.department_id for a in answered.answers] == ["official-account"]
    assert reply.status is S.IRRELEVANT and "official answer" in reply.status_history[-1].note
    # The same comment fetched again changes nothing.
    rig.classify.handle(PostFetchedV1(post=rig.comment("7", COMMUNITY, "Здравствуйте!"), fetched_at=rig.now))
    assert len(rig.stored(incident.id).answers) == 1


def test_the_comment_otklik_posted_from_an_answer_is_recognised_and_not_counted_twice() -> None:
    rig = Rig()
    incident = rig.post(make_post("100"))
    rig.responses.answer(rig.responses.actor("roads"), incident.id, "Яму засыплем в четверг.")
    rig.post(rig.comment("8", COMMUNITY, "Яму засыплем в четверг.\n\n— Отдел дорог г. Шахты"))
    assert len(rig.stored(incident.id).answers) == 1


def ask_followup(rig: Rig) -> Incident:
    incident = rig.post(make_post("100", author_id="1001"))
    rig.responses.answer(rig.responses.actor("roads"), incident.id, "Отремонтируем до 1 декабря.")
    due = rig.stored(incident.id).resolve_due_at
    assert due is not None
    rig.now = due
    report = rig.remind.run(due)
    assert f"{incident.id} resolution.overdue" in report.steps
    return rig.stored(incident.id)


def test_when_the_resolution_deadline_passes_the_author_is_asked_once_whether_it_is_fixed() -> None:
    rig = Rig()
    incident = ask_followup(rig)
    assert incident.followup_asked_at == rig.now
    [question] = [d for d in rig.comments.sent if d.kind.startswith("followup")]
    assert comment_text(question) == FOLLOWUP_QUESTION
    rig.remind.run(rig.now + timedelta(minutes=15))
    assert len([d for d in rig.comments.sent if d.kind.startswith("followup")]) == 1


def test_the_author_saying_no_reopens_the_incident_with_fresh_deadlines_and_route_tells_the_department() -> None:
    rig = Rig()
    incident = ask_followup(rig)
    rig.now += timedelta(hours=5)
    rig.classify.handle(PostFetchedV1(post=rig.comment("9", "1001", "Нет, до сих пор яма!"), fetched_at=rig.now))
    reopened = rig.stored(incident.id)
    assert reopened.status is S.ROUTED and reopened.routing_reason == "reopened" and reopened.routing_round == 1
    assert reopened.reply_due_at is not None and reopened.reply_due_at > rig.now and not reopened.overdue
    assert "not fixed" in reopened.status_history[-1].note
    [handoff] = [m for m in rig.publisher.on("incidents") if isinstance(m, IncidentClassifiedV1)]
    rig.route.handle(handoff)
    assert ("roads", "reopened.1") in [(d.department.id, d.kind) for d in rig.email.sent]


def test_the_author_saying_yes_closes_it_and_any_other_reply_is_an_ordinary_comment() -> None:
    rig = Rig()
    incident = ask_followup(rig)
    chatter = rig.post(rig.comment("10", "1001", "А когда будет автобус?"))
    assert chatter.status is S.ROUTED  # classified like any post (here: a complaint)
    assert rig.stored(incident.id).status is S.ANSWERED
    rig.post(rig.comment("11", "1001", "Да, сделали, спасибо"))
    closed = rig.stored(incident.id)
    assert closed.status is S.CLOSED and closed.followup_asked_at is None


def test_a_comment_under_an_unknown_post_or_by_someone_else_is_just_a_post() -> None:
    rig = Rig()
    stranger = rig.post(rig.comment("12", "2002", "У нас тоже яма", parent="555"))
    assert stranger.status is S.ROUTED


def test_an_interim_answer_is_posted_too() -> None:
    rig = Rig()
    incident = rig.post(make_post("100"))
    rig.responses.answer(
        rig.responses.actor("roads"), incident.id, "Разбираемся", interim=True, promised_by=date(2026, 12, 1)
    )
    [message] = [m for m in rig.publisher.on("incidents") if isinstance(m, IncidentAnsweredV1)]
    rig.route.handle_answered(message)
    assert len(rig.comments.sent) == 1


def test_incidents_from_other_networks_get_no_comment() -> None:
    rig = Rig()
    incident = make_incident("1", S.ROUTED, post=make_post("1", source="telegram"), department_ids=("roads",))
    rig.incidents.create(incident)
    rig.responses.answer(rig.responses.actor("roads"), incident.id, "Ответ")
    [message] = [m for m in rig.publisher.on("incidents") if isinstance(m, IncidentAnsweredV1)]
    assert "takes no replies" in rig.route.handle_answered(message)
    assert rig.comments.sent == []


def test_an_official_comment_whose_post_is_still_in_flight_waits_for_it() -> None:
    rig = Rig()
    published = MemoryMarkers()
    rig.classify.threads.published = published  # type: ignore[union-attr]
    parent = make_post("100")
    published.mark([parent.incident_id], T0)  # ingest published both; the comment is classified first
    answer = rig.comment("7", COMMUNITY, "Передали в дорожную службу.")
    with pytest.raises(TransientError, match="not stored yet"):
        rig.classify.handle(PostFetchedV1(post=answer, fetched_at=T0))
    rig.post(parent)
    rig.post(answer)  # Pub/Sub's redelivery
    assert [a.department_id for a in rig.stored(parent.incident_id).answers] == ["official-account"]
    # A comment under a post Otklik never published (older than the first fetch) is just a comment.
    lone = rig.post(rig.comment("8", COMMUNITY, "Спасибо за обращение", parent="999"))
    assert lone.status is S.ROUTED
