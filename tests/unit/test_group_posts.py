"""Incidents, not posts: classify groups reports of one problem into one incident (services/group_posts.py), on
the in-memory ports. The Firestore query itself: tests/integration/test_firestore_adapters.py."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from shared.contracts import IncidentClassifiedV1, PostFetchedV1
from shared.domain.lifecycle import transition
from shared.domain.models import (
    Channel,
    Classification,
    Incident,
    IncidentStatus,
    Post,
    Priority,
)
from shared.services import grouping
from shared.services.classify import ClassifyService
from shared.services.group_posts import RAISE_TO_HIGH, PostGrouper, raised_priority
from shared.services.notify import Notifier
from shared.services.route import RouteService
from shared.services.routing import RuleDirectory
from shared.services.threads import ThreadReplies
from tests.builders import ROADS, ROADS_AND_DUTY_SERVICE, T0, make_post, shipped_deadlines
from tests.fakes import MemoryIncidents, MemoryNotifications, MemoryPublisher, NoCandidates, RecordingSender

S = IncidentStatus
DEADLINES = shipped_deadlines()
CONFIG = ROADS_AND_DUTY_SERVICE

POTHOLE = "На ул. Ленина, 102 огромная яма на дороге, машины пробивают колёса, засыпьте яму!"
POTHOLE_AGAIN = "Ленина 102 — яма на дороге так и не засыпана, колёса пробиваем каждый день"
POTHOLE_THIRD = "Присоединяюсь, яма на Ленина 102 на дороге ужасная, колёса жалко"
OTHER_HOUSE = "На ул. Ленина, 15 огромная яма на дороге, машины пробивают колёса"
MANHOLE = "Ленина 102, у ямы на дороге ещё и открытый люк, ребёнок чуть не упал! Колёса тоже бьют"


class KeywordClassifier:
    """Roads in Shakhty; dangerous when the text says "люк". The grouping rule reads the text itself."""

    name = "keywords"

    def classify(self, post: Post) -> Classification:
        danger = "люк" in post.text
        return Classification(
            category="roads",
            is_complaint=True,
            priority=Priority.CRITICAL if danger else Priority.NORMAL,
            danger=danger,
            municipality="shakhty",
            confidence=1,
            classifier=self.name,
        )


class Rig:
    def __init__(self) -> None:
        self.now = T0
        self.incidents = MemoryIncidents()
        self.publisher = MemoryPublisher()
        self.email = RecordingSender()
        directory = RuleDirectory(CONFIG)
        notifier = Notifier(MemoryNotifications(), {Channel.EMAIL: self.email}, self.clock, 60)
        grouper = PostGrouper(self.incidents, self.incidents, self.clock, lambda: DEADLINES, lambda: directory)
        self.route = RouteService(
            self.incidents, directory, notifier, DEADLINES, self.clock, lambda i, d: None, grouper
        )
        threads = ThreadReplies(self.incidents, lambda p: False, self.clock, lambda: DEADLINES, lambda: directory)
        self.classify = ClassifyService(
            KeywordClassifier(), self.incidents, self.publisher, "incidents", self.clock, threads, grouper
        )
        # classify on another instance, at the same moment as one the first is still busy with: its grouping
        # query cannot see that one's incident yet
        blind = PostGrouper(self.incidents, NoCandidates(), self.clock, lambda: DEADLINES, lambda: directory)
        self.classify_blind = ClassifyService(
            KeywordClassifier(), self.incidents, self.publisher, "incidents", self.clock, threads, blind
        )

    def clock(self) -> datetime:
        return self.now

    def post(self, post_id: str, text: str, author: str, **kw: object) -> Post:
        post = make_post(post_id, text=text, author_id=author, published_at=self.now, **kw)
        self.deliver(post)
        return post

    def deliver(self, post: Post) -> str:
        result = self.classify.handle(PostFetchedV1(post=post, fetched_at=self.now))
        for message in self.publisher.on("incidents"):
            if isinstance(message, IncidentClassifiedV1):
                self.route.handle(message)
        self.publisher.published.clear()
        return result

    def classified_together(self, *posts: Post) -> list[IncidentClassifiedV1]:
        """Classify ``posts`` as if at one moment (none sees another's incident); route's messages, not routed."""
        for post in posts:
            self.classify_blind.handle(PostFetchedV1(post=post, fetched_at=self.now))
        messages = [m for m in self.publisher.on("incidents") if isinstance(m, IncidentClassifiedV1)]
        self.publisher.published.clear()
        return messages

    def stored(self, post: Post) -> Incident:
        found = self.incidents.get(post.incident_id)
        assert found is not None
        return found

    def close(self, incident_id: str) -> None:
        def closed(i: Incident) -> Incident:
            answered = transition(i, S.ANSWERED, at=self.now, actor="roads", first_reply_at=self.now)
            return transition(answered, S.CLOSED, at=self.now, actor="roads", resolved_at=self.now)

        self.incidents.update(incident_id, closed)

    def kinds(self) -> list[str]:
        return [d.kind for d in self.email.sent]


def test_three_residents_about_one_pothole_make_one_incident_that_keeps_every_report_and_is_raised() -> None:
    rig = Rig()
    first = rig.post("1", POTHOLE, "1001")
    rig.now += timedelta(hours=3)
    second = rig.post("2", POTHOLE_AGAIN, "1002", source="ok", community="55", url="https://ok.ru/group/55/topic/2")
    rig.now += timedelta(days=2)
    third = rig.post("3", POTHOLE_THIRD, "1003", source="telegram", community="-1007", url="https://t.me/c/7/3")

    incident = rig.stored(first)
    assert incident.status is S.ROUTED and incident.residents == 3
    assert [r.url for r in incident.reports] == [second.url, third.url]
    assert [r.action for r in incident.reports] == ["join", "join"]
    assert incident.last_post_at == third.published_at
    # More residents: the priority rises (never falls), and the history says why.
    assert incident.classification.priority is Priority.HIGH
    assert any("3 residents reported" in e.note and "normal -> high" in e.note for e in incident.events)
    for merged in (rig.stored(second), rig.stored(third)):
        assert merged.status is S.MERGED and merged.merged_into == incident.id and not merged.group_keys
    # The department heard of it once; the other two posts are not incidents of their own.
    assert rig.kinds() == ["new_incident"]


def test_a_replayed_report_is_counted_once_and_notifies_nobody() -> None:
    rig = Rig()
    first = rig.post("1", POTHOLE, "1001")
    second = rig.post("2", POTHOLE_AGAIN, "1002")
    before = rig.stored(first)

    for _ in range(3):
        assert "exists" in rig.deliver(second)

    after = rig.stored(first)
    assert after.reports == before.reports and after.residents == 2 and len(after.events) == len(before.events)
    assert rig.kinds() == ["new_incident"]


def test_a_report_stored_before_a_crash_is_counted_on_the_replay() -> None:
    rig = Rig()
    first = rig.post("1", POTHOLE, "1001")
    real_update = rig.incidents.update
    calls = {"n": 0}

    def dying_update(incident_id: str, change):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        raise ConnectionError("the instance died after storing the merged post")

    rig.incidents.update = dying_update  # type: ignore[method-assign]
    post = make_post("2", text=POTHOLE_AGAIN, author_id="1002", published_at=rig.now)
    with pytest.raises(ConnectionError):
        rig.deliver(post)
    assert rig.stored(post).status is S.MERGED and rig.stored(first).reports == ()
    rig.incidents.update = real_update  # type: ignore[method-assign]

    rig.deliver(post)
    assert [r.incident_id for r in rig.stored(first).reports] == [post.incident_id]
    assert rig.stored(first).residents == 2 and calls["n"] == 1


def test_another_house_on_the_same_street_is_another_incident() -> None:
    rig = Rig()
    first = rig.post("1", POTHOLE, "1001")
    other = rig.post("2", OTHER_HOUSE, "1002")
    assert rig.stored(other).status is S.ROUTED and rig.stored(other).merged_into is None
    assert rig.stored(first).reports == ()
    assert rig.kinds() == ["new_incident", "new_incident"]


def test_the_same_author_twice_is_one_resident() -> None:
    rig = Rig()
    first = rig.post("1", POTHOLE, "1001")
    rig.post("2", POTHOLE_AGAIN, "1001")
    assert rig.stored(first).residents == 1 and len(rig.stored(first).reports) == 1
    assert rig.stored(first).classification.priority is Priority.NORMAL


def test_a_problem_reported_again_days_after_it_was_resolved_reopens_the_incident_once() -> None:
    rig = Rig()
    first = rig.post("1", POTHOLE, "1001")
    rig.now += timedelta(days=1)
    rig.close(first.incident_id)
    rig.now += timedelta(days=3)
    again = rig.post("2", POTHOLE_AGAIN, "1002")

    incident = rig.stored(first)
    assert rig.stored(again).merged_into == incident.id
    assert incident.status is S.ROUTED and incident.routing_round == 1 and incident.routing_reason == "reopened"
    assert incident.resolved_at is None and incident.reply_due_at is not None and incident.reply_due_at > rig.now
    assert incident.reports[-1].action == "reopen" and incident.reports[-1].routing_round == 1
    assert rig.kinds() == ["new_incident", "reopened.1"]

    # The replay hands the incident to route again (the first hand-off may be the one that was lost); route
    # has sent this round already and sends nothing.
    rig.deliver(again)
    assert rig.kinds() == ["new_incident", "reopened.1"] and rig.stored(first).routing_round == 1


def test_a_problem_reported_long_after_it_was_resolved_is_a_new_incident_linked_to_the_old_one() -> None:
    rig = Rig()
    first = rig.post("1", POTHOLE, "1001")
    rig.now += timedelta(days=1)
    rig.close(first.incident_id)
    rig.now += timedelta(days=20)
    again = rig.post("2", POTHOLE_AGAIN, "1002")

    assert rig.stored(first).status is S.CLOSED and rig.stored(first).reports == ()
    new = rig.stored(again)
    assert new.status is S.ROUTED and new.related_id == first.incident_id and new.merged_into is None


def test_a_report_of_danger_makes_a_routed_incident_critical_and_tells_the_department_urgently() -> None:
    rig = Rig()
    first = rig.post("1", POTHOLE, "1001")
    rig.now += timedelta(hours=5)
    rig.post("2", MANHOLE, "1002")

    incident = rig.stored(first)
    assert incident.classification.priority is Priority.CRITICAL
    assert incident.routing_reason == "raised" and incident.routing_round == 1
    # The duty dispatch service, which critical incidents go to, hears of it now; the roads department again.
    assert incident.department_ids == ("roads", "edds")
    sent = [(d.department.id, d.kind, d.urgent) for d in rig.email.sent]
    assert sent == [("roads", "new_incident", False), ("roads", "raised.1", True), ("edds", "raised.1", True)]


def test_a_comment_under_the_post_about_its_problem_joins_its_incident() -> None:
    rig = Rig()
    first = rig.post("100", POTHOLE, "1001")
    comment = rig.post("100_7", "У нас тоже эта яма на дороге, колёса пробили вчера", "1009", parent_post_id="100")
    assert rig.stored(comment).merged_into == first.incident_id
    assert rig.stored(first).residents == 2


def test_merged_posts_are_not_candidates_and_rejected_incidents_are_never_joined() -> None:
    rig = Rig()
    first = rig.post("1", POTHOLE, "1001")
    rig.incidents.update(first.incident_id, lambda i: transition(i, S.REJECTED, at=rig.now, actor="roads"))
    again = rig.post("2", POTHOLE_AGAIN, "1002")
    assert rig.stored(again).merged_into is None and rig.stored(again).status is S.ROUTED


@pytest.mark.parametrize(
    ("current", "residents", "danger", "expected"),
    [
        (Priority.NORMAL, 1, False, Priority.NORMAL),
        (Priority.NORMAL, RAISE_TO_HIGH - 1, False, Priority.NORMAL),
        (Priority.LOW, RAISE_TO_HIGH, False, Priority.HIGH),
        (Priority.CRITICAL, RAISE_TO_HIGH, False, Priority.CRITICAL),  # never lowered
        (Priority.LOW, 1, True, Priority.CRITICAL),
    ],
)
def test_raised_priority(current: Priority, residents: int, danger: bool, expected: Priority) -> None:
    report = Classification(
        category="roads", is_complaint=True, priority=Priority.NORMAL, danger=danger, confidence=1, classifier="t"
    )
    assert raised_priority(current, residents, report) is expected


def test_the_departments_letter_and_webhook_say_how_many_residents_reported_and_link_their_posts() -> None:
    from shared.contracts import webhook_payload
    from shared.services.texts import incident_email

    rig = Rig()
    first = rig.post("1", POTHOLE, "1001")
    rig.now += timedelta(days=1)
    rig.close(first.incident_id)
    rig.now += timedelta(days=1)
    again = rig.post("2", POTHOLE_AGAIN, "1002", url="https://ok.ru/group/55/topic/2")

    reopened = rig.email.sent[-1]
    letter = incident_email(reopened)
    assert letter.subject.startswith("Возобновлено: ")
    assert "снова сообщают жители (всего 2)" in letter.text
    assert "Сообщили жителей: 2" in letter.text and again.url in letter.text
    assert f'<a href="{again.url}"' in letter.html
    payload = webhook_payload(reopened.incident, ROADS, "e1", kind=reopened.kind)
    assert payload.residents == 2 and payload.reports == (again.url,) and payload.kind == "reopened.1"


def test_an_incident_keeps_at_most_max_reports_and_the_rest_still_point_to_it(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from shared.services import group_posts

    monkeypatch.setattr(group_posts, "MAX_REPORTS", 2)
    rig = Rig()
    first = rig.post("1", POTHOLE, "1001")
    later = [rig.post(str(n), POTHOLE_AGAIN, f"10{n:02d}") for n in range(2, 6)]
    incident = rig.stored(first)
    assert len(incident.reports) == 2 and incident.residents == 3
    assert all(rig.stored(p).merged_into == incident.id for p in later)


@pytest.mark.parametrize("route_order", [(0, 1), (1, 0)])
def test_two_posts_about_one_new_problem_classified_at_the_same_moment_become_one_incident(
    route_order: tuple[int, int],
) -> None:
    rig = Rig()
    vk = make_post("1", text=POTHOLE, author_id="1001", published_at=rig.now)
    ok = make_post(
        "2", text=POTHOLE_AGAIN, author_id="1002", published_at=rig.now, source="ok", url="https://ok.ru/g/55/t/2"
    )
    messages = rig.classified_together(vk, ok)
    assert [rig.stored(p).status for p in (vk, ok)] == [S.NEW, S.NEW]  # two incidents, as classify left them

    for n in route_order:  # route hears of them in either order, and each message twice (at least once)
        for _ in range(2):
            rig.route.handle(messages[n])

    # The one stored later (by created_at, then id: here the same instant) gave way to the earlier: one incident,
    # two residents, one card for the department.
    earlier, later = sorted((rig.stored(vk), rig.stored(ok)), key=lambda i: (i.created_at, i.id))
    assert earlier.status is S.ROUTED and earlier.residents == 2
    assert [r.url for r in earlier.reports] == [later.post.url]
    assert later.status is S.MERGED and later.merged_into == earlier.id and not later.group_keys
    assert rig.kinds() == ["new_incident"]


def test_a_new_incident_folds_into_its_twin_already_routed_and_a_dangerous_one_raises_it() -> None:
    rig = Rig()
    first = rig.post("1", POTHOLE, "1001")
    [message] = rig.classified_together(make_post("2", text=MANHOLE, author_id="1002", published_at=rig.now))
    assert "same problem" in rig.route.handle(message)
    assert "same problem" in rig.route.handle(message)  # a replay counts nothing twice

    incident = rig.stored(first)
    assert incident.status is S.ROUTED and incident.residents == 2 and len(incident.reports) == 1
    assert incident.classification.priority is Priority.CRITICAL
    # The duty service hears of the raise, once; nobody hears of a second incident.
    assert rig.kinds() == ["new_incident", "raised.1", "raised.1"]
    assert sorted(d.department.id for d in rig.email.sent[1:]) == ["edds", "roads"]


def test_route_folds_twins_with_the_keys_classify_stored_without_the_morphology(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    rig = Rig()
    vk = make_post("1", text=POTHOLE, author_id="1001", published_at=rig.now)
    ok = make_post("2", text=POTHOLE_AGAIN, author_id="1002", published_at=rig.now, source="ok")
    messages = rig.classified_together(vk, ok)

    def no_morphology(text: str) -> None:
        raise AssertionError("route tokenized a post: it would load pymorphy3")

    monkeypatch.setattr(grouping, "tokenize", no_morphology)
    for message in messages:
        rig.route.handle(message)
    assert sorted(rig.stored(p).status for p in (vk, ok)) == [S.MERGED, S.ROUTED]
    assert rig.kinds() == ["new_incident"]


def test_an_incident_stored_long_before_is_no_twin_classify_could_not_see() -> None:
    # Classify saw everything stored before it started; route looks only minutes back for what it could not see
    # (an operator who split a post out of an old incident, say, keeps it apart).
    rig = Rig()
    old = rig.post("1", POTHOLE, "1001")
    rig.now += timedelta(hours=2)
    [message] = rig.classified_together(make_post("2", text=POTHOLE_AGAIN, author_id="1002", published_at=rig.now))
    rig.route.handle(message)
    assert rig.stored(old).residents == 1 and rig.kinds() == ["new_incident", "new_incident"]


def test_new_incidents_about_different_problems_are_each_routed() -> None:
    rig = Rig()
    one, two = (
        make_post(n, text=t, author_id=n, published_at=rig.now) for n, t in (("1", POTHOLE), ("2", OTHER_HOUSE))
    )
    for message in rig.classified_together(one, two):
        rig.route.handle(message)
    assert [rig.stored(p).status for p in (one, two)] == [S.ROUTED, S.ROUTED]
    assert rig.kinds() == ["new_incident", "new_incident"]


def test_a_report_finds_its_incident_at_the_same_address_behind_a_city_of_newer_complaints() -> None:
    # Grouping reads the latest 50 incidents per query: the city's newer road complaints (other houses) must not
    # push the older incident at this very address out of sight.
    rig = Rig()
    first = rig.post("1", POTHOLE, "1001")
    for n in range(2, 62):
        rig.now += timedelta(minutes=30)
        rig.post(str(n), f"На ул. Садовой, {n} третий день не чистят снег с тротуара", str(1000 + n))
    rig.now += timedelta(hours=1)
    again = rig.post("99", POTHOLE_AGAIN, "1099")
    assert rig.stored(again).merged_into == first.incident_id and rig.stored(first).residents == 2
