"""Cost per post and per month, from what bench/pipeline.py counted on the local stack.

The counts are ours (measured); the prices are Google's published list prices in USD, as read on the date
below, for a Tier 1 region such as europe-north1. Firestore's price per operation differs by location: the
multi-region (eur3) prices are used, the highest of the European ones, so the estimate is an upper bound for
a regional database. Check https://cloud.google.com/firestore/pricing for your location before budgeting.

What is estimated, per month, for a volume of posts:
- Firestore: reads, writes and deletes per post (every function's, including remind's whole ladder for an
  incident nobody answers: the worst case), plus one TTL delete per published-post marker (TTL deletes have no
  free tier); storage of the incidents kept for a year;
- Pub/Sub: every publish and every delivery, each billed at least 1,000 bytes;
- Cloud Run (functions gen2, 256 MiB and 0.167 vCPU each, request-based billing): the time each invocation
  would take there, from what it took here: CPU time scaled to a sixth of a core, plus the time it waited for
  Firestore, a webhook or an SMTP server; rounded up to 100 ms per request; plus the scheduled runs;
- Cloud Scheduler and Secret Manager: fixed.
Free tiers are subtracted (Firestore's is per day: 30 days of it).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"

PRICES_READ_ON = "2026-11-23"
PRICES: dict[str, Any] = {
    "sources": [
        "https://cloud.google.com/firestore/pricing",
        "https://cloud.google.com/pubsub/pricing",
        "https://cloud.google.com/run/pricing",
        "https://cloud.google.com/scheduler/pricing",
        "https://cloud.google.com/secret-manager/pricing",
    ],
    "firestore_read_per_100k": 0.06,
    "firestore_write_per_100k": 0.18,
    "firestore_delete_per_100k": 0.02,
    "firestore_storage_gib_month": 0.18,
    "firestore_free_reads_per_day": 50_000,
    "firestore_free_writes_per_day": 20_000,
    "firestore_free_deletes_per_day": 20_000,
    "firestore_free_storage_gib": 1,
    "pubsub_per_tib": 40.0,
    "pubsub_free_gib_month": 10,
    "pubsub_min_bytes_per_message": 1000,
    "run_vcpu_second": 0.000024,
    "run_gib_second": 0.0000025,
    "run_per_million_requests": 0.40,
    "run_free_vcpu_seconds": 180_000,
    "run_free_gib_seconds": 360_000,
    "run_free_requests": 2_000_000,
    "scheduler_job_month": 0.10,
    "scheduler_free_jobs": 3,
    "secret_version_month": 0.06,
    "secret_free_versions": 6,
}
# The deployment's shape (infra/terraform): 256 MiB functions get 0.167 vCPU; schedules of topology.json.
FUNCTION_VCPU = 0.167
FUNCTION_GIB = 0.25
BILLING_GRANULARITY_S = 0.1
RUNS_PER_MONTH = {"ingest": 30 * 24 * 6, "remind": 30 * 24 * 4, "digest": 22}
# A scheduled run's own time, beyond the posts it handles (counted per post): ingest's calls to each source's
# API and its cursor reads, remind's query. An assumption, not measured against the real APIs.
SCHEDULED_RUN_SECONDS = 1.0
SCHEDULER_JOBS = 3
SECRETS = 8
# Firestore stores more than the content: field names, document name, and an index entry per indexed field.
# Firestore's storage-size page puts the indexes of a typical document at a multiple of its size; three times
# the content is the assumption here.
STORAGE_OVERHEAD = 3.0
MONTHS_KEPT = 12
VOLUMES = (20_000, 1_000_000)


def _billed_seconds(wall: float, cpu: float) -> float:
    """A request's instance time on Cloud Run from its wall and CPU time here (one full core)."""
    waiting = max(0.0, wall - cpu)
    there = cpu / FUNCTION_VCPU + waiting
    return math.ceil(there / BILLING_GRANULARITY_S) * BILLING_GRANULARITY_S


def _redelivery(pipeline: dict[str, Any]) -> float:
    subs = pipeline["pubsub"].values()
    deliveries: int = sum(s["deliveries"] for s in subs)
    messages: int = sum(s["messages"] for s in subs)
    return round(deliveries / messages, 2)


def per_post(pipeline: dict[str, Any]) -> dict[str, float]:
    """Operations per post of one pipeline run (all functions, remind's ladder included)."""
    posts = pipeline["published"]
    counts: dict[str, float] = {"firestore_reads": 0.0, "firestore_writes": 0.0, "firestore_deletes": 0.0}
    for phase in (pipeline["firestore_pipeline"], pipeline["remind_week_later"]["firestore"]):
        for function_counts in phase.values():
            for key in counts:
                counts[key] += function_counts.get(key, 0)
    result = {key: value / posts for key, value in counts.items()}
    result["firestore_ttl_deletes"] = 1.0  # the published-post marker, deleted by its TTL policy after 60 days
    pubsub_bytes = 0.0
    requests = 0.0
    instance_seconds = 0.0
    cpu = {f: c.get("cpu_seconds", 0.0) for f, c in pipeline["firestore_pipeline"].items()}
    for name, sub in pipeline["pubsub"].items():
        billed_message = max(PRICES["pubsub_min_bytes_per_message"], sub["data_bytes_mean"])
        pubsub_bytes += (sub["messages"] + sub["deliveries"]) * billed_message
        requests += sub["deliveries"]
        function = "classify" if name.endswith("classify") else "route"
        cpu_per_request = cpu.get(function, 0.0) / max(1, sub["deliveries"])
        instance_seconds += sub["deliveries"] * _billed_seconds(sub["function_seconds_mean"], cpu_per_request)
    remind = pipeline["remind_week_later"]
    remind_cpu = sum(c.get("cpu_seconds", 0.0) for c in remind["firestore"].values())
    instance_seconds += _billed_seconds(remind["seconds"], remind_cpu)  # the ladder's work, whichever run does it
    result["pubsub_bytes"] = pubsub_bytes / posts
    result["function_requests"] = requests / posts
    result["function_instance_seconds"] = instance_seconds / posts
    result["incident_stored_bytes"] = pipeline["incident_json_bytes_mean"] * STORAGE_OVERHEAD
    # Every post is a stored document: an incident, or merged into one (the post is kept).
    result["incidents_per_post"] = pipeline.get("documents", pipeline["incidents"]) / posts
    result["complaints_per_post"] = pipeline["complaints_routed"] / posts
    return result


def monthly(unit: dict[str, float], posts: int) -> dict[str, Any]:
    p = PRICES
    free_days = 30

    def firestore_ops(kind: str, price: str, free: float) -> float:
        return max(0.0, unit[kind] * posts - free) / 100_000 * float(p[price])

    reads = firestore_ops("firestore_reads", "firestore_read_per_100k", p["firestore_free_reads_per_day"] * free_days)
    writes = firestore_ops(
        "firestore_writes", "firestore_write_per_100k", p["firestore_free_writes_per_day"] * free_days
    )
    deletes = firestore_ops(
        "firestore_deletes", "firestore_delete_per_100k", p["firestore_free_deletes_per_day"] * free_days
    )
    ttl_deletes = firestore_ops("firestore_ttl_deletes", "firestore_delete_per_100k", 0)
    stored_gib = unit["incident_stored_bytes"] * unit["incidents_per_post"] * posts * MONTHS_KEPT / 2**30
    storage = max(0.0, stored_gib - p["firestore_free_storage_gib"]) * p["firestore_storage_gib_month"]
    pubsub_gib = unit["pubsub_bytes"] * posts / 2**30
    pubsub = max(0.0, pubsub_gib - p["pubsub_free_gib_month"]) / 1024 * p["pubsub_per_tib"]
    scheduled_requests = sum(RUNS_PER_MONTH.values())
    requests = unit["function_requests"] * posts + scheduled_requests
    seconds = unit["function_instance_seconds"] * posts + scheduled_requests * SCHEDULED_RUN_SECONDS
    vcpu_seconds, gib_seconds = seconds * FUNCTION_VCPU, seconds * FUNCTION_GIB
    run = (
        max(0.0, vcpu_seconds - p["run_free_vcpu_seconds"]) * p["run_vcpu_second"]
        + max(0.0, gib_seconds - p["run_free_gib_seconds"]) * p["run_gib_second"]
        + max(0.0, requests - p["run_free_requests"]) / 1e6 * p["run_per_million_requests"]
    )
    fixed = (
        max(0, SCHEDULER_JOBS - p["scheduler_free_jobs"]) * p["scheduler_job_month"]
        + max(0, SECRETS - p["secret_free_versions"]) * p["secret_version_month"]
    )
    lines = {
        "firestore_reads": reads,
        "firestore_writes": writes,
        "firestore_deletes": deletes + ttl_deletes,
        f"firestore_storage_after_{MONTHS_KEPT}_months": storage,
        "pubsub": pubsub,
        "cloud_run_functions": run,
        "scheduler_and_secrets": fixed,
    }
    total = sum(lines.values())
    incidents = unit["complaints_per_post"] * posts
    return {
        "posts_per_month": posts,
        "complaints_per_month": round(incidents),
        "usd": {k: round(v, 2) for k, v in lines.items()},
        "total_usd": round(total, 2),
        "usd_per_1000_complaints": round(total / incidents * 1000, 3) if incidents else None,
        "usage": {
            "firestore_reads": round(unit["firestore_reads"] * posts),
            "firestore_writes": round(unit["firestore_writes"] * posts),
            "pubsub_gib": round(pubsub_gib, 2),
            "function_requests": round(requests),
            "vcpu_seconds": round(vcpu_seconds),
            f"stored_gib_after_{MONTHS_KEPT}_months": round(stored_gib, 2),
        },
    }


def bench_cost() -> dict[str, Any]:
    source = RESULTS / "pipeline.json"
    if not source.exists():
        raise FileNotFoundError(f"{source}: run the pipeline benchmark first (python -m bench.run pipeline)")
    runs = json.loads(source.read_text(encoding="utf-8"))["results"]
    # Production pushes each message about once; the local bridge redelivers what waits past the ack deadline
    # in a long backlog. Cost is read from the run closest to once (the smaller one, as a rule).
    largest = min(runs.values(), key=lambda r: (_redelivery(r), -r["published"]))
    unit = per_post(largest)
    return {
        "prices_read_on": PRICES_READ_ON,
        "prices_usd": PRICES,
        "from_pipeline_run_of_posts": largest["published"],
        "deliveries_per_message_in_that_run": _redelivery(largest),
        "per_post": {k: round(v, 3) for k, v in unit.items()},
        "assumptions": {
            "function_vcpu": FUNCTION_VCPU,
            "function_gib": FUNCTION_GIB,
            "scheduled_run_seconds": SCHEDULED_RUN_SECONDS,
            "storage_overhead": STORAGE_OVERHEAD,
            "remind": "every incident unanswered for a week: the whole ladder (worst case)",
        },
        "monthly": [monthly(unit, n) for n in VOLUMES],
    }
