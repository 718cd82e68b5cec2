"""The JSON body of an HTTP request from the internet, or None when it is not JSON at all.

Flask's ``get_json(silent=True)`` swallows syntax errors only; a body nested thousands deep raises
RecursionError and an integer over Python's digit limit ValueError, which would answer 500 (and make VK retry
the same event for hours). Both are a client's mistake: None, which the services answer with their 400/"bad
request" and keep for inspection like any other unreadable body.
"""

from __future__ import annotations

import json
from typing import Any


def json_or_none(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # bad UTF-8 or JSON, too long an integer, too deep
        return None
