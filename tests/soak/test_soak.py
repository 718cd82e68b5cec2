"""``make soak``: the local stack for many rounds of new posts, every round with a fault drawn at random —
copies of every message racing each other throughout, and in turn a department's receiver down, Firestore or
Pub/Sub unreachable, a source answering garbage. At the end nothing is lost or done twice, and the functions'
memory has not kept growing.

Not part of ``make test`` (minutes, not seconds). ``SOAK_ROUNDS`` (default 12) and ``SOAK_POSTS`` per round
(default 40) size it; ``SOAK_SEED`` repeats a run.
"""

from __future__ import annotations

import os
import random
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from otklik.classifier.corpus import load
from otklik.stack.local import LocalStack
from shared.domain.ids import incident_id_for
from shared.domain.models import utcnow
from tests.e2e.test_pipeline import demo_incident_ids, docs
from tests.e2e.test_reliability import (
    assert_each_notification_sent_exactly_once,
    pipeline_quarantine,
    wait_until_delivered,
)

pytestmark = pytest.mark.soak

ROUNDS = int(os.environ.get("SOAK_ROUNDS", "12"))
POSTS_PER_ROUND = int(os.environ.get("SOAK_POSTS", "40"))
SEED = int(os.environ.get("SOAK_SEED", "2026"))
FAULTS = ("none", "receiver_down", "firestore_cut", "pubsub_cut")
WALLS = (-210000001,)


def group_rss_mb(pgid: int) -> float:
    """Resident memory of a process group (a function's gunicorn master and worker)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields after the name: state, ppid, pgrp, ...
            total += int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    return total / 2**20


def functions_rss(stack: LocalStack) -> dict[str, float]:
    return {name: round(group_rss_mb(server.process.proc.pid), 1) for name, server in stack.servers.items()}


def test_rounds_of_posts_under_random_faults_lose_nothing_and_do_nothing_twice(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    texts = [p.text for p in load()]
    stack = LocalStack(
        tmp_path / "stack",
        deliveries_per_message="1-3",
        outages=True,
        backoff_scale=0.2,
        extra_env={"OTKLIK_WEBHOOK_ATTEMPTS": "1"},
    )
    with stack:
        assert stack.bridge is not None and stack.firestore_proxy and stack.pubsub_proxy
        published = stack.fire_ingest()["published"]
        stack.wait_until_settled(published, timeout=300)
        memory_at_start = functions_rss(stack)
        added: set[str] = set()
        next_id = 10_000_000
        faults_seen: list[str] = []

        for round_number in range(ROUNDS):
            for _ in range(POSTS_PER_ROUND):
                next_id += 1
                owner = rng.choice(WALLS)
                stack.vk.add_post(
                    owner,
                    {
                        "id": next_id,
                        "owner_id": owner,
                        "from_id": rng.randrange(1, 10**8),
                        "date": int(utcnow().timestamp()),
                        "post_type": "post",
                        "text": rng.choice(texts),
                        "comments": {"count": 0},
                    },
                )
                added.add(incident_id_for("vk", str(owner), str(next_id)))
            fault = rng.choice(FAULTS)
            faults_seen.append(fault)
            published += _ingest_under(stack, fault, rng)
            stack.wait_until_settled(published, timeout=300)
            print(f"round {round_number}: {fault}, {published} published, memory {functions_rss(stack)} MB")

        # Everything back; what a receiver's outage left undelivered is handed to route again by remind.
        stack.webhooks.recover()
        published += stack.fire_ingest()["published"]
        stack.wait_until_settled(published, timeout=300)
        for _ in range(50):
            if not stack.fire_remind(utcnow() + timedelta(minutes=31)).get("more_pending"):
                break
        wait_until_delivered(stack, timeout=300)
        memory_at_end = functions_rss(stack)

        incidents = docs(stack, "incidents")
        assert added | demo_incident_ids(stack) <= set(incidents)
        assert len(incidents) == published, "a post published twice, or an incident without its post"
        assert all(i["status"] != "new" for i in incidents.values()), "an incident never routed"
        assert not [i["id"] for i in incidents.values() if i.get("undelivered")]
        assert not pipeline_quarantine(stack)
        assert_each_notification_sent_exactly_once(stack)
        print(f"faults: {faults_seen}; memory at start {memory_at_start} MB, at end {memory_at_end} MB")
        for name, start in memory_at_start.items():
            # A leak grows with every round; the first rounds' caches (lemmas, clients) stay well below this.
            assert memory_at_end[name] < max(2 * start, start + 150), (name, start, memory_at_end[name])


def _ingest_under(stack: LocalStack, fault: str, rng: random.Random) -> int:
    """One ingest run with ``fault`` under way; returns how many posts it published."""
    assert stack.firestore_proxy is not None and stack.pubsub_proxy is not None
    outage = rng.uniform(1.0, 4.0)
    if fault == "receiver_down":
        stack.webhooks.fail_next(1_000_000, 503)
        threading.Timer(outage, stack.webhooks.recover).start()
        report: dict[str, Any] = stack.fire_ingest()
    elif fault in ("firestore_cut", "pubsub_cut"):
        proxy = stack.firestore_proxy if fault == "firestore_cut" else stack.pubsub_proxy
        report = stack.fire_ingest()
        proxy.cut()  # while classify and route work through what ingest published
        time.sleep(outage)
        proxy.restore()
        # Posts ingest could not publish during a cut stay behind its cursor: the next run takes them.
    else:
        report = stack.fire_ingest()
    return int(report["published"])
