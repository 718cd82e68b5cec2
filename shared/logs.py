"""JSON log lines on stdout, the format Cloud Logging parses into severity and fields, with secrets masked.

``extra={"json_fields": {...}}`` adds structured fields (the same convention as google-cloud-logging).

``redact`` is the one place that keeps credentials out of what Otklik writes down: log lines, and the error texts
stored in Firestore (source health, quarantine reasons, notification errors, incident events). It masks

- every value registered with ``hide`` (bootstrap registers each secret of ``Settings``): ``***``;
- in any URL: the user and password (``https://***@host``), the value of every query parameter
  (``?access_token=***``) and a Telegram bot token in the path (``/bot***/getUpdates``);
- ``Bearer <token>`` / ``Basic <credentials>``, ``key=value`` pairs whose key names a credential, and tokens of
  a recognisable shape (department tokens ``otk_...``, VK tokens ``vk1.a....``).

The JSON formatter applies it to every line (message, exception, fields), whatever logger wrote it; a filter
on httpx's logger masks its ``HTTP Request: POST <url>`` lines for every handler, tests' included.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import sys
import threading
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

MASK = "***"
MIN_SECRET_LENGTH = 8  # shorter values would mask ordinary words; secrets that short are not secrets anyway
# Third-party loggers that write URLs (httpx: every request's URL at INFO).
URL_LOGGERS = ("httpx", "httpcore")

_secrets: tuple[str, ...] = ()  # longest first (one secret may contain another); replaced whole, never mutated
_lock = threading.Lock()

_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>]+")
_URL_TRAILER = ".,;:!?)]}"  # punctuation after a URL in prose belongs to the prose
_BOT_PATH = re.compile(r"(/bot)\d+:[^/]+")  # Bot API URLs: /bot<bot id>:<secret>/<method>
# A credential has a digit somewhere; prose ("Bearer token", "Basic authentication") has none.
_AUTH_SCHEME = re.compile(r"\b(Bearer|Basic)\s+(?=[A-Za-z0-9._~+/=-]*\d)[A-Za-z0-9._~+/=-]{8,}")
_CREDENTIAL_PAIR = re.compile(
    r"\b(access_token|refresh_token|token|secret|client_secret|password|passwd|api_key|apikey|session_key|sig)"
    r"=[^&\s\"']+",
    re.IGNORECASE,
)
_SHAPED_TOKENS = re.compile(r"\b(otk_|vk1\.a\.)[A-Za-z0-9_.~-]{8,}")


def hide(*values: str | None) -> None:
    """Mask these values (and their URL-encoded and base64 forms) wherever ``redact`` looks from now on."""
    global _secrets
    with _lock:
        known = set(_secrets)
        for value in values:
            if value and len(value) >= MIN_SECRET_LENGTH:
                known |= {value, quote(value, safe=""), base64.b64encode(value.encode()).decode()}
        _secrets = tuple(sorted(known, key=len, reverse=True))
    _install_url_filters()


def redact(text: str) -> str:
    """``text`` without the secrets, URL credentials and tokens described in the module docstring."""
    if not text:
        return text
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    text = _URL.sub(_redact_url, text)
    text = _AUTH_SCHEME.sub(lambda m: f"{m.group(1)} {MASK}", text)
    text = _CREDENTIAL_PAIR.sub(lambda m: f"{m.group(1)}={MASK}", text)
    return _SHAPED_TOKENS.sub(lambda m: m.group(1) + MASK, text)


def _redact_url(match: re.Match[str]) -> str:
    url = match.group(0)
    trailer = ""
    while url and url[-1] in _URL_TRAILER:
        url, trailer = url[:-1], url[-1] + trailer
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
    except ValueError:
        return url.split("://", 1)[0] + "://" + MASK + trailer
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rpartition('@')[2]}"
    path = _BOT_PATH.sub(lambda m: m.group(1) + MASK, parts.path)
    query = "&".join(
        f"{name}={MASK}" if sep else name for name, sep, _ in (p.partition("=") for p in parts.query.split("&"))
    )
    return urlunsplit((parts.scheme, netloc, path, query, parts.fragment)) + trailer


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(v) for v in value]
    return value


class RedactingFilter(logging.Filter):
    """Rewrites a record's message with ``redact`` (its arguments merged in first)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is logging's problem to report, not ours
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


_URL_FILTER = RedactingFilter()


def _install_url_filters() -> None:
    for name in URL_LOGGERS:
        logger = logging.getLogger(name)
        if _URL_FILTER not in logger.filters:
            logger.addFilter(_URL_FILTER)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
        }
        fields = getattr(record, "json_fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        entry = {k: v if k in ("severity", "logger", "time") else _redact_value(v) for k, v in entry.items()}
        return json.dumps(entry, ensure_ascii=False, default=lambda o: redact(str(o)))


def configure(level: str = "INFO") -> None:
    _install_url_filters()
    root = logging.getLogger()
    if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(level)


_install_url_filters()  # on import: whoever logs through httpx from now on, its URLs are masked
