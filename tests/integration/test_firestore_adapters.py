"""The Firestore adapters against the Firestore emulator."""

from __future__ import annotations

from datetime import timedelta

import pytest
from google.cloud import firestore

from shared.adapters.firestore import (
    FirestoreCursors,
    FirestoreIncidents,
    FirestoreNotifications,
    FirestoreQuarantine,
)
from shared.domain.lifecycle import transition
from shared.domain.models import Channel, IncidentStatus, Notification, NotificationStatus
from shared.ports import ClaimState, QuarantinedMessage
from tests.builders import T0, make_incident

pytestmark = pytest.mark.integration


@pytest.fixture
def db(project_id: str) -> firestore.Client:
    return firestore.Client(project=project_id)


def fresh_notification(notification_id: str, channel: Channel = Channel.WEBHOOK) -> Notification:
    return Notification(
        id=notification_id,
        incident_id="i",
        department_id="d",
        channel=channel,
        kind="new_incident",
        status=NotificationStatus.SENDING,
    )


def test_incident_is_created_once_and_reads_back_equal(db: firestore.Client) -> None:
    incidents = FirestoreIncidents(db)
    incident = make_incident("10")
    assert incidents.create(incident) is True
    assert incidents.create(incident.model_copy(update={"status": IncidentStatus.IRRELEVANT})) is False
    assert incidents.get(incident.id) == incident
    assert incidents.get("no-such-incident") is None


def test_update_applies_the_change_atomically_and_none_leaves_it(db: firestore.Client) -> None:
    incidents = FirestoreIncidents(db)
    incident = make_incident("11")
    incidents.create(incident)
    routed = incidents.update(
        incident.id,
        lambda i: transition(i, IncidentStatus.ROUTED, at=T0, actor="test", department_ids=("a",)),
    )
    assert routed is not None and routed.status is IncidentStatus.ROUTED
    assert incidents.update(incident.id, lambda i: None) == routed
    stored = incidents.get(incident.id)
    assert stored is not None
    assert [c.status for c in stored.status_history] == [IncidentStatus.NEW, IncidentStatus.ROUTED]
    assert stored.department_ids == ("a",)
    assert incidents.update("missing", lambda i: i) is None


def test_due_for_check_finds_incidents_whose_next_check_has_come_earliest_first(db: firestore.Client) -> None:
    incidents = FirestoreIncidents(db)
    late = make_incident("1", IncidentStatus.ROUTED, next_check_at=T0 - timedelta(hours=2))
    early = make_incident("2", IncidentStatus.ACKNOWLEDGED, next_check_at=T0 - timedelta(hours=5))
    not_yet = make_incident("3", IncidentStatus.ROUTED, next_check_at=T0 + timedelta(hours=1))
    nothing_pending = make_incident("4", IncidentStatus.CLOSED, next_check_at=None)
    for i in (late, early, not_yet, nothing_pending):
        incidents.create(i)
    assert [i.id for i in incidents.due_for_check(T0, limit=10)] == [early.id, late.id]
    assert [i.id for i in incidents.due_for_check(T0, limit=1)] == [early.id]


def test_open_incidents_are_read_page_by_page_oldest_first(db: firestore.Client) -> None:
    incidents = FirestoreIncidents(db)
    made = []
    for n, status in enumerate([IncidentStatus.ROUTED, IncidentStatus.CLOSED, IncidentStatus.ANSWERED] * 3):
        incident = make_incident(str(n), status, created_at=T0 + timedelta(minutes=n))
        incidents.create(incident)
        made.append(incident)
    open_ids = [i.id for i in made if i.status is not IncidentStatus.CLOSED]
    first = incidents.open_incidents(None, 4)
    rest = incidents.open_incidents(first[-1].created_at, 4)  # from that instant on, inclusive
    assert [i.id for i in first + rest[1:]] == open_ids and rest[0].id == first[-1].id


def test_undelivered_since_finds_undelivered_incidents_routed_long_enough_ago(db: firestore.Client) -> None:
    incidents = FirestoreIncidents(db)
    stuck = make_incident("1", IncidentStatus.ROUTED, undelivered=True, routed_at=T0 - timedelta(hours=1))
    fresh = make_incident("2", IncidentStatus.ROUTED, undelivered=True, routed_at=T0 + timedelta(minutes=5))
    delivered = make_incident("3", IncidentStatus.ROUTED, undelivered=False, routed_at=T0 - timedelta(hours=2))
    for i in (stuck, fresh, delivered):
        incidents.create(i)
    assert [i.id for i in incidents.undelivered_since(T0, limit=10)] == [stuck.id]


def test_cursor_round_trip(db: firestore.Client) -> None:
    cursors = FirestoreCursors(db)
    assert cursors.get("vk-a") is None
    cursors.set("vk-a", {"last_post_id": 42})
    cursors.set("vk-a", {"last_post_id": 43})
    assert cursors.get("vk-a") == {"last_post_id": 43}


def test_quarantine_keeps_one_record_per_message(db: firestore.Client) -> None:
    quarantine = FirestoreQuarantine(db)
    item = QuarantinedMessage("classify.1", "classify", "not JSON", "garbage", {"a": "b"}, T0)
    quarantine.put(item)
    quarantine.put(item)
    docs = [d.to_dict() for d in db.collection("quarantine").stream()]
    assert len(docs) == 1
    assert docs[0]["reason"] == "not JSON" and docs[0]["payload"] == "garbage"


def test_notification_claim_is_granted_once_busy_within_lease_done_when_sent(db: firestore.Client) -> None:
    log = FirestoreNotifications(db)
    fresh = fresh_notification("n1", Channel.WEBHOOK)
    first = log.claim(fresh, lease_seconds=60, now=T0)
    assert first.state is ClaimState.GRANTED and first.notification.attempts == 1
    assert log.claim(fresh, lease_seconds=60, now=T0 + timedelta(seconds=30)).state is ClaimState.BUSY
    again = log.claim(fresh, lease_seconds=60, now=T0 + timedelta(seconds=61))
    assert again.state is ClaimState.GRANTED and again.notification.attempts == 2
    log.save(again.notification.model_copy(update={"status": NotificationStatus.SENT}))
    assert log.claim(fresh, lease_seconds=60, now=T0 + timedelta(hours=1)).state is ClaimState.DONE


def test_concurrent_claims_grant_exactly_one_sender(db: firestore.Client) -> None:
    """Eight deliveries of one message race for the same notification: one sends, the rest are told it is busy."""
    import threading

    log = FirestoreNotifications(db)
    fresh = fresh_notification("race", Channel.EMAIL)
    barrier = threading.Barrier(8)
    states: list[ClaimState] = []

    def race() -> None:
        barrier.wait(timeout=10)
        states.append(log.claim(fresh, lease_seconds=60, now=T0).state)

    threads = [threading.Thread(target=race) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(states) == sorted([ClaimState.GRANTED] + [ClaimState.BUSY] * 7)


def test_a_released_claim_lets_the_next_delivery_send_at_once_and_a_late_release_cannot_undo_sent(
    db: firestore.Client,
) -> None:
    log = FirestoreNotifications(db)
    fresh = fresh_notification("rel", Channel.WEBHOOK)
    first = log.claim(fresh, lease_seconds=60, now=T0).notification
    log.save(first.model_copy(update={"claimed_at": None, "last_error": "HTTP 503"}))  # failed: released
    second = log.claim(fresh, lease_seconds=60, now=T0 + timedelta(seconds=1))
    assert second.state is ClaimState.GRANTED and second.notification.attempts == 2
    log.save(second.notification.model_copy(update={"status": NotificationStatus.SENT}))
    log.save(first.model_copy(update={"claimed_at": None}))  # a slow first worker releases late
    assert log.claim(fresh, lease_seconds=60, now=T0 + timedelta(hours=1)).state is ClaimState.DONE


def test_group_candidates_finds_incidents_by_any_key_with_a_recent_post_latest_first(db: firestore.Client) -> None:
    incidents = FirestoreIncidents(db)
    address = "shakhty|roads|a:ленин|102"
    broad = "shakhty|roads"
    older = make_incident("1", group_keys=(address, broad), last_post_at=T0 - timedelta(days=3))
    newer = make_incident("2", group_keys=("shakhty|roads|l:школа#5", broad), last_post_at=T0 - timedelta(hours=1))
    stale = make_incident("3", group_keys=(address, broad), last_post_at=T0 - timedelta(days=90))
    elsewhere = make_incident("4", group_keys=("kirov|roads",), last_post_at=T0)
    never_grouped = make_incident("5")  # not a complaint, or stored before grouping: no keys
    for i in (older, newer, stale, elsewhere, never_grouped):
        incidents.create(i)
    since = T0 - timedelta(days=60)

    assert [i.id for i in incidents.group_candidates([address], since, 10)] == [older.id]
    assert [i.id for i in incidents.group_candidates([address, broad], since, 10)] == [newer.id, older.id]
    assert [i.id for i in incidents.group_candidates([address, broad], since, 1)] == [newer.id]
    assert incidents.group_candidates(["nowhere|roads"], since, 10) == []
    assert incidents.group_candidates([], since, 10) == []


def test_group_stored_since_finds_incidents_by_any_key_stored_lately_oldest_first(db: firestore.Client) -> None:
    incidents = FirestoreIncidents(db)
    address, broad = "kirov|roads|a:ленин|102", "kirov|roads"
    twin = make_incident("1", group_keys=(address, broad), created_at=T0 - timedelta(minutes=2))
    later = make_incident("2", group_keys=(broad,), created_at=T0 + timedelta(seconds=1))
    long_ago = make_incident("3", group_keys=(address, broad), created_at=T0 - timedelta(days=2))
    elsewhere = make_incident("4", group_keys=("shakhty|roads",), created_at=T0)
    for i in (twin, later, long_ago, elsewhere):
        incidents.create(i)
    since = T0 - timedelta(minutes=10)

    assert [i.id for i in incidents.group_stored_since([address], since, 10)] == [twin.id]
    assert [i.id for i in incidents.group_stored_since([address, broad], since, 10)] == [twin.id, later.id]
    assert [i.id for i in incidents.group_stored_since([address, broad], since, 1)] == [twin.id]
    assert incidents.group_stored_since([], since, 10) == []
