"""Odnoklassniki (OK) group feeds over the OK REST API (``https://api.ok.ru/fb.do``), with request signing.

What is taken from OK's documentation (apiok.ru):

- every REST method is reachable as ``{api_server}fb.do?method=<name>`` by GET or POST; the common parameters are
  ``application_key``, ``sig``, ``access_token`` (or ``session_key``), ``format=json`` (apiok.ru/dev/methods);
- the signature (same page, "Calculating request signature"): for a call in a session the signing secret is
  ``session_secret_key = MD5(access_token + application_secret_key)`` in lower case (without a session, the
  ``application_secret_key`` itself); ``session_key`` / ``access_token`` are left out, the remaining parameters are
  sorted by name, joined as ``key=value`` without separators, ``sig = MD5(joined + session_secret_key)`` in lower
  case. ``ok_signature`` is exactly that and is checked in the tests against a published worked example;
- errors: the code in the ``invocation-error`` header and the details as JSON in the body, codes and names from
  apiok.ru/en/dev/errors (``PARAM_SIGNATURE`` 104, ``PARAM_SESSION_EXPIRED`` 102, ``SERVICE`` 2, ``FLOOD_BLOCKED``
  8, ``AUTH_LOGIN`` 401, ...). The body ``{"error_code", "error_msg", "error_data"}`` and its arrival with HTTP 200
  are as real answers quoted in third-party clients show (e.g. ``{"error_data":null,"error_code":104,
  "error_msg":"PARAM_SIGNATURE : No signature specified"}``), not spelled out by the docs.

What could NOT be verified against OK's documentation (see ``GROUP_FEED_METHOD``): the method reading a group's
posts. ``mediatopic.getTopics`` with ``gid`` / ``count`` answering ``{"media_topics": [...]}`` is how working
third-party code reads a group; its ``anchor`` / ``has_more`` paging and the order of topics (newest first) follow
OK's other anchored methods (``group.getStatTopics``) and are assumptions. The topic object (``id``,
``created_ms``, ``author_ref``, ``media`` blocks ``{"type": "text", "text"}`` / ``{"type": "link", "url"}``) is
the documented ``mediatopic`` shape used by ``mediatopic.getByIds`` and ``mediatopic.post``. The connector does
not rely on the order: it keeps every topic newer than the cursor and sorts them itself.

Tokens and secrets never appear in messages: OK's own error texts are scrubbed of them too.

An answer not in that shape (not JSON, ``media_topics`` that is not a list, more topics than asked for, a body over
``answers.MAX_ANSWER_BYTES``) fails the fetch with an error naming what was wrong, so the cursor stays; a topic that
cannot be read (not an object, no id, a ``created_ms`` that is not a number, a wrong type inside) is rejected with
its reason, and it does not end the paging as if it were old.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import httpx

from shared.adapters.answers import send
from shared.adapters.politeness import Polite
from shared.domain.errors import PermanentError, SourceAccessError, TransientError
from shared.domain.models import Attachment, Post
from shared.ports import FetchResult, Rejected
from shared.source_config import OkGroupSource

GROUP_FEED_METHOD = "mediatopic.getTopics"  # unverified against apiok.ru: see the module docstring
TOPIC_FIELDS = "media_topic.*"
PAGE_SIZE = 50  # what working clients ask for; OK's maximum for this method is not documented where we could read
MAX_PAGES = 20
UNSIGNED_PARAMS = {"sig", "access_token", "session_key"}

REISSUE_ACTION = (
    "issue a new OK access token for the application and store it as OTKLIK_OK_ACCESS_TOKEN (Secret Manager), "
    "then the source resumes by itself"
)
# https://apiok.ru/en/dev/errors
RETRYABLE_ERRORS = {
    1: "UNKNOWN",
    2: "SERVICE",  # service temporarily unavailable
    7: "ACTION_BLOCKED",  # temporarily blocked for the current user
    8: "FLOOD_BLOCKED",
    11: "LIMIT_REACHED",  # request call limit reached
    31: "NETWORK_TIMEOUT",
    9999: "SYSTEM",
}
ACCESS_ERRORS = {
    9: "OK blocks this server's IP address for the method (suspicious activity or a restriction): ask OK's API "
    "support (api-support@ok.ru) to lift it, or run ingest from another address",
    10: "the token's user has not allowed the application this operation: issue a new token with the "
    "VALUABLE_ACCESS and GROUP_CONTENT permissions and store it as OTKLIK_OK_ACCESS_TOKEN",
    101: "OK does not know the application key: copy the application's public key from its settings on ok.ru "
    "into OTKLIK_OK_APPLICATION_KEY",
    102: "the OK access token has expired: " + REISSUE_ACTION,
    103: "OK rejects the access token: " + REISSUE_ACTION,
    104: "OK rejects the request signature: OTKLIK_OK_APPLICATION_SECRET_KEY must be the secret key of the same "
    "application as OTKLIK_OK_APPLICATION_KEY and the token; copy it from the application's settings on ok.ru",
    160: "OK does not know this group: check group_id in sources.yaml",
    200: "the OK application has no permission for this method: request the permissions for the application "
    "from OK (api-support@ok.ru), then issue a new token",
    210: "the OK application is disabled: re-enable it in its settings on ok.ru, or register a new one and "
    "update the OTKLIK_OK_* keys",
    300: "the group was not found (deleted, or a wrong id): check group_id in sources.yaml or disable the source",
    401: "OK refused the login behind the token: " + REISSUE_ACTION,
    453: "OK wants a user session for this method: " + REISSUE_ACTION,
    456: "the group restricts this operation: the token's user must join the group, or disable the source",
    457: "OK refuses unauthorised access to the group: the token's user must join it, or disable the source",
    458: "the group is private: the token's user must be a member, or disable the source",
}


class OkApiError(PermanentError):
    """An OK error that retrying will not fix and that is not about access (a bad parameter, say)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"OK error {code}: {message}")
        self.code = code


def ok_signature(params: dict[str, str], access_token: str, application_secret_key: str) -> str:
    """The ``sig`` of an OK REST call (apiok.ru/dev/methods, "Расчет подписи запроса").

    ``params`` are the request's parameters as sent (``application_key``, ``format``, ``method``, the method's own
    ones); ``sig``, ``access_token`` and ``session_key`` among them are ignored. With a token the signing secret
    is ``md5(access_token + application_secret_key)`` in lower-case hex; without one it is the application
    secret key itself."""
    secret = _md5(access_token + application_secret_key).lower() if access_token else application_secret_key
    joined = "".join(f"{key}={params[key]}" for key in sorted(params) if key not in UNSIGNED_PARAMS)
    return _md5(joined + secret).lower()


class OkGroupConnector:
    """Cursor: ``{"last_created_ms": N, "ids_at_last": [topic ids created at that millisecond]}``. A run reads
    pages (``anchor``) until a page ends with a topic at or before the cursor, keeps every topic newer than it
    (or at the same millisecond and not seen), and returns them oldest first. Anchors are used only within a run:
    how long OK keeps one valid is not documented."""

    def __init__(
        self,
        config: OkGroupSource,
        http: httpx.Client,
        api_base: str,
        application_key: str,
        access_token: str,
        application_secret_key: str,
        polite: Polite,
    ) -> None:
        self.config = config
        self.http = http
        self.endpoint = api_base.rstrip("/") + "/fb.do"
        self.application_key = application_key
        self._access_token = access_token
        self._secret_key = application_secret_key
        self.polite = polite
        self.source_id = config.id

    def fetch(self, cursor: dict[str, Any] | None) -> FetchResult:
        cursor = cursor or {}
        last_ms = int(cursor["last_created_ms"]) if "last_created_ms" in cursor else None
        ids_at_last = {str(i) for i in cursor.get("ids_at_last", [])}
        limit = None if last_ms is not None else self.config.max_posts_first_run
        fresh: dict[str, dict[str, Any]] = {}
        unplaced: list[Any] = []
        anchor: str | None = None
        for _ in range(MAX_PAGES):
            body = self.call(
                GROUP_FEED_METHOD, gid=self.config.group_id, count=PAGE_SIZE, fields=TOPIC_FIELDS, anchor=anchor
            )
            topics = body.get("media_topics") or []
            if not isinstance(topics, list):
                raise OkApiError(0, f"{GROUP_FEED_METHOD}: media_topics is {type(topics).__name__}, not a list")
            if len(topics) > PAGE_SIZE:
                raise OkApiError(0, f"{GROUP_FEED_METHOD}: {len(topics)} topics in a page of at most {PAGE_SIZE}")
            page: list[dict[str, Any]] = []
            for topic in topics:
                if not isinstance(topic, dict) or not topic.get("id") or _ms(topic) is None:
                    unplaced.append(topic)  # rejected below with the reason; it must not pass for an old topic
                    continue
                page.append(topic)
                topic_id, created = str(topic["id"]), _int(topic.get("created_ms"))
                if last_ms is not None and (created < last_ms or (created == last_ms and topic_id in ids_at_last)):
                    continue
                fresh[topic_id] = topic
            anchor = body.get("anchor") or None
            reached_known = last_ms is not None and bool(page) and _int(page[-1].get("created_ms")) <= last_ms
            if not topics or not body.get("has_more") or anchor is None or reached_known:
                break
            if limit is not None and len(fresh) >= limit:
                break
        ordered = sorted(fresh.values(), key=lambda t: (_int(t.get("created_ms")), str(t.get("id"))))
        if limit is not None:
            ordered = ordered[-limit:]
        posts: list[Post] = []
        rejected: list[Rejected] = []
        for topic in [*ordered, *unplaced]:
            try:
                if not isinstance(topic, dict):
                    raise TypeError(f"the topic is {type(topic).__name__}, not an object")
                posts.append(ok_post(topic, self.config.group_id, self.config.id, self.config.municipality))
            except (KeyError, TypeError, ValueError, OverflowError) as exc:
                payload = json.dumps(topic, ensure_ascii=False, default=str)
                given = topic.get("id") if isinstance(topic, dict) else None
                name = given or "topic-" + hashlib.sha256(payload.encode()).hexdigest()[:16]  # else: its content
                rejected.append(
                    Rejected(
                        key=f"{self.config.group_id}_{name}",
                        payload=payload,
                        reason=f"unreadable OK topic: {type(exc).__name__}: {exc}",
                    )
                )
        return FetchResult(posts=posts, cursor=_next_cursor(cursor, ordered), rejected=rejected)

    # --- the REST call ------------------------------------------------------------------------------------

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        return self.polite.call(lambda: self._call_once(method, params))

    def _call_once(self, method: str, extra: dict[str, Any]) -> dict[str, Any]:
        params = {"application_key": self.application_key, "format": "json", "method": method}
        params |= {k: str(v) for k, v in extra.items() if v is not None}
        params["sig"] = ok_signature(params, self._access_token, self._secret_key)
        try:
            # POST keeps the token out of URLs (and so out of proxies' access logs); OK takes GET and POST alike.
            data = params | {"access_token": self._access_token}
            response, raw = send(self.http, "POST", self.endpoint, what=f"OK {method}", data=data)
        except httpx.TransportError as exc:
            raise TransientError(f"OK {method}: {type(exc).__name__}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientError(f"OK {method}: HTTP {response.status_code}", _retry_after(response))
        if response.status_code >= 400:
            raise OkApiError(0, f"{method}: HTTP {response.status_code}")
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise TransientError(f"OK {method}: the answer is not JSON") from exc
        if isinstance(body, dict) and "error_code" in body:
            raise self._error(method, body)
        if not isinstance(body, dict):
            raise OkApiError(0, f"{method}: unexpected answer of type {type(body).__name__}")
        return body

    def _error(self, method: str, body: dict[str, Any]) -> Exception:
        code = _int(body.get("error_code"))
        message = f"OK {method}: error {code}: {self._scrub(str(body.get('error_msg') or ''))}"
        if code in RETRYABLE_ERRORS:
            return TransientError(message)
        if code in ACCESS_ERRORS:
            return SourceAccessError(message, ACCESS_ERRORS[code])
        return OkApiError(code, self._scrub(f"{method}: {body.get('error_msg') or ''}"))

    def _scrub(self, text: str) -> str:
        session_secret = _md5(self._access_token + self._secret_key)
        for secret in (self._access_token, self._secret_key, session_secret):
            if secret:
                text = text.replace(secret, "***")
        return text


# --- OK objects -> Post ---------------------------------------------------------------------------------


def ok_post(topic: dict[str, Any], group_id: str, source_id: str, municipality: str | None) -> Post:
    """A mediatopic object (``media_topics[]`` of mediatopic.getTopics / mediatopic.getByIds). One that cannot be
    read raises KeyError, TypeError or ValueError, saying what was wrong."""
    topic_id = str(topic["id"])
    if not topic_id:
        raise ValueError("topic without an id")
    created_ms = int(topic["created_ms"])
    texts: list[str] = []
    attachments: list[Attachment] = []
    media = topic.get("media") or []
    if not isinstance(media, list) or not all(isinstance(block, dict) for block in media):
        raise TypeError("media is not a list of objects")
    for block in media:
        kind = block.get("type")
        if kind == "text":
            tokens = block.get("text_tokens") or []
            if not isinstance(tokens, list) or not all(isinstance(t, dict) for t in tokens):
                raise TypeError("text_tokens is not a list of objects")
            text = block.get("text") or "".join(str(t.get("text", "")) for t in tokens)
            if not isinstance(text, str):
                raise TypeError(f"text is {type(text).__name__}, not a string")
            if text:
                texts.append(text)
        elif kind == "link" and block.get("url"):
            attachments.append(Attachment(kind="link", url=str(block["url"])))
        elif kind == "poll" and block.get("question"):
            texts.append(str(block["question"]))
    return Post(
        source="ok",
        community=group_id,
        post_id=topic_id,
        author_id=_ref_id(topic.get("author_ref")),
        text="\n\n".join(texts),
        published_at=_time(created_ms),
        url=f"https://ok.ru/group/{group_id}/topic/{topic_id}",
        attachments=tuple(attachments),
        source_id=source_id,
        municipality_hint=municipality,
    )


def _next_cursor(cursor: dict[str, Any], topics: list[dict[str, Any]]) -> dict[str, Any]:
    if not topics:
        return dict(cursor)
    newest = _int(topics[-1].get("created_ms"))
    at_newest = [str(t.get("id")) for t in topics if _int(t.get("created_ms")) == newest]
    if "last_created_ms" in cursor and int(cursor["last_created_ms"]) == newest:
        at_newest = sorted({*map(str, cursor.get("ids_at_last", [])), *at_newest})
    return {"last_created_ms": newest, "ids_at_last": at_newest}


def _ms(topic: dict[str, Any]) -> int | None:
    """``created_ms`` as a number, None if it is not one."""
    try:
        return int(topic.get("created_ms"))  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):  # 1e400 is JSON: int(inf)
        return None


def _time(created_ms: int) -> datetime:
    try:
        return datetime.fromtimestamp(created_ms / 1000, tz=UTC)
    except (OverflowError, OSError) as exc:
        raise ValueError(f"created_ms {created_ms} is out of range") from exc


def _md5(text: str) -> str:
    """MD5 is OK's signing protocol, not our choice of a hash for security."""
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def _ref_id(ref: Any) -> str | None:
    """``"user:575662066926"`` -> ``"575662066926"``; a group posting as itself keeps ``group:<id>``."""
    if not ref:
        return None
    kind, _, value = str(ref).partition(":")
    return value if kind == "user" and value else str(ref)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    return float(value) if value.isdigit() else None


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):  # 1e400 is JSON: int(inf)
        return 0
