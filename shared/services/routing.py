"""Which departments own an incident: explicit rules and the categories each department owns, the most
specific match wins, the regional coordinator (``fallback``) takes the rest so nothing is unrouted."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from shared.config import RoutingConfig
from shared.domain.models import Department, Incident, RoutingRule
from shared.ports import DepartmentDirectory

log = logging.getLogger(__name__)


def no_regions(municipality: str | None) -> str | None:
    return None


class RuleDirectory:
    def __init__(self, config: RoutingConfig, region_of: Callable[[str | None], str | None] = no_regions) -> None:
        self.by_id = {d.id: d for d in config.departments}
        self.fallback = config.fallback
        self.region_of = region_of
        implicit = [
            RoutingRule(
                category=c,
                municipality=d.municipality,
                region=None if d.municipality else d.region,
                departments=(d.id,),
            )
            for d in config.departments
            for c in d.categories
        ]
        self.rules = [*config.rules, *implicit]

    def department(self, department_id: str) -> Department | None:
        return self.by_id.get(department_id)

    def departments(self) -> list[Department]:
        return list(self.by_id.values())

    def departments_for(self, incident: Incident) -> list[Department]:
        c = incident.classification
        region = self.region_of(c.municipality)
        matching = [r for r in self.rules if r.matches(c.category, c.municipality, c.priority, region)]
        if not matching:
            return [self.by_id[self.fallback]]
        best = max(r.specificity for r in matching)
        ids: list[str] = []
        for rule in matching:
            if rule.specificity == best:
                ids.extend(d for d in rule.departments if d not in ids)
        return [self.by_id[i] for i in ids]


class LiveDirectory:
    """The directory as operators keep it in Firestore, re-read at most every ``ttl`` so an edit takes effect
    within a minute without a read per message; the file shipped with the function until it is seeded."""

    def __init__(
        self,
        load: Callable[[], RoutingConfig | None],
        shipped: Callable[[], RoutingConfig],
        ttl: timedelta,
        clock: Callable[[], datetime],
        region_of: Callable[[str | None], str | None] = no_regions,
    ) -> None:
        self.region_of = region_of
        self.load = load
        self.shipped = shipped
        self.ttl = ttl
        self.clock = clock
        self._current: RuleDirectory | None = None
        self._loaded_at: datetime | None = None

    def _directory(self) -> RuleDirectory:
        now = self.clock()
        if self._current is None or self._loaded_at is None or now - self._loaded_at >= self.ttl:
            config = self.load()
            if config is None:
                log.warning("no routing directory in Firestore (run `make seed`): using the shipped config file")
                config = self.shipped()
            self._current, self._loaded_at = RuleDirectory(config, self.region_of), now
        return self._current

    def departments_for(self, incident: Incident) -> list[Department]:
        return self._directory().departments_for(incident)

    def department(self, department_id: str) -> Department | None:
        return self._directory().department(department_id)

    def departments(self) -> list[Department]:
        return self._directory().departments()

    @property
    def fallback(self) -> str:
        return self._directory().fallback


def departments_of(directory: DepartmentDirectory, incident: Incident) -> list[Department]:
    """The departments an incident is routed to, as the directory knows them now (gone ones left out)."""
    return [d for d in map(directory.department, incident.department_ids) if d is not None]
