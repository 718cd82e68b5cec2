"""The labelled corpus (``corpus/*.jsonl``): what the model learns from and is measured on.

One post per line: ``id``, ``text``, ``source``, ``is_complaint``, ``category``, ``danger``, ``municipality``
(Russian name of the municipality, or null), ``places``. The held-out split is decided by a hash of the id
(``HELD_OUT_PERCENT`` of posts), so it never changes when posts are added and never leaks into training.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from otklik import REPO_ROOT

CORPUS = REPO_ROOT / "corpus"
HELD_OUT_PERCENT = 20


@dataclass(frozen=True)
class Labelled:
    id: str
    text: str
    source: str | None
    is_complaint: bool
    category: str
    danger: bool
    municipality: str | None
    places: tuple[str, ...]

    @property
    def held_out(self) -> bool:
        digest = hashlib.sha256(self.id.encode()).digest()
        return int.from_bytes(digest[:4], "big") % 100 < HELD_OUT_PERCENT


def load(folder: Path = CORPUS) -> list[Labelled]:
    return list(_read(folder))


def _read(folder: Path) -> Iterator[Labelled]:
    for path in sorted(folder.glob("*.jsonl")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
                yield Labelled(
                    id=str(raw["id"]),
                    text=str(raw["text"]),
                    source=raw.get("source"),
                    is_complaint=bool(raw["is_complaint"]),
                    category=str(raw["category"]),
                    danger=bool(raw["danger"]),
                    municipality=raw.get("municipality"),
                    places=tuple(raw.get("places") or ()),
                )
            except (KeyError, ValueError, TypeError) as exc:
                raise ValueError(f"{path}:{number}: {exc}") from exc


def split(posts: list[Labelled]) -> tuple[list[Labelled], list[Labelled]]:
    return [p for p in posts if not p.held_out], [p for p in posts if p.held_out]
