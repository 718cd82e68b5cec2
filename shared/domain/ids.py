"""Deterministic identifiers: a replayed post or message maps to the same document."""

from __future__ import annotations

import uuid

# Fixed namespace so ids are stable across deployments and versions. Never change it: ids are stored.
_OTKLIK_NAMESPACE = uuid.UUID("6f0c1a4e-3b8e-5d0e-9a7c-0b1d2e3f4a5b")


def incident_id_for(source: str, community: str, post_id: str) -> str:
    """The incident id of a post: the same (source, community, post id) always gives the same id."""
    key = "\x1f".join((source, community, post_id))
    return uuid.uuid5(_OTKLIK_NAMESPACE, key).hex


def notification_id_for(incident_id: str, department_id: str, channel: str, kind: str) -> str:
    return f"{incident_id}.{department_id}.{channel}.{kind}"
