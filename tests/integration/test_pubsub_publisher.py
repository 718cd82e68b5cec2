"""The Pub/Sub publisher against the Pub/Sub emulator, read back through a real subscription."""

from __future__ import annotations

import pytest
from google.cloud import pubsub_v1

from otklik.stack import topology
from shared.adapters.pubsub import PubSubPublisher
from shared.contracts import PostFetchedV1, decode
from tests.builders import T0, make_post

pytestmark = pytest.mark.integration


def test_published_messages_arrive_with_schema_attributes_and_decode(project_id: str) -> None:
    topo = topology.load()
    topology.create_on_emulator(topo, project_id)
    publisher = PubSubPublisher(pubsub_v1.PublisherClient(), project_id)
    messages = [PostFetchedV1(post=make_post(str(i)), fetched_at=T0) for i in range(3)]

    ids = publisher.publish(topo.topics["posts"], messages)

    assert len(set(ids)) == 3
    subscriber = pubsub_v1.SubscriberClient()
    sub = next(s.name for s in topo.subscriptions if s.topic == topo.topics["posts"])
    path = subscriber.subscription_path(project_id, sub)
    received = []
    for _ in range(20):
        response = subscriber.pull(request={"subscription": path, "max_messages": 10}, timeout=10)
        received += response.received_messages
        if len(received) >= 3:
            break
    subscriber.acknowledge(request={"subscription": path, "ack_ids": [r.ack_id for r in received]})
    decoded = [decode(r.message.data, (PostFetchedV1,)) for r in received]
    assert sorted(d.post.post_id for d in decoded) == ["0", "1", "2"]  # type: ignore[attr-defined]
    assert all(r.message.attributes["schema"] == "otklik.post.fetched" for r in received)
    assert all(r.message.attributes["version"] == "1" for r in received)


def test_publishing_to_a_missing_topic_raises_so_the_cursor_stays(project_id: str) -> None:
    publisher = PubSubPublisher(pubsub_v1.PublisherClient(), project_id)
    with pytest.raises(Exception):  # noqa: B017 - NotFound from the client; any raise keeps the cursor
        publisher.publish("no-such-topic", [PostFetchedV1(post=make_post("1"), fetched_at=T0)])
