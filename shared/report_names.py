"""The names a report shows for ids: categories (shared.domain.categories), municipalities (the gazetteers)
and departments (the routing directory)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from shared.config import RoutingConfig
from shared.services.reports import Names
from shared.yaml_data import load_yaml

GAZETTEERS = Path(__file__).resolve().parent / "classifier" / "gazetteers"


@cache
def municipality_names(folder: Path = GAZETTEERS) -> dict[str, str]:
    """Municipality id -> its name, read straight from the YAML (no morphology needed to name a place)."""
    names: dict[str, str] = {}
    for path in sorted(folder.glob("*.yaml")):
        data = load_yaml(path.read_text(encoding="utf-8")) or {}
        for raw in data.get("municipalities") or []:
            names[str(raw["id"])] = str(raw.get("name") or raw["id"])
    return names


def report_names(routing: RoutingConfig | None) -> Names:
    departments = {d.id: d.name for d in routing.departments} if routing is not None else {}
    return Names(municipalities=municipality_names(), departments=departments)
