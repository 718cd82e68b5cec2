"""``otklik seed``: validate the operators' configuration files and load departments and routing rules into
Firestore (``departments``, ``routing_rules``), where operators can edit them."""

from __future__ import annotations

import sys
from pathlib import Path

from shared.adapters.firestore import to_document
from shared.config import Settings, load_routing, load_sources
from shared.domain.errors import ConfigError


def seed(config_dir: Path, write: bool) -> int:
    try:
        sources = load_sources(config_dir / "sources.yaml")
        routing = load_routing(config_dir / "departments.yaml")
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(
        f"{config_dir}: {len(sources)} sources, {len(routing.departments)} departments, "
        f"{len(routing.rules)} rules, fallback {routing.fallback}: valid"
    )
    if not write:
        return 0
    from google.cloud import firestore

    settings = Settings()
    db = firestore.Client(project=settings.project_id, database=settings.firestore_database)
    batch = db.batch()
    for dep in routing.departments:
        batch.set(db.collection("departments").document(dep.id), to_document(dep.model_dump(mode="json")))
    for i, rule in enumerate(routing.rules):
        batch.set(
            db.collection("routing_rules").document(f"rule-{i:04d}"),
            to_document(rule.model_dump(mode="json")),
        )
    batch.set(db.collection("routing_rules").document("_fallback"), {"department": routing.fallback})
    batch.commit()
    print(f"loaded into Firestore project {settings.project_id}")
    return 0
