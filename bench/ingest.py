"""Ingest rate: posts/s from a VK wall stand-in through the real connector, the publish-once markers in
Firestore and the Pub/Sub publisher, on the emulators. VK's own rate limit is lifted here (the stand-in and the
client allow 1000 requests/s), so the number is what our side can do; in production a user token's 3 requests/s
at 100 posts per wall.get page caps one token at about 300 posts/s."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx


def bench_ingest(posts: int = 5000) -> dict[str, Any]:
    from otklik.stack import emulators, topology
    from otklik.standins.vk import VkStandIn

    with tempfile.TemporaryDirectory() as tmp:
        running = emulators.start(Path(tmp) / "logs")
        try:
            os.environ.update(running.env())
            from google.cloud import firestore
            from google.cloud.pubsub_v1 import PublisherClient

            from shared.adapters.firestore import (
                PUBLISHED_POSTS,
                FirestoreCursors,
                FirestoreMarkers,
                FirestoreQuarantine,
                FirestoreSourceHealth,
            )
            from shared.adapters.politeness import Polite, RateLimit
            from shared.adapters.pubsub import PubSubPublisher
            from shared.adapters.vk import VkClient, VkWallConnector
            from shared.domain.models import utcnow
            from shared.services.ingest import IngestService, PostIntake, WatchedSource
            from shared.source_config import VkWallSource

            project = "bench-ingest"
            topology.create_on_emulator(topology.load(), project)
            owner = -1
            items = [
                {
                    "id": i,
                    "owner_id": owner,
                    "from_id": 7,
                    "date": 1795300000 + i,
                    "text": f"Пост {i}: яма на дороге по ул. Советской, когда отремонтируют? 😡 https://vk.com/x{i}",
                }
                for i in range(posts, 0, -1)
            ]
            walls = Path(tmp) / "walls.json"
            walls.write_text(json.dumps({"communities": [{"owner_id": owner, "items": items}]}), encoding="utf-8")
            db = firestore.Client(project=project)
            with VkStandIn(walls, token="t") as vk:
                client = VkClient(httpx.Client(timeout=30), vk.api_base, "t", "5.199", Polite(RateLimit(1000)))
                source = VkWallSource(id="bench", kind="vk_wall", owner_id=owner, max_posts_first_run=posts)
                intake = PostIntake(
                    FirestoreMarkers(db, PUBLISHED_POSTS),
                    PubSubPublisher(PublisherClient(), project),
                    topology.load().topics["posts"],
                    utcnow,
                )
                service = IngestService(
                    [WatchedSource(VkWallConnector(source, client))],
                    FirestoreCursors(db),
                    intake,
                    FirestoreQuarantine(db),
                    FirestoreSourceHealth(db),
                    utcnow,
                )
                began = time.perf_counter()
                report = service.run()
                seconds = time.perf_counter() - began
            published = report.published
            return {
                "emulators": running.kind,
                "posts": posts,
                "published": published,
                "seconds": round(seconds, 2),
                "posts_per_second": round(published / seconds),
                "wall_get_calls": (posts + 99) // 100,
            }
        finally:
            running.stop()
