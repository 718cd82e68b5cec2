"""Composition root: builds each function's service from configuration, once per instance.

Clients are created lazily on first use (not at import), so a cold start pays only for what the function
needs, and tests can point the environment at emulators before anything connects. ``reset()`` forgets them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any

from shared import logs
from shared.config import Settings
from shared.contracts import Contract, IncidentAnsweredV1, IncidentClassifiedV1, PostFetchedV1, decode
from shared.domain.errors import PermanentError
from shared.domain.models import Channel, Post, utcnow
from shared.entrypoints.pubsub_event import UnreadableEvent, inbound_from_cloudevent
from shared.services.inbound import InboundHandler, MessageOutcome

if TYPE_CHECKING:
    import httpx
    from google.cloud import firestore
    from google.cloud.pubsub_v1 import PublisherClient

    from shared.adapters.vk_callback import VkCallbackService
    from shared.answer_links import AnswerLinks
    from shared.domain.deadlines import Deadlines
    from shared.entrypoints.department_api import DepartmentApi, HttpRequest, HttpResponse
    from shared.entrypoints.open311 import Open311Api
    from shared.services.classify import ClassifyService
    from shared.services.digest import DigestService
    from shared.services.inbox import InboxService
    from shared.services.ingest import IngestService, PostIntake
    from shared.services.notify import Notifier
    from shared.services.remind import RemindService
    from shared.services.responses import ResponseService
    from shared.services.route import RouteService
    from shared.services.routing import LiveDirectory
    from shared.services.weekly_report import WeeklyReportService


@cache
def settings() -> Settings:
    s = Settings()
    logs.hide(*s.secret_values())  # masked in every log line and stored error text from now on
    logs.configure(s.log_level)
    return s


def clock() -> datetime:
    return utcnow()


@cache
def firestore_client() -> firestore.Client:
    from google.cloud import firestore

    s = settings()
    return firestore.Client(project=s.project_id, database=s.firestore_database)


@cache
def publisher_client() -> PublisherClient:
    from google.cloud.pubsub_v1 import PublisherClient

    return PublisherClient()


@cache
def http_client() -> httpx.Client:
    import httpx

    return httpx.Client(timeout=settings().http_timeout_seconds, follow_redirects=False)


@cache
def inbound(stage: str) -> InboundHandler:
    from shared.adapters.firestore import FirestoreQuarantine

    return InboundHandler(
        stage,
        FirestoreQuarantine(firestore_client()),
        clock,
        timedelta(seconds=settings().max_retry_age_seconds),
    )


@cache
def classify_service() -> ClassifyService:
    from shared.adapters.firestore import PUBLISHED_POSTS, FirestoreIncidents, FirestoreMarkers
    from shared.adapters.pubsub import PubSubPublisher
    from shared.classifier.russian import RussianClassifier
    from shared.services.classify import ClassifyService
    from shared.services.group_posts import PostGrouper
    from shared.services.threads import ThreadReplies

    s = settings()
    incidents = FirestoreIncidents(firestore_client())
    official = {i.strip() for i in s.vk_official_ids.split(",") if i.strip()}

    def is_official(post: Post) -> bool:
        # On VK a community's own comment has the community's (negative) id as its author.
        return post.source == "vk" and (post.author_id == post.community or post.author_id in official)

    return ClassifyService(
        RussianClassifier.load(),
        incidents,
        PubSubPublisher(publisher_client(), s.project_id),
        s.topic_incidents,
        clock,
        ThreadReplies(
            incidents, is_official, clock, deadlines, directory, FirestoreMarkers(firestore_client(), PUBLISHED_POSTS)
        ),
        PostGrouper(incidents, incidents, clock, deadlines, directory),
        deadlines,
        directory,
    )


@cache
def directory() -> LiveDirectory:
    from shared.adapters.firestore import FirestoreRouting
    from shared.classifier.places import municipality_regions
    from shared.services.routing import LiveDirectory

    s = settings()
    # Which region a municipality is in (region-wide departments serve their own), read from the gazetteers
    # without the morphology: route, remind and department_api never load pymorphy3.
    regions = municipality_regions()
    return LiveDirectory(
        FirestoreRouting(firestore_client()).load,
        lambda: s.routing,
        timedelta(seconds=s.directory_ttl_seconds),
        clock,
        lambda municipality: regions.get(municipality or ""),
    )


@cache
def answer_links() -> AnswerLinks | None:
    from shared.answer_links import AnswerLinks

    s = settings()
    if not s.public_api_url or not s.link_signing_key:
        return None
    return AnswerLinks(s.public_api_url, s.link_signing_key.get_secret_value(), s.answer_link_days)


@cache
def deadlines() -> Deadlines:
    from shared.domain.deadlines import Deadlines

    s = settings()
    return Deadlines(s.deadline_policy, s.calendar)


@cache
def notifier() -> Notifier:
    from shared.adapters.email import mail_sender
    from shared.adapters.firestore import FirestoreNotifications
    from shared.adapters.webhook import WebhookSender, parse_secrets
    from shared.ports import ChannelSender
    from shared.services.notify import Notifier

    s = settings()
    secrets = parse_secrets(s.webhook_secrets.get_secret_value() if s.webhook_secrets else None)
    senders: dict[Channel, ChannelSender] = {
        Channel.WEBHOOK: WebhookSender(http_client(), s.local_mode, secrets, s.webhook_attempts)
    }
    mail = mail_sender(s)
    if mail is not None:
        senders[Channel.EMAIL] = mail
    if s.vk_reply_token is not None:
        from shared.adapters.politeness import Polite, RateLimit
        from shared.adapters.vk import VkClient, VkCommentSender

        polite = Polite(
            RateLimit(s.vk_rate),
            attempts=s.source_retry_attempts,
            base_seconds=s.source_backoff_seconds,
            max_seconds=s.source_backoff_max_seconds,
        )
        token = s.vk_reply_token.get_secret_value()
        client = VkClient(http_client(), s.vk_api_base, token, s.vk_api_version, polite)
        senders[Channel.COMMENT] = VkCommentSender(client)
    return Notifier(FirestoreNotifications(firestore_client()), senders, clock, s.notification_lease_seconds)


@cache
def route_service() -> RouteService:
    from shared.adapters.firestore import FirestoreIncidents
    from shared.services.group_posts import PostGrouper
    from shared.services.route import RouteService

    links = answer_links()
    incidents = FirestoreIncidents(firestore_client())
    return RouteService(
        incidents,
        directory(),
        notifier(),
        deadlines(),
        clock,
        links.url if links else (lambda incident_id, department_id: None),
        PostGrouper(incidents, incidents, clock, deadlines, directory),
    )


@cache
def response_service() -> ResponseService:
    from shared.adapters.firestore import FirestoreIncidents
    from shared.adapters.pubsub import PubSubPublisher
    from shared.services.responses import ResponseService

    s = settings()
    return ResponseService(
        FirestoreIncidents(firestore_client()),
        directory(),
        PubSubPublisher(publisher_client(), s.project_id),
        s.topic_incidents,
        clock,
        deadlines(),
    )


@cache
def department_api() -> DepartmentApi:
    from shared.adapters.firestore import FirestoreDepartmentTokens
    from shared.entrypoints.answer_page import answer_page
    from shared.entrypoints.department_api import DepartmentApi

    token_store = FirestoreDepartmentTokens(firestore_client())
    return DepartmentApi(response_service(), token_store, answer_links(), answer_page, triage_pages())


def triage_pages() -> Callable[[HttpRequest], HttpResponse] | None:
    """The coordinator's triage pages and /reports; they sign their session with the link signing key."""
    from shared.adapters.firestore import (
        FirestoreCorpusFeedback,
        FirestoreDepartmentTokens,
        FirestoreIncidents,
        FirestoreRouting,
    )
    from shared.adapters.pubsub import PubSubPublisher
    from shared.entrypoints.triage_page import TriagePages
    from shared.report_names import report_names
    from shared.services.reports import Names, Report, report_for
    from shared.services.triage import TriageService

    s = settings()
    if s.link_signing_key is None:
        return None
    db = firestore_client()
    incidents = FirestoreIncidents(db)
    triage = TriageService(
        response_service(),
        incidents,
        incidents,
        FirestoreCorpusFeedback(db),
        PubSubPublisher(publisher_client(), s.project_id),
        s.topic_incidents,
        clock,
    )

    def names() -> Names:
        return report_names(FirestoreRouting(db).load() or s.routing)

    def build_report(start: datetime, end: datetime, municipality: str | None) -> Report:
        return report_for(incidents, start, end, clock(), municipality, names())

    pages = TriagePages(
        triage,
        FirestoreDepartmentTokens(db),
        s.link_signing_key.get_secret_value(),
        build_report,
        names,
        secure_cookie=not s.local_mode,
    )
    return pages.handle


@cache
def open311_api() -> Open311Api:
    from shared.adapters.firestore import FirestoreIncidents
    from shared.classifier.places import GAZETTEERS
    from shared.entrypoints.open311 import Open311Api
    from shared.services.open311 import Open311Reader, load_settlements

    def department_name(department_id: str) -> str | None:
        department = directory().department(department_id)
        return department.name if department else None

    reader = Open311Reader(FirestoreIncidents(firestore_client()), department_name, load_settlements(GAZETTEERS))
    return Open311Api(reader, clock)


@cache
def post_intake() -> PostIntake:
    from shared.adapters.firestore import PUBLISHED_POSTS, FirestoreMarkers
    from shared.adapters.pubsub import PubSubPublisher
    from shared.services.ingest import PostIntake

    s = settings()
    return PostIntake(
        FirestoreMarkers(firestore_client(), PUBLISHED_POSTS),
        PubSubPublisher(publisher_client(), s.project_id),
        s.topic_posts,
        clock,
    )


@cache
def ingest_service() -> IngestService:
    from shared.adapters.firestore import FirestoreCursors, FirestoreQuarantine, FirestoreSourceHealth
    from shared.adapters.sources import SourceFactory
    from shared.services.ingest import IngestService

    s = settings()
    return IngestService(
        SourceFactory(s, http_client()).watched(s.sources),
        FirestoreCursors(firestore_client()),
        post_intake(),
        FirestoreQuarantine(firestore_client()),
        FirestoreSourceHealth(firestore_client()),
        clock,
        timedelta(seconds=s.ingest_budget_seconds),
    )


@cache
def vk_callback_service() -> VkCallbackService:
    from shared.adapters.firestore import VK_CALLBACK_EVENTS, FirestoreMarkers, FirestoreQuarantine
    from shared.adapters.vk_callback import VkCallbackService
    from shared.source_config import VkCallbackSource

    s = settings()
    communities = {src.group_id: src for src in s.sources if isinstance(src, VkCallbackSource)}
    secret = s.vk_callback_secret.get_secret_value() if s.vk_callback_secret else None
    return VkCallbackService(
        communities,
        secret,
        post_intake(),
        FirestoreMarkers(firestore_client(), VK_CALLBACK_EVENTS, keep_days=7),
        FirestoreQuarantine(firestore_client()),
        clock,
    )


@cache
def inbox_service() -> InboxService:
    from shared.adapters.firestore import FirestoreQuarantine
    from shared.services.inbox import InboxService
    from shared.source_config import InboxSource

    s = settings()
    sources = {src.id: src for src in s.sources if isinstance(src, InboxSource)}
    token = s.inbox_token.get_secret_value() if s.inbox_token else None
    return InboxService(sources, token, post_intake(), FirestoreQuarantine(firestore_client()), clock)


@cache
def remind_service() -> RemindService:
    from shared.adapters.firestore import FirestoreIncidents
    from shared.adapters.pubsub import PubSubPublisher
    from shared.services.remind import RemindService

    s = settings()
    return RemindService(
        FirestoreIncidents(firestore_client()),
        directory(),
        notifier(),
        deadlines(),
        PubSubPublisher(publisher_client(), s.project_id),
        s.topic_incidents,
        s.remind_batch_size,
        timedelta(seconds=s.undelivered_after_seconds),
    )


@cache
def digest_service() -> DigestService:
    from shared.adapters.email import mail_sender
    from shared.adapters.firestore import FirestoreIncidents
    from shared.services.digest import DigestService

    s = settings()
    links = answer_links()
    return DigestService(
        FirestoreIncidents(firestore_client()),
        directory(),
        notifier(),
        mail_sender(s),
        links.url if links else (lambda incident_id, department_id: None),
    )


@cache
def weekly_report_service() -> WeeklyReportService:
    from shared.adapters.email import mail_sender
    from shared.adapters.firestore import FirestoreIncidents
    from shared.report_names import municipality_names
    from shared.services.reports import Names
    from shared.services.weekly_report import WeeklyReportService

    directory_now = directory()
    names = Names(municipalities=municipality_names(), departments={d.id: d.name for d in directory_now.departments()})
    return WeeklyReportService(
        FirestoreIncidents(firestore_client()), directory_now, notifier(), mail_sender(settings()), names
    )


def reset() -> None:
    """Forget every client and service (tests change the environment between apps)."""
    for factory in (
        settings,
        firestore_client,
        publisher_client,
        http_client,
        inbound,
        classify_service,
        directory,
        answer_links,
        deadlines,
        notifier,
        route_service,
        response_service,
        department_api,
        open311_api,
        post_intake,
        ingest_service,
        vk_callback_service,
        inbox_service,
        remind_service,
        digest_service,
        weekly_report_service,
    ):
        factory.cache_clear()


# --- what the functions' entry points call --------------------------------------------------------------


def handle_pubsub_event(
    stage: str,
    event_id: str,
    event_type: str,
    data: Any,
    expected: tuple[type[Contract], ...],
    process: Callable[[Any], str],
) -> MessageOutcome:
    handler = inbound(stage)
    try:
        message = inbound_from_cloudevent(event_id, event_type, data)
    except UnreadableEvent as exc:
        return handler.to_quarantine(exc.message, str(exc))
    return handler.handle(message, lambda m: process(decode(m.data, expected)))


def on_post_fetched(event_id: str, event_type: str, data: Any) -> MessageOutcome:
    return handle_pubsub_event(
        "classify", event_id, event_type, data, (PostFetchedV1,), lambda m: classify_service().handle(m)
    )


def on_incident_classified(event_id: str, event_type: str, data: Any) -> MessageOutcome:
    def process(message: Any) -> str:
        if isinstance(message, IncidentAnsweredV1):
            return route_service().handle_answered(message)
        return route_service().handle(message)

    return handle_pubsub_event("route", event_id, event_type, data, (IncidentClassifiedV1, IncidentAnsweredV1), process)


def run_ingest() -> dict[str, Any]:
    report = ingest_service().run()
    return {
        "published": report.published,
        "accounted": report.accounted,
        "sources": [dataclasses.asdict(s) for s in report.sources],
    }


def _now_of(body: dict[str, Any] | None) -> datetime:
    now = clock()
    override = (body or {}).get("now")
    if override is not None:
        # Local stack and tests drive the clock; production ignores nothing silently: it refuses.
        if not settings().local_mode:
            raise PermanentError("'now' is accepted only with OTKLIK_LOCAL_MODE=true")
        now = datetime.fromisoformat(str(override))
        if now.tzinfo is None:
            raise PermanentError("'now' must carry a time zone")
    return now


def run_digest(body: dict[str, Any] | None) -> dict[str, Any]:
    """The scheduled letters: each department's daily digest, and last week's report to the coordinators. The
    weekly report is tried on every run and sent once per week and address (the first run after Monday 00:00,
    or the next one if that run failed)."""
    now = _now_of(body)
    report = digest_service().run(now)
    weekly = weekly_report_service().run(now)
    return {
        "now": report.now.isoformat(),
        "open_incidents": report.open_incidents,
        "sent": report.sent,
        "skipped": report.skipped,
        "failed": report.failed,
        "weekly_report": {
            "week": [weekly.start.isoformat(), weekly.end.isoformat()],
            "complaints": weekly.complaints,
            "sent": weekly.sent,
            "skipped": weekly.skipped,
            "failed": weekly.failed,
        },
    }


def run_remind(body: dict[str, Any] | None) -> dict[str, Any]:
    now = _now_of(body)
    report = remind_service().run(now)
    return {
        "now": report.now.isoformat(),
        "checked": report.checked,
        "steps": report.steps,
        "flagged": report.flagged,
        "waiting": report.waiting,
        "redelivered": report.redelivered,
        "more_pending": report.more_pending,
    }
