"""Pub/Sub -> function delivery as Eventarc does it in production, for emulators that have no push.

Each message on a subscription is wrapped in the CloudEvent Eventarc sends for Pub/Sub
(``google.cloud.pubsub.topic.v1.messagePublished``, binary content mode) and POSTed to the function. A 2xx
answer acknowledges it; anything else is retried with the subscription's exponential backoff (scaled down
locally by ``backoff_scale``) until ``max_delivery_attempts``, then the message goes to the dead-letter topic,
exactly as the subscription's dead-letter policy does in production.
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import logging
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent
from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient
from google.cloud.pubsub_v1.types import FlowControl

from otklik.stack.topology import Subscription
from shared.entrypoints.pubsub_event import MESSAGE_PUBLISHED

log = logging.getLogger(__name__)


@dataclass
class DeliveryRecord:
    subscription: str
    message_id: str
    status: int | str  # HTTP status, or the transport error
    seconds: float = 0.0  # the function's answer time: what Cloud Run bills for
    data_bytes: int = 0  # the message's data, for Pub/Sub's throughput


@dataclass
class BridgeStats:
    acked: Counter[str] = field(default_factory=Counter)
    retried: Counter[str] = field(default_factory=Counter)
    dead_lettered: Counter[str] = field(default_factory=Counter)


def pubsub_cloudevent(project_id: str, sub: Subscription, message: Any) -> CloudEvent:
    publish_time = message.publish_time
    if isinstance(publish_time, datetime):
        stamp = publish_time.astimezone(UTC).isoformat().replace("+00:00", "Z")
    else:
        stamp = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    attributes = dict(message.attributes)
    body = {
        "message": {
            "data": base64.b64encode(message.data).decode("ascii"),
            "attributes": attributes,
            "messageId": message.message_id,
            "message_id": message.message_id,
            "publishTime": stamp,
            "publish_time": stamp,
        },
        "subscription": f"projects/{project_id}/subscriptions/{sub.name}",
    }
    return CloudEvent(
        {
            "type": MESSAGE_PUBLISHED,
            "source": f"//pubsub.googleapis.com/projects/{project_id}/topics/{sub.topic}",
            "id": message.message_id,
            "time": stamp,
            "datacontenttype": "application/json",
        },
        body,
    )


class EventarcBridge:
    def __init__(
        self,
        project_id: str,
        subscriptions: list[Subscription],
        targets: dict[str, str],
        backoff_scale: float = 0.01,
        deliveries_per_message: int | str = 1,
        timeout: float = 60.0,
        seed: int | None = None,
    ) -> None:
        """``deliveries_per_message``: each message is delivered that many times one after the other, or, with
        ``"1-3"``, a random number of times between 1 and 3, the copies at once, each after a random pause of
        up to 50 ms (so copies race and messages overtake each other), as at-least-once delivery may."""
        self.project_id = project_id
        self.subscriptions = subscriptions
        self.targets = targets
        self.backoff_scale = backoff_scale
        if isinstance(deliveries_per_message, str):
            low, _, high = deliveries_per_message.partition("-")
            self._copies: tuple[int, int] = (int(low), int(high or low))
            self._concurrent = True
        else:
            self._copies = (deliveries_per_message, deliveries_per_message)
            self._concurrent = False
        self._random = random.Random(seed)  # noqa: S311 - shuffles test deliveries, guards nothing
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="bridge-copy")
        self.http = httpx.Client(timeout=timeout)
        self.subscriber = SubscriberClient()
        self.publisher = PublisherClient()
        self.stats = BridgeStats()
        self.records: list[DeliveryRecord] = []
        self._attempts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._inflight = 0
        self._last_activity = time.monotonic()
        self._futures: list[Any] = []

    def start(self) -> EventarcBridge:
        for sub in self.subscriptions:
            path = self.subscriber.subscription_path(self.project_id, sub.name)
            future = self.subscriber.subscribe(
                path,
                callback=lambda m, s=sub: self._deliver(s, m),
                flow_control=FlowControl(max_messages=8),
            )
            self._futures.append(future)
        return self

    def stop(self) -> None:
        for future in self._futures:
            future.cancel()
        for future in self._futures:
            with contextlib.suppress(Exception):  # cancelled futures raise; nothing to report on shutdown
                future.result(timeout=10)
        self._futures.clear()
        self.subscriber.close()
        self._pool.shutdown(wait=True)
        self.http.close()

    # --- delivery -------------------------------------------------------------------------------------

    def _deliver(self, sub: Subscription, message: Any) -> None:
        with self._lock:
            self._inflight += 1
            self._last_activity = time.monotonic()
        try:
            headers, body = to_binary(pubsub_cloudevent(self.project_id, sub, message))
            url = self.targets[sub.push_to]
            with self._lock:
                copies = self._random.randint(*self._copies)
            if self._concurrent:

                def copy() -> int | str:
                    time.sleep(self._random.uniform(0, 0.05))
                    return self._post(sub, message.message_id, url, headers, body, len(message.data))

                statuses = list(self._pool.map(lambda _: copy(), range(copies)))
            else:
                statuses = [
                    self._post(sub, message.message_id, url, headers, body, len(message.data)) for _ in range(copies)
                ]
            if all(isinstance(s, int) and 200 <= s < 300 for s in statuses):
                message.ack()
                with self._lock:
                    self.stats.acked[sub.name] += 1
            else:
                self._retry_or_dead_letter(sub, message, statuses[-1])
        except Exception:
            log.exception("bridge failed on %s", message.message_id)
            message.nack()
        finally:
            with self._lock:
                self._inflight -= 1
                self._last_activity = time.monotonic()

    def _post(
        self, sub: Subscription, message_id: str, url: str, headers: dict[str, str], body: bytes | None, size: int
    ) -> int | str:
        began = time.monotonic()
        try:
            status: int | str = self.http.post(url, headers=headers, content=body).status_code
        except httpx.TransportError as exc:
            status = f"{type(exc).__name__}: {exc}"
        record = DeliveryRecord(sub.name, message_id, status, time.monotonic() - began, size)
        with self._lock:
            self.records.append(record)
        return status

    def _retry_or_dead_letter(self, sub: Subscription, message: Any, status: int | str) -> None:
        with self._lock:
            self._attempts[message.message_id] += 1
            attempt = self._attempts[message.message_id]
        if attempt >= sub.max_delivery_attempts:
            attributes = dict(message.attributes)
            attributes["otklik_dead_letter_reason"] = f"{attempt} attempts, last answer {status}"
            self.publisher.publish(
                self.publisher.topic_path(self.project_id, sub.dead_letter_topic), message.data, **attributes
            ).result(timeout=30)
            message.ack()
            with self._lock:
                self.stats.dead_lettered[sub.name] += 1
            return
        delay = min(sub.max_backoff_seconds, sub.min_backoff_seconds * 2 ** (attempt - 1)) * self.backoff_scale
        time.sleep(delay)
        message.nack()
        with self._lock:
            self.stats.retried[sub.name] += 1

    # --- waiting --------------------------------------------------------------------------------------

    def handled(self, subscription: str) -> int:
        with self._lock:
            return self.stats.acked[subscription] + self.stats.dead_lettered[subscription]

    def wait_idle(self, quiet: float = 1.0, timeout: float = 120.0) -> None:
        """Return once nothing has been in flight for ``quiet`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                idle = self._inflight == 0 and time.monotonic() - self._last_activity >= quiet
            if idle:
                return
            time.sleep(0.05)
        raise TimeoutError(f"Pub/Sub delivery still busy after {timeout:.0f}s")
