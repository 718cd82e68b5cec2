"""``make bench``: speed and memory of the pieces that decide cost and latency, written to bench/results/.

- classifier: the first stage's posts/s on one core and per-post latency (p50, p99); the second stage's cost per
  kept post and the share kept; the sentence encoder's load;
- ingest: posts/s from a VK wall stand-in through the connector, markers and publisher on the emulators;
- cold start: per function, a fresh interpreter importing main.py under functions-framework and building its
  service from configuration (the work a new instance does before its first request): wall time and peak RSS.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"

COLD_START = """
import resource, sys, time
t0 = time.perf_counter()
from functions_framework import create_app
app = create_app(target={name!r}, source={source!r})
from shared import bootstrap
bootstrap.{service}()
elapsed = time.perf_counter() - t0
print(elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""
# Clients are built, not connected: emulator hosts stand in for the credentials lookup a real instance does.
COLD_START_ENV = {
    "PATH": "/usr/bin:/bin",
    "OTKLIK_PROJECT_ID": "bench",
    "OTKLIK_SMTP_HOST": "127.0.0.1",
    "FIRESTORE_EMULATOR_HOST": "127.0.0.1:9",
    "PUBSUB_EMULATOR_HOST": "127.0.0.1:9",
}
SERVICES = {
    "ingest": "ingest_service",
    "classify": "classify_service",
    "route": "route_service",
    "remind": "remind_service",
    "digest": "digest_service",
    "vk_callback": "vk_callback_service",
    "inbox": "inbox_service",
    "department_api": "department_api",
    "open311": "open311_api",
}


def bench_classifier(
    target_posts: int = 20_000, chars: int = 300, second_stage_posts: int = 1_000
) -> dict[str, object]:
    """Posts of about ``chars`` characters, each different (corpus posts joined in random pairs and triples), on
    one core. The first stage (every post) alone; then the whole decision on ``second_stage_posts`` of them: the
    share the screen keeps, and what a kept post costs (its sentence embedding and the three second-stage heads);
    the sentence encoder's load, paid once per instance with the first kept post. The word cache starts empty."""
    import random
    import resource

    sys.path.insert(0, str(ROOT))
    from otklik.classifier.corpus import load
    from shared.classifier.russian import RussianClassifier
    from shared.classifier.sentence import embed
    from shared.classifier.text import analyse_word

    texts = [p.text for p in load()]
    rng = random.Random(7)
    corpus: list[str] = []
    while len(corpus) < target_posts:
        text = rng.choice(texts)
        while len(text) < chars:
            text += " " + rng.choice(texts)
        corpus.append(text[: chars + 40])
    classifier = RussianClassifier.load()
    analyse_word.cache_clear()
    latencies = []
    began = time.perf_counter()
    for text in corpus:
        t = time.perf_counter()
        classifier.screen(text)
        latencies.append(time.perf_counter() - t)
    total = time.perf_counter() - began
    latencies.sort()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    embed(["загрузка"])
    encoder_load = time.perf_counter() - t
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    threshold = classifier.model.heads["screen"].threshold
    kept: list[float] = []
    full: list[float] = []
    for text in corpus[:second_stage_posts]:
        t = time.perf_counter()
        classifier.decide(text, "vk")
        spent = time.perf_counter() - t
        (kept if classifier.screen(text) >= threshold else full).append(spent)
    kept.sort()
    return {
        "classifier": classifier.name,
        "posts": len(corpus),
        "distinct_posts": len(set(corpus)),
        "mean_chars": round(statistics.mean(len(t) for t in corpus)),
        "first_stage": {
            "posts_per_second": round(len(corpus) / total),
            "latency_ms_p50": round(latencies[len(latencies) // 2] * 1000, 3),
            "latency_ms_p99": round(latencies[int(len(latencies) * 0.99)] * 1000, 3),
        },
        "second_stage": {
            "posts": second_stage_posts,
            "kept_by_the_screen_share": round(len(kept) / second_stage_posts, 3),
            "kept_post_ms_p50": round(kept[len(kept) // 2] * 1000, 2) if kept else None,
            "kept_post_ms_p99": round(kept[int(len(kept) * 0.99)] * 1000, 2) if kept else None,
            "sentence_encoder_load_seconds": round(encoder_load, 2),
            "sentence_encoder_rss_mb": round((rss_after - rss_before) / 1024, 1),
        },
    }


def bench_cold_start(repeats: int = 3) -> dict[str, object]:
    results: dict[str, object] = {}
    for name, service in SERVICES.items():
        runs = []
        for _ in range(repeats):
            code = COLD_START.format(name=name, source=str(ROOT / "functions" / name / "main.py"), service=service)
            out = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT, env=COLD_START_ENV
            )
            seconds, max_rss_kb = out.stdout.strip().splitlines()[-1].split()
            runs.append((float(seconds), int(max_rss_kb)))
        results[name] = {
            "seconds_median": round(statistics.median(r[0] for r in runs), 3),
            "peak_rss_mb": round(max(r[1] for r in runs) / 1024, 1),
            "repeats": repeats,
        }
    return results


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.run [name ...]``: the named benchmarks (all when none is named)."""
    from bench.cost import bench_cost
    from bench.ingest import bench_ingest
    from bench.pipeline import bench_pipeline

    benchmarks: dict[str, Callable[[], dict[str, Any]]] = {
        "classifier": bench_classifier,
        "cold_start": bench_cold_start,
        "ingest": bench_ingest,
        # The local stack with N = 1,000 and 3,000 posts (BENCH_PIPELINE_SIZES; about 5 minutes on 2 cores), then
        # its cost.
        "pipeline": bench_pipeline,
        "cost": bench_cost,
    }
    wanted = (sys.argv[1:] if argv is None else argv) or list(benchmarks)
    unknown = set(wanted) - set(benchmarks)
    if unknown:
        print(f"unknown benchmark(s) {sorted(unknown)}; known: {', '.join(benchmarks)}", file=sys.stderr)
        return 2
    RESULTS.mkdir(parents=True, exist_ok=True)
    machine = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "when": datetime.now(UTC).isoformat(),
    }
    for name in wanted:
        result = {"machine": machine, "results": benchmarks[name]()}
        (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
        print(f"{name}: {json.dumps(result['results'], ensure_ascii=False)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
