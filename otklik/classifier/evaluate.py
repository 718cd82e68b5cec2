"""``otklik eval`` / ``make eval``: the shipped classifier, exactly as the classify function runs it, on the
corpus's held-out split — is_complaint precision and recall, per-category precision/recall/F1 and the confusion
matrix (on complaints), danger recall and precision, municipality accuracy. Written to bench/results/eval.json.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from otklik import REPO_ROOT
from otklik.classifier.corpus import CORPUS, Labelled, load, split
from shared.classifier.russian import RussianClassifier
from shared.domain.models import Classification

RESULTS = REPO_ROOT / "bench" / "results" / "eval.json"


def evaluate(corpus: Path = CORPUS, which: str = "held-out") -> dict[str, Any]:
    classifier = RussianClassifier.load()
    train, held_out = split(load(corpus))
    posts = {"held-out": held_out, "train": train, "all": train + held_out}[which]
    verdicts = [classifier.decide(p.text, p.source) for p in posts]
    return report(posts, verdicts, classifier, which)


def report(
    posts: Sequence[Labelled], verdicts: Sequence[Classification], classifier: Any, which: str
) -> dict[str, Any]:
    names = {m.name.lower(): m.id for m in classifier.gazetteer.municipalities.values()}
    names |= {
        n.name.lower(): n.municipality for n in classifier.gazetteer.names if n.kind == "alias" and n.name[:1].isupper()
    }
    complaint = binary_scores([p.is_complaint for p in posts], [v.is_complaint for v in verdicts])
    danger = binary_scores([p.danger for p in posts], [v.danger for v in verdicts])
    complaints = [(p, v) for p, v in zip(posts, verdicts, strict=True) if p.is_complaint]
    confusion, per_category = class_scores([p.category for p, _ in complaints], [v.category for _, v in complaints])
    accuracy = sum(confusion[c][c] for c in confusion) / len(complaints) if complaints else 0.0
    located = [(p, v) for p, v in zip(posts, verdicts, strict=True) if p.municipality]
    right_place = sum(1 for p, v in located if names.get(str(p.municipality).lower()) == v.municipality)
    unknown_labels = sorted({str(p.municipality) for p, _ in located if str(p.municipality).lower() not in names})
    missed_danger = [p.text for p, v in zip(posts, verdicts, strict=True) if p.danger and not v.danger]
    return {
        "split": which,
        "posts": len(posts),
        "classifier": classifier.name,
        "is_complaint": complaint,
        "category_accuracy_on_complaints": round(accuracy, 3),
        "categories": per_category,
        "confusion": confusion,
        "danger": danger,
        "municipality_accuracy": round(right_place / len(located), 3) if located else None,
        "municipality_labelled_posts": len(located),
        "municipality_labels_not_in_gazetteer": unknown_labels,
        "missed_danger_examples": missed_danger[:10],
    }


def class_scores(
    truth: Sequence[str], predicted: Sequence[str]
) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, Any]]]:
    """The confusion matrix (rows: truth) over every class either side names, and per class precision, recall,
    F1 and the number of true posts."""
    classes = sorted(set(truth) | set(predicted))
    confusion = {c: dict.fromkeys(classes, 0) for c in classes}
    for t, p in zip(truth, predicted, strict=True):
        confusion[t][p] += 1
    per_class = {}
    for c in classes:
        tp = confusion[c][c]
        said = sum(confusion[r][c] for r in classes)
        actual = sum(confusion[c].values())
        precision = tp / said if said else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[c] = {"precision": round(precision, 3), "recall": round(recall, 3), "f1": round(f1, 3), "n": actual}
    return confusion, per_class


def binary_scores(truth: Sequence[bool], predicted: Sequence[bool]) -> dict[str, Any]:
    counts = Counter(zip(truth, predicted, strict=True))
    tp, fp, fn = counts[(True, True)], counts[(False, True)], counts[(True, False)]
    return {
        "precision": round(tp / (tp + fp), 3) if tp + fp else 0.0,
        "recall": round(tp / (tp + fn), 3) if tp + fn else 0.0,
        "positives": tp + fn,
        "true_positives": tp,
        "false_positives": fp,
        "false_negatives": fn,
    }


def render(result: dict[str, Any]) -> str:
    lines = [f"Classifier {result['classifier']} on the {result['split']} split: {result['posts']} posts", ""]
    c = result["is_complaint"]
    lines.append(
        f"is_complaint  precision {c['precision']:.3f}  recall {c['recall']:.3f}  ({c['positives']} complaints)"
    )
    d = result["danger"]
    lines.append(
        f"danger        precision {d['precision']:.3f}  recall {d['recall']:.3f}  ({d['positives']} dangerous)"
    )
    lines.append(f"category accuracy on complaints: {result['category_accuracy_on_complaints']:.3f}")
    if result["municipality_accuracy"] is not None:
        lines.append(
            f"municipality accuracy: {result['municipality_accuracy']:.3f} "
            f"({result['municipality_labelled_posts']} posts naming one)"
        )
    lines += ["", f"{'category':<20}{'precision':>10}{'recall':>8}{'f1':>7}{'n':>5}"]
    for name, m in result["categories"].items():
        lines.append(f"{name:<20}{m['precision']:>10.3f}{m['recall']:>8.3f}{m['f1']:>7.3f}{m['n']:>5}")
    cats = list(result["confusion"])
    short = [c[:6] for c in cats]
    lines += ["", "confusion (rows: truth, columns: predicted)", " " * 20 + "".join(f"{s:>7}" for s in short)]
    for c in cats:
        lines.append(f"{c:<20}" + "".join(f"{result['confusion'][c][p]:>7}" for p in cats))
    if result["missed_danger_examples"]:
        lines += ["", "missed dangerous posts:"] + [f"  - {t[:110]}" for t in result["missed_danger_examples"]]
    return "\n".join(lines)


def main(which: str = "held-out") -> int:
    result = evaluate(which=which)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(render(result))
    return 0
