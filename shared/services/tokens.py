"""Department API tokens: random, shown once when issued, stored only as their SHA-256 digest. A digest of a
256-bit random token cannot be reversed or guessed, so a fast hash is enough (no password hashing needed)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Protocol

PREFIX = "otk_"


class TokenStore(Protocol):
    def department_for(self, digest: str) -> str | None: ...

    def store(self, digest: str, department_id: str, label: str, at: datetime) -> None: ...


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue(store: TokenStore, department_id: str, label: str, at: datetime) -> str:
    token = PREFIX + secrets.token_urlsafe(32)
    store.store(digest(token), department_id, label, at)
    return token


def department_of(store: TokenStore, authorization: str | None) -> str | None:
    """The department a ``Bearer`` token belongs to, None for a missing, malformed or unknown one."""
    if not authorization or not authorization.startswith("Bearer "):
        return None
    token = authorization.removeprefix("Bearer ").strip()
    if not token.startswith(PREFIX) or len(token) > 200:
        return None
    return store.department_for(digest(token))
