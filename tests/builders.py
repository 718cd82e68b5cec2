"""Small builders of domain objects for tests."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from shared.config import RoutingConfig, load_calendar, load_deadlines
from shared.domain.deadlines import Deadlines
from shared.domain.models import (
    Classification,
    Department,
    Incident,
    IncidentStatus,
    Post,
    Priority,
    RoutingRule,
    StatusChange,
)

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"


@cache
def shipped_deadlines() -> Deadlines:
    """The deadline policy and production calendar Otklik ships (config/deadlines.yaml, config/calendar.yaml)."""
    return Deadlines(load_deadlines(CONFIG_DIR / "deadlines.yaml"), load_calendar(CONFIG_DIR / "calendar.yaml"))


def make_post(post_id: str = "1", text: str = "На ул. Советской огромная яма!", **kw: object) -> Post:
    fields: dict[str, object] = {
        "source": "vk",
        "community": "-210000001",
        "post_id": post_id,
        "author_id": "1001",
        "text": text,
        "published_at": T0,
        "url": f"https://vk.com/wall-210000001_{post_id}",
        "municipality_hint": "shakhty",
    }
    fields.update(kw)
    return Post.model_validate(fields)


def make_incident(
    post_id: str = "1",
    status: IncidentStatus = IncidentStatus.NEW,
    category: str = "roads",
    priority: Priority = Priority.NORMAL,
    **kw: object,
) -> Incident:
    post = make_post(post_id)
    fields: dict[str, object] = {
        "id": post.incident_id,
        "post": post,
        "classification": Classification(
            category=category,
            is_complaint=True,
            priority=priority,
            municipality="shakhty",
            confidence=0.9,
            classifier="test",
        ),
        "status": status,
        "status_history": (StatusChange(status=status, at=T0, actor="test"),),
        "created_at": T0,
        "updated_at": T0,
    }
    fields.update(kw)
    return Incident.model_validate(fields)


# Shakhty's roads department and its duty service: roads go to the first, critical posts to both.
ROADS = Department(id="roads", name="Отдел дорог г. Шахты", categories=("roads",), email="roads@shakhty.example")
EDDS = Department(id="edds", name="ЕДДС г. Шахты", municipality="shakhty", email="edds@shakhty.example")
ROADS_AND_DUTY_SERVICE = RoutingConfig(
    departments=(ROADS, EDDS),
    rules=(
        RoutingRule(category="roads", departments=("roads",)),
        RoutingRule(municipality="shakhty", priority=Priority.CRITICAL, departments=("roads", "edds")),
    ),
    fallback="roads",
)
