"""Reading incidents in created_at order a page at a time, without cursors.

The standalone Firestore emulator ignores ``start_after`` cursors, so pages are read by filtering on the ordered
field itself. Starting strictly after the last page's instant would skip the incidents created at that instant
that did not fit on the page (a batch import, a coarse clock); so each page starts at that instant, inclusive,
and skips the incidents already read there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

from shared.domain.models import Incident

ReadPage = Callable[[datetime | None, int], list[Incident]]


def by_created_at(read: ReadPage, start: datetime | None, page: int) -> Iterator[Incident]:
    """Every incident ``read`` gives, oldest first, each once. ``read(start, limit)`` returns at most ``limit``
    incidents created at ``start`` or later (None: from the first), oldest first, those of one instant in a
    stable order. If a whole page shares one instant, the next read is larger, so paging always moves on."""
    seen: set[str] = set()
    limit = page
    while True:
        batch = read(start, limit)
        yield from (i for i in batch if i.id not in seen)
        if len(batch) < limit:
            return
        last = batch[-1].created_at
        seen = {i.id for i in batch if i.created_at == last} | (seen if last == start else set())
        limit = limit * 2 if last == start else page
        start = last
