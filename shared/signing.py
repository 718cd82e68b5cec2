"""Webhook signatures: HMAC-SHA256 over ``"{timestamp}.{body}"`` with the department's secret.

The scheme of Stripe's and Slack's webhooks, so receivers find it familiar: headers ``Otklik-Timestamp``
(Unix seconds) and ``Otklik-Signature: v1=<hex>``; a receiver recomputes the HMAC over the raw body, compares
in constant time and refuses a timestamp outside its window, so a captured request cannot be replayed later.
A receiver's copy of ``verify`` is in docs/webhooks.md; this module is what Otklik's own tests and stand-ins use.
"""

from __future__ import annotations

import hashlib
import hmac

EVENT_ID_HEADER = "Otklik-Event-Id"
TIMESTAMP_HEADER = "Otklik-Timestamp"
SIGNATURE_HEADER = "Otklik-Signature"
URGENT_HEADER = "Otklik-Urgent"
SCHEME = "v1"
DEFAULT_TOLERANCE_SECONDS = 300


class InvalidSignature(ValueError):
    pass


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"{SCHEME}={mac.hexdigest()}"


def verify(
    secret: str,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
) -> None:
    """Raise InvalidSignature unless ``signature`` signs ``body`` at ``timestamp`` within ``tolerance`` of now."""
    if not timestamp or not signature:
        raise InvalidSignature("missing timestamp or signature header")
    try:
        ts = int(timestamp)
    except ValueError as exc:
        raise InvalidSignature(f"timestamp {timestamp!r} is not Unix seconds") from exc
    # Compared, not subtracted: an int of 400 digits cannot become a float (OverflowError).
    if not now - tolerance <= ts <= now + tolerance:
        raise InvalidSignature(f"timestamp {ts} is outside the {tolerance:.0f} s window (replayed or clock skew)")
    expected = sign(secret, ts, body).encode()
    # Several signatures may be sent while a secret is rotated: any one valid is enough. Bytes: compare_digest
    # raises TypeError for a str with non-ASCII characters, and a header can carry any latin-1 character.
    if not any(hmac.compare_digest(expected, part.strip().encode()) for part in signature.split(",")):
        raise InvalidSignature("signature does not match")
