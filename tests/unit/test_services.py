"""The four use cases (ingest, classify, route, remind) against the in-memory ports of tests/fakes.py."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest

from shared.config import RoutingConfig
from shared.contracts import IncidentClassifiedV1, PostFetchedV1, incident_classified
from shared.domain.deadlines import ClockRule, DeadlinePolicy, Deadlines
from shared.domain.errors import PermanentError, TransientError
from shared.domain.ids import notification_id_for
from shared.domain.lifecycle import transition
from shared.domain.models import (
    Channel,
    Classification,
    Department,
    Incident,
    IncidentStatus,
    Notification,
    NotificationStatus,
    Post,
    Priority,
    RoutingRule,
)
from shared.domain.worktime import Duration, ProductionCalendar
from shared.ports import ChannelSender, FetchResult, Rejected
from shared.services.classify import ClassifyService
from shared.services.group_posts import PostGrouper
from shared.services.ingest import IngestService, PostIntake, WatchedSource
from shared.services.notify import Notifier
from shared.services.route import RouteService
from shared.services.routing import RuleDirectory
from tests.builders import T0, make_incident, make_post
from tests.fakes import (
    ListConnector,
    MemoryCursors,
    MemoryHealth,
    MemoryIncidents,
    MemoryMarkers,
    MemoryNotifications,
    MemoryPublisher,
    MemoryQuarantine,
    RecordingSender,
)

S = IncidentStatus
POSTS_TOPIC = "otklik-posts"
INCIDENTS_TOPIC = "otklik-incidents"
REPLY_HOURS = 24.0
CRITICAL_REPLY_HOURS = 4.0
LEASE_SECONDS = 60.0


def clock_hours_deadlines() -> Deadlines:
    """Around-the-clock deadlines: what these tests check is routing, not the working calendar (test_remind)."""
    policy = DeadlinePolicy(
        rules=(
            ClockRule(
                priority=Priority.CRITICAL,
                first_reply=Duration(clock_hours=CRITICAL_REPLY_HOURS),
                resolution=Duration(clock_hours=48),
            ),
            ClockRule(first_reply=Duration(clock_hours=REPLY_HOURS), resolution=Duration(clock_hours=240)),
        )
    )
    return Deadlines(policy, ProductionCalendar())


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def wall_posts(*post_ids: int, community: str = "-210000001") -> list[Post]:
    return [make_post(str(i), community=community, url=f"https://vk.com/wall{community}_{i}") for i in post_ids]


def classification(
    category: str = "roads",
    is_complaint: bool = True,
    priority: Priority = Priority.NORMAL,
    municipality: str | None = "shakhty",
) -> Classification:
    return Classification(
        category=category,
        is_complaint=is_complaint,
        danger=priority is Priority.CRITICAL,
        priority=priority,
        municipality=municipality,
        confidence=0.9,
        classifier="fixed",
    )


def incident_about(
    category: str = "roads",
    municipality: str | None = "shakhty",
    priority: Priority = Priority.NORMAL,
    post_id: str = "1",
    status: IncidentStatus = S.NEW,
    **kw: Any,
) -> Incident:
    return make_incident(post_id, status, classification=classification(category, True, priority, municipality), **kw)


# --- ingest ---------------------------------------------------------------------------------------------


class RejectingConnector:
    """A source whose wall holds good posts and items that cannot be read as posts."""

    def __init__(self, source_id: str, posts: list[Post], rejected: list[Rejected], cursor: dict[str, Any]) -> None:
        self.source_id = source_id
        self.result = FetchResult(posts=posts, cursor=cursor, rejected=rejected)

    def fetch(self, cursor: dict[str, Any] | None) -> FetchResult:
        return self.result


@dataclass
class IngestRig:
    connectors: list[Any]
    cursors: MemoryCursors = field(default_factory=MemoryCursors)
    publisher: MemoryPublisher = field(default_factory=MemoryPublisher)
    quarantine: MemoryQuarantine = field(default_factory=MemoryQuarantine)
    published: MemoryMarkers = field(default_factory=MemoryMarkers)
    health: MemoryHealth = field(default_factory=MemoryHealth)
    clock: Clock = field(default_factory=Clock)

    @property
    def service(self) -> IngestService:
        intake = PostIntake(self.published, self.publisher, POSTS_TOPIC, self.clock)
        sources = [WatchedSource(c, fingerprint="v1") for c in self.connectors]
        return IngestService(sources, self.cursors, intake, self.quarantine, self.health, self.clock)

    def published_post_ids(self) -> list[str]:
        messages = self.publisher.on(POSTS_TOPIC)
        return [m.post.post_id for m in messages if isinstance(m, PostFetchedV1)]


def test_ingest_publishes_new_posts_and_then_advances_the_cursor() -> None:
    rig = IngestRig([ListConnector("vk-a", wall_posts(1, 2))])
    report = rig.service.run()
    assert rig.published_post_ids() == ["1", "2"]
    assert all(m.fetched_at == T0 for m in rig.publisher.on(POSTS_TOPIC) if isinstance(m, PostFetchedV1))
    assert rig.cursors.get("vk-a") == {"last_post_id": 2}
    assert report.published == 2
    assert report.failed == []


def test_next_ingest_run_publishes_only_posts_newer_than_the_cursor() -> None:
    posts = wall_posts(1, 2)
    rig = IngestRig([ListConnector("vk-a", posts)])
    rig.service.run()
    posts.extend(wall_posts(3))
    report = rig.service.run()
    assert rig.published_post_ids() == ["1", "2", "3"]
    assert report.published == 1


def test_failed_publish_leaves_the_cursor_and_the_next_run_publishes_the_same_posts() -> None:
    rig = IngestRig([ListConnector("vk-a", wall_posts(1, 2, 3))])
    rig.cursors.set("vk-a", {"last_post_id": 1})
    rig.publisher.fail_with = TransientError("Pub/Sub unavailable")

    report = rig.service.run()

    assert rig.cursors.get("vk-a") == {"last_post_id": 1}
    assert report.published == 0
    assert report.failed == ["vk-a"]
    assert report.sources[0].error == "TransientError: Pub/Sub unavailable"

    rig.publisher.fail_with = None
    report = rig.service.run()

    assert rig.published_post_ids() == ["2", "3"]
    assert rig.cursors.get("vk-a") == {"last_post_id": 3}
    assert report.failed == []


def test_failed_publish_on_the_first_run_stores_no_cursor() -> None:
    rig = IngestRig([ListConnector("vk-a", wall_posts(1))])
    rig.publisher.fail_with = RuntimeError("boom")
    rig.service.run()
    assert rig.cursors.get("vk-a") is None


@pytest.mark.parametrize("failing_first", [True, False])
def test_one_failing_source_does_not_stop_another(failing_first: bool) -> None:
    broken = ListConnector("vk-broken", wall_posts(1), fail=TransientError("VK error 10: internal"))
    healthy = ListConnector("vk-ok", wall_posts(5, 6, community="-210000002"))
    rig = IngestRig([broken, healthy] if failing_first else [healthy, broken])

    report = rig.service.run()

    assert rig.published_post_ids() == ["5", "6"]
    assert rig.cursors.get("vk-ok") == {"last_post_id": 6}
    assert rig.cursors.get("vk-broken") is None
    assert report.failed == ["vk-broken"]
    assert {s.source_id: s.published for s in report.sources} == {"vk-broken": 0, "vk-ok": 2}


def test_rejected_items_are_quarantined_and_the_good_posts_published() -> None:
    bad = Rejected(key="-210000001_9", payload='{"id": 9, "date": "yesterday"}', reason="unreadable: date")
    rig = IngestRig([RejectingConnector("vk-a", wall_posts(8), [bad], cursor={"last_post_id": 9})])

    report = rig.service.run()

    [record] = rig.quarantine.items.values()
    assert record.stage == "ingest"
    assert record.reason == "unreadable: date"
    assert record.payload == bad.payload
    assert record.attributes == {"source_id": "vk-a"}
    assert record.received_at == T0
    assert rig.published_post_ids() == ["8"]
    assert rig.cursors.get("vk-a") == {"last_post_id": 9}
    assert (report.sources[0].fetched, report.sources[0].published, report.sources[0].quarantined) == (
        2,
        1,
        1,
    )


def test_a_rejected_item_fetched_again_keeps_one_quarantine_record() -> None:
    bad = Rejected(key="-210000001_9", payload="{}", reason="unreadable")
    rig = IngestRig([RejectingConnector("vk-a", [], [bad], cursor={})])
    rig.service.run()
    rig.service.run()
    assert len(rig.quarantine.items) == 1


# --- classify -------------------------------------------------------------------------------------------


class FixedClassifier:
    """Decides the same for every post, so the service is tested apart from the keyword heuristics."""

    name = "fixed"

    def __init__(self, result: Classification) -> None:
        self.result = result

    def classify(self, post: Post) -> Classification:
        return self.result


@dataclass
class ClassifyRig:
    decision: Classification = field(default_factory=classification)
    incidents: MemoryIncidents = field(default_factory=MemoryIncidents)
    publisher: MemoryPublisher = field(default_factory=MemoryPublisher)
    clock: Clock = field(default_factory=Clock)
    grouper: PostGrouper | None = None

    @property
    def service(self) -> ClassifyService:
        classifier = FixedClassifier(self.decision)
        return ClassifyService(
            classifier, self.incidents, self.publisher, INCIDENTS_TOPIC, self.clock, grouper=self.grouper
        )

    def handle(self, post_id: str = "1") -> str:
        return self.service.handle(PostFetchedV1(post=make_post(post_id), fetched_at=T0))

    def published(self) -> list[IncidentClassifiedV1]:
        return [m for m in self.publisher.on(INCIDENTS_TOPIC) if isinstance(m, IncidentClassifiedV1)]


def test_a_complaint_becomes_a_new_incident_and_is_handed_to_routing() -> None:
    rig = ClassifyRig(classification("roads", priority=Priority.CRITICAL))
    rig.clock.advance(minutes=3)

    rig.handle("1")

    incident = rig.incidents.get(make_post("1").incident_id)
    assert incident is not None
    assert incident.status is S.NEW
    assert [c.status for c in incident.status_history] == [S.NEW]
    assert incident.post == make_post("1")
    assert incident.classification == rig.decision
    assert incident.created_at == T0 + timedelta(minutes=3)
    [message] = rig.published()
    assert message.incident_id == incident.id
    assert (message.category, message.priority, message.danger, message.municipality) == (
        "roads",
        Priority.CRITICAL,
        True,
        "shakhty",
    )
    assert message.classified_at == incident.created_at


def test_a_non_complaint_is_stored_irrelevant_and_nothing_is_published() -> None:
    rig = ClassifyRig(classification("other", is_complaint=False))
    rig.handle("1")
    incident = rig.incidents.get(make_post("1").incident_id)
    assert incident is not None
    assert incident.status is S.IRRELEVANT
    assert [c.status for c in incident.status_history] == [S.NEW, S.IRRELEVANT]
    assert rig.published() == []


def test_a_replayed_post_creates_no_second_incident() -> None:
    rig = ClassifyRig()
    rig.handle("1")
    rig.handle("1")
    assert len(rig.incidents.items) == 1


def test_a_replay_republishes_while_the_incident_is_still_new() -> None:
    rig = ClassifyRig()
    rig.handle("1")
    rig.handle("1")
    assert [m.incident_id for m in rig.published()] == [make_post("1").incident_id] * 2


def test_incident_stored_but_not_published_before_a_crash_is_published_on_the_replay() -> None:
    rig = ClassifyRig()
    rig.publisher.fail_with = TransientError("Pub/Sub unavailable")
    with pytest.raises(TransientError):
        rig.handle("1")
    assert rig.incidents.get(make_post("1").incident_id) is not None
    assert rig.published() == []

    rig.publisher.fail_with = None
    rig.handle("1")

    assert len(rig.incidents.items) == 1
    assert [m.incident_id for m in rig.published()] == [make_post("1").incident_id]


@pytest.mark.parametrize("status", [S.ROUTED, S.ANSWERED, S.IRRELEVANT])
def test_a_replay_publishes_nothing_once_the_incident_left_new(status: IncidentStatus) -> None:
    rig = ClassifyRig()
    stored = make_incident("1", status=status)
    rig.incidents.create(stored)
    rig.handle("1")
    assert rig.published() == []
    assert rig.incidents.get(stored.id) == stored


def test_a_replay_keeps_an_operators_correction() -> None:
    rig = ClassifyRig(classification("roads"))
    corrected = make_incident("1", category="landscaping")
    rig.incidents.create(corrected)

    rig.handle("1")

    assert rig.incidents.get(corrected.id) == corrected
    [message] = rig.published()
    assert message.category == "landscaping"


# --- route ----------------------------------------------------------------------------------------------

COORDINATOR = Department(id="region-coordinator", name="Координатор", email="duty@region.example")
SHAKHTY_ROADS = Department(
    id="shakhty-roads",
    name="Дороги Шахт",
    municipality="shakhty",
    categories=("roads",),
    webhook_url="https://hooks.example/shakhty-roads",
    email="roads@shakhty.example",
)
SHAKHTY_EDDS = Department(
    id="shakhty-edds", name="ЕДДС Шахт", municipality="shakhty", webhook_url="https://hooks.example/edds"
)
SHAKHTY_PARKS = Department(
    id="shakhty-parks",
    name="Благоустройство Шахт",
    municipality="shakhty",
    categories=("landscaping",),
    email="parks@shakhty.example",
)
REGION_ROADS = Department(
    id="region-roads", name="Областные дороги", categories=("roads",), email="roads@region.example"
)
ALL_DEPARTMENTS = (COORDINATOR, SHAKHTY_ROADS, SHAKHTY_EDDS, SHAKHTY_PARKS, REGION_ROADS)
CRITICAL_IN_SHAKHTY = RoutingRule(municipality="shakhty", priority=Priority.CRITICAL, departments=("shakhty-edds",))


def routing(*rules: RoutingRule, departments: tuple[Department, ...] = ALL_DEPARTMENTS) -> RoutingConfig:
    return RoutingConfig(departments=departments, rules=rules, fallback=COORDINATOR.id)


@dataclass
class RouteRig:
    config: RoutingConfig = field(default_factory=lambda: routing(CRITICAL_IN_SHAKHTY))
    incidents: MemoryIncidents = field(default_factory=MemoryIncidents)
    notifications: MemoryNotifications = field(default_factory=MemoryNotifications)
    webhook: RecordingSender = field(default_factory=RecordingSender)
    email: RecordingSender = field(default_factory=RecordingSender)
    clock: Clock = field(default_factory=Clock)
    channels: tuple[Channel, ...] = (Channel.WEBHOOK, Channel.EMAIL)
    grouping: PostGrouper | None = None

    @property
    def service(self) -> RouteService:
        all_senders: dict[Channel, ChannelSender] = {Channel.WEBHOOK: self.webhook, Channel.EMAIL: self.email}
        return RouteService(
            self.incidents,
            RuleDirectory(self.config),
            Notifier(
                self.notifications,
                {c: s for c, s in all_senders.items() if c in self.channels},
                self.clock,
                LEASE_SECONDS,
            ),
            clock_hours_deadlines(),
            self.clock,
            grouping=self.grouping,
        )

    def store(self, incident: Incident) -> Incident:
        self.incidents.create(incident)
        return incident

    def route(self, incident: Incident) -> str:
        return self.service.handle(incident_classified(incident))

    def stored(self, incident: Incident) -> Incident:
        found = self.incidents.get(incident.id)
        assert found is not None
        return found

    def sent(self) -> list[tuple[str, Channel]]:
        return [(d.department.id, Channel.WEBHOOK) for d in self.webhook.sent] + [
            (d.department.id, Channel.EMAIL) for d in self.email.sent
        ]

    def notification(self, incident: Incident, department: Department, channel: Channel) -> Notification:
        return self.notifications.items[notification_id_for(incident.id, department.id, channel, "new_incident")]


def test_route_sends_the_incident_to_the_department_owning_its_category_and_municipality() -> None:
    rig = RouteRig()
    incident = rig.store(incident_about("roads", "shakhty"))

    rig.route(incident)

    routed = rig.stored(incident)
    assert routed.status is S.ROUTED
    assert routed.department_ids == ("shakhty-roads",)
    assert routed.routed_at == T0
    assert routed.reply_due_at == T0 + timedelta(hours=REPLY_HOURS)
    assert (routed.status_history[-1].status, routed.status_history[-1].actor) == (S.ROUTED, "route")
    assert sorted(rig.sent()) == [("shakhty-roads", Channel.EMAIL), ("shakhty-roads", Channel.WEBHOOK)]
    [delivery] = rig.webhook.sent
    assert delivery.incident.id == routed.id and delivery.incident.department_ids == ("shakhty-roads",)
    assert (delivery.kind, delivery.urgent) == ("new_incident", False)
    assert routed.delivery == {"shakhty-roads/webhook": "sent", "shakhty-roads/email": "sent"}
    assert not routed.undelivered
    assert delivery.event_id == notification_id_for(incident.id, "shakhty-roads", Channel.WEBHOOK, "new_incident")
    webhook_record = rig.notification(incident, SHAKHTY_ROADS, Channel.WEBHOOK)
    assert (webhook_record.status, webhook_record.sent_at, webhook_record.attempts) == (
        NotificationStatus.SENT,
        T0,
        1,
    )


@pytest.mark.parametrize(
    ("category", "municipality", "priority", "expected"),
    [
        # a municipal department beats the regional one owning the same category
        ("roads", "shakhty", Priority.NORMAL, {"shakhty-roads"}),
        # elsewhere the regional department (municipality: any) is the most specific match
        ("roads", "kirov", Priority.NORMAL, {"region-roads"}),
        ("landscaping", "shakhty", Priority.NORMAL, {"shakhty-parks"}),
        # equally specific rules (municipality+priority vs. category+municipality) both get it
        ("roads", "shakhty", Priority.CRITICAL, {"shakhty-edds", "shakhty-roads"}),
        # nobody owns it: the regional coordinator takes it
        ("ufo", "shakhty", Priority.NORMAL, {"region-coordinator"}),
        ("landscaping", "rostov", Priority.NORMAL, {"region-coordinator"}),
        ("landscaping", None, Priority.NORMAL, {"region-coordinator"}),
    ],
)
def test_route_picks_the_most_specific_departments(
    category: str, municipality: str | None, priority: Priority, expected: set[str]
) -> None:
    rig = RouteRig()
    incident = rig.store(incident_about(category, municipality, priority))
    rig.route(incident)
    assert set(rig.stored(incident).department_ids) == expected
    assert {dep for dep, _ in rig.sent()} == expected


def test_a_region_wide_department_gets_only_its_own_regions_incidents() -> None:
    ministry = Department(
        id="kirov-health", name="Минздрав", region="kirov", categories=("healthcare",), email="m@x.ex"
    )
    config = routing(departments=(*ALL_DEPARTMENTS, ministry))
    regions = {"slobodskoy": "kirov", "shakhty": "rostov"}
    directory = RuleDirectory(config, regions.get)  # type: ignore[arg-type]
    in_kirov = incident_about("healthcare", "slobodskoy")
    in_rostov = incident_about("healthcare", "shakhty")
    assert [d.id for d in directory.departments_for(in_kirov)] == ["kirov-health"]
    assert [d.id for d in directory.departments_for(in_rostov)] == ["region-coordinator"]


def test_a_rule_naming_more_fields_wins_over_the_departments_own_categories() -> None:
    only_edds = RoutingRule(
        category="roads", municipality="shakhty", priority=Priority.CRITICAL, departments=("shakhty-edds",)
    )
    rig = RouteRig(config=routing(only_edds, CRITICAL_IN_SHAKHTY))
    incident = rig.store(incident_about("roads", "shakhty", Priority.CRITICAL))
    rig.route(incident)
    assert rig.stored(incident).department_ids == ("shakhty-edds",)


def test_critical_incident_gets_the_shorter_reply_deadline() -> None:
    rig = RouteRig()
    normal = rig.store(incident_about("roads", "kirov", Priority.NORMAL, post_id="1"))
    critical = rig.store(incident_about("roads", "kirov", Priority.CRITICAL, post_id="2"))
    rig.route(normal)
    rig.route(critical)
    assert rig.stored(normal).reply_due_at == T0 + timedelta(hours=REPLY_HOURS)
    assert rig.stored(critical).reply_due_at == T0 + timedelta(hours=CRITICAL_REPLY_HOURS)


def test_a_replayed_message_sends_nothing_twice_and_keeps_the_first_routing_time() -> None:
    rig = RouteRig()
    incident = rig.store(incident_about("roads", "shakhty", Priority.CRITICAL))
    rig.route(incident)
    first = rig.stored(incident)
    sent = sorted(rig.sent())

    rig.clock.advance(minutes=10)
    rig.route(incident)

    assert sorted(rig.sent()) == sent
    assert rig.stored(incident) == first


def test_a_transient_failure_on_one_channel_is_raised_after_the_other_channel_was_sent() -> None:
    rig = RouteRig()
    incident = rig.store(incident_about("roads", "shakhty"))
    rig.webhook.failures = 1  # the webhook is tried first

    with pytest.raises(TransientError, match="shakhty-roads/webhook"):
        rig.route(incident)

    assert rig.sent() == [("shakhty-roads", Channel.EMAIL)]
    pending = rig.notification(incident, SHAKHTY_ROADS, Channel.WEBHOOK)
    assert pending.status is NotificationStatus.SENDING
    assert pending.last_error is not None and "receiver unavailable" in pending.last_error


def test_the_redelivery_after_a_transient_failure_sends_only_the_failed_channel() -> None:
    rig = RouteRig()
    incident = rig.store(incident_about("roads", "shakhty"))
    rig.webhook.failures = 1
    with pytest.raises(TransientError):
        rig.route(incident)

    rig.route(incident)  # redelivered at once: the failed claim was released
    rig.route(incident)  # and once more: nothing left to do

    assert sorted(rig.sent()) == [("shakhty-roads", Channel.EMAIL), ("shakhty-roads", Channel.WEBHOOK)]
    assert rig.notification(incident, SHAKHTY_ROADS, Channel.WEBHOOK).status is NotificationStatus.SENT
    assert rig.notification(incident, SHAKHTY_ROADS, Channel.WEBHOOK).attempts == 2


def test_a_permanent_failure_marks_the_notification_failed_without_raising() -> None:
    rig = RouteRig()
    incident = rig.store(incident_about("roads", "shakhty"))
    rig.webhook.error = PermanentError("HTTP 410 Gone")
    rig.webhook.failures = 1

    rig.route(incident)
    rig.route(incident)  # a replay does not try the dead channel again

    failed = rig.notification(incident, SHAKHTY_ROADS, Channel.WEBHOOK)
    assert failed.status is NotificationStatus.FAILED
    assert failed.last_error == "HTTP 410 Gone"
    # The department got the e-mail; the coordinator hears once that its webhook is dead.
    assert rig.sent() == [("shakhty-roads", Channel.EMAIL), ("region-coordinator", Channel.EMAIL)]
    [notice] = [d for d in rig.email.sent if d.department.id == "region-coordinator"]
    assert notice.kind == "delivery_failed.shakhty-roads.webhook" and notice.incident.id == incident.id
    stored = rig.stored(incident)
    assert stored.undelivered
    assert stored.delivery == {"shakhty-roads/webhook": "failed", "shakhty-roads/email": "sent"}
    assert [(e.kind, e.note) for e in stored.events] == [("delivery_failed", "shakhty-roads/webhook: HTTP 410 Gone")]


def test_an_incident_is_undelivered_while_a_channel_is_retried_and_delivered_once_it_succeeds() -> None:
    rig = RouteRig()
    incident = rig.store(incident_about("roads", "shakhty"))
    rig.webhook.failures = 1
    with pytest.raises(TransientError):
        rig.route(incident)
    pending = rig.stored(incident)
    assert pending.undelivered and pending.delivery["shakhty-roads/webhook"] == "sending"

    rig.route(incident)

    done = rig.stored(incident)
    assert not done.undelivered and set(done.delivery.values()) == {"sent"}


def test_a_dangerous_incident_goes_out_urgent_on_every_channel_of_every_department() -> None:
    rig = RouteRig()
    incident = rig.store(incident_about("roads", "shakhty", Priority.CRITICAL))
    rig.route(incident)
    deliveries = [*rig.webhook.sent, *rig.email.sent]
    assert {(d.department.id, d.urgent) for d in deliveries} == {("shakhty-roads", True), ("shakhty-edds", True)}
    assert sorted(rig.sent()) == [
        ("shakhty-edds", Channel.WEBHOOK),
        ("shakhty-roads", Channel.EMAIL),
        ("shakhty-roads", Channel.WEBHOOK),
    ]


def test_a_rerouted_incident_is_a_new_notification_for_its_new_department_and_a_replay_sends_nothing() -> None:
    rig = RouteRig()
    incident = rig.store(incident_about("roads", "shakhty"))
    rig.route(incident)
    # What ResponseService does on a correction: new departments, the next routing round.
    rig.incidents.update(
        incident.id,
        lambda i: i.model_copy(
            update={"department_ids": ("shakhty-edds",), "routing_round": 1, "routing_reason": "rerouted"}
        ),
    )
    rig.route(incident)
    rig.route(incident)
    assert sorted(rig.sent()) == [
        ("shakhty-edds", Channel.WEBHOOK),
        ("shakhty-roads", Channel.EMAIL),
        ("shakhty-roads", Channel.WEBHOOK),
    ]
    [rerouted] = [d for d in rig.webhook.sent if d.department.id == "shakhty-edds"]
    assert rerouted.kind == "rerouted.1"


def test_a_channel_without_a_sender_is_marked_failed() -> None:
    rig = RouteRig(channels=(Channel.WEBHOOK,))
    incident = rig.store(incident_about("roads", "shakhty"))
    rig.route(incident)
    failed = rig.notification(incident, SHAKHTY_ROADS, Channel.EMAIL)
    assert failed.status is NotificationStatus.FAILED
    assert failed.last_error is not None and "no sender" in failed.last_error
    assert rig.sent() == [("shakhty-roads", Channel.WEBHOOK)]


def test_a_notification_claimed_by_another_worker_within_the_lease_is_retried_later() -> None:
    rig = RouteRig()
    incident = rig.store(incident_about("roads", "shakhty"))
    nid = notification_id_for(incident.id, "shakhty-roads", Channel.WEBHOOK, "new_incident")
    rig.notifications.save(
        Notification(
            id=nid,
            incident_id=incident.id,
            department_id="shakhty-roads",
            channel=Channel.WEBHOOK,
            kind="new_incident",
            status=NotificationStatus.SENDING,
            attempts=1,
            claimed_at=T0 - timedelta(seconds=LEASE_SECONDS - 1),
        )
    )

    with pytest.raises(TransientError, match="another worker"):
        rig.route(incident)
    assert rig.sent() == [("shakhty-roads", Channel.EMAIL)]

    rig.clock.advance(seconds=1)  # the other worker's lease has run out
    rig.route(incident)
    assert sorted(rig.sent()) == [("shakhty-roads", Channel.EMAIL), ("shakhty-roads", Channel.WEBHOOK)]


def test_a_copy_that_found_a_channel_busy_does_not_mark_it_undelivered_after_the_other_copy_sent_it() -> None:
    # Pub/Sub may hand two workers one message at once, and the copy whose retry would correct its record may
    # never come (the other acked the message). Copy A claims the webhook; copy B finds it busy and sends the
    # e-mail; A sends the webhook and finds the e-mail busy; B records last. Both channels were sent, once.
    rig = RouteRig()
    incident = rig.store(incident_about("roads", "shakhty"))
    a_sending, a_done = threading.Event(), threading.Event()
    a_error: list[BaseException] = []

    def copy_a() -> None:
        try:
            rig.route(incident)
        except TransientError as exc:
            a_error.append(exc)
        finally:
            a_done.set()

    def a_webhook(_: object) -> None:
        rig.webhook.while_sending = None
        a_sending.set()
        assert b_emailing.wait(10)

    b_emailing = threading.Event()

    def b_email(_: object) -> None:
        rig.email.while_sending = None
        b_emailing.set()
        assert a_done.wait(10)  # A sends the webhook, finds the e-mail busy and records, all before B records

    rig.webhook.while_sending = a_webhook
    rig.email.while_sending = b_email
    a = threading.Thread(target=copy_a)
    a.start()
    assert a_sending.wait(10)
    with pytest.raises(TransientError, match="another worker"):
        rig.route(incident)  # copy B
    a.join(10)

    assert a_error and "another worker" in str(a_error[0])
    assert sorted(rig.sent()) == [("shakhty-roads", Channel.EMAIL), ("shakhty-roads", Channel.WEBHOOK)]
    done = rig.stored(incident)
    assert done.delivery == {"shakhty-roads/webhook": "sent", "shakhty-roads/email": "sent"}
    assert not done.undelivered


def test_an_unknown_incident_is_a_permanent_error() -> None:
    rig = RouteRig()
    with pytest.raises(PermanentError, match="does not exist"):
        rig.route(incident_about("roads", "shakhty"))
    assert rig.sent() == []


@pytest.mark.parametrize("status", [S.IRRELEVANT, S.CLOSED, S.REJECTED, S.MERGED])
def test_an_incident_no_longer_waiting_for_routing_is_left_alone(status: IncidentStatus) -> None:
    rig = RouteRig()
    incident = rig.store(incident_about("roads", "shakhty", status=status))
    rig.route(incident)
    assert rig.stored(incident) == incident
    assert rig.sent() == []


@pytest.mark.parametrize("status", [S.ACKNOWLEDGED, S.ANSWERED])
def test_a_department_not_yet_told_is_told_after_the_incident_was_taken_into_work_or_answered(
    status: IncidentStatus,
) -> None:
    # The webhook was down when it was routed; meanwhile the city answered the author in the thread (or the other
    # channel's clerk took it into work). The problem is still the department's: remind hands it back, and route
    # finishes what was not delivered.
    rig = RouteRig()
    incident = rig.store(incident_about("roads", "shakhty"))
    rig.webhook.failures = 1
    with pytest.raises(TransientError):
        rig.route(incident)
    rig.incidents.update(incident.id, lambda i: transition(i, status, at=T0, actor="threads"))

    rig.route(incident)

    assert sorted(rig.sent()) == [("shakhty-roads", Channel.EMAIL), ("shakhty-roads", Channel.WEBHOOK)]
    done = rig.stored(incident)
    assert done.status is status and not done.undelivered and set(done.delivery.values()) == {"sent"}


@pytest.mark.parametrize("status", [S.IRRELEVANT, S.CLOSED, S.REJECTED])
def test_an_incident_closed_before_every_department_was_told_stops_being_undelivered(status: IncidentStatus) -> None:
    rig = RouteRig()
    incident = rig.store(incident_about("roads", "shakhty"))
    rig.webhook.failures = 1
    with pytest.raises(TransientError):
        rig.route(incident)
    steps = [S.ANSWERED, S.CLOSED] if status is S.CLOSED else [status]  # closed: answered, then resolved
    for step in steps:
        rig.incidents.update(incident.id, lambda i, step=step: transition(i, step, at=T0, actor="operator"))

    rig.route(incident)  # remind handed it back
    rig.route(incident)  # and a replay

    assert rig.sent() == [("shakhty-roads", Channel.EMAIL)]
    settled = rig.stored(incident)
    assert not settled.undelivered and settled.delivery["shakhty-roads/webhook"] == "sending"
    [dropped] = [e for e in settled.events if e.kind == "delivery_dropped"]
    assert dropped.note.startswith(f"{status} before every department was told") and "webhook" in dropped.note


def test_a_routed_department_is_notified_even_if_routing_changed_before_the_redelivery() -> None:
    rig = RouteRig(config=routing())
    incident = rig.store(incident_about("landscaping", "shakhty"))
    rig.email.failures = 1  # shakhty-parks hears by e-mail only
    with pytest.raises(TransientError):
        rig.route(incident)
    assert rig.stored(incident).department_ids == ("shakhty-parks",)

    # Redelivered after a deploy in which shakhty-parks (still configured) no longer owns landscaping.
    parks_without_landscaping = SHAKHTY_PARKS.model_copy(update={"categories": ("ecology",)})
    rig.config = routing(departments=(COORDINATOR, SHAKHTY_ROADS, SHAKHTY_EDDS, parks_without_landscaping))
    rig.route(incident)

    assert ("shakhty-parks", Channel.EMAIL) in rig.sent()
