"""A stand-in for the OK (Odnoklassniki) REST API at ``/fb.do``, answering as apiok.ru documents:

- parameters by GET query or POST form; ``application_key``, ``format``, ``method``, ``sig``, ``access_token``;
- the request signature is VERIFIED as OK does it: the stand-in knows the application's key, the user's access
  token and the application secret key, recomputes ``sig`` with its own implementation of the documented recipe
  (not the client's ``ok_signature``, so a client bug cannot agree with itself) and refuses a mismatch;
- errors as ``{"error_code", "error_msg", "error_data": null}`` with HTTP 200 and the code in the
  ``invocation-error`` header (apiok.ru/en/dev/errors): 101 unknown application key, 102 unknown or expired token,
  104 no / wrong signature, 3 unknown method, 100 missing parameter, 160 unknown group, or any error queued with
  ``fail_next``; or any raw answer at all for a method (``inject``, see ``otklik.standins.http``);
- ``mediatopic.getTopics`` (``gid``, ``count``, ``anchor``): a group's topics newest first as
  ``{"media_topics": [...], "anchor": "...", "has_more": bool}``, the shape ``shared.adapters.ok`` reads (see its
  docstring for what of it could not be checked against OK's documentation).

Topics come from ``otklik/demo/data/ok_group.json`` (without the ``_label`` ground truth).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from otklik.standins.http import LoopbackServer, QuietHandler

DEMO_OK_GROUP = Path(__file__).resolve().parent.parent / "demo" / "data" / "ok_group.json"
DEMO_APPLICATION_KEY = "CBAJNKLGDIHBABABA"
# Made-up credentials the stand-in knows (and the demo stack and tests sign with); never real OK keys.
DEMO_ACCESS_TOKEN = "tkn1demo.ok-standin-access-token-0000000000000000"
DEMO_APPLICATION_SECRET_KEY = "0123456789ABCDEF0123456789ABCDEF"
MAX_COUNT = 100

# Texts in OK's "NAME : description" form.
OK_ERROR_MESSAGES = {
    1: "UNKNOWN : Unknown error",
    2: "SERVICE : Service is temporary unavailable",
    3: "METHOD : Method does not exist",
    8: "FLOOD_BLOCKED : Method execution is blocked due to flood",
    10: "PERMISSION_DENIED : Permission denied",
    100: "PARAM : Missing or incorrect parameter",
    101: "PARAM_API_KEY : Application key is invalid",
    102: "PARAM_SESSION_EXPIRED : Session expired",
    104: "PARAM_SIGNATURE : Invalid signature",
    160: "PARAM_GROUP_ID : Invalid group id",
    300: "NOT_FOUND : Not found",
    458: "PRIVACY_RESTRICTION : Privacy restriction",
}


def _strip(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if not k.startswith("_")}


class OkStandIn(LoopbackServer):
    def __init__(
        self,
        data_file: Path = DEMO_OK_GROUP,
        application_key: str = DEMO_APPLICATION_KEY,
        access_token: str = DEMO_ACCESS_TOKEN,
        application_secret_key: str = DEMO_APPLICATION_SECRET_KEY,
    ) -> None:
        super().__init__(_OkHandler)
        self.application_key = application_key
        self.access_token = access_token
        self.application_secret_key = application_secret_key
        self.lock = threading.Lock()
        self.calls: list[dict[str, str]] = []  # parameters of every call, without the access token
        self.failures: list[tuple[str, int]] = []  # ("ok", error code) or ("http", status), consumed in order
        self.groups: dict[str, dict[str, Any]] = {}
        data = json.loads(data_file.read_text(encoding="utf-8"))
        for group in data["groups"]:
            self.groups[str(group["gid"])] = {**group, "topics": [_strip(t) for t in group["topics"]]}

    @property
    def api_base(self) -> str:
        return self.url

    def add_topic(self, gid: str, topic: dict[str, Any]) -> None:
        """A new post appears in the group."""
        with self.lock:
            self.groups[gid]["topics"].append(_strip(topic))

    def topics(self, gid: str) -> list[dict[str, Any]]:
        return list(self.groups[gid]["topics"])

    def fail_next(self, *, ok_error: int | None = None, http_status: int | None = None) -> None:
        """The next call answers with this OK error object (e.g. 2: service unavailable) or HTTP status."""
        with self.lock:
            self.failures.append(("ok", ok_error) if ok_error is not None else ("http", http_status or 500))


class _OkHandler(QuietHandler):
    def do_GET(self) -> None:
        self._handle(dict(parse_qsl(urlsplit(self.path).query)))

    def do_POST(self) -> None:
        params = dict(parse_qsl(urlsplit(self.path).query))
        params.update(parse_qsl(self.read_body().decode("utf-8")))
        self._handle(params)

    def _handle(self, params: dict[str, str]) -> None:
        owner: OkStandIn = self.server.owner  # type: ignore[attr-defined]
        if urlsplit(self.path).path != "/fb.do":
            self.reply(404, b"<html><body>Not Found</body></html>", "text/html")
            return
        with owner.lock:
            owner.calls.append({k: v for k, v in params.items() if k not in ("access_token", "session_key")})
        if self.answer_fault(params.get("method", "")):
            return
        with owner.lock:
            failure = owner.failures.pop(0) if owner.failures else None
        if failure is not None and failure[0] == "http":
            self.reply(failure[1], b"<html><body>Service Unavailable</body></html>", "text/html")
            return
        if failure is not None:
            answer: dict[str, Any] = _error(failure[1])
        else:
            answer = _dispatch(owner, params)
        body = json.dumps(answer, ensure_ascii=False).encode("utf-8")
        self.send_response(200)
        if "error_code" in answer:
            self.send_header("invocation-error", str(answer["error_code"]))
        self.send_header("Content-Type", "application/json;charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _error(code: int, detail: str = "") -> dict[str, Any]:
    message = OK_ERROR_MESSAGES.get(code, "UNKNOWN : Unknown error")
    return {"error_code": code, "error_msg": f"{message}{' ' + detail if detail else ''}", "error_data": None}


def _dispatch(owner: OkStandIn, params: dict[str, str]) -> dict[str, Any]:
    if params.get("application_key") != owner.application_key:
        return _error(101)
    if not params.get("sig"):
        return {"error_code": 104, "error_msg": "PARAM_SIGNATURE : No signature specified", "error_data": None}
    token = params.get("access_token") or params.get("session_key") or ""
    if token != owner.access_token:
        return _error(102)
    expected = _expected_sig(params, owner.access_token, owner.application_secret_key)
    if params["sig"].lower() != expected:
        return _error(104, params["sig"])
    method = params.get("method", "")
    if method != "mediatopic.getTopics":
        return _error(3)
    with owner.lock:
        return _get_topics(owner, params)


def _expected_sig(params: dict[str, str], access_token: str, application_secret_key: str) -> str:
    """apiok.ru/dev/methods: session_secret_key = md5(access_token + application_secret_key), lower case; drop
    sig, access_token and session_key; sort by name; sig = md5("k1=v1k2=v2..." + session_secret_key)."""
    session_secret_key = hashlib.md5(
        f"{access_token}{application_secret_key}".encode(), usedforsecurity=False
    ).hexdigest()
    signed = {k: v for k, v in params.items() if k not in {"sig", "access_token", "session_key"}}
    payload = "".join(f"{k}={signed[k]}" for k in sorted(signed)) + session_secret_key
    return hashlib.md5(payload.encode("utf-8"), usedforsecurity=False).hexdigest()


def _get_topics(owner: OkStandIn, params: dict[str, str]) -> dict[str, Any]:
    gid = params.get("gid")
    if not gid:
        return _error(100, "gid")
    group = owner.groups.get(gid)
    if group is None:
        return _error(160, gid)
    try:
        count = min(max(int(params.get("count", 20)), 1), MAX_COUNT)
        offset = int(base64.urlsafe_b64decode(params["anchor"]).decode()) if params.get("anchor") else 0
    except (ValueError, UnicodeDecodeError):
        return _error(100, "anchor")
    newest_first = sorted(group["topics"], key=lambda t: (_ms(t), str(t.get("id"))), reverse=True)
    page = newest_first[offset : offset + count]
    end = offset + len(page)
    anchor = base64.urlsafe_b64encode(str(end).encode()).decode()
    return {"media_topics": page, "anchor": anchor, "has_more": end < len(newest_first)}


def _ms(topic: dict[str, Any]) -> int:
    """created_ms for ordering; a topic with a broken one (as tests plant) sorts as the oldest, and is served."""
    try:
        return int(topic.get("created_ms", 0))
    except (TypeError, ValueError):
        return 0
