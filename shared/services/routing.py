"""Which departments own an incident: explicit rules and the categories each department owns, the most
specific match wins, the regional coordinator (``fallback``) takes the rest so nothing is unrouted."""

from __future__ import annotations

from shared.config import RoutingConfig
from shared.domain.models import Department, Incident, RoutingRule


class RuleDirectory:
    def __init__(self, config: RoutingConfig) -> None:
        self.by_id = {d.id: d for d in config.departments}
        self.fallback = config.fallback
        implicit = [
            RoutingRule(category=c, municipality=d.municipality, departments=(d.id,))
            for d in config.departments
            for c in d.categories
        ]
        self.rules = [*config.rules, *implicit]

    def department(self, department_id: str) -> Department | None:
        return self.by_id.get(department_id)

    def departments_for(self, incident: Incident) -> list[Department]:
        c = incident.classification
        matching = [r for r in self.rules if r.matches(c.category, c.municipality, c.priority)]
        if not matching:
            return [self.by_id[self.fallback]]
        best = max(r.specificity for r in matching)
        ids: list[str] = []
        for rule in matching:
            if rule.specificity == best:
                ids.extend(d for d in rule.departments if d not in ids)
        return [self.by_id[i] for i in ids]
