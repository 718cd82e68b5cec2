"""Pub/Sub publisher: publish a batch and wait until Pub/Sub has accepted every message."""

from __future__ import annotations

from collections.abc import Sequence

from google.cloud.pubsub_v1 import PublisherClient

from shared.contracts import Contract

PUBLISH_TIMEOUT_SECONDS = 60.0


class PubSubPublisher:
    def __init__(self, client: PublisherClient, project_id: str) -> None:
        self.client = client
        self.project_id = project_id

    def publish(self, topic: str, messages: Sequence[Contract]) -> list[str]:
        path = self.client.topic_path(self.project_id, topic)
        futures = [self.client.publish(path, m.to_bytes(), **m.attributes()) for m in messages]
        # result() raises if any publish failed, so the caller (ingest) keeps its cursor where it was.
        return [f.result(timeout=PUBLISH_TIMEOUT_SECONDS) for f in futures]
