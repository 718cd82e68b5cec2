"""Operator triage (services/triage.py) on the in-memory ports: the queue, corrections, danger (the fast lane),
not-a-complaint feeding the corpus, merge and split. The page itself: tests/integration/test_triage_page.py and
the browser test."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.config import RoutingConfig
from shared.contracts import PostFetchedV1, incident_classified
from shared.domain.errors import TransientError
from shared.domain.models import Department, IncidentStatus, Priority, RoutingRule
from shared.services.group_posts import PostGrouper
from shared.services.responses import AccessDenied, ActionRefused, ResponseService
from shared.services.routing import RuleDirectory
from shared.services.triage import QueueFilter, TriageService, priority_when_dangerous
from tests.builders import make_incident, make_post, shipped_deadlines
from tests.fakes import MemoryFeedback
from tests.unit.test_group_posts import MANHOLE, OTHER_HOUSE, POTHOLE, POTHOLE_AGAIN, Rig

S = IncidentStatus
ROADS = Department(id="roads", name="Отдел дорог г. Шахты", categories=("roads",), email="roads@shakhty.example")
PARKS = Department(id="parks", name="Благоустройство", categories=("landscaping",), email="parks@shakhty.example")
CENTRE = Department(id="centre", name="ЦУР", categories=(), email="cur@region.example")
CONFIG = RoutingConfig(departments=(ROADS, PARKS, CENTRE), fallback="centre")
# The duty dispatch service takes Shakhty's critical road incidents with the roads department.
EDDS = Department(id="edds", name="ЕДДС г. Шахты", municipality="shakhty", email="edds@shakhty.example")
WITH_DUTY = RoutingConfig(
    departments=(ROADS, PARKS, CENTRE, EDDS),
    rules=(
        RoutingRule(
            category="roads", municipality="shakhty", priority=Priority.CRITICAL, departments=("roads", "edds")
        ),
    ),
    fallback="centre",
)


class TriageRig(Rig):
    def __init__(self, config: RoutingConfig = CONFIG) -> None:
        super().__init__()
        directory = RuleDirectory(config)
        self.route.directory = directory
        grouper = self.classify.grouper
        assert isinstance(grouper, PostGrouper)
        grouper.directory = lambda: directory
        self.feedback = MemoryFeedback()
        responses = ResponseService(
            self.incidents, directory, self.publisher, "incidents", self.clock, shipped_deadlines()
        )
        self.triage = TriageService(
            responses, self.incidents, self.incidents, self.feedback, self.publisher, "incidents", self.clock
        )
        self.operator = self.triage.operator("centre")

    def routed(self) -> None:
        """Hand what triage published to route, as Pub/Sub would."""
        for message in self.publisher.on("incidents"):
            self.route.handle(message)  # type: ignore[arg-type]
        self.publisher.published.clear()

    def sent(self) -> list[tuple[str, str, bool]]:
        return [(d.department.id, d.kind, d.urgent) for d in self.email.sent]


def test_only_the_coordinator_triages() -> None:
    rig = TriageRig()
    with pytest.raises(AccessDenied):
        rig.triage.operator("roads")


def test_the_queue_puts_critical_then_overdue_then_the_oldest_first_and_filters() -> None:
    rig = TriageRig()
    old = rig.post("1", POTHOLE, "1001")
    rig.now += timedelta(hours=1)
    other = rig.post("2", OTHER_HOUSE, "1002")
    rig.now += timedelta(hours=1)
    hazard = rig.post("3", "Открытый люк на ул. Садовой, 5, ребёнок чуть не упал", "1003")
    rig.now += timedelta(days=10)  # every reply deadline has passed by now

    queue = rig.triage.queue(QueueFilter())
    assert [i.id for i in queue] == [hazard.incident_id, old.incident_id, other.incident_id]
    assert [i.id for i in rig.triage.queue(QueueFilter(priority="critical"))] == [hazard.incident_id]
    assert len(rig.triage.queue(QueueFilter(overdue=True))) == 3
    assert rig.triage.queue(QueueFilter(category="landscaping")) == []
    assert len(rig.triage.queue(QueueFilter(municipality="shakhty", status="routed"))) == 3
    rig.triage.not_a_complaint(rig.operator, other.incident_id, "")
    assert other.incident_id not in {i.id for i in rig.triage.queue(QueueFilter())}


def test_not_a_complaint_stops_the_clocks_and_feeds_the_corpus() -> None:
    rig = TriageRig()
    post = rig.post("1", POTHOLE, "1001")
    done = rig.triage.not_a_complaint(rig.operator, post.incident_id, "реклама шиномонтажа")
    assert done.status is S.IRRELEVANT and done.next_check_at is None and not done.classification.is_complaint
    assert done.status_history[-1].note == "not a complaint: реклама шиномонтажа"
    record = rig.feedback.records[post.incident_id]
    assert record["text"] == POTHOLE and record["is_complaint"] is False
    assert record["classifier_said"]["is_complaint"] is True and record["by"] == "centre"
    # Later posts about that "problem" no longer join it.
    again = rig.post("2", POTHOLE_AGAIN, "1002")
    assert rig.stored(again).merged_into is None


def test_not_a_complaint_is_refused_once_a_department_works_on_it() -> None:
    rig = TriageRig()
    post = rig.post("1", POTHOLE, "1001")
    rig.triage.responses.acknowledge(rig.triage.responses.actor("roads"), post.incident_id)
    with pytest.raises(ActionRefused):
        rig.triage.not_a_complaint(rig.operator, post.incident_id, "")


def test_a_correction_reroutes_and_is_kept_as_a_corpus_label() -> None:
    rig = TriageRig()
    post = rig.post("1", POTHOLE, "1001")
    corrected = rig.triage.correct(rig.operator, post.incident_id, "landscaping", None, "это тротуар во дворе")
    rig.routed()
    assert corrected.classification.category == "landscaping" and corrected.department_ids == ("parks",)
    assert rig.feedback.records[post.incident_id]["category"] == "landscaping"
    assert rig.feedback.records[post.incident_id]["classifier_said"]["category"] == "roads"


def test_merging_moves_the_post_and_its_reports_and_a_second_merge_changes_nothing() -> None:
    rig = TriageRig()
    target = rig.post("1", POTHOLE, "1001")
    source = rig.post("2", OTHER_HOUSE, "1002")  # grouping kept them apart: another house
    third = rig.post("3", "На Ленина, 15 яма на дороге глубокая, колёса пробили", "1003")  # joins `source`
    assert len(rig.stored(source).reports) == 1

    merged = rig.triage.merge(rig.operator, source.incident_id, target.incident_id)
    assert merged.residents == 3
    assert {r.incident_id for r in merged.reports} == {source.incident_id, third.incident_id}
    gone = rig.stored(source)
    assert gone.status is S.MERGED and gone.merged_into == target.incident_id and gone.next_check_at is None
    again = rig.triage.merge(rig.operator, source.incident_id, target.incident_id)
    assert again.reports == merged.reports and again.events == merged.events

    with pytest.raises(ActionRefused):
        rig.triage.merge(rig.operator, target.incident_id, source.incident_id)  # into a merged one
    # A replay of a post that had joined `source` counts on the incident `source` went into, once.
    rig.deliver(third)
    assert rig.stored(target).reports == merged.reports and rig.stored(source).reports == ()


def test_an_incident_merged_while_a_department_was_still_to_be_told_is_no_longer_undelivered() -> None:
    rig = TriageRig()
    target = rig.post("1", POTHOLE, "1001")
    source = make_post("2", text=OTHER_HOUSE, author_id="1002", published_at=rig.now)
    rig.email.failures = 1  # the roads department's mail server refuses it for now
    with pytest.raises(TransientError):
        rig.deliver(source)
    assert rig.stored(source).undelivered
    sent = len(rig.email.sent)

    rig.triage.merge(rig.operator, source.incident_id, target.incident_id)
    assert not rig.stored(source).undelivered  # so remind does not hand it back

    # One merged before this rule, handed back by remind: route settles it and tells nobody.
    rig.incidents.update(source.incident_id, lambda i: i.model_copy(update={"undelivered": True}))
    rig.route.handle(incident_classified(rig.stored(source)))
    settled = rig.stored(source)
    assert not settled.undelivered and settled.events[-1].kind == "delivery_dropped"
    assert len(rig.email.sent) == sent


def test_splitting_a_merged_post_makes_it_an_incident_routed_on_its_own() -> None:
    rig = TriageRig()
    first = rig.post("1", POTHOLE, "1001")
    second = rig.post("2", POTHOLE_AGAIN, "1002")
    assert rig.stored(first).residents == 2

    split = rig.triage.split(rig.operator, second.incident_id)
    assert split.status is S.NEW and split.merged_into is None and split.group_keys
    rig.routed()
    assert rig.stored(second).status is S.ROUTED and rig.stored(second).department_ids == ("roads",)
    assert rig.stored(first).residents == 1 and rig.stored(first).reports == ()
    assert rig.kinds() == ["new_incident", "new_incident"]

    with pytest.raises(ActionRefused):
        rig.triage.split(rig.operator, second.incident_id)  # routed now: nothing to split


def test_the_queue_reads_every_page() -> None:
    rig = TriageRig()
    made = []
    for n in range(7):
        rig.now += timedelta(minutes=1)
        made.append(rig.post(str(n), f"На ул. Садовой, {n + 1} огромная яма на дороге", f"10{n}").incident_id)
    assert sorted(i.id for i in rig.triage.queue(QueueFilter(), page=3)) == sorted(made)
    assert all(i.classification.priority is Priority.NORMAL for i in rig.triage.queue(QueueFilter(), page=3))


def test_the_feedback_becomes_corpus_lines_the_trainer_reads(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from otklik.classifier.corpus import load
    from shared.services.triage import corpus_lines

    rig = TriageRig()
    advert = rig.post("1", "Шиномонтаж на Советской, скидки", "1001")
    pothole = rig.post("2", POTHOLE, "1002")
    rig.triage.not_a_complaint(rig.operator, advert.incident_id, "реклама")
    rig.triage.correct(rig.operator, pothole.incident_id, "landscaping", None, "")

    lines = corpus_lines(rig.feedback.records.values(), {"shakhty": "Шахты"})
    (tmp_path / "feedback.jsonl").write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines))
    loaded = {p.text: p for p in load(tmp_path)}
    assert loaded["Шиномонтаж на Советской, скидки"].is_complaint is False
    assert loaded[POTHOLE].category == "landscaping" and loaded[POTHOLE].municipality == "Шахты"


def test_marking_a_routed_incident_dangerous_raises_it_and_tells_the_duty_service_urgently_once() -> None:
    rig = TriageRig(WITH_DUTY)
    post = rig.post("1", POTHOLE, "1001")
    assert rig.sent() == [("roads", "new_incident", False)]
    rig.now += timedelta(hours=1)

    marked = rig.triage.mark_danger(rig.operator, post.incident_id, True, "провал у остановки, люди обходят")
    c = marked.classification
    assert c.danger and c.priority is Priority.CRITICAL
    assert marked.status is S.ROUTED and marked.routing_reason == "marked_dangerous" and marked.routing_round == 1
    assert marked.department_ids == ("roads", "edds") and marked.undelivered
    assert marked.reply_due_at == rig.now + timedelta(hours=2)  # the critical clock, from now
    last = marked.status_history[-1]
    assert last.actor == "centre (triage)" and "провал у остановки" in last.note
    assert len(rig.publisher.on("incidents")) == 1
    rig.routed()
    # The fast lane grouping uses for a dangerous report (its own kind, marked_dangerous.N), urgent, duty included.
    assert rig.sent() == [
        ("roads", "new_incident", False),
        ("roads", "marked_dangerous.1", True),
        ("edds", "marked_dangerous.1", True),
    ]
    record = rig.feedback.records[post.incident_id]
    assert record["danger"] is True and record["classifier_said"]["danger"] is False and record["by"] == "centre"

    # Marked dangerous again (a double click, another operator): nothing changes, nobody is told twice.
    stored = rig.stored(post)
    again = rig.triage.mark_danger(rig.operator, post.incident_id, True, "")
    assert again == stored and rig.publisher.published == []
    rig.routed()
    assert len(rig.email.sent) == 3


def test_a_lost_hand_off_of_the_raised_round_is_finished_by_marking_again() -> None:
    rig = TriageRig(WITH_DUTY)
    post = rig.post("1", POTHOLE, "1001")
    rig.publisher.fail_with = TransientError("pubsub unavailable")
    with pytest.raises(TransientError):
        rig.triage.mark_danger(rig.operator, post.incident_id, True, "")
    assert rig.stored(post).routing_reason == "marked_dangerous" and rig.stored(post).undelivered
    rig.publisher.fail_with = None

    rig.triage.mark_danger(rig.operator, post.incident_id, True, "")
    assert rig.stored(post).routing_round == 1  # the same round, handed to route once more
    rig.routed()
    assert rig.sent()[1:] == [("roads", "marked_dangerous.1", True), ("edds", "marked_dangerous.1", True)]


def test_a_new_incident_marked_dangerous_is_routed_as_critical() -> None:
    rig = TriageRig(WITH_DUTY)
    post = make_post("1", text=POTHOLE, author_id="1001", published_at=rig.now)
    rig.classify.handle(PostFetchedV1(post=post, fetched_at=rig.now))
    rig.publisher.published.clear()  # classify's hand-off is still on its way to route
    assert rig.stored(post).status is S.NEW

    marked = rig.triage.mark_danger(rig.operator, post.incident_id, True, "")
    assert marked.status is S.NEW and marked.classification.priority is Priority.CRITICAL
    assert marked.events[-1].kind == "corrected" and marked.events[-1].actor == "centre (triage)"
    rig.routed()
    assert rig.stored(post).department_ids == ("roads", "edds")
    assert rig.sent() == [("roads", "new_incident", True), ("edds", "new_incident", True)]


def test_marking_not_dangerous_lowers_the_priority_without_rerouting() -> None:
    rig = TriageRig(WITH_DUTY)
    post = rig.post("1", MANHOLE, "1001")  # the classifier's danger: critical, to roads and the duty service
    assert rig.stored(post).classification.priority is Priority.CRITICAL
    sent = rig.sent()

    calmed = rig.triage.mark_danger(rig.operator, post.incident_id, False, "люк закрыт, фото старое")
    assert not calmed.classification.danger and calmed.classification.priority is Priority.NORMAL
    assert calmed.routing_round == 0 and calmed.status is S.ROUTED and rig.publisher.published == []
    event = calmed.events[-1]
    assert event.kind == "corrected" and event.actor == "centre (triage)"
    assert event.note == "marked not dangerous by the operator: priority critical -> normal (люк закрыт, фото старое)"
    record = rig.feedback.records[post.incident_id]
    assert record["danger"] is False and record["classifier_said"]["danger"] is True
    assert rig.triage.mark_danger(rig.operator, post.incident_id, False, "") == rig.stored(post)
    rig.routed()
    assert rig.sent() == sent


def test_priority_when_dangerous_keeps_grouping_rule_for_many_residents() -> None:
    critical = make_incident(priority=Priority.CRITICAL)
    assert priority_when_dangerous(critical, dangerous=False) is Priority.NORMAL
    assert priority_when_dangerous(critical.model_copy(update={"residents": 3}), False) is Priority.HIGH
    assert priority_when_dangerous(make_incident(priority=Priority.LOW), False) is Priority.LOW
    assert priority_when_dangerous(make_incident(priority=Priority.LOW), True) is Priority.CRITICAL


def test_danger_is_refused_for_closed_merged_and_irrelevant_incidents() -> None:
    rig = TriageRig(WITH_DUTY)
    closed = rig.post("1", POTHOLE, "1001")
    rig.close(closed.incident_id)
    rig.now += timedelta(days=30)  # too late to reopen it: the next post starts an incident of its own
    first = rig.post("2", POTHOLE, "1002")
    merged = rig.post("3", POTHOLE_AGAIN, "1003")
    assert rig.stored(merged).merged_into == first.incident_id
    dismissed = rig.post("4", OTHER_HOUSE, "1004")
    rig.triage.not_a_complaint(rig.operator, dismissed.incident_id, "")
    rig.feedback.records.clear()

    for post in (closed, merged, dismissed):
        with pytest.raises(ActionRefused, match=r"^Обращение .*: опасность отмечают у открытых обращений"):
            rig.triage.mark_danger(rig.operator, post.incident_id, True, "")
    assert rig.feedback.records == {} and rig.stored(first).classification.priority is Priority.NORMAL
