"""The whole system on one machine: emulators, the VK stand-in with the demo walls, a webhook sink, an SMTP
sink, the four functions under functions-framework and Eventarc-like delivery between them."""

from __future__ import annotations

import concurrent.futures
import json
import os
import string
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from otklik import REPO_ROOT
from otklik.stack import deployed, functions, topology
from otklik.stack import emulators as emulators_mod
from otklik.stack.bridge import EventarcBridge
from otklik.stack.emulators import Emulators
from otklik.stack.outage import TcpProxy
from otklik.stack.processes import free_port
from otklik.standins import max as max_standin
from otklik.standins import ok as ok_standin
from otklik.standins.ok import OkStandIn
from otklik.standins.rss import FeedStandIn
from otklik.standins.smtp import SmtpSink
from otklik.standins.telegram import DEMO_BOT_TOKEN, TelegramStandIn
from otklik.standins.vk import DEMO_COMMENTS, DEMO_SEARCH_EXTRA, DEMO_WALLS, VkStandIn
from otklik.standins.webhook import WebhookSink
from shared.adapters.firestore import FirestoreDepartmentTokens, FirestoreRouting
from shared.config import load_routing
from shared.domain.models import utcnow
from shared.services import tokens

DEMO_CONFIG = REPO_ROOT / "otklik" / "demo" / "config"
# Only the stand-ins know these; they prove each connector sends the credentials it is configured with.
DEMO_VK_TOKEN = "demo-vk-token-for-the-local-stand-in"  # noqa: S105 - not a secret: a local stand-in's
DEMO_VK_CALLBACK_SECRET = "demo-callback-secret"  # noqa: S105
DEMO_INBOX_TOKEN = "demo-inbox-token"  # noqa: S105
DEMO_LINK_SIGNING_KEY = "demo-link-signing-key"
DEMO_VK_REPLY_TOKEN = "demo-vk-community-token"  # noqa: S105 - a local stand-in's


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


def render_config(template_dir: Path, target: Path, values: dict[str, str]) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for src in template_dir.glob("*.yaml"):
        text = string.Template(src.read_text(encoding="utf-8")).substitute(values)
        (target / src.name).write_text(text, encoding="utf-8")
    return target


class LocalStack:
    def __init__(
        self,
        work_dir: Path,
        project_id: str = "otklik-local",
        emulators: Emulators | None = None,
        emulators_kind: str | None = None,
        walls_file: Path = DEMO_WALLS,
        deliveries_per_message: int | str = 1,
        function_source_dir: Path = functions.FUNCTIONS_DIR,
        extra_env: dict[str, str] | None = None,
        config_files: dict[str, str] | None = None,
        meter_dir: Path | None = None,
        outages: bool = False,
        backoff_scale: float = 0.01,
        deployed: bool = False,
    ) -> None:
        """``deliveries_per_message``: how often the bridge delivers each message, or ``"1-3"`` for a random
        count, copies concurrently; ``config_files``: file name -> text replacing the demo's (e.g. another
        sources.yaml); ``meter_dir``: count each function's Firestore operations there
        (otklik.stack.metering); ``outages``: the functions reach the emulators through proxies that a test can
        cut and restore (``firestore_proxy``, ``pubsub_proxy``); ``backoff_scale``: the bridge's redelivery
        backoff as a share of the subscription's.; ``deployed``: each function runs from its built folder in its own
        virtualenv (otklik.stack.deployed), as Cloud Functions runs it."""
        self.work_dir = work_dir
        self.log_dir = work_dir / "logs"
        self.project_id = project_id
        self.emulators = emulators
        self._own_emulators = emulators is None
        self.emulators_kind = emulators_kind
        self.walls_file = walls_file
        self.deliveries_per_message = deliveries_per_message
        self.function_source_dir = function_source_dir
        self.extra_env = extra_env or {}
        self.config_files = config_files or {}
        self.meter_dir = meter_dir
        self.outages = outages
        self.backoff_scale = backoff_scale
        if deployed and meter_dir is not None:
            raise ValueError("the meter runs inside otklik's own environment: a deployed stack cannot be metered")
        self.deployed = deployed
        self.firestore_proxy: TcpProxy | None = None
        self.pubsub_proxy: TcpProxy | None = None
        self.topology = topology.load()
        self.servers: dict[str, functions.FunctionServer] = {}
        self.bridge: EventarcBridge | None = None
        self.started_in: float = 0.0

    # --- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> LocalStack:
        began = time.monotonic()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self.started_in = time.monotonic() - began
        return self

    def _start(self) -> None:
        if self.emulators is None:
            self.emulators = emulators_mod.start(self.log_dir, self.emulators_kind)
        # The Google clients in this process (topic set-up, the bridge, summaries) find the emulators here.
        os.environ.update(self.emulators.env())
        if self.outages:
            self.firestore_proxy = TcpProxy(*_host_port(self.emulators.firestore_host)).start()
            self.pubsub_proxy = TcpProxy(*_host_port(self.emulators.pubsub_host)).start()
        self.vk = VkStandIn(
            self.walls_file,
            DEMO_VK_TOKEN,
            DEMO_COMMENTS,
            DEMO_SEARCH_EXTRA,
            reply_token=DEMO_VK_REPLY_TOKEN,
            # The demo's posts are as fresh on any day; other walls (the bench's) are dated by whoever wrote them.
            dates_as_of=utcnow() if self.walls_file == DEMO_WALLS else None,
        ).start()
        self.feeds = FeedStandIn().start()
        self.telegram = TelegramStandIn().start()
        self.max = max_standin.MaxStandIn().start()
        self.ok = OkStandIn().start()
        self.webhooks = WebhookSink().start()
        self.smtp = SmtpSink().start()
        self.config_dir = render_config(
            DEMO_CONFIG, self.work_dir / "config", {"WEBHOOK_SINK": self.webhooks.url, "FEEDS": self.feeds.url}
        )
        for file_name, text in self.config_files.items():
            (self.config_dir / file_name).write_text(text, encoding="utf-8")
        topology.create_on_emulator(self.topology, self.project_id)
        # As `make seed` does in a deployment: route reads the directory from Firestore.
        self.routing = load_routing(self.config_dir / "departments.yaml")
        FirestoreRouting(self.firestore()).save(self.routing, utcnow())
        self.webhook_secrets = {d.id: f"demo-signing-secret-{d.id}" for d in self.routing.departments if d.webhook_url}
        self.webhooks.secrets.update(self.webhook_secrets)
        # Answer links in e-mails point at department_api, so its address is chosen before anything starts.
        ports = {name: free_port() for name in functions.NAMES}
        self.public_api_url = f"http://127.0.0.1:{ports['department_api']}"
        env = self.function_env()
        source_dir, pythons = self.function_source_dir, {}
        if self.deployed:
            deployments = deployed.prepare(self.work_dir / "deployed")
            source_dir = self.work_dir / "deployed"
            pythons = {name: d.python for name, d in deployments.items()}
        metered = self.meter_dir is not None
        with concurrent.futures.ThreadPoolExecutor(len(functions.NAMES)) as pool:
            started = pool.map(
                lambda n: functions.start(
                    n, env, self.log_dir, source_dir, ports[n], metered=metered, python=pythons.get(n)
                ),
                functions.NAMES,
            )
            for server in started:
                self.servers[server.name] = server
        self.bridge = EventarcBridge(
            self.project_id,
            self.topology.subscriptions,
            {name: server.url for name, server in self.servers.items()},
            deliveries_per_message=self.deliveries_per_message,
            backoff_scale=self.backoff_scale,
        ).start()

    def function_env(self) -> dict[str, str]:
        assert self.emulators is not None
        proxied = (
            {"FIRESTORE_EMULATOR_HOST": self.firestore_proxy.address, "PUBSUB_EMULATOR_HOST": self.pubsub_proxy.address}
            if self.firestore_proxy is not None and self.pubsub_proxy is not None
            else {}
        )
        return {
            **self.emulators.env(),
            **proxied,
            **self.topology.settings_variables,
            "OTKLIK_PROJECT_ID": self.project_id,
            "OTKLIK_CONFIG_DIR": str(self.config_dir),
            "OTKLIK_VK_API_BASE": self.vk.api_base,
            "OTKLIK_VK_TOKEN": DEMO_VK_TOKEN,
            "OTKLIK_VK_CALLBACK_SECRET": DEMO_VK_CALLBACK_SECRET,
            "OTKLIK_VK_REPLY_TOKEN": DEMO_VK_REPLY_TOKEN,
            "OTKLIK_TELEGRAM_API_BASE": self.telegram.api_base,
            "OTKLIK_TELEGRAM_BOT_TOKEN": DEMO_BOT_TOKEN,
            "OTKLIK_MAX_API_BASE": self.max.api_base,
            "OTKLIK_MAX_BOT_TOKEN": max_standin.DEMO_BOT_TOKEN,
            "OTKLIK_OK_API_BASE": self.ok.api_base,
            "OTKLIK_OK_APPLICATION_KEY": ok_standin.DEMO_APPLICATION_KEY,
            "OTKLIK_OK_APPLICATION_SECRET_KEY": ok_standin.DEMO_APPLICATION_SECRET_KEY,
            "OTKLIK_OK_ACCESS_TOKEN": ok_standin.DEMO_ACCESS_TOKEN,
            "OTKLIK_INBOX_TOKEN": DEMO_INBOX_TOKEN,
            # The demo's stand-ins answer at once; production keeps the defaults (seconds, not milliseconds).
            "OTKLIK_SOURCE_BACKOFF_SECONDS": "0.05",
            "OTKLIK_VK_REQUESTS_PER_SECOND": "50",
            "OTKLIK_SMTP_HOST": self.smtp.host,
            "OTKLIK_SMTP_PORT": str(self.smtp.port),
            "OTKLIK_SMTP_SECURITY": "none",
            "OTKLIK_MAIL_FROM": "otklik@region.example",
            "OTKLIK_WEBHOOK_SECRETS": json.dumps(self.webhook_secrets),
            "OTKLIK_PUBLIC_API_URL": self.public_api_url,
            "OTKLIK_LINK_SIGNING_KEY": DEMO_LINK_SIGNING_KEY,
            "OTKLIK_WEBHOOK_ATTEMPTS": "2",
            "OTKLIK_LOCAL_MODE": "true",
            **({"OTKLIK_METER_DIR": str(self.meter_dir)} if self.meter_dir is not None else {}),
            **self.extra_env,
        }

    def stop(self) -> None:
        if self.bridge is not None:
            self.bridge.stop()
            self.bridge = None
        for server in self.servers.values():
            server.stop()
        self.servers.clear()
        for proxy in (self.firestore_proxy, self.pubsub_proxy):
            if proxy is not None:
                proxy.stop()
        self.firestore_proxy = self.pubsub_proxy = None
        for name in ("smtp", "webhooks", "ok", "max", "telegram", "feeds", "vk"):
            part = getattr(self, name, None)
            if part is not None:
                part.stop()
                delattr(self, name)
        if self._own_emulators and self.emulators is not None:
            self.emulators.stop()
            self.emulators = None

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the timers, fired as Cloud Scheduler would -------------------------------------------------

    def fire_ingest(self) -> dict[str, Any]:
        return self._post("ingest", None)

    def fire_remind(self, now: datetime | None = None) -> dict[str, Any]:
        return self._post("remind", {"now": now.isoformat()} if now else None)

    def fire_digest(self, now: datetime | None = None) -> dict[str, Any]:
        return self._post("digest", {"now": now.isoformat()} if now else None)

    # --- pushes, as VK's Callback API and another system would send them ----------------------------------

    def push_vk_event(self, event_type: str, obj: dict[str, Any], event_id: str) -> httpx.Response:
        url = self.servers["vk_callback"].url
        return self.vk.push_event(url, event_type, 210000001, DEMO_VK_CALLBACK_SECRET, obj, event_id)

    def issue_token(self, department_id: str) -> str:
        """A department API token, as `otklik token issue` makes one."""
        return tokens.issue(FirestoreDepartmentTokens(self.firestore()), department_id, "local stack", utcnow())

    def post_inbox(self, body: dict[str, Any]) -> httpx.Response:
        headers = {"Authorization": f"Bearer {DEMO_INBOX_TOKEN}"}
        return httpx.post(self.servers["inbox"].url, json=body, headers=headers, timeout=30)

    def _post(self, name: str, body: dict[str, Any] | None) -> dict[str, Any]:
        response = httpx.post(self.servers[name].url, json=body, timeout=120)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    # --- waiting and looking ------------------------------------------------------------------------

    def firestore(self) -> Any:

        return firestore.Client(project=self.project_id)

    def wait_until_settled(self, posts_published: int, timeout: float = 120.0) -> None:
        """Every published post handled by classify, no incident still waiting for routing, and Pub/Sub quiet."""
        assert self.bridge is not None
        posts_sub = next(s.name for s in self.topology.subscriptions if s.push_to == "classify")
        deadline = time.monotonic() + timeout
        db = self.firestore()
        while time.monotonic() < deadline:
            if self.bridge.handled(posts_sub) >= posts_published:
                new = db.collection("incidents").where(filter=FieldFilter("status", "==", "new"))
                waiting = int(new.count().get()[0][0].value)
                if waiting == 0:
                    break
            time.sleep(0.1)
        else:
            raise TimeoutError(f"the pipeline did not settle in {timeout:.0f}s; logs in {self.log_dir}")
        self.bridge.wait_idle(quiet=0.5, timeout=max(1.0, deadline - time.monotonic()))
