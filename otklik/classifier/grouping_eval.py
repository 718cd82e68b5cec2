"""``otklik eval-grouping`` / ``make eval-grouping``: how well :mod:`shared.services.grouping` tells posts about
the same problem from posts about different ones, on the labelled pairs ``corpus/grouping/pairs.jsonl``
(drafted by the team from corpus posts, see ``corpus/grouping/README.md``).

The pairs are split by a hash of the pair id: ``HELD_OUT_PERCENT`` of them are held out. The score threshold
is tuned (best F1, ties to the higher precision) on the rest only; precision, recall and F1 are reported on the
held-out pairs, with the confusion per kind of pair. Also writes the idf table the rule uses
(``shared/classifier/grouping_idf.json``), from the posts of ``corpus/*.jsonl``. Results: bench/results/grouping.json.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from otklik import REPO_ROOT
from otklik.classifier.corpus import CORPUS, load
from shared.classifier.text import tokenize
from shared.services import grouping

PAIRS = CORPUS / "grouping" / "pairs.jsonl"
RESULTS = REPO_ROOT / "bench" / "results" / "grouping.json"
HELD_OUT_PERCENT = 30
MIN_PRECISION = 0.98  # on the training pairs
GRID = [round(0.05 * i, 2) for i in range(1, 21)]


@dataclass(frozen=True)
class Pair:
    id: str
    a: grouping.ProblemKey
    b: grouping.ProblemKey
    same: bool
    kind: str

    @property
    def held_out(self) -> bool:
        digest = hashlib.sha256(self.id.encode()).digest()
        return int.from_bytes(digest[:4], "big") % 100 < HELD_OUT_PERCENT


def _key(raw: dict[str, Any]) -> grouping.ProblemKey:
    geo = raw.get("geo")
    return grouping.problem_key(
        str(raw["text"]),
        str(raw["category"]),
        raw.get("municipality"),
        datetime.fromisoformat(str(raw["published_at"])),
        critical=bool(raw.get("critical", False)),
        geo=(float(geo["lat"]), float(geo["lon"])) if geo else None,
    )


def load_pairs(path: Path = PAIRS) -> list[Pair]:
    pairs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            raw = json.loads(line)
            pairs.append(Pair(str(raw["id"]), _key(raw["a"]), _key(raw["b"]), bool(raw["same"]), str(raw["kind"])))
    return pairs


def build_idf(corpus: Path = CORPUS) -> dict[str, float]:
    """Smoothed idf of every content stem over the corpus's posts; "" holds the value for an unseen stem."""
    posts = load(corpus)
    df: Counter[str] = Counter()
    for p in posts:
        df.update(grouping.content_stems(tokenize(p.text)))
    n = len(posts)
    table = {s: round(math.log((n + 1) / (c + 1)) + 1, 3) for s, c in sorted(df.items()) if c >= 2}
    table[""] = round(math.log(n + 1) + 1, 3)
    return table


def _counts(pairs: list[Pair], threshold: float, idf: dict[str, float]) -> dict[str, int]:
    c = {"tp": 0, "fp": 0, "fn": 0, "tn": 0}
    for p in pairs:
        said = grouping.same_problem(p.a, p.b, threshold=threshold, idf=idf).same
        c[("t" if said == p.same else "f") + ("p" if said else "n")] += 1
    return c


def _metrics(c: dict[str, int]) -> dict[str, Any]:
    precision = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else 0.0
    recall = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 3), "recall": round(recall, 3), "f1": round(f1, 3), **c}


def evaluate(path: Path = PAIRS, corpus: Path = CORPUS) -> dict[str, Any]:
    idf = build_idf(corpus)
    pairs = load_pairs(path)
    train = [p for p in pairs if not p.held_out]
    held = [p for p in pairs if p.held_out]
    tuned = [(_metrics(_counts(train, t, idf)), t) for t in GRID]
    # A false merge hides a problem from its department; a missed one costs one more card: the best F1 among the
    # thresholds precise enough.
    precise = [mt for mt in tuned if mt[0]["precision"] >= MIN_PRECISION] or tuned
    best, threshold = max(precise, key=lambda mt: (mt[0]["f1"], mt[0]["precision"], -mt[1]))
    by_kind: dict[str, dict[str, int]] = {}
    errors: list[dict[str, Any]] = []
    for p in held:
        m = grouping.same_problem(p.a, p.b, threshold=threshold, idf=idf)
        row = by_kind.setdefault(p.kind, {"n": 0, "said_same": 0, "right": 0})
        row["n"] += 1
        row["said_same"] += m.same
        row["right"] += m.same == p.same
        if m.same != p.same and len(errors) < 15:
            errors.append({"id": p.id, "kind": p.kind, "same": p.same, "score": m.score, "reasons": list(m.reasons)})
    return {
        "pairs": len(pairs),
        "held_out_pairs": len(held),
        "held_out_same": sum(p.same for p in held),
        "train_pairs": len(train),
        "threshold": threshold,
        "train": best,
        "held_out": _metrics(_counts(held, threshold, idf)),
        "held_out_by_kind": by_kind,
        "held_out_errors": errors,
        "rule": {
            "window_days": grouping.WINDOW.days,
            "critical_window_days": grouping.CRITICAL_WINDOW.days,
            "strong_place": grouping.STRONG_PLACE,
            "weak_place": grouping.WEAK_PLACE,
            "reopen_days": grouping.REOPEN_DAYS.days,
        },
        "note": "pairs drafted by the team from corpus posts (rewordings written by hand), not collected",
        "_idf": idf,
    }


def render(r: dict[str, Any]) -> str:
    h = r["held_out"]
    lines = [
        f"Grouping on {r['held_out_pairs']} held-out pairs ({r['held_out_same']} same) of {r['pairs']}; "
        f"threshold {r['threshold']} tuned on {r['train_pairs']} training pairs",
        f"precision {h['precision']:.3f}  recall {h['recall']:.3f}  F1 {h['f1']:.3f}  "
        f"(tp {h['tp']}, fp {h['fp']}, fn {h['fn']}, tn {h['tn']})",
        "",
        f"{'kind':<34}{'n':>4}{'said same':>11}{'right':>7}",
    ]
    for kind, row in sorted(r["held_out_by_kind"].items()):
        lines.append(f"{kind:<34}{row['n']:>4}{row['said_same']:>11}{row['right']:>7}")
    return "\n".join(lines)


def main() -> int:
    result = evaluate()
    idf = result.pop("_idf")
    grouping.IDF_FILE.write_text(
        json.dumps({"built_from": "corpus/*.jsonl", "idf": idf}, ensure_ascii=False, sort_keys=True) + "\n",
        encoding="utf-8",
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(render(result))
    return 0
