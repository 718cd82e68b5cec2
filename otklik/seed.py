"""``otklik seed``: validate the operators' configuration files and load the department directory and routing
rules into Firestore (``departments/*``, ``routing/current``), where route reads them and operators may edit
them. Departments no longer in the file are removed from Firestore."""

from __future__ import annotations

import sys
from pathlib import Path

from shared.config import Settings, load_routing, load_sources
from shared.domain.errors import ConfigError
from shared.domain.models import utcnow


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

    from shared.adapters.firestore import FirestoreRouting

    settings = Settings()
    db = firestore.Client(project=settings.project_id, database=settings.firestore_database)
    removed = FirestoreRouting(db).save(routing, utcnow())
    print(f"loaded into Firestore project {settings.project_id} ({removed} departments no longer in the file removed)")
    return 0
