"""Webhook signatures: our signer and verifier, and the receivers' snippet in docs/webhooks.md, agree."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from shared.signing import InvalidSignature, sign, verify

DOCS = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"
SECRET = "department-secret"
BODY = '{"schema": "otklik.webhook.incident", "text": "Яма"}'.encode()


def docs_verifier() -> Callable[..., bool]:
    [code] = re.findall(r"```python\n(.*?)```", DOCS.read_text("utf-8"), re.S)
    namespace: dict[str, Any] = {}
    exec(compile(code, str(DOCS), "exec"), namespace)  # noqa: S102 - our own documentation's snippet
    verifier: Callable[..., bool] = namespace["verify_otklik_webhook"]
    return verifier


def test_a_signature_verifies_and_the_documented_snippet_agrees() -> None:
    now = int(time.time())
    signature = sign(SECRET, now, BODY)
    verify(SECRET, str(now), signature, BODY, now)
    headers = {"Otklik-Timestamp": str(now), "Otklik-Signature": signature}
    assert docs_verifier()(SECRET, headers, BODY)


@pytest.mark.parametrize(
    ("secret", "body", "age"),
    [
        ("another-secret", BODY, 0),  # someone else's key
        (SECRET, BODY + b" ", 0),  # the body changed on the way
        (SECRET, BODY, 301),  # replayed after the window
    ],
)
def test_a_wrong_key_a_changed_body_or_an_old_timestamp_is_refused(secret: str, body: bytes, age: int) -> None:
    now = int(time.time())
    signature = sign(SECRET, now - age, BODY)
    with pytest.raises(InvalidSignature):
        verify(secret, str(now - age), signature, body, now)
    headers = {"Otklik-Timestamp": str(now - age), "Otklik-Signature": signature}
    assert not docs_verifier()(secret, headers, body)


def test_during_rotation_any_one_of_several_signatures_is_enough() -> None:
    now = int(time.time())
    both = f"{sign('old-secret', now, BODY)}, {sign(SECRET, now, BODY)}"
    verify(SECRET, str(now), both, BODY, now)
    assert docs_verifier()(SECRET, {"Otklik-Timestamp": str(now), "Otklik-Signature": both}, BODY)


def test_missing_or_malformed_headers_are_refused() -> None:
    with pytest.raises(InvalidSignature, match="missing"):
        verify(SECRET, None, "v1=00", BODY, time.time())
    with pytest.raises(InvalidSignature, match="Unix seconds"):
        verify(SECRET, "yesterday", "v1=00", BODY, time.time())


@pytest.mark.parametrize(
    ("timestamp", "signature"),
    [
        ("9" * 400, "v1=00"),  # no float holds it: must be refused, not raise OverflowError
        ("١٧٠٠٠٠٠٠٠٠", "v1=00"),  # Arabic-Indic digits: str.isdigit() says yes
        (None, "v1=ключ"),  # a non-ASCII signature: compare_digest refuses such a str
    ],
)
def test_hostile_headers_are_refused_not_raised(timestamp: str | None, signature: str) -> None:
    now = int(time.time())
    stamp = timestamp or str(now)
    with pytest.raises(InvalidSignature):
        verify(SECRET, stamp, signature, BODY, now)
    assert not docs_verifier()(SECRET, {"Otklik-Timestamp": stamp, "Otklik-Signature": signature}, BODY)
