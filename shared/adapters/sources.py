"""Builds the connector of each configured source with its credentials, rate limit and retry policy."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx

from shared.adapters.politeness import Polite, RateLimit
from shared.config import Settings
from shared.domain.errors import SourceAccessError
from shared.ports import FetchResult, SourceConnector
from shared.services.ingest import WatchedSource
from shared.source_config import (
    MaxSource,
    OkGroupSource,
    RssSource,
    SourceConfig,
    TelegramSource,
    VkSearchSource,
    VkWallSource,
)

TELEGRAM_REQUESTS_PER_SECOND = 20.0  # Bot API: about 30 requests/s per bot; stay well below
# MAX allows 30 requests/s per bot, but asks long polling to wait at least 300 ms between two GET /updates.
MAX_REQUESTS_PER_SECOND = 3.0
RSS_REQUESTS_PER_SECOND = 2.0  # news sites are small servers


class Unavailable:
    """A configured source that cannot be built (its secret is not set, say): it reports itself stopped with
    what to do, and the other sources keep going."""

    def __init__(self, source_id: str, problem: str, action: str) -> None:
        self.source_id = source_id
        self.problem = problem
        self.action = action

    def fetch(self, cursor: dict[str, Any] | None) -> FetchResult:
        raise SourceAccessError(self.problem, self.action)


def MissingCredentials(source_id: str, variable: str) -> Unavailable:
    return Unavailable(
        source_id,
        f"{variable} is not set",
        f"store the credential as {variable} (Secret Manager in production), then the source resumes",
    )


class SourceFactory:
    def __init__(self, settings: Settings, http: httpx.Client) -> None:
        self.settings = settings
        self.http = http
        self._vk_polite: Polite | None = None  # one rate limit per token, shared by every VK source

    def polite(self, per_second: float | None) -> Polite:
        s = self.settings
        return Polite(
            RateLimit(per_second) if per_second else None,
            attempts=s.source_retry_attempts,
            base_seconds=s.source_backoff_seconds,
            max_seconds=s.source_backoff_max_seconds,
        )

    def watched(self, sources: list[SourceConfig]) -> list[WatchedSource]:
        return [self.build(src) for src in sources if src.polled]

    def build(self, src: SourceConfig) -> WatchedSource:
        connector: SourceConnector
        try:
            connector, secret = self._connector(src)
        except Exception as exc:  # a bug or a bad setting must not take the other sources down with it
            problem = f"cannot set up the {src.kind} connector: {type(exc).__name__}: {exc}"
            connector, secret = Unavailable(src.id, problem, "check the source and the settings, see the logs"), None
        digest = hashlib.sha256(src.model_dump_json().encode())
        digest.update(hashlib.sha256((secret or "").encode()).digest())  # a new token resumes a stopped source
        return WatchedSource(connector, digest.hexdigest()[:16])

    def _connector(self, src: SourceConfig) -> tuple[SourceConnector, str | None]:
        s = self.settings
        if isinstance(src, VkWallSource | VkSearchSource):
            from shared.adapters.vk import VkClient, VkSearchConnector, VkWallConnector

            token = _secret(s.vk_token)
            if token is None:
                return MissingCredentials(src.id, "OTKLIK_VK_TOKEN"), None
            if self._vk_polite is None:
                self._vk_polite = self.polite(s.vk_rate)
            client = VkClient(self.http, s.vk_api_base, token, s.vk_api_version, self._vk_polite)
            if isinstance(src, VkWallSource):
                return VkWallConnector(src, client), token
            return VkSearchConnector(src, client), token
        if isinstance(src, TelegramSource):
            from shared.adapters.telegram import TelegramConnector

            bot = _secret(s.telegram_bot_token)
            if bot is None:
                return MissingCredentials(src.id, "OTKLIK_TELEGRAM_BOT_TOKEN"), None
            polite = self.polite(TELEGRAM_REQUESTS_PER_SECOND)
            return TelegramConnector(src, self.http, s.telegram_api_base, bot, polite), bot
        if isinstance(src, MaxSource):
            from shared.adapters.max import MaxConnector

            max_bot = _secret(s.max_bot_token)
            if max_bot is None:
                return MissingCredentials(src.id, "OTKLIK_MAX_BOT_TOKEN"), None
            polite = self.polite(MAX_REQUESTS_PER_SECOND)
            return MaxConnector(src, self.http, s.max_api_base, max_bot, polite), max_bot
        if isinstance(src, OkGroupSource):
            from shared.adapters.ok import OkGroupConnector

            token, secret = _secret(s.ok_access_token), _secret(s.ok_application_secret_key)
            if token is None or secret is None or not s.ok_application_key:
                missing = "OTKLIK_OK_ACCESS_TOKEN, OTKLIK_OK_APPLICATION_SECRET_KEY and OTKLIK_OK_APPLICATION_KEY"
                return MissingCredentials(src.id, missing), None
            polite = self.polite(None)
            connector = OkGroupConnector(src, self.http, s.ok_api_base, s.ok_application_key, token, secret, polite)
            return connector, token + secret
        if isinstance(src, RssSource):
            from shared.adapters.rss import RssConnector

            return RssConnector(src, self.http, self.polite(RSS_REQUESTS_PER_SECOND)), None
        raise ValueError(f"source {src.id}: kind {src.kind} is not polled")


def _secret(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None
