"""Counts what Firestore bills a process for: document reads, writes and deletes, as its gRPC client sends and
receives them. ``make bench`` runs each function of the local stack with these counters (``otklik.stack.metered``)
to turn one post into a cost.

Counted the way Firestore's pricing page describes it: each document a query or a batch get returns is a read,
and a query or aggregation that returns nothing still costs one; each write in a commit (set, update, create,
a transform on its own) is a write, each delete a delete. Transactions' begin and rollback are free. A batch get
of a document that does not exist is counted as a read, which is what a resource's first look costs.

The counters live in the process. With ``OTKLIK_METER_DIR`` set, every change is written with the process's CPU
seconds (at most twice a second) to ``<dir>/<name>-<pid>.json``, because functions-framework serves from a
gunicorn worker that the benchmark cannot ask. Tooling only: nothing under shared/ imports this.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc

FIRESTORE = "/google.firestore.v1.Firestore/"


class Meter:
    def __init__(self, out_file: Path | None = None) -> None:
        self.counts: Counter[str] = Counter()
        self.out_file = out_file
        self._lock = threading.Lock()
        self._dirty = threading.Event()
        self._writer: threading.Thread | None = None
        self._writer_pid = 0

    def add(self, kind: str, amount: int = 1) -> None:
        with self._lock:
            self.counts[kind] += amount
        if self.out_file is not None:
            self._dirty.set()
            self._ensure_writer()

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counts)

    # A gunicorn worker is a fork: a thread started before the fork does not exist in it, so the writer is
    # started (again) by the first count in each process.
    def _ensure_writer(self) -> None:
        if self._writer_pid == os.getpid():
            return
        self._writer_pid = os.getpid()
        self._writer = threading.Thread(target=self._write_loop, name="otklik-meter", daemon=True)
        self._writer.start()

    def _write_loop(self) -> None:
        assert self.out_file is not None
        path = self.out_file.with_name(f"{self.out_file.stem}-{os.getpid()}.json")
        while True:
            self._dirty.wait()
            self._dirty.clear()
            tmp = path.with_suffix(".tmp")
            times = os.times()
            # The process's CPU time so far: what a Cloud Run instance's vCPU must at least be billed for.
            written = {**self.snapshot(), "cpu_seconds": round(times.user + times.system, 3)}
            tmp.write_text(json.dumps(written), encoding="utf-8")
            tmp.replace(path)
            time.sleep(0.5)


class _CountedStream:
    """The response stream of a server-streaming call, counting what it yields; everything else (cancel,
    code, metadata) is the call's own."""

    def __init__(self, call: Any, on_item: Callable[[Any], None], on_end: Callable[[], None]) -> None:
        self._call = call
        self._on_item = on_item
        self._on_end = on_end
        self._ended = False

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        try:
            item = next(self._call)
        except StopIteration:
            if not self._ended:
                self._ended = True
                self._on_end()
            raise
        self._on_item(item)
        return item

    def __getattr__(self, name: str) -> Any:
        return getattr(self._call, name)


class FirestoreCounting(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):  # type: ignore[misc]
    def __init__(self, meter: Meter) -> None:
        self.meter = meter

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        method = details.method
        if method == FIRESTORE + "Commit":
            deletes = sum(1 for write in request.writes if write.delete)
            self.meter.add("firestore_writes", len(request.writes) - deletes)
            self.meter.add("firestore_deletes", deletes)
        elif method == FIRESTORE + "GetDocument":
            self.meter.add("firestore_reads")
        return continuation(details, request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        method = details.method
        call = continuation(details, request)
        if method == FIRESTORE + "BatchGetDocuments":
            return _CountedStream(call, lambda item: self._read_if(item.found or item.missing), lambda: None)
        if method == FIRESTORE + "RunAggregationQuery":
            # count() costs one read per 1,000 index entries it counts, at least one: ours count a few hundred.
            return _CountedStream(call, lambda item: None, lambda: self.meter.add("firestore_reads"))
        if method == FIRESTORE + "RunQuery":
            returned = [0]

            def on_document(item: Any) -> None:
                if item.document:
                    returned[0] += 1
                    self.meter.add("firestore_reads")

            def on_end() -> None:
                if returned[0] == 0:  # a query that finds nothing still costs one read
                    self.meter.add("firestore_reads")

            return _CountedStream(call, on_document, on_end)
        return call

    def _read_if(self, present: Any) -> None:
        if present:
            self.meter.add("firestore_reads")


def install(meter: Meter) -> None:
    """Every gRPC channel this process opens from now on counts Firestore's billable operations."""
    interceptor = FirestoreCounting(meter)
    insecure, secure = grpc.insecure_channel, grpc.secure_channel

    def insecure_channel(*args: Any, **kwargs: Any) -> grpc.Channel:
        return grpc.intercept_channel(insecure(*args, **kwargs), interceptor)

    def secure_channel(*args: Any, **kwargs: Any) -> grpc.Channel:
        return grpc.intercept_channel(secure(*args, **kwargs), interceptor)

    grpc.insecure_channel = insecure_channel
    grpc.secure_channel = secure_channel


def read_meters(directory: Path) -> dict[str, dict[str, float]]:
    """What every metered process wrote: ``{"<name>-<pid>": {"firestore_reads": n, ...}}``."""
    return {path.stem: json.loads(path.read_text(encoding="utf-8")) for path in sorted(directory.glob("*.json"))}
