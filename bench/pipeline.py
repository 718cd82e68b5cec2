"""End to end on the local stack, and what it costs.

N posts on VK community walls (500 per wall, each wall a community of another municipality of Kirov oblast, as
the region's 20,000 posts a year come from its 39 municipalities; texts drawn from the labelled corpus:
complaints and chatter in the corpus's proportions) go through the whole local stack: ingest (one run,
as Cloud Scheduler would fire it) -> Pub/Sub -> classify -> Pub/Sub -> route -> the departments' webhook
receiver and mail sink. Then remind runs with the clock a week ahead, nobody having answered: every reminder
and escalation of the ladder, the worst case.

Measured:
- posts/s from the ingest call to the last incident routed;
- latency from publish (the post's published marker, written right after Pub/Sub took the post) to the first
  webhook the department's receiver got for it, p50/p95/max, for every incident with a webhook department;
- Firestore reads, writes and deletes per post, per function, counted in each function process's gRPC client
  (otklik.stack.metering); Pub/Sub messages, deliveries and bytes per post, counted by the delivery bridge;
  function invocations and CPU seconds per post. bench/cost.py turns these into money.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import tempfile
import time
from collections import Counter, defaultdict
from datetime import timedelta
from pathlib import Path
from typing import Any

# A first run reads at most 50 pages of 100 posts of a wall (shared/adapters/vk.py MAX_PAGES): well inside it.
# One municipality per wall: grouping looks for candidates within the post's municipality and category, and
# the emulator answers that query by scanning every match (Firestore walks an index to the limit), so 10,000
# posts of one town would measure the emulator's scan, not the pipeline.
POSTS_PER_WALL = 500
REGION = "kirov_oblast"
# The corpus has a few hundred texts; drawn 10,000 times they would all be "the same problem" and grouping would
# pile thousands of reports onto a few incidents - a viral problem, not a city's month. So every post gets its
# own address (its house on one bench street: different houses are different problems, grouping's rule 4), and
# a share of posts repeat a recent post - another resident writing about the same problem - which grouping
# merges. Kirov's and Shakhty's figures count posts; the share of repeats among them is our assumption.
REPEAT_SHARE = 0.15
REPEAT_FROM_LAST = 200  # a repeat is of one of the last posts: well inside grouping's time window
BENCH_STREET = "ул. Стендовая"
FIRST_OWNER = -210000101
SOURCE = """  - id: vk-bench-{n}
    kind: vk_wall
    owner_id: {owner}
    municipality: {municipality}
    comments: false
    max_posts_first_run: {posts}
"""


def _walls(posts: int, seed: int = 11) -> tuple[dict[str, Any], str]:
    """The stand-in's walls and the sources.yaml that follows them."""
    from otklik.classifier.corpus import load
    from shared.classifier.places import municipality_regions

    texts = [p.text for p in load()]
    municipalities = sorted(m for m, region in municipality_regions().items() if region == REGION)
    rng = random.Random(seed)
    now = int(time.time())
    communities, sources = [], ["sources:"]
    for n, first in enumerate(range(0, posts, POSTS_PER_WALL)):
        owner = FIRST_OWNER - n
        count = min(POSTS_PER_WALL, posts - first)
        items: list[dict[str, Any]] = []
        for i in range(1, count + 1):  # oldest first here, so a repeat follows the post it repeats
            if items and rng.random() < REPEAT_SHARE:
                text = rng.choice(items[-REPEAT_FROM_LAST:])["text"]
            else:
                text = f"{rng.choice(texts)}\n{BENCH_STREET}, д. {first + i}"
            items.append(
                {
                    "id": i,
                    "owner_id": owner,
                    "from_id": 100000 + rng.randrange(50000),
                    "date": now - (count - i) * 5,
                    "post_type": "post",
                    "text": text,
                    "comments": {"count": 0},
                }
            )
        items.reverse()  # newest first, as wall.get returns them
        communities.append({"owner_id": owner, "screen_name": f"bench_wall_{n}", "items": items})
        municipality = municipalities[n % len(municipalities)]
        sources.append(SOURCE.format(n=n, owner=owner, posts=count, municipality=municipality).rstrip("\n"))
    return {"communities": communities}, "\n".join(sources) + "\n"


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def run_pipeline(posts: int) -> dict[str, Any]:
    from otklik.stack.local import LocalStack
    from otklik.stack.metering import read_meters
    from shared.domain.models import utcnow

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        walls = work / "walls.json"
        wall_data, sources_yaml = _walls(posts)
        walls.write_text(json.dumps(wall_data, ensure_ascii=False), encoding="utf-8")
        meters = work / "meters"
        meters.mkdir()
        stack = LocalStack(
            work / "stack",
            walls_file=walls,
            config_files={"sources.yaml": sources_yaml},
            meter_dir=meters,
        )
        with stack:
            assert stack.bridge is not None and stack.emulators is not None
            began = time.time()
            ingest = stack.fire_ingest()
            ingest_seconds = time.time() - began
            stack.wait_until_settled(ingest["published"], timeout=max(300.0, posts * 0.2))
            pipeline_seconds = time.time() - began
            db = stack.firestore()
            published_at = {
                doc.id: doc.to_dict()["marked_at"].timestamp() for doc in db.collection("published_posts").stream()
            }
            first_webhook: dict[str, float] = {}
            for hook in stack.webhooks.accepted():
                incident_id = hook.json["incident_id"]
                first_webhook[incident_id] = min(first_webhook.get(incident_id, hook.received_at), hook.received_at)
            latencies = [at - published_at[i] for i, at in first_webhook.items() if i in published_at]
            documents = [doc.to_dict() for doc in db.collection("incidents").stream()]
            incidents = [i for i in documents if i.get("status") != "merged"]
            routed = [i for i in incidents if i.get("department_ids")]
            # Stored size as Firestore counts it is larger (field names, indexes); this is the content.
            incident_bytes = statistics.mean(len(json.dumps(i, default=str).encode()) for i in documents)
            emails = len(stack.smtp.messages)
            webhooks = len(stack.webhooks.accepted())
            # At-least-once delivery absorbed: the same notification received twice would show here.
            webhooks_twice = webhooks - len({h.headers["otklik-event-id"] for h in stack.webhooks.accepted()})
            emails_twice = emails - len({str(m["Message-ID"]) for m in stack.smtp.messages})
            time.sleep(1.5)  # the function processes' meters write at most twice a second
            after_pipeline = read_meters(meters)

            remind_began = time.time()
            week_later = utcnow() + timedelta(days=7)
            remind_runs, steps = 0, 0
            while True:
                report = stack.fire_remind(week_later)
                remind_runs += 1
                steps += len(report.get("steps", []))
                if not report.get("more_pending"):
                    break
            stack.bridge.wait_idle(quiet=0.5, timeout=120)
            remind_seconds = time.time() - remind_began
            time.sleep(1.5)
            after_remind = read_meters(meters)
            deliveries = list(stack.bridge.records)
            emulators = stack.emulators.kind

    firestore_pipeline = _by_function(after_pipeline)
    firestore_remind = _subtract(_by_function(after_remind), firestore_pipeline)
    by_subscription: dict[str, list[Any]] = defaultdict(list)
    for record in deliveries:
        by_subscription[record.subscription].append(record)
    pubsub = {
        name: {
            "messages": len({r.message_id for r in records}),
            "deliveries": len(records),
            # Above 1: the bridge's backlog outlived the ack deadline and the emulator delivered again.
            "deliveries_per_message": round(len(records) / len({r.message_id for r in records}), 2),
            "data_bytes_mean": round(statistics.mean(r.data_bytes for r in records)),
            "function_seconds_mean": round(statistics.mean(r.seconds for r in records), 4),
            "function_seconds_p95": round(_percentile([r.seconds for r in records], 0.95), 4),
        }
        for name, records in by_subscription.items()
    }
    published = int(ingest["published"])
    return {
        "emulators": emulators,
        "posts": posts,
        "published": published,
        "documents": len(documents),
        "incidents": len(incidents),
        "merged_posts": len(documents) - len(incidents),
        "repeat_share": REPEAT_SHARE,
        "incident_json_bytes_mean": round(incident_bytes),
        "complaints_routed": len(routed),
        "webhooks": webhooks,
        "emails": emails,
        "notifications_received_twice": webhooks_twice + emails_twice,
        "ingest_seconds": round(ingest_seconds, 2),
        "pipeline_seconds": round(pipeline_seconds, 2),
        "posts_per_second": round(published / pipeline_seconds, 1),
        "latency_publish_to_webhook_s": {
            "incidents": len(latencies),
            "p50": round(_percentile(latencies, 0.50), 3),
            "p95": round(_percentile(latencies, 0.95), 3),
            "max": round(max(latencies), 3),
        }
        if latencies
        else None,
        "pubsub": pubsub,
        "firestore_pipeline": firestore_pipeline,
        "remind_week_later": {
            "runs": remind_runs,
            "steps": steps,
            "seconds": round(remind_seconds, 2),
            "firestore": firestore_remind,
        },
    }


def _by_function(meters: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Process files are ``<function>-<pid>``; a function may have had several processes."""
    totals: dict[str, Counter[str]] = defaultdict(Counter)
    for process, counts in meters.items():
        function = process.rsplit("-", 1)[0]
        totals[function].update(counts)
    return {function: {k: round(v, 3) for k, v in sorted(c.items())} for function, c in sorted(totals.items())}


def _subtract(after: dict[str, dict[str, float]], before: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    difference: dict[str, dict[str, float]] = {}
    for function, counts in after.items():
        earlier = before.get(function, {})
        changed = {k: round(v - earlier.get(k, 0), 3) for k, v in counts.items() if v - earlier.get(k, 0)}
        if changed:
            difference[function] = changed
    return difference


def bench_pipeline(sizes: tuple[int, ...] | None = None) -> dict[str, Any]:
    """``BENCH_PIPELINE_SIZES`` (comma-separated, default ``1000,3000``) chooses the runs."""
    if sizes is None:
        sizes = tuple(int(n) for n in os.environ.get("BENCH_PIPELINE_SIZES", "1000,3000").split(",") if n.strip())
    return {str(n): run_pipeline(n) for n in sizes}
