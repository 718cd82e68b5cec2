"""Topics, subscriptions and function triggers from ``infra/terraform/topology.json``, the one definition
Terraform reads too; and their creation on the Pub/Sub emulator."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from otklik import REPO_ROOT

TOPOLOGY_FILE = REPO_ROOT / "infra" / "terraform" / "topology.json"


@dataclass(frozen=True)
class Subscription:
    name: str
    topic: str
    push_to: str
    ack_deadline_seconds: int
    max_delivery_attempts: int
    min_backoff_seconds: float
    max_backoff_seconds: float
    dead_letter_topic: str


@dataclass(frozen=True)
class Topology:
    topics: dict[str, str]  # key -> topic name
    dead_letter_topics: list[str]
    subscriptions: list[Subscription]
    functions: dict[str, dict[str, Any]]
    settings_variables: dict[str, str]  # OTKLIK_TOPIC_* -> topic name


def load(path: Path = TOPOLOGY_FILE) -> Topology:
    raw = json.loads(path.read_text(encoding="utf-8"))
    topics, dlq, subs, variables = {}, [], [], {}
    for t in raw["topics"]:
        topics[t["key"]] = t["name"]
        dlq.append(t["dead_letter_topic"])
        variables[t["settings_variable"]] = t["name"]
        for s in t["subscriptions"]:
            subs.append(
                Subscription(
                    name=s["name"],
                    topic=t["name"],
                    push_to=s["push_to"],
                    ack_deadline_seconds=int(s["ack_deadline_seconds"]),
                    max_delivery_attempts=int(s["max_delivery_attempts"]),
                    min_backoff_seconds=float(s["min_backoff_seconds"]),
                    max_backoff_seconds=float(s["max_backoff_seconds"]),
                    dead_letter_topic=t["dead_letter_topic"],
                )
            )
    return Topology(topics, dlq, subs, raw["functions"], variables)


def dead_letter_subscription(topic: str) -> str:
    return f"{topic}-pull"


def create_on_emulator(topology: Topology, project_id: str) -> None:
    """Create every topic and subscription (idempotent). The emulator needs PUBSUB_EMULATOR_HOST set."""
    from google.api_core.exceptions import AlreadyExists
    from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient

    publisher = PublisherClient()
    subscriber = SubscriberClient()
    try:
        for name in [*topology.topics.values(), *topology.dead_letter_topics]:
            with contextlib.suppress(AlreadyExists):
                publisher.create_topic(name=publisher.topic_path(project_id, name))
        wanted = [(s.name, s.topic, s.ack_deadline_seconds) for s in topology.subscriptions]
        # A pull subscription on each dead-letter topic, as in production, so nothing dead-lettered is lost.
        wanted += [(dead_letter_subscription(t), t, 60) for t in topology.dead_letter_topics]
        for sub_name, topic, ack_deadline in wanted:
            with contextlib.suppress(AlreadyExists):
                subscriber.create_subscription(
                    request={
                        "name": subscriber.subscription_path(project_id, sub_name),
                        "topic": publisher.topic_path(project_id, topic),
                        "ack_deadline_seconds": ack_deadline,
                    }
                )
    finally:
        subscriber.close()
