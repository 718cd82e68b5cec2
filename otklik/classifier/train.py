"""``otklik train``: fit the linear model on the corpus's training split and write shared/classifier/model.json.

scikit-learn is a development dependency only: the deployed function reads the weights with plain Python.
The category head learns from complaints only. Thresholds are chosen on cross-validated predictions of the
training split (never on the held-out split):
the complaint threshold maximises F1; the danger threshold is the highest one keeping recall >= DANGER_RECALL.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from otklik.classifier.corpus import CORPUS, Labelled, load, split
from shared.classifier.features import features
from shared.classifier.model import MODEL
from shared.classifier.taxonomy import Taxonomy
from shared.classifier.text import tokenize

DANGER_RECALL = 0.97
PRUNE = 1e-3
MODEL_NAME = "otklik-ru-v1"


def featurize(posts: list[Labelled], taxonomy: Taxonomy) -> list[dict[str, float]]:
    rows = []
    for p in posts:
        tokens = tokenize(p.text)
        rows.append(features(p.text, tokens, taxonomy.score(tokens), p.source))
    return rows


def train(corpus: Path = CORPUS, out: Path = MODEL, c: float = 4.0) -> dict[str, Any]:
    import numpy as np
    from sklearn.feature_extraction import DictVectorizer  # type: ignore[import-untyped]
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]
    from sklearn.model_selection import cross_val_predict  # type: ignore[import-untyped]

    taxonomy = Taxonomy.load()
    posts, _ = split(load(corpus))
    rows = featurize(posts, taxonomy)
    vectorizer = DictVectorizer()
    x = vectorizer.fit_transform(rows)
    names = vectorizer.get_feature_names_out()

    def fit(y: Any, balanced: bool) -> Any:
        model = LogisticRegression(C=c, max_iter=3000, class_weight="balanced" if balanced else None)
        return model.fit(x, y)

    def cv_probability(y: Any, balanced: bool) -> Any:
        model = LogisticRegression(C=c, max_iter=3000, class_weight="balanced" if balanced else None)
        return cross_val_predict(model, x, y, cv=5, method="predict_proba")[:, 1]

    categories = np.array([p.category for p in posts])
    complaint = np.array([int(p.is_complaint) for p in posts])
    danger = np.array([int(p.danger) for p in posts])
    # The category matters for complaints only, and most non-complaints are "other" (ads, chatter): learning
    # categories from complaints alone keeps that crowd from pulling real complaints into "other".
    complaints = np.flatnonzero(complaint == 1)
    category_model = LogisticRegression(C=c, max_iter=3000, class_weight="balanced").fit(
        x[complaints], categories[complaints]
    )
    complaint_model = fit(complaint, balanced=True)
    danger_model = fit(danger, balanced=True)

    complaint_threshold = _best_f1_threshold(complaint, cv_probability(complaint, True))
    rules = np.array([_rules_say_danger(r) for r in rows])
    danger_threshold = _recall_threshold(danger, cv_probability(danger, True), rules, DANGER_RECALL)

    heads = {
        "category": _head(category_model, names, [str(cl) for cl in category_model.classes_]),
        "complaint": _head(complaint_model, names, ["no", "yes"], complaint_threshold),
        "danger": _head(danger_model, names, ["no", "yes"], danger_threshold),
    }
    info = {
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "training_posts": len(posts),
        "features": len(names),
        "c": c,
        "complaint_threshold": complaint_threshold,
        "danger_threshold": danger_threshold,
    }
    out.write_text(json.dumps({"name": MODEL_NAME, "info": info, "heads": heads}, ensure_ascii=False), "utf-8")
    return info


def _rules_say_danger(row: dict[str, float]) -> bool:
    return row.get("d:rules3", 0.0) > 0 and not row.get("d:resolved")


def _head(model: Any, names: Any, classes: list[str], threshold: float | None = None) -> dict[str, Any]:
    weights: dict[str, list[float]] = {}
    coef = model.coef_
    for j, feature in enumerate(names):
        column = [float(coef[i, j]) for i in range(coef.shape[0])]
        if max(abs(v) for v in column) >= PRUNE:
            weights[str(feature)] = [round(v, 4) for v in column]
    head: dict[str, Any] = {
        "classes": classes,
        "intercept": [round(float(v), 4) for v in model.intercept_],
        "weights": weights,
    }
    if threshold is not None:
        head["threshold"] = round(threshold, 4)
    return head


def _best_f1_threshold(y: Any, p: Any) -> float:
    best, best_t = -1.0, 0.5
    for t in [i / 100 for i in range(5, 96)]:
        predicted = p >= t
        tp = float(((predicted == 1) & (y == 1)).sum())
        fp = float(((predicted == 1) & (y == 0)).sum())
        fn = float(((predicted == 0) & (y == 1)).sum())
        f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
        if f1 > best:
            best, best_t = f1, t
    return best_t


def _recall_threshold(y: Any, p: Any, rules: Any, recall: float) -> float:
    """The highest threshold whose predictions, or-ed with the rules, keep danger recall at ``recall``."""
    positives = float((y == 1).sum()) or 1.0
    for t in [i / 100 for i in range(95, 4, -1)]:
        caught = float((((p >= t) | rules) & (y == 1)).sum())
        if caught / positives >= recall:
            return t
    return 0.05


if __name__ == "__main__":
    print(json.dumps(train(), indent=2))
